#include "proxystore/connectors/shm/shm_connector.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/fd_io.h"

namespace proxystore {
namespace {

// A Put whose temporary a concurrent sweep removed before the writer locked
// it (the sweep cannot tell such a writer from a dead one) starts over under
// a new name; a second loss in a row is all but impossible.
constexpr int kPutAttempts = 3;

std::string Quote(absl::string_view s) { return QuoteForMessage(s); }

// Letters, digits, '_' and '-': no '.', so "<prefix><ns>.<id>" parses one
// way only and no key reaches a temporary name.
bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         c == '-';
}

// The first character of `s` that IsNameChar rejects, if any.
std::optional<char> FirstBadChar(absl::string_view s) {
  auto it = std::find_if_not(s.begin(), s.end(), IsNameChar);
  if (it == s.end()) return std::nullopt;
  return *it;
}

absl::StatusOr<int64_t> NonNegativeOption(const ConnectorConfig& options,
                                          absl::string_view name,
                                          int64_t fallback) {
  PROXYSTORE_ASSIGN_OR_RETURN(int64_t value, options.GetInt(name, fallback));
  if (value < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "connector \"shm\": option \"", name, "\" must be >= 0, got ", value));
  }
  return value;
}

}  // namespace

ShmConnector::ShmConnector(std::string ns, bool clear,
                           int64_t populate_min_size, int64_t max_object_size,
                           TestHooks hooks)
    : namespace_(std::move(ns)),
      file_prefix_(absl::StrCat(kNamePrefix, namespace_, ".")),
      clear_(clear),
      populate_min_size_(populate_min_size),
      max_object_size_(max_object_size),
      hooks_(std::move(hooks)) {}

absl::Status ShmConnector::ValidateNamespace(absl::string_view ns) {
  std::string problem;
  if (ns.empty()) {
    problem = "it is empty";
  } else if (ns.size() > kMaxNamespaceSize) {
    problem = absl::StrCat("it is longer than ", kMaxNamespaceSize, " bytes");
  } else if (std::optional<char> bad = FirstBadChar(ns)) {
    problem = absl::StrCat("it contains ", Quote(absl::string_view(&*bad, 1)),
                           " (allowed: letters, digits, '_', '-')");
  } else {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("connector \"shm\": option \"namespace\" ",
                   QuoteForMessage(ns, 100), " is not valid: ", problem));
}

absl::StatusOr<std::unique_ptr<ShmConnector>> ShmConnector::Create(
    const ConnectorConfig& options) {
  return CreateForTesting(options, TestHooks{});
}

absl::StatusOr<std::unique_ptr<ShmConnector>> ShmConnector::CreateForTesting(
    const ConnectorConfig& options, TestHooks hooks) {
  PROXYSTORE_RETURN_IF_ERROR(options.CheckKnownOptions(
      {"namespace", "clear", "populate_min_size", "max_object_size"}));
  std::string ns;
  if (auto it = options.options.find("namespace");
      it != options.options.end()) {
    ns = it->second;
    PROXYSTORE_RETURN_IF_ERROR(ValidateNamespace(ns));
  } else {
    ns = NewObjectId();
  }
  // Unlike ProxyStore's file connector (default true) and like its Redis
  // connector: connectors re-created from Config() in other processes
  // (proxies resolving there) must not delete the creator's segments when
  // they close. The owner closes with {.clear = true}; leftovers are easy to
  // find (`ls /dev/shm/proxystore.<namespace>.*`).
  PROXYSTORE_ASSIGN_OR_RETURN(bool clear, options.GetBool("clear", false));
  PROXYSTORE_ASSIGN_OR_RETURN(
      int64_t populate_min_size,
      NonNegativeOption(options, "populate_min_size", kDefaultPopulateMinSize));
  PROXYSTORE_ASSIGN_OR_RETURN(
      int64_t max_object_size,
      NonNegativeOption(options, "max_object_size", kNoSizeLimit));
  // Linux only: on Linux (glibc) a POSIX shm object is the file of the same
  // name in the tmpfs mounted at /dev/shm, and the connector works on those
  // files directly (open/rename/unlink and listing /dev/shm), which
  // shm_open/shm_unlink alone cannot do.
  const std::string dir(kShmDirectory);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("connector \"shm\": ", dir,
                     " is not a directory; POSIX shared memory on a tmpfs at "
                     "/dev/shm (Linux) is required"));
  }
  // Not make_unique: the constructor is private.
  std::unique_ptr<ShmConnector> c(
      new ShmConnector(std::move(ns), clear, populate_min_size, max_object_size,
                       std::move(hooks)));
  // Best effort: reclaiming RAM is no reason to fail.
  c->Sweep(/*objects=*/false).IgnoreError();
  return c;
}

