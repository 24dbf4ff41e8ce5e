#pragma once
// ScopedSigpipeBlock: SIGPIPE blocked in the calling thread while the object lives.
// cpp-httplib 0.11 and OpenSSL's socket BIO write with send()/write() without MSG_NOSIGNAL;
// when the peer has closed the connection (a server that answered 413 before reading the
// whole upload, a client that left) such a write raises SIGPIPE, which ends a process that
// does not ignore it, silently. With the guard the write fails with EPIPE and the caller
// reports it, and the host's signal dispositions stay as they are. A SIGPIPE raised while
// the guard lived is taken off the pending set before the old mask returns, so it is never
// delivered afterwards. Threads inherit the mask of the thread that creates them.
#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <ctime>

namespace pw {

class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() noexcept {
    sigset_t pipe = only_sigpipe();
    pthread_sigmask(SIG_BLOCK, &pipe, &old_);
  }
  ~ScopedSigpipeBlock() {
    if (!sigismember(&old_, SIGPIPE)) {
      sigset_t pending;
      sigemptyset(&pending);
      if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        sigset_t pipe = only_sigpipe();
        const timespec zero{0, 0};
        while (sigtimedwait(&pipe, nullptr, &zero) == -1 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  static sigset_t only_sigpipe() noexcept {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    return s;
  }
  sigset_t old_{};
};

}  // namespace pw
