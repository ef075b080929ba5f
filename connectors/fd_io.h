// Descriptor plumbing shared by the connectors that store objects as files
// ("file", "shm"): an owning descriptor, errno -> Status, a gathered write of
// an object's parts, a non-throwing buffer for reads, the names these
// connectors mint, the temporaries they write through, and the gate that
// lets Close wait for Puts. Free functions are thread-safe; a ScopedFd is
// owned by one thread at a time.
//
//   ScopedFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600));
//   const absl::string_view parts[] = {header, payload};
//   PROXYSTORE_RETURN_IF_ERROR(
//       WriteAll(fd.get(), parts, size_t{1} << 30, [](size_t) {}));
//
// Temporaries: a writer creates its temporary with O_EXCL, LockTemporary()s
// it (flock LOCK_EX, held until the temporary is published or removed), and
// PublishTemporary()s it under the object's name. A temporary whose lock can
// be taken has lost its writer (the process died: the kernel dropped the
// lock), and RemoveIfAbandoned() reclaims it; a live writer's temporary is
// never removed.
#ifndef PROXYSTORE_CONNECTORS_FD_IO_H_
#define PROXYSTORE_CONNECTORS_FD_IO_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace proxystore {

// Closes the descriptor on scope exit. Movable.
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd();
  ScopedFd(ScopedFd&& other) : fd_(other.fd_) { other.fd_ = -1; }
  ScopedFd& operator=(ScopedFd&& other);
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  int get() const { return fd_; }
  // Closes now and reports close(2)'s result (0, or -1 with errno set).
  int Close();

 private:
  int fd_;
};

// Lets Close wait for the Puts in flight, so that none publishes after it.
// Counts per process: in a child made by fork(2) while another thread of the
// parent was in a Put, that Put does not exist, and Close does not wait for
// it (a lock held across the Put would deadlock the child's Close). Holds no
// lock; thread-safe.
class PutGate {
 public:
  // Registers a Put; false (nothing registered) once Close has begun.
  bool Enter();
  // Ends a Put that Enter() registered.
  void Leave();
  // Refuses new Puts, then waits for this process's Puts in flight.
  void CloseAndWait();
  bool closed() const { return closed_.load(); }

 private:
  std::atomic<bool> closed_{false};
  // (pid << 32) | count: the count of Puts in flight in process `pid`.
  std::atomic<uint64_t> state_{0};
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

// `n` uninitialized bytes (nullptr for n == 0), or ResourceExhausted "cannot
// allocate n bytes for <what>" if the allocator has none: for sizes that
// come from storage. Never throws.
absl::StatusOr<std::unique_ptr<char[]>> AllocateBuffer(size_t n,
                                                       absl::string_view what);

// True iff `name` is ".<object id>.tmp", a writer's temporary name.
bool IsTemporaryName(absl::string_view name);

// Takes the writer's lock (flock LOCK_EX, waiting for a sweeper that holds
// it) on `fd`, a temporary just created at `path` with O_EXCL, and checks
// that `path` still names it. false: a sweep removed it before the lock was
// taken (the writer starts over under a new name). Where the file system
// has no flock, true without a lock (and sweeps there remove nothing).
absl::StatusOr<bool> LockTemporary(int fd, const std::string& path);

// Closes `fd` (a locked temporary at `temp`, reporting close(2) errors,
// through which network file systems report failed write-back) and renames
// `temp` to `path`, holding the writer's lock until the rename is done. On
// failure removes `temp`; Aborted if `temp` was removed by someone else.
absl::Status PublishTemporary(ScopedFd fd, const std::string& temp,
                              const std::string& path);

// PublishTemporary, but never over an existing `path`: AlreadyExists (and
// `temp` removed) if the name exists, so that among racing writers of one
// name, in any process, the file system picks exactly one winner and a
// published object is never replaced (a deferred write, Connector::Set).
// renameat2(RENAME_NOREPLACE); where the file system lacks the flag (NFS,
// some FUSE), link(2) then unlink of `temp` (kRenameOrLink); kLinkOnly and
// kRenameOnly pick one (tests; tmpfs has had the flag since Linux 3.17).
enum class ExclusivePublish { kRenameOrLink, kRenameOnly, kLinkOnly };
absl::Status PublishTemporaryExclusive(
    ScopedFd fd, const std::string& temp, const std::string& path,
    ExclusivePublish how = ExclusivePublish::kRenameOrLink);

// Waits up to `timeout` for `name` to appear in `dir` (created, linked or
// renamed there), watching the directory with inotify(7): true as soon as
// `exists()` says the object is there (asked once the watch is in place, so
// a name published meanwhile is not missed, and again on each event for
// `name`), false at the timeout. Each thread keeps one inotify instance for
// all its waits (closing one costs milliseconds). Unimplemented where
// inotify cannot watch
// (no instances or watches left, a file system that does not report
// changes): the caller then polls. Network file systems report only this
// host's changes; the timeout bounds the wait there.
absl::StatusOr<bool> WaitForName(
    const std::string& dir, const std::string& name, absl::Duration timeout,
    absl::FunctionRef<absl::StatusOr<bool>()> exists);

// Removes `name` in the directory `dir_fd` if it is a regular file of this
// user whose lock can be taken: a temporary whose writer is gone. true if
// it removed it; false for a live writer's temporary, a missing name, or
// anything else (a link, a directory, another user's file, a file system
// without flock).
absl::StatusOr<bool> RemoveIfAbandoned(int dir_fd, const std::string& name);

// The names in the directory `dir_fd` (not "." and ".."), in readdir order.
absl::StatusOr<std::vector<std::string>> ListDirectory(int dir_fd);

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_FD_IO_H_