absl::StatusOr<std::unique_ptr<Connector>> ShmConnector::FromConfig(
    const ConnectorConfig& config) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<ShmConnector> c, Create(config));
  return std::unique_ptr<Connector>(std::move(c));
}

ConnectorKindTraits ShmConnector::KindTraits() {
  ConnectorKindTraits traits;
  traits.location_options = {"namespace"};
  traits.receiver_defaults = {
      {"clear", "false"},
      {"max_object_size", absl::StrCat(kReceiverMaxObjectSize)}};
  traits.destinations = [](const ConnectorConfig& config)
      -> absl::StatusOr<std::vector<std::string>> {
    auto it = config.options.find("namespace");
    if (it == config.options.end()) {
      return absl::InvalidArgumentError(
          "connector \"shm\": option \"namespace\" is required in a config "
          "from outside (Config() always has it)");
    }
    PROXYSTORE_RETURN_IF_ERROR(ValidateNamespace(it->second));
    return std::vector<std::string>{absl::StrCat(kKind, ":", it->second)};
  };
  return traits;
}

ConnectorConfig ShmConnector::Config() const {
  return ConnectorConfig{
      std::string(kKind),
      {{"namespace", namespace_},
       {"clear", clear_ ? "true" : "false"},
       {"populate_min_size", absl::StrCat(populate_min_size_)},
       {"max_object_size", absl::StrCat(max_object_size_)}}};
}

absl::Status ShmConnector::CheckOpen(absl::string_view op) const {
  if (puts_.closed()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shm connector (namespace ", namespace_, "): ", op, " after Close"));
  }
  return absl::OkStatus();
}

// Only ids NewObjectId() mints name segments: no name injection.
absl::StatusOr<std::string> ShmConnector::FileName(const Key& key,
                                                   absl::string_view op) const {
  if (IsObjectId(key.id())) return absl::StrCat(file_prefix_, key.id());
  // Keys may come from a proxy: echo a bounded part.
  return absl::InvalidArgumentError(absl::StrCat(
      "shm connector ", op, ": key ", QuoteForMessage(key.id(), 100),
      " is not a valid shm object name: this connector names objects with 32 "
      "lowercase hex digits"));
}

absl::StatusOr<std::string> ShmConnector::SegmentName(const Key& key) const {
  PROXYSTORE_ASSIGN_OR_RETURN(std::string name, FileName(key, "SegmentName"));
  return absl::StrCat("/", name);
}

absl::StatusOr<Key> ShmConnector::DoPut(SharedBytes data,
                                        const PutOptions& options) {
  const absl::string_view part = data.view();
  return DoPutParts(absl::MakeConstSpan(&part, 1), options);
}

absl::StatusOr<Key> ShmConnector::DoPutParts(
    absl::Span<const absl::string_view> parts, const PutOptions& /*options*/) {
  return WriteObject(parts, /*set_key=*/nullptr);
}

absl::StatusOr<Key> ShmConnector::DoNewKey(const NewKeyOptions& /*options*/) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("NewKey"));
  return Key(NewObjectId());
}

absl::Status ShmConnector::DoSet(const Key& key, SharedBytes data) {
  const absl::string_view part = data.view();
  return WriteObject(absl::MakeConstSpan(&part, 1), &key).status();
}

absl::Status ShmConnector::DoSetParts(
    const Key& key, absl::Span<const absl::string_view> parts) {
  return WriteObject(parts, &key).status();
}

