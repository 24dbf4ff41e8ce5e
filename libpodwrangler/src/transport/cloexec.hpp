#pragma once
// Asio's socket open() creates descriptors without SOCK_CLOEXEC (and Boost 1.74 sets
// FD_CLOEXEC nowhere for sockets): such a descriptor leaks into every process that any
// thread of this program forks before it is closed. Every socket the library opens goes
// through open_cloexec() instead, so it is close-on-exec from its first instant.
#include <utility>
#include <boost/system/error_code.hpp>

#include <cerrno>
#include <sys/socket.h>
#include <unistd.h>

namespace pw::transport {

template <class Socket>
void open_cloexec(Socket& sock, const typename Socket::protocol_type& protocol, boost::system::error_code& ec) {
  int fd = ::socket(protocol.family(), protocol.type() | SOCK_CLOEXEC, protocol.protocol());
  if (fd < 0) {
    ec = boost::system::error_code(errno, boost::system::system_category());
    return;
  }
  sock.assign(protocol, fd, ec);
  if (ec) ::close(fd);
}

}  // namespace pw::transport
