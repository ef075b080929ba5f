#include "proxystore/connectors/fd_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/connector.h"

namespace proxystore {
namespace {

// flock(2) errors that mean "this file system has no such locks" (some
// network and FUSE file systems).
bool LocksUnsupported(int err) {
  return err == ENOLCK || err == EOPNOTSUPP || err == ENOSYS || err == EINVAL;
}

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) ::close(fd_);
}

ScopedFd& ScopedFd::operator=(ScopedFd&& other) {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

int ScopedFd::Close() {
  const int rc = ::close(fd_);
  fd_ = -1;
  return rc;
}

namespace {
constexpr uint64_t kCountMask = 0xffffffff;
uint64_t ThisProcess() { return static_cast<uint64_t>(::getpid()) << 32; }
}  // namespace

bool PutGate::Enter() {
  const uint64_t me = ThisProcess();
  uint64_t state = state_.load();
  // A count of another process (the parent's, copied by fork) restarts at 0.
  while (!state_.compare_exchange_weak(
      state, ((state & ~kCountMask) == me ? state : me) + 1)) {
  }
  // Sequentially consistent with CloseAndWait: either this sees closed_, or
  // CloseAndWait sees the count.
  if (closed_.load()) {
    Leave();
    return false;
  }
  return true;
}

void PutGate::Leave() {
  // Only this process changes its count.
  if (((state_.fetch_sub(1) - 1) & kCountMask) == 0) state_.notify_all();
}

void PutGate::CloseAndWait() {
  closed_.store(true);
  const uint64_t me = ThisProcess();
  for (uint64_t state = state_.load();
       (state & ~kCountMask) == me && (state & kCountMask) != 0;
       state = state_.load()) {
    state_.wait(state);
  }
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

absl::StatusOr<std::unique_ptr<char[]>> AllocateBuffer(size_t n,
                                                       absl::string_view what) {
  if (n == 0) return nullptr;
  // Not make_unique_for_overwrite: the size comes from storage, and a
  // bad_alloc would terminate the process.
  std::unique_ptr<char[]> buffer(new (std::nothrow) char[n]);
  if (buffer == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", n, " bytes for ", what));
  }
  return buffer;
}

bool IsTemporaryName(absl::string_view name) {
  return name.size() == 37 && name.front() == '.' &&
         name.substr(33) == ".tmp" && IsObjectId(name.substr(1, 32));
}

// Why flock: its lock belongs to the open file description, so it dies with
// the writer's last descriptor (a killed process's included), it conflicts
// between descriptors of one process (a sweep in the writer's own process
// does not take it, unlike a POSIX record lock), and Linux NFS maps it to
// whole-file byte-range locks that other clients see. A child forked during
// the Put inherits the descriptor and the lock: the temporary then counts as
// live until the child's copy is closed too (late, never early).
absl::StatusOr<bool> LockTemporary(int fd, const std::string& path) {
  // Blocking: a sweeper holds the lock only while it removes the file.
  while (::flock(fd, LOCK_EX) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    if (LocksUnsupported(err)) return true;
    return ErrnoStatus(err, absl::StrCat("cannot lock ", path));
  }
  // Between open and flock a sweeper may have taken the lock and removed
  // the name (it cannot tell a writer not yet locked from a dead one).
  struct stat mine, named;
  if (::fstat(fd, &mine) != 0) {
    const int err = errno;
    return ErrnoStatus(err, absl::StrCat("fstat of ", path, " failed"));
  }
  if (::lstat(path.c_str(), &named) != 0) {
    const int err = errno;
    if (err == ENOENT) return false;
    return ErrnoStatus(err, absl::StrCat("lstat of ", path, " failed"));
  }
  return SameFile(mine, named);
}

namespace {

// Closes a locked temporary's `fd` (reporting close(2) errors, through which
// network file systems report failed write-back) and returns a duplicate
// that keeps the lock: the lock belongs to the open file description, so no
// sweep takes the finished temporary before it is published. On failure
// removes `temp`.
absl::StatusOr<ScopedFd> CloseKeepingLock(ScopedFd fd,
                                          const std::string& temp) {
  ScopedFd lock(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
  if (lock.get() < 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return ErrnoStatus(
        err, absl::StrCat("cannot duplicate the descriptor of ", temp));
  }
  if (fd.Close() != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return ErrnoStatus(err, absl::StrCat("closing ", temp));
  }
  return lock;
}

absl::Status RemovedBeforePublished(const std::string& temp) {
  return absl::AbortedError(
      absl::StrCat(temp, " was removed before it was published"));
}

}  // namespace

absl::Status PublishTemporary(ScopedFd fd, const std::string& temp,
                              const std::string& path) {
  PROXYSTORE_ASSIGN_OR_RETURN(ScopedFd lock,
                              CloseKeepingLock(std::move(fd), temp));
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    if (err == ENOENT) return RemovedBeforePublished(temp);
    ::unlink(temp.c_str());
    return ErrnoStatus(err, absl::StrCat("renaming ", temp, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status PublishTemporaryExclusive(ScopedFd fd, const std::string& temp,
                                       const std::string& path,
                                       ExclusivePublish how) {
  PROXYSTORE_ASSIGN_OR_RETURN(ScopedFd lock,
                              CloseKeepingLock(std::move(fd), temp));
  int err = EINVAL;
  if (how != ExclusivePublish::kLinkOnly) {
    if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(),
                    RENAME_NOREPLACE) == 0) {
      return absl::OkStatus();
    }
    err = errno;
  }
  const bool no_flag = err == EINVAL || err == ENOSYS || err == EOPNOTSUPP;
  if (no_flag && how != ExclusivePublish::kRenameOnly) {
    err = ::link(temp.c_str(), path.c_str()) == 0 ? 0 : errno;
    if (err == EEXIST) {
      // NFS may retry a link that worked and report EEXIST: our own inode
      // under the name is a success.
      struct stat mine, named;
      if (::fstat(lock.get(), &mine) == 0 &&
          ::lstat(path.c_str(), &named) == 0 && mine.st_dev == named.st_dev &&
          mine.st_ino == named.st_ino) {
        err = 0;
      }
    }
    if (err == 0) {
      // Best effort: a temporary name left behind (with the lock gone) is
      // swept later, which unlinks that name only, not the object.
      ::unlink(temp.c_str());
      return absl::OkStatus();
    }
  }
  if (err == ENOENT) return RemovedBeforePublished(temp);
  ::unlink(temp.c_str());
  if (err == EEXIST) {
    return absl::AlreadyExistsError(
        absl::StrCat(path, " exists: the key is already set"));
  }
  return ErrnoStatus(err, absl::StrCat("publishing ", temp, " as ", path));
}

namespace {

// Each thread keeps one inotify instance for its waits: closing an instance
// costs milliseconds (the kernel tears its group down), far more than a
// wait for an object set right away. Directories are added to it as waits
// ask for them (inotify_add_watch on a watched directory returns its watch
// again); events that pile up between waits are drained before each one. A
// forked child drops the instance it inherited (closing its copy of the
// descriptor is cheap: the parent's stays open) and opens its own.
struct ThreadInotify {
  int fd = -1;
  pid_t pid = 0;
  ~ThreadInotify() {
    if (fd >= 0) ::close(fd);
  }
  int Get() {
    if (fd >= 0 && pid != ::getpid()) {
      ::close(fd);
      fd = -1;
    }
    if (fd < 0) {
      fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
      pid = ::getpid();
    }
    return fd;
  }
};
thread_local ThreadInotify t_inotify;

}  // namespace

absl::StatusOr<bool> WaitForName(
    const std::string& dir, const std::string& name, absl::Duration timeout,
    absl::FunctionRef<absl::StatusOr<bool>()> exists) {
  const int fd = t_inotify.Get();
  const int wd =
      fd < 0 ? -1
             : ::inotify_add_watch(fd, dir.c_str(),
                                   IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
  if (wd < 0) {
    return absl::UnimplementedError(absl::StrCat(
        "cannot watch ", dir, " with inotify: ", std::strerror(errno)));
  }
  // Room for a burst of events (each at most sizeof + NAME_MAX + 1).
  alignas(
      inotify_event) char buffer[16 * (sizeof(inotify_event) + NAME_MAX + 1)];
  // Whether the events read now name `name` in `dir` (or may have: an
  // overflow drops events).
  auto read_events = [&]() -> bool {
    bool named = false;
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n <= 0) return named;
      for (ssize_t off = 0; off < n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buffer + off);
        if ((e->mask & IN_Q_OVERFLOW) != 0 ||
            (e->wd == wd && e->len > 0 && name == e->name)) {
          named = true;
        }
        off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
  };
  read_events();  // what piled up since the last wait
  const absl::Time deadline = absl::Now() + timeout;
  // Asked once the watch is in place and drained: a name published before
  // is seen here, one published after raises an event.
  PROXYSTORE_ASSIGN_OR_RETURN(bool there, exists());
  while (!there) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd p{fd, POLLIN, 0};
    const int ms = static_cast<int>(std::min<int64_t>(
        absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))),
        INT32_MAX));
    const int ready = ::poll(&p, 1, ms);
    if (ready < 0 && errno != EINTR) {
      return ErrnoStatus(errno, absl::StrCat("waiting for ", dir, "/", name));
    }
    if (ready > 0 && read_events()) {
      PROXYSTORE_ASSIGN_OR_RETURN(there, exists());
    }
  }
  return true;
}

