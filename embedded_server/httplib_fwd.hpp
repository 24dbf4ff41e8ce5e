#pragma once
// The cpp-httplib types the server's headers name, declared without <httplib.h> (a large
// header; only the .cpp files that use the types include it).
namespace httplib {
struct Request;
struct Response;
}  // namespace httplib
