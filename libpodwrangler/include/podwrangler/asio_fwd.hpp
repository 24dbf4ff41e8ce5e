#pragma once
// The only Asio headers our public API needs. GCC 12 + Boost 1.74 need <utility>
// before any Asio header or asio::awaitable fails to compile.
#include <utility>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

namespace pw {
namespace asio = boost::asio;
using Executor = asio::any_io_executor;
template <class T = void>
using Task = asio::awaitable<T, Executor>;
}  // namespace pw
