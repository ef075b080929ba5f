// Descriptor plumbing shared by the connectors that store objects as files
// ("file", "shm"): an owning descriptor, errno -> Status, and a gathered
// write of an object's parts. Free functions are thread-safe; a ScopedFd is
// owned by one thread at a time.
//
//   ScopedFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600));
//   const absl::string_view parts[] = {header, payload};
//   PROXYSTORE_RETURN_IF_ERROR(
//       WriteAll(fd.get(), parts, size_t{1} << 30, [](size_t) {}));
#ifndef PROXYSTORE_CONNECTORS_FD_IO_H_
#define PROXYSTORE_CONNECTORS_FD_IO_H_

#include <cstddef>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace proxystore {

// Closes the descriptor on scope exit.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd();
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  int get() const { return fd_; }
  // Closes now and reports close(2)'s result (0, or -1 with errno set).
  int Close();

 private:
  int fd_;
};

// errno -> Status with `message`; storage exhaustion of any flavour (EFBIG,
// ENOSPC, EDQUOT) is ResourceExhausted.
absl::Status ErrnoStatus(int err, absl::string_view message);

// The total size of `parts`.
size_t TotalSize(absl::Span<const absl::string_view> parts);

// Writes the concatenation of `parts` at the descriptor's offset with
// writev(2) (so the parts are never joined in memory), at most `max_chunk`
// bytes per call, retrying EINTR and partial writes. After each call that
// wrote something, `after_write(bytes written so far)`. On failure, an
// ErrnoStatus "failed after X of N bytes" (EIO "made no progress ..." if a
// call wrote nothing). `max_chunk` must be > 0.
absl::Status WriteAll(int fd, absl::Span<const absl::string_view> parts,
                      size_t max_chunk,
                      absl::FunctionRef<void(size_t)> after_write);

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_FD_IO_H_