absl::StatusOr<bool> ShmConnector::DoWaitFor(const Key& key,
                                             absl::Duration timeout) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::string name, FileName(key, "WaitFor"));
  // A Set publishes by rename into the tmpfs at /dev/shm.
  return WaitForName(std::string(kShmDirectory), name, timeout,
                     [&] { return DoExists(key); });
}

// Publication: Put creates a temporary segment
// "proxystore.<namespace>..<key id>.tmp" (O_CREAT|O_EXCL, mode 0600), holds
// flock(LOCK_EX) on it, write()s the bytes into its descriptor (looping over
// partial writes and EINTR; the writer never maps the segment, so it takes no
// user page faults), and rename(2)s it to the object's name, so a reader
// never sees an object half-written. Temporary names can never be addressed
// by a key. A failed write (ENOSPC when the tmpfs is full, EFBIG) removes the
// temporary segment and returns an error naming the key. A temporary whose
// lock can be taken lost its writer (killed mid-Put): creating a connector
// and clearing remove those of its namespace, so they do not hold RAM until
// reboot; a live writer's temporary is never removed.
//
// Set takes the same path with two differences. Its temporary is named after
// a fresh id, not the key ("proxystore.<namespace>..<fresh id>.tmp"): racing
// Sets of one key, in any processes, each write their own. And it publishes
// with PublishTemporaryExclusive (fd_io.h; renameat2 RENAME_NOREPLACE, which
// tmpfs has had since Linux 3.17), which the kernel refuses with EEXIST where
// the segment exists: the file system itself picks the one winner, and no
// published segment is ever replaced (views mapped from it keep what they
// read).
absl::StatusOr<Key> ShmConnector::WriteObject(
    absl::Span<const absl::string_view> parts, const Key* set_key) {
  const absl::string_view op = set_key == nullptr ? "Put" : "Set";
  if (!puts_.Enter()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shm connector (namespace ", namespace_, "): ", op, " after Close"));
  }
  absl::Cleanup leave = [this] { puts_.Leave(); };
  // Before the id becomes part of a name.
  if (set_key != nullptr) {
    PROXYSTORE_RETURN_IF_ERROR(FileName(*set_key, "Set").status());
  }
  for (int attempt = 1;; ++attempt) {
    const Key key = set_key == nullptr ? Key(NewObjectId()) : *set_key;
    const std::string temp_id = set_key == nullptr ? key.id() : NewObjectId();
    const std::string path =
        absl::StrCat(kShmDirectory, "/", file_prefix_, key.id());
    // "<prefix>.<id>.tmp": a key id cannot contain '.', so no key names it.
    const std::string temp =
        absl::StrCat(kShmDirectory, "/", file_prefix_, ".", temp_id, ".tmp");
    const std::string context =
        absl::StrCat("shm connector ", op, " of key ", Quote(key.id()),
                     " (namespace ", namespace_, ")");

    // Flags as glibc's shm_open adds them (O_NOFOLLOW | O_CLOEXEC).
    ScopedFd fd(::open(temp.c_str(),
                       O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       0600));
    if (fd.get() < 0) {
      const int err = errno;
      return ErrnoStatus(err, absl::StrCat(context, ": cannot create ", temp));
    }
    absl::StatusOr<bool> locked = LockTemporary(fd.get(), temp);
    if (!locked.ok()) {
      ::unlink(temp.c_str());
      return Annotate(locked.status(), context);
    }
    if (!*locked) {
      // A concurrent sweep took it for abandoned: start over.
      if (attempt < kPutAttempts) continue;
      return absl::AbortedError(absl::StrCat(
          context, ": temporary segments were removed by concurrent sweeps ",
          kPutAttempts, " times in a row"));
    }
    absl::Status wrote = WriteAll(
        fd.get(), parts,
        (hooks_.max_io_chunk == 0 ? kDefaultMaxIoChunk : hooks_.max_io_chunk),
        [&](size_t written) {
          if (hooks_.after_write) hooks_.after_write(key, temp, written);
        });
    if (!wrote.ok()) {
      ::unlink(temp.c_str());
      return Annotate(wrote, absl::StrCat(context, ": writing ", temp));
    }
    PROXYSTORE_RETURN_IF_ERROR(
        Annotate(set_key == nullptr
                     ? PublishTemporary(std::move(fd), temp, path)
                     : PublishTemporaryExclusive(std::move(fd), temp, path,
                                                 ExclusivePublish::kRenameOnly),
                 context));
    return key;
  }
}

