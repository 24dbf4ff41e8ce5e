#pragma once
namespace pw::cli {
// Entry point of the podwrangler program; returns the process exit code.
int run(int argc, char** argv);
}  // namespace pw::cli