absl::StatusOr<bool> RemoveIfAbandoned(int dir_fd, const std::string& name) {
  // Look before opening: never open a device, FIFO or link.
  struct stat before;
  if (::fstatat(dir_fd, name.c_str(), &before, AT_SYMLINK_NOFOLLOW) != 0) {
    const int err = errno;
    if (err == ENOENT) return false;
    return ErrnoStatus(err, absl::StrCat("cannot stat ", name));
  }
  if (!S_ISREG(before.st_mode) || before.st_uid != ::geteuid()) return false;
  ScopedFd fd(
      ::openat(dir_fd, name.c_str(),
               O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT || err == EACCES || err == ELOOP) return false;
    return ErrnoStatus(err, absl::StrCat("cannot open ", name));
  }
  struct stat opened;
  if (::fstat(fd.get(), &opened) != 0 || !SameFile(before, opened)) {
    return false;
  }
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    // EWOULDBLOCK: its writer is alive. Without locks nothing is known.
    if (err == EWOULDBLOCK || LocksUnsupported(err)) return false;
    return ErrnoStatus(err, absl::StrCat("cannot lock ", name));
  }
  // Locked: its writer is gone, or published it (the name is then gone, or
  // names a newer file).
  struct stat now;
  if (::fstatat(dir_fd, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 ||
      !SameFile(opened, now)) {
    return false;
  }
  if (::unlinkat(dir_fd, name.c_str(), 0) != 0) {
    const int err = errno;
    if (err == ENOENT) return false;
    return ErrnoStatus(err, absl::StrCat("cannot remove ", name));
  }
  return true;
}

absl::StatusOr<std::vector<std::string>> ListDirectory(int dir_fd) {
  // fdopendir takes ownership of its descriptor: list through a duplicate
  // (which shares the offset, hence the rewind).
  const int copy = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    const int err = errno;
    return ErrnoStatus(err, "cannot duplicate a directory descriptor");
  }
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(copy), &::closedir);
  if (dir == nullptr) {
    const int err = errno;
    ::close(copy);
    return ErrnoStatus(err, "cannot list the directory");
  }
  ::rewinddir(dir.get());
  std::vector<std::string> names;
  while (true) {
    errno = 0;
    const struct dirent* e = ::readdir(dir.get());
    if (e == nullptr) {
      if (const int err = errno; err != 0) {
        return ErrnoStatus(err, "cannot list the directory");
      }
      return names;
    }
    const absl::string_view name(e->d_name);
    if (name != "." && name != "..") names.emplace_back(name);
  }
}

}  // namespace proxystore