// Get returns a read-only view of the segment itself, without copying: it
// opens the segment O_RDONLY, fstat()s its size, mmap()s it PROT_READ
// MAP_SHARED, closes the descriptor, and returns SharedBytes::FromOwner with
// a deleter that munmap()s when the last reference dies. Because a mapping
// outlives the unlink of its segment, a view stays valid after Evict or
// Close(clear) (by this or any process). Each live non-empty view is one
// mapping: a process holding more than vm.max_map_count (65530 by default)
// views at once gets ResourceExhausted (ENOMEM) from mmap.
//
// MAP_POPULATE, measured on our 2-vCPU VM (kernel 6.18, /dev/shm tmpfs,
// median us of open+fstat+mmap+close, then reading one byte per page):
//                     mmap only   + touch all   POPULATE   POPULATE + touch
//     10 KB              5.0          6.3          7.1           6.6
//     256 KiB            5.6         17.0         22.5          22.1
//     1 MB               6.7         48.9         68.1          66.2
//     10 MB             12.6        500-676       603           618-634
//     100 MB            29.6       7,730-8,390   6,480-6,730   6,770-6,840
// Read faults on shm are cheap here (fault-around maps 16 pages per fault),
// and a populated mapping costs its whole page-table setup up front (~6.5 ms
// for 100 MB) even when the reader looks at one field of a FlatBuffers
// table. So by default nothing is populated: a Get of any size costs an mmap
// (~30 us for 100 MB) and a reader pays only for the pages it touches, which
// is what reading in place promises; a reader of every byte pays ~15% more
// than populated. When consumers read whole large objects, or on a machine
// where faults are expensive (a 2-vCPU VM measured ~10 us per
// fault, and touching a 1 MB mapping at 340 us against 85 us populated), set
// "populate_min_size" (e.g. to 8 MiB, or 65536). Put via write() costs 270
// us per MB here, against 760 us for ftruncate+mmap+memcpy.
//
// Caveat of the mapping (as for the file connector): if another process
// truncates a segment while a view of it is alive, touching the lost pages
// raises SIGBUS. This connector never modifies a published segment (Evict and
// Close unlink, which is safe), and the size is checked again after mapping.
// Other than that, a segment's bytes are just bytes to the connector: garbage
// or a wrong size is returned as is, and the serializer above detects the
// corruption.
absl::StatusOr<std::optional<SharedBytes>> ShmConnector::DoGet(const Key& key) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("Get"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string name, FileName(key, "Get"));
  const std::string path = absl::StrCat(kShmDirectory, "/", name);
  auto error = [&](absl::StatusCode code, absl::string_view what) {
    return absl::Status(
        code, absl::StrCat("shm connector Get of key ", Quote(key.id()),
                           " from ", path, ": ", what));
  };
  auto errno_error = [&](int err, absl::string_view what) {
    return ErrnoStatus(
        err, absl::StrCat("shm connector Get of key ", Quote(key.id()),
                          " from ", path, ": ", what));
  };

  // O_NONBLOCK: opening a FIFO planted under a key's name must not hang.
  ScopedFd fd(
      ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    int err = errno;
    if (err == ENOENT) return std::nullopt;  // Missing, or evicted just now.
    return errno_error(err, "open failed");
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    int err = errno;
    return errno_error(err, "fstat failed");
  }
  if (!S_ISREG(st.st_mode)) {
    return error(absl::StatusCode::kFailedPrecondition,
                 "not a shared memory segment (not a regular file)");
  }
  // The size is the segment's say: check it before mapping.
  if (st.st_size > max_object_size_) {
    return error(absl::StatusCode::kResourceExhausted,
                 absl::StrCat("the object is ", st.st_size,
                              " bytes, more than option \"max_object_size\" (",
                              max_object_size_, ")"));
  }
  const size_t n = static_cast<size_t>(st.st_size);
  if (n == 0) return SharedBytes();
  if (hooks_.before_map) hooks_.before_map(path);

  int flags = MAP_SHARED;
  if (static_cast<uint64_t>(n) >= static_cast<uint64_t>(populate_min_size_)) {
    flags |= MAP_POPULATE;
  }
  void* addr = ::mmap(nullptr, n, PROT_READ, flags, fd.get(), 0);
  if (addr == MAP_FAILED) {
    int err = errno;
    return errno_error(err,
                       absl::StrCat("mmap of ", n,
                                    " bytes failed (too many live views? see "
                                    "vm.max_map_count)"));
  }
  // Own the mapping before anything can return.
  std::shared_ptr<const void> owner(
      addr, [n](const void* a) { ::munmap(const_cast<void*>(a), n); });
  // Pages past a shrunk end would SIGBUS when touched: check the size again
  // now that the mapping exists, and never touch them.
  struct stat after;
  if (::fstat(fd.get(), &after) != 0) {
    int err = errno;
    return errno_error(err, "fstat failed");
  }
  if (static_cast<size_t>(after.st_size) != n) {
    return error(absl::StatusCode::kDataLoss,
                 absl::StrCat("segment changed size from ", n, " to ",
                              after.st_size, " bytes while being mapped"));
  }
  return SharedBytes::FromOwner(
      std::move(owner), absl::string_view(static_cast<const char*>(addr), n));
}

