#include "cli/run.hpp"

int main(int argc, char** argv) { return pw::cli::run(argc, argv); }
