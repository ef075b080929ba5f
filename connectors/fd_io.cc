#include "connectors/fd_io.h"

#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"

namespace proxystore {

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) ::close(fd_);
}

int ScopedFd::Close() {
  const int rc = ::close(fd_);
  fd_ = -1;
  return rc;
}

absl::Status ErrnoStatus(int err, absl::string_view message) {
  if (err == EFBIG || err == ENOSPC || err == EDQUOT) {
    return absl::ResourceExhaustedError(
        absl::StrCat(message, ": ", std::generic_category().message(err)));
  }
  return absl::ErrnoToStatus(err, message);
}

size_t TotalSize(absl::Span<const absl::string_view> parts) {
  size_t n = 0;
  for (absl::string_view p : parts) n += p.size();
  return n;
}

absl::Status WriteAll(int fd, absl::Span<const absl::string_view> parts,
                      size_t max_chunk,
                      absl::FunctionRef<void(size_t)> after_write) {
  const size_t n = TotalSize(parts);
  size_t written = 0;
  size_t part = 0;    // The part the next byte comes from,
  size_t offset = 0;  // and its offset in that part.
  std::vector<iovec> iov;
  while (written < n) {
    // Up to IOV_MAX pieces and max_chunk bytes from (part, offset) on.
    iov.clear();
    size_t budget = max_chunk;
    for (size_t i = part, off = offset;
         i < parts.size() && budget > 0 && iov.size() < IOV_MAX; ++i) {
      const size_t len = std::min(parts[i].size() - off, budget);
      if (len > 0) {
        // writev only reads through iov_base.
        iov.push_back({const_cast<char*>(parts[i].data() + off), len});
        budget -= len;
      }
      off = 0;
    }
    const ssize_t w = ::writev(fd, iov.data(), static_cast<int>(iov.size()));
    if (w < 0) {
      const int err = errno;  // before StrCat can allocate
      if (err == EINTR) continue;
      return ErrnoStatus(
          err, absl::StrCat("failed after ", written, " of ", n, " bytes"));
    }
    if (w == 0) {
      return ErrnoStatus(EIO, absl::StrCat("made no progress after ", written,
                                           " of ", n, " bytes"));
    }
    written += static_cast<size_t>(w);
    // Advance (part, offset) past the w bytes just written.
    size_t left = static_cast<size_t>(w);
    while (left > 0) {
      const size_t in_part = parts[part].size() - offset;
      if (left < in_part) {
        offset += left;
        left = 0;
      } else {
        left -= in_part;
        ++part;
        offset = 0;
      }
    }
    after_write(written);
  }
  return absl::OkStatus();
}

}  // namespace proxystore
