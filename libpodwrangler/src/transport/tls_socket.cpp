// The socket BIO under TlsSocket. OpenSSL's own socket BIO (BIO_s_socket(), what SSL_set_fd
// installs) writes with write(): once the peer has reset the connection that raises SIGPIPE,
// which kills a host process that does not ignore it, and a library must not change its
// host's signal dispositions. This BIO writes with send(MSG_NOSIGNAL), so the write fails
// with EPIPE instead. Everything else (reads, retry flags, the EOF flag OpenSSL checks to
// report an unexpected EOF) does what OpenSSL's crypto/bio/bss_sock.c does.
#include "tls_socket.hpp"

#include <openssl/bio.h>

#include <cerrno>
#include <new>
#include <sys/socket.h>

namespace pw::transport {

namespace {

// The BIO's data is the descriptor (an int of its own, made in nosignal_create). The BIO
// never closes it: the Asio socket owns it (SSL_set_fd's BIO_NOCLOSE).
int& bio_fd(BIO* b) { return *static_cast<int*>(BIO_get_data(b)); }

int nosignal_write(BIO* b, const char* in, int len) {
  errno = 0;  // BIO_sock_should_retry() reads errno
  int ret = static_cast<int>(::send(bio_fd(b), in, static_cast<std::size_t>(len), MSG_NOSIGNAL));
  BIO_clear_retry_flags(b);
  if (ret <= 0 && BIO_sock_should_retry(ret)) BIO_set_retry_write(b);
  return ret;
}

int nosignal_read(BIO* b, char* out, int len) {
  if (out == nullptr) return 0;
  errno = 0;  // a read of 0 bytes is EOF only when errno says nothing else
  int ret = static_cast<int>(::recv(bio_fd(b), out, static_cast<std::size_t>(len), 0));
  BIO_clear_retry_flags(b);
  if (ret <= 0) {
    if (BIO_sock_should_retry(ret))
      BIO_set_retry_read(b);
    else if (ret == 0)
      BIO_set_flags(b, BIO_FLAGS_IN_EOF);
  }
  return ret;
}

long nosignal_ctrl(BIO* b, int cmd, long /*num*/, void* ptr) {
  switch (cmd) {
    case BIO_C_SET_FD:
      bio_fd(b) = *static_cast<int*>(ptr);
      BIO_set_init(b, 1);
      return 1;
    case BIO_C_GET_FD:
      if (!BIO_get_init(b)) return -1;
      if (ptr) *static_cast<int*>(ptr) = bio_fd(b);
      return bio_fd(b);
    case BIO_CTRL_GET_CLOSE: return BIO_NOCLOSE;
    case BIO_CTRL_DUP:
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_EOF: return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
      // Kernel TLS included: OpenSSL then keeps the record layer in user space, as it
      // does on SSL_set_fd's BIO unless SSL_OP_ENABLE_KTLS is set (never, here).
      return 0;
  }
}

int nosignal_create(BIO* b) {
  int* fd = new (std::nothrow) int(-1);
  if (fd == nullptr) return 0;
  BIO_set_data(b, fd);
  BIO_set_init(b, 0);
  return 1;
}

int nosignal_destroy(BIO* b) {
  if (b == nullptr) return 0;
  delete static_cast<int*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  return 1;
}

// Made once, on first use (thread-safe static), and kept for the life of the process.
BIO_METHOD* nosignal_socket_method() {
  static BIO_METHOD* const method = [] {
    int index = BIO_get_new_index();
    if (index == -1) return static_cast<BIO_METHOD*>(nullptr);
    // A descriptor BIO, so that SSL_get_fd() finds it.
    BIO_METHOD* m = BIO_meth_new(index | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "socket (MSG_NOSIGNAL)");
    if (m && BIO_meth_set_write(m, nosignal_write) == 1 && BIO_meth_set_read(m, nosignal_read) == 1 &&
        BIO_meth_set_ctrl(m, nosignal_ctrl) == 1 && BIO_meth_set_create(m, nosignal_create) == 1 &&
        BIO_meth_set_destroy(m, nosignal_destroy) == 1)
      return m;
    BIO_meth_free(m);
    return static_cast<BIO_METHOD*>(nullptr);
  }();
  return method;
}

}  // namespace

bool set_nosignal_fd(SSL* ssl, int fd) {
  BIO_METHOD* method = nosignal_socket_method();
  BIO* bio = method ? BIO_new(method) : nullptr;
  if (!bio) return false;
  BIO_set_fd(bio, fd, BIO_NOCLOSE);
  SSL_set_bio(ssl, bio, bio);  // one reference, read and write side alike
  return true;
}

}  // namespace pw::transport