absl::StatusOr<bool> ShmConnector::DoExists(const Key& key) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("Exists"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string name, FileName(key, "Exists"));
  const std::string path = absl::StrCat(kShmDirectory, "/", name);
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return false;
    return ErrnoStatus(err, absl::StrCat("shm connector Exists of key ",
                                         Quote(key.id()), " at ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shm connector Exists of key ", Quote(key.id()), ": ", path,
        " is not a shared memory segment (not a regular file)"));
  }
  return true;
}

absl::Status ShmConnector::DoEvict(const Key& key) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("Evict"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string name, FileName(key, "Evict"));
  const std::string path = absl::StrCat(kShmDirectory, "/", name);
  if (::unlink(path.c_str()) != 0) {
    int err = errno;
    if (err == ENOENT) return absl::OkStatus();
    return ErrnoStatus(err, absl::StrCat("shm connector Evict of key ",
                                         Quote(key.id()), " at ", path));
  }
  return absl::OkStatus();
}

absl::Status ShmConnector::Sweep(bool objects) const {
  const absl::string_view op = objects ? "Close" : "sweep";
  const std::string dir(kShmDirectory);
  ScopedFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) {
    const int err = errno;
    return ErrnoStatus(
        err, absl::StrCat("shm connector ", op, ": cannot open ", dir));
  }
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir_fd.get());
  if (!names.ok()) {
    return Annotate(names.status(),
                    absl::StrCat("shm connector ", op, ": ", dir));
  }
  absl::Status result;
  for (const std::string& name : *names) {
    if (!absl::StartsWith(name, file_prefix_)) continue;
    const absl::string_view rest =
        absl::string_view(name).substr(file_prefix_.size());
    if (objects && IsObjectId(rest)) {
      if (::unlinkat(dir_fd.get(), name.c_str(), 0) != 0) {
        const int err = errno;
        // Evicted or cleared concurrently; else keep going, report the
        // first failure.
        if (err != ENOENT) {
          result.Update(ErrnoStatus(
              err, absl::StrCat("shm connector Close: cannot remove ", dir, "/",
                                name)));
        }
      }
    } else if (IsTemporaryName(rest)) {
      absl::StatusOr<bool> removed = RemoveIfAbandoned(dir_fd.get(), name);
      if (!removed.ok()) {
        result.Update(Annotate(removed.status(),
                               absl::StrCat("shm connector ", op, ": ", dir)));
      }
    }
  }
  return result;
}

absl::Status ShmConnector::DoClose(const CloseOptions& options) {
  puts_.CloseAndWait();
  if (!options.clear.value_or(clear_)) return absl::OkStatus();
  return Sweep(/*objects=*/true);
}

PROXYSTORE_REGISTER_CONNECTOR("shm", &ShmConnector::FromConfig,
                              ShmConnector::KindTraits());

}  // namespace proxystore
