#include "proxystore/connectors/file/file_connector.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/fd_io.h"
#include "proxystore/connectors/trust.h"

namespace proxystore {
namespace {

// A Put whose temporary a concurrent sweep removed before the writer locked
// it (the sweep cannot tell such a writer from a dead one) starts over under
// a new name. Sweeps run when a connector opens the directory; under sweeps
// that never pause (a test's), on an oversubscribed machine, a writer
// preempted between its create and its lock lost three times in a row, so
// the Put tries up to 16 times before it is Aborted.
constexpr int kPutAttempts = 16;

std::string Quote(absl::string_view s) { return QuoteForMessage(s); }

// Missing file, or missing directory (another connector cleared it, or it
// was never created).
bool IsMissing(int err) { return err == ENOENT || err == ENOTDIR; }

// Reads bytes [offset, offset + n) with pread(2), looping over partial reads
// and EINTR. Returns how many bytes were read before end of file. With
// WriteAll's loop on the Put side, objects larger than the 2 GiB per-call
// kernel limit are written and read whole (ProxyStore once truncated them).
absl::StatusOr<size_t> ReadFully(int fd, char* buf, size_t n, uint64_t offset,
                                 size_t chunk) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, buf + done, std::min(n - done, chunk),
                        static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(
          errno, absl::StrCat("read failed after ", done, " of ", n, " bytes"));
    }
    if (r == 0) break;  // End of file: the caller decides.
    done += static_cast<size_t>(r);
  }
  return done;
}

// Reads up to `n` bytes at `offset`, in pread(2) calls of at most `chunk`
// bytes, and stops at the end of the file, which a read that returns less
// than it asked for already shows: a regular file's read comes back short
// only at its end (it is not cut short by signals), so asking for one byte
// more than fstat reported proves the object whole with a single call
// instead of a second read that returns 0. Returns how many bytes were read.
absl::StatusOr<size_t> ReadUntilShort(int fd, char* buf, size_t n,
                                      uint64_t offset, size_t chunk) {
  size_t done = 0;
  while (done < n) {
    const size_t ask = std::min(n - done, chunk);
    ssize_t r = ::pread(fd, buf + done, ask, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(
          errno, absl::StrCat("read failed after ", done, " of ", n, " bytes"));
    }
    done += static_cast<size_t>(r);
    if (static_cast<size_t>(r) < ask) break;  // End of file.
  }
  return done;
}

absl::Status ContextError(absl::StatusCode code, absl::string_view context,
                          absl::string_view what) {
  return absl::Status(code, absl::StrCat(context, ": ", what));
}

// Reads bytes [from, to) of a file that fstat found `size` bytes long into
// `dst`; DataLoss if the file now ends before `to`.
absl::Status ReadRange(int fd, char* dst, size_t from, size_t to, size_t size,
                       size_t chunk, absl::string_view context) {
  absl::StatusOr<size_t> got = ReadFully(fd, dst, to - from, from, chunk);
  if (!got.ok()) return Annotate(got.status(), context);
  if (*got != to - from) {
    return ContextError(absl::StatusCode::kDataLoss, context,
                        absl::StrCat("file shrank from ", size, " to ",
                                     from + *got, " bytes while being read"));
  }
  return absl::OkStatus();
}

// DataLoss unless a read that wanted `want` bytes of a file fstat found
// `size` bytes long got exactly `want` (fewer: it shrank; more, from a read
// that asked for one byte past the end: it grew).
absl::Status CheckReadCount(size_t got, size_t want, size_t size,
                            absl::string_view context) {
  if (got < want) {
    return ContextError(absl::StatusCode::kDataLoss, context,
                        absl::StrCat("file shrank from ", size, " to ", got,
                                     " bytes while being read"));
  }
  if (got > want) {
    return ContextError(
        absl::StatusCode::kDataLoss, context,
        absl::StrCat("file grew past ", size, " bytes while being read"));
  }
  return absl::OkStatus();
}

// DataLoss if the file has data past `size` bytes (it grew).
absl::Status CheckNoDataPast(int fd, size_t size, absl::string_view context) {
  char probe;
  while (true) {
    ssize_t r = ::pread(fd, &probe, 1, static_cast<off_t>(size));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      return ErrnoStatus(errno,
                         absl::StrCat(context, ": read past the end failed"));
    }
    if (r == 0) return absl::OkStatus();
    return ContextError(
        absl::StatusCode::kDataLoss, context,
        absl::StrCat("file grew past ", size, " bytes while being read"));
  }
}

// What every error of a Get (or GetInto) of `key` starts with.
std::string GetContext(const Key& key, const std::string& path) {
  return absl::StrCat("file connector Get of key ", Quote(key.id()), " from ",
                      path);
}

// Creates the empty marker `marker` (mode 0600) if missing. O_NOFOLLOW and
// O_NONBLOCK: a link or FIFO planted under its name is an error, never
// followed or waited on.
absl::Status CreateMarker(const std::string& marker,
                          absl::string_view context) {
  ScopedFd fd(::open(marker.c_str(),
                     O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                     0600));
  if (fd.get() < 0) {
    const int err = errno;
    return ErrnoStatus(
        err, absl::StrCat(context, ": cannot create marker ", marker));
  }
  if (fd.Close() != 0) {
    const int err = errno;
    return ErrnoStatus(err,
                       absl::StrCat(context, ": cannot close marker ", marker));
  }
  return absl::OkStatus();
}

// unlink(2); OK if `path` (or the directory) is missing.
absl::Status UnlinkIfPresent(const std::string& path,
                             absl::string_view context) {
  if (::unlink(path.c_str()) != 0) {
    const int err = errno;
    if (IsMissing(err)) return absl::OkStatus();
    return ErrnoStatus(err, absl::StrCat(context, ": cannot remove ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> NonNegativeOption(const ConnectorConfig& options,
                                          absl::string_view name,
                                          int64_t fallback) {
  PROXYSTORE_ASSIGN_OR_RETURN(int64_t value, options.GetInt(name, fallback));
  if (value < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "connector \"file\": option \"", name, "\" must be >= 0, got ", value));
  }
  return value;
}

}  // namespace

FileConnector::FileConnector(Options options, TestHooks hooks)
    : directory_(std::move(options.directory)),
      clear_(options.clear),
      create_directory_(options.create_directory),
      mmap_min_size_(options.mmap_min_size),
      max_object_size_(options.max_object_size),
      layout_(options.layout),
      hooks_(std::move(hooks)) {}

absl::StatusOr<std::unique_ptr<FileConnector>> FileConnector::Create(
    const ConnectorConfig& options) {
  return CreateForTesting(options, TestHooks{});
}

absl::StatusOr<std::unique_ptr<FileConnector>> FileConnector::CreateForTesting(
    const ConnectorConfig& options, TestHooks hooks) {
  PROXYSTORE_RETURN_IF_ERROR(options.CheckKnownOptions(
      {"directory", "clear", "create_directory", "mmap_min_size",
       "max_object_size", "layout"}));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string dir, options.GetString("directory"));
  if (dir.empty()) {
    return absl::InvalidArgumentError(
        "connector \"file\": option \"directory\" is required");
  }
  if (dir.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "connector \"file\": option \"directory\" contains a NUL byte: ",
        Quote(dir)));
  }
  Options o;
  PROXYSTORE_ASSIGN_OR_RETURN(o.clear, options.GetBool("clear", true));
  PROXYSTORE_ASSIGN_OR_RETURN(o.create_directory,
                              options.GetBool("create_directory", true));
  PROXYSTORE_ASSIGN_OR_RETURN(
      o.mmap_min_size,
      NonNegativeOption(options, "mmap_min_size", kDefaultMmapMinSize));
  PROXYSTORE_ASSIGN_OR_RETURN(
      o.max_object_size,
      NonNegativeOption(options, "max_object_size", kNoSizeLimit));
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::string layout,
      options.GetString("layout", std::string(kNativeLayoutName)));
  if (layout == kNativeLayoutName) {
    o.layout = Layout::kNative;
  } else if (layout == kPythonLayoutName) {
    o.layout = Layout::kProxyStorePython;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("connector \"file\": option \"layout\" must be \"",
                     kNativeLayoutName, "\" or \"", kPythonLayoutName,
                     "\", got ", QuoteForMessage(layout, 100)));
  }

  std::error_code ec;
  std::filesystem::path path = std::filesystem::absolute(dir, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("connector \"file\": cannot make directory ", Quote(dir),
                     " absolute: ", ec.message()));
  }
  path = path.lexically_normal();
  // "/a/b/" normalizes to "/a/b/"; drop the trailing separator.
  if (!path.has_filename() && path.has_parent_path() &&
      path != path.root_path()) {
    path = path.parent_path();
  }
  o.directory = path.string();
  if (path == path.root_path()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "connector \"file\": option \"directory\" must not be the file "
        "system root, got ",
        Quote(dir)));
  }

  struct stat st;
  if (::stat(o.directory.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("connector \"file\": ", Quote(o.directory),
                       " exists and is not a directory"));
    }
  } else if (const int err = errno; o.create_directory) {
    std::filesystem::create_directories(path, ec);
    if (ec) {
      return ErrnoStatus(ec.value(),
                         absl::StrCat("connector \"file\": cannot create "
                                      "directory ",
                                      Quote(o.directory)));
    }
  } else if (!IsMissing(err)) {
    return ErrnoStatus(err, absl::StrCat("connector \"file\": cannot stat ",
                                         Quote(o.directory)));
  }  // Else missing, and not to be created: it holds no objects.
  // Not make_unique: the constructor is private.
  std::unique_ptr<FileConnector> c(
      new FileConnector(std::move(o), std::move(hooks)));
  // Best effort: reclaiming space is no reason to fail.
  c->Sweep(/*objects=*/false).IgnoreError();
  return c;
}

absl::StatusOr<std::unique_ptr<Connector>> FileConnector::FromConfig(
    const ConnectorConfig& config) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<FileConnector> c, Create(config));
  return std::unique_ptr<Connector>(std::move(c));
}

ConnectorKindTraits FileConnector::KindTraits() {
  ConnectorKindTraits traits;
  // "layout" says how to read what is there: a receiver must read as the
  // producer wrote.
  traits.location_options = {"directory", "layout"};
  traits.receiver_defaults = {
      {"clear", "false"},
      {"create_directory", "false"},
      {"max_object_size", absl::StrCat(kReceiverMaxObjectSize)}};
  traits.destinations = [](const ConnectorConfig& config)
      -> absl::StatusOr<std::vector<std::string>> {
    auto it = config.options.find("directory");
    if (it == config.options.end() || it->second.empty()) {
      return absl::InvalidArgumentError(
          "connector \"file\": option \"directory\" is required");
    }
    PROXYSTORE_ASSIGN_OR_RETURN(
        std::string dir, trust_internal::CanonicalDirectory(kKind, it->second));
    return std::vector<std::string>{absl::StrCat(kKind, ":", dir)};
  };
  return traits;
}

ConnectorConfig FileConnector::Config() const {
  ConnectorConfig config{
      std::string(kKind),
      {{"directory", directory_},
       {"clear", clear_ ? "true" : "false"},
       {"create_directory", create_directory_ ? "true" : "false"},
       {"mmap_min_size", absl::StrCat(mmap_min_size_)},
       {"max_object_size", absl::StrCat(max_object_size_)}}};
  // The default is left out, so that native configs are as they always were.
  if (python_layout()) {
    config.options.emplace("layout", std::string(kPythonLayoutName));
  }
  return config;
}

// Only what NewObjectId() mints: "../etc/passwd", ".bashrc", "a/b" or
// "x.tmp" never reach the file system.
absl::Status FileConnector::ValidateObjectName(absl::string_view id) {
  if (IsObjectId(id)) return absl::OkStatus();
  // Keys may come from a proxy: echo a bounded part.
  return absl::InvalidArgumentError(absl::StrCat(
      "key ", QuoteForMessage(id, 100),
      " is not a valid object file name: this connector names objects with "
      "32 lowercase hex digits"));
}

// Python's FileKey filename is any string, and reaches os.path.join: here
// only names that stay a plain object file in the directory.
absl::Status FileConnector::ValidatePythonObjectName(absl::string_view id) {
  absl::string_view problem;
  if (id.empty()) {
    problem = "is empty";
  } else if (id.size() > kMaxPythonObjectName) {
    problem = "is too long";
  } else if (id.front() == '.') {
    problem = "starts with '.'";
  } else if (absl::EndsWith(id, kPythonMarkerSuffix)) {
    problem = "ends in \".ready\" (a marker's name)";
  } else {
    for (char c : id) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
            (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.')) {
        problem = "has a character other than letters, digits, '-', '_', '.'";
        break;
      }
    }
  }
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "key ", QuoteForMessage(id, 100),
      " is not a valid object file name in layout \"", kPythonLayoutName,
      "\": it ", problem, " (ids are 1 to ", kMaxPythonObjectName,
      " ASCII letters, digits, '-', '_' and '.', not starting with '.' nor "
      "ending in \".ready\")"));
}

absl::Status FileConnector::ValidateId(absl::string_view id) const {
  return python_layout() ? ValidatePythonObjectName(id)
                         : ValidateObjectName(id);
}

std::string FileConnector::NewId() const {
  return python_layout() ? NewPythonObjectId() : NewObjectId();
}

absl::StatusOr<bool> FileConnector::MarkerExists(const Key& key,
                                                 const std::string& path,
                                                 absl::string_view op) const {
  const std::string marker = absl::StrCat(path, kPythonMarkerSuffix);
  struct stat st;
  if (::lstat(marker.c_str(), &st) != 0) {
    const int err = errno;
    if (IsMissing(err)) return false;
    return ErrnoStatus(err, absl::StrCat("file connector ", op, " of key ",
                                         Quote(key.id()), " at ", marker));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("file connector ", op, " of key ", Quote(key.id()), ": ",
                     marker, " is not a regular file"));
  }
  return true;
}

absl::Status FileConnector::CheckOpen(absl::string_view op) const {
  if (puts_.closed()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "file connector (", directory_, "): ", op, " after Close"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FileConnector::ObjectPath(
    const Key& key, absl::string_view op) const {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  absl::Status valid = ValidateId(key.id());
  if (!valid.ok()) {
    return Annotate(valid, absl::StrCat("file connector ", op));
  }
  return absl::StrCat(directory_, "/", key.id());
}

size_t FileConnector::max_io_chunk() const {
  return hooks_.max_io_chunk == 0 ? kDefaultMaxIoChunk : hooks_.max_io_chunk;
}

absl::StatusOr<Key> FileConnector::DoPut(SharedBytes data,
                                         const PutOptions& options) {
  const absl::string_view part = data.view();
  return DoPutParts(absl::MakeConstSpan(&part, 1), options);
}

absl::StatusOr<Key> FileConnector::DoPutParts(
    absl::Span<const absl::string_view> parts, const PutOptions& /*options*/) {
  return WriteObject(parts, /*set_key=*/nullptr);
}

absl::StatusOr<Key> FileConnector::DoNewKey(const NewKeyOptions& /*options*/) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("NewKey"));
  return Key(NewId());
}

absl::Status FileConnector::DoSet(const Key& key, SharedBytes data) {
  const absl::string_view part = data.view();
  return WriteObject(absl::MakeConstSpan(&part, 1), &key).status();
}

absl::Status FileConnector::DoSetParts(
    const Key& key, absl::Span<const absl::string_view> parts) {
  return WriteObject(parts, &key).status();
}

absl::StatusOr<bool> FileConnector::DoWaitFor(const Key& key,
                                              absl::Duration timeout) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("WaitFor"));
  // Before the id becomes part of a path.
  PROXYSTORE_RETURN_IF_ERROR(
      Annotate(ValidateId(key.id()), "file connector WaitFor"));
  // A Set publishes by rename or link into the directory; in the Python
  // layout, the marker it creates after that (as Python's set does) says so.
  const std::string name =
      python_layout() ? absl::StrCat(key.id(), kPythonMarkerSuffix) : key.id();
  return WaitForName(directory_, name, timeout, [&] { return DoExists(key); });
}

// Publication: Put writes to a temporary name in the same directory
// (".<key id>.tmp", mode 0600), holding flock(LOCK_EX) on it, and rename(2)s
// it to the key id (mode 0600) once every byte is written, so an object is
// never visible half-written: Get/Exists only look at published names, and
// temporary names can never be addressed by a key. A failed write (ENOSPC,
// EFBIG, ...) removes the temporary file and returns an error naming the key
// and path. A temporary whose lock can be taken lost its writer (killed
// mid-Put): creating a connector and clearing remove such temporaries, never
// a live writer's. On a network file system whose flock is not coherent
// across hosts, a sweep on one host can remove another host's temporary in
// flight: that Put then fails with Aborted and publishes nothing. There is no
// fsync: like ProxyStore, this is a transport, not a database.
//
// Set takes the same path with two differences. Its temporary is named after
// a fresh id, not the key (".<fresh id>.tmp"): racing Sets of one key, in
// any processes, each write their own. And it publishes with
// PublishTemporaryExclusive (fd_io.h), which fails where the name exists, so
// the file system itself picks the one winner and no published object is ever
// replaced (a reader holding or mapping it keeps what it read).
//
// In the Python layout the temporary is always named after a fresh id (ids
// there are not NewObjectId()'s, which temporary names must be), and once the
// object file is published the empty marker `<id>.ready` is created: readers
// in both languages look for the marker first, so they never see it before
// the whole object. A Set whose name holds an unmarked file (a Python writer
// writing it in place, or one that died) is AlreadyExists like any other.
absl::StatusOr<Key> FileConnector::WriteObject(
    absl::Span<const absl::string_view> parts, const Key* set_key) {
  const absl::string_view op = set_key == nullptr ? "Put" : "Set";
  if (!puts_.Enter()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "file connector (", directory_, "): ", op, " after Close"));
  }
  absl::Cleanup leave = [this] { puts_.Leave(); };
  if (set_key != nullptr) {
    // Before the id becomes part of a path.
    absl::Status valid = ValidateId(set_key->id());
    if (!valid.ok()) return Annotate(valid, "file connector Set");
  }
  for (int attempt = 1;; ++attempt) {
    const Key key = set_key == nullptr ? Key(NewId()) : *set_key;
    // Temporaries are always named like NewObjectId() (IsTemporaryName),
    // whatever the layout's ids look like.
    const std::string temp_id =
        set_key == nullptr && !python_layout() ? key.id() : NewObjectId();
    const std::string path = absl::StrCat(directory_, "/", key.id());
    // A leading '.' keeps the temporary name out of every key's reach.
    const std::string temp = absl::StrCat(directory_, "/.", temp_id, ".tmp");
    const std::string context = absl::StrCat("file connector ", op, " of key ",
                                             Quote(key.id()), " to ", path);

    ScopedFd fd(
        ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd.get() < 0) {
      const int err = errno;
      if (IsMissing(err)) {
        return absl::FailedPreconditionError(absl::StrCat(
            context, ": directory ", directory_, " does not exist",
            create_directory_ ? " (removed by a clearing Close?)"
                              : " (option \"create_directory\" is false)"));
      }
      return ErrnoStatus(err, absl::StrCat(context, ": cannot create ", temp));
    }
    if (hooks_.before_lock) hooks_.before_lock(temp);
    absl::StatusOr<bool> locked = LockTemporary(fd.get(), temp);
    if (!locked.ok()) {
      ::unlink(temp.c_str());
      return Annotate(locked.status(), context);
    }
    if (!*locked) {
      if (attempt < kPutAttempts) continue;
      return absl::AbortedError(absl::StrCat(
          context, ": temporary files were removed by concurrent sweeps ",
          kPutAttempts, " times in a row"));
    }
    absl::Status wrote =
        WriteAll(fd.get(), parts, max_io_chunk(), [&](size_t written) {
          if (hooks_.after_write) hooks_.after_write(key, temp, written);
        });
    if (!wrote.ok()) {
      ::unlink(temp.c_str());
      return Annotate(wrote, absl::StrCat(context, ": writing ", temp));
    }
    PROXYSTORE_RETURN_IF_ERROR(Annotate(
        set_key == nullptr
            ? PublishTemporary(std::move(fd), temp, path)
            : PublishTemporaryExclusive(std::move(fd), temp, path,
                                        hooks_.publish_with_link
                                            ? ExclusivePublish::kLinkOnly
                                            : ExclusivePublish::kRenameOrLink),
        context));
    if (python_layout()) {
      // The object file is whole under its name: only now may the marker
      // say so (Python's set writes the file, then the marker).
      absl::Status marked =
          CreateMarker(absl::StrCat(path, kPythonMarkerSuffix), context);
      if (!marked.ok()) {
        // Unmarked, the object would block its key forever: take it back.
        ::unlink(path.c_str());
        return marked;
      }
    }
    return key;
  }
}

absl::StatusOr<std::optional<FileConnector::ObjectFile>>
FileConnector::OpenObject(const std::string& path,
                          absl::string_view context) const {
  // O_NONBLOCK: opening a FIFO planted under a key's name must not hang.
  // O_NOFOLLOW: a symbolic link planted there must not hand out a file
  // outside the store (objects are always regular files; only the last
  // component is checked, so the store's directory may be a link).
  ScopedFd fd(
      ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW));
  if (fd.get() < 0) {
    int err = errno;
    if (IsMissing(err)) return std::nullopt;
    if (err == ELOOP) {
      return ContextError(absl::StatusCode::kFailedPrecondition, context,
                          "a symbolic link, not a regular file");
    }
    return ErrnoStatus(err, absl::StrCat(context, ": open failed"));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat(context, ": fstat failed"));
  }
  if (!S_ISREG(st.st_mode)) {
    return ContextError(absl::StatusCode::kFailedPrecondition, context,
                        "not a regular file");
  }
  // The size is the file's say: check it before allocating or mapping.
  if (st.st_size > max_object_size_) {
    return ContextError(
        absl::StatusCode::kResourceExhausted, context,
        absl::StrCat("the object is ", st.st_size,
                     " bytes, more than option \"max_object_size\" (",
                     max_object_size_, ")"));
  }
  if (hooks_.before_read) hooks_.before_read(path);
  return ObjectFile{std::move(fd), static_cast<size_t>(st.st_size)};
}

// Get reads exactly the size fstat reported (into a buffer allocated without
// throwing) and checks the file did not change size under it (shrunk or grew
// between fstat and the end of the read): DataLoss, never garbage. The bytes
// are not checksummed: a file truncated before Get is read as it now is; the
// serializer above detects such corruption.
//
// Read strategy (measured on our 2-vCPU VM, ext4, file in page cache,
// median of a fresh-buffer get):
//               read() into new[]   mmap(MAP_POPULATE)
//     64 KB          5.2 us              11.6 us
//     1 MiB         40 us                55 us
//     2 MiB         74 us                10 us
//     10 MB        501 us                73 us
//     100 MB        56 ms               0.12 ms  (0.29 ms touching every page)
// (tmpfs: 1 MB 59/93 us, 10 MB 745/840 us, 100 MB 58/8.5 ms.) A fresh heap
// buffer pays a page fault per 4 KiB page, while MAP_POPULATE maps the page
// cache directly (ext4 large folios make it nearly free), so objects of at
// least "mmap_min_size" (2 MiB) are handed out as a read-only MAP_SHARED
// mapping (SharedBytes::FromOwner, munmap when the last reference dies); if
// mmap fails, Get falls back to pread(). Caveat of the mapping: if another
// process truncates the file in place while a mapped SharedBytes is alive,
// touching the lost pages raises SIGBUS. Connectors never modify a published
// file (eviction and Close unlink, which is safe); set mmap_min_size to a
// huge value if outside writers may truncate files in the directory.
absl::StatusOr<SharedBytes> FileConnector::ReadObject(
    int fd, size_t n, absl::string_view context) const {
  if (n > 0 &&
      static_cast<uint64_t>(n) >= static_cast<uint64_t>(mmap_min_size_)) {
    void* addr =
        ::mmap(nullptr, n, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (addr != MAP_FAILED) {
      // Own the mapping before anything can return.
      std::shared_ptr<const void> owner(
          addr, [n](const void* a) { ::munmap(const_cast<void*>(a), n); });
      // Pages past a shrunk end would SIGBUS when touched: check the size
      // again now that the mapping exists, and never touch them.
      struct stat after;
      if (::fstat(fd, &after) != 0) {
        return ErrnoStatus(errno, absl::StrCat(context, ": fstat failed"));
      }
      if (static_cast<size_t>(after.st_size) != n) {
        return ContextError(
            absl::StatusCode::kDataLoss, context,
            absl::StrCat("file changed size from ", n, " to ", after.st_size,
                         " bytes while being read"));
      }
      return SharedBytes::FromOwner(
          std::move(owner),
          absl::string_view(static_cast<const char*>(addr), n));
    }
    // mmap unsupported here (some FUSE/network file systems), or no address
    // space for it: read instead.
  }

  // A small object is read with one byte more asked for: a read that ends
  // short proves it whole (neither shrunk nor grown since fstat) without a
  // read past its end. A large one: its bytes, then that read.
  const bool small = n <= kWholeReadMax;
  absl::StatusOr<std::unique_ptr<char[]>> buffer =
      AllocateBuffer(small ? n + 1 : n, "reading it");
  if (!buffer.ok()) return Annotate(buffer.status(), context);
  if (small) {
    absl::StatusOr<size_t> got =
        ReadUntilShort(fd, buffer->get(), n + 1, 0, max_io_chunk());
    if (!got.ok()) return Annotate(got.status(), context);
    PROXYSTORE_RETURN_IF_ERROR(CheckReadCount(*got, n, n, context));
  } else {
    PROXYSTORE_RETURN_IF_ERROR(
        ReadRange(fd, buffer->get(), 0, n, n, max_io_chunk(), context));
    PROXYSTORE_RETURN_IF_ERROR(CheckNoDataPast(fd, n, context));
  }
  if (n == 0) return SharedBytes();
  const char* data = buffer->get();
  return SharedBytes::FromOwner(
      std::shared_ptr<const char[]>(*std::move(buffer)),
      absl::string_view(data, n));
}

absl::StatusOr<std::optional<SharedBytes>> FileConnector::DoGet(
    const Key& key) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::string path, ObjectPath(key, "Get"));
  if (python_layout()) {
    // Without its marker the file may be half-written (Python writes in
    // place): missing. With it, the file is whole, or gone (evicted).
    PROXYSTORE_ASSIGN_OR_RETURN(bool ready, MarkerExists(key, path, "Get"));
    if (!ready) return std::nullopt;
  }
  const std::string context = GetContext(key, path);
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<ObjectFile> file,
                              OpenObject(path, context));
  if (!file.has_value()) return std::nullopt;
  PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes bytes,
                              ReadObject(file->fd.get(), file->size, context));
  return std::optional<SharedBytes>(std::move(bytes));
}

// GetInto opens and checks the file as Get does, reads its first bytes
// (kGetIntoPrefix at most) into a buffer on the stack with one pread(2), and
// `read` preads the rest straight into the caller's memory, then checks that
// the file did not shrink or grow (DataLoss, as Get). A 1 MiB object costs
// open, fstat, two preads, a one-byte pread past the end and close, and no
// heap buffer. An object of at most kWholeReadMax bytes is read whole with
// one pread(2) instead (asking for one byte more than fstat reported: a read
// that comes back short proves the object whole), offered as
// ObjectReader::in_memory, and `read` only copies. If the fn wants the whole
// object instead, it comes from Get's path (a mapping for large objects; a
// copy of the buffer for small ones).
absl::StatusOr<GetIntoResult> FileConnector::DoGetInto(const Key& key,
                                                       GetIntoFn fn) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::string path, ObjectPath(key, "Get"));
  GetIntoResult result;
  if (python_layout()) {
    // As in DoGet.
    PROXYSTORE_ASSIGN_OR_RETURN(bool ready, MarkerExists(key, path, "Get"));
    if (!ready) return result;
  }
  const std::string context = GetContext(key, path);
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<ObjectFile> file,
                              OpenObject(path, context));
  if (!file.has_value()) return result;
  result.found = true;
  const int fd = file->fd.get();
  const size_t n = file->size;
  const size_t chunk = max_io_chunk();

  // An object of up to kWholeReadMax bytes is read at once, asking for one
  // byte more: the read then ends at the end of the file, which proves the
  // object whole (the check `read` makes otherwise), and the fn gets it in
  // memory. One read(2) and a copy cost less than the three reads of the
  // general path (prefix, rest, end check) up to a few tens of KiB. Larger
  // objects: their first kGetIntoPrefix bytes, then `read`.
  char stack[kGetIntoPrefix + 1];
  char* prefix = stack;
  const bool fits = n <= kWholeReadMax;
  std::unique_ptr<char[]> heap;
  if (fits && n + 1 > sizeof(stack)) {
    PROXYSTORE_ASSIGN_OR_RETURN(heap, AllocateBuffer(n + 1, "reading it"));
    prefix = heap.get();
  }
  const size_t p = fits ? n : kGetIntoPrefix;
  absl::StatusOr<size_t> got = fits
                                   ? ReadUntilShort(fd, prefix, n + 1, 0, chunk)
                                   : ReadFully(fd, prefix, p, 0, chunk);
  if (!got.ok()) return Annotate(got.status(), context);
  PROXYSTORE_RETURN_IF_ERROR(CheckReadCount(*got, p, n, context));
  const absl::string_view head(prefix, p);

  bool read_called = false;
  auto read = [&](char* dst, uint64_t offset) -> absl::Status {
    if (read_called || offset > n) {
      return ContextError(
          absl::StatusCode::kInvalidArgument, context,
          absl::StrCat("GetInto read(offset ", offset,
                       ") called twice or past the object's ", n, " bytes"));
    }
    read_called = true;
    const size_t from = static_cast<size_t>(offset);
    if (from < p) std::memcpy(dst, prefix + from, p - from);
    if (fits) return absl::OkStatus();
    const size_t rest = std::max(from, p);
    if (rest < n) {
      PROXYSTORE_RETURN_IF_ERROR(
          ReadRange(fd, dst + (rest - from), rest, n, n, chunk, context));
    }
    return CheckNoDataPast(fd, n, context);
  };
  ObjectReader reader{
      .size = n, .prefix = head.substr(0, kGetIntoPrefix), .read = read};
  if (fits) reader.in_memory = head;
  PROXYSTORE_ASSIGN_OR_RETURN(const bool consumed, fn(reader));
  if (!consumed) {
    if (fits) {
      result.whole = n == 0 ? SharedBytes() : SharedBytes::Copy(head);
    } else {
      PROXYSTORE_ASSIGN_OR_RETURN(result.whole, ReadObject(fd, n, context));
    }
  }
  return result;
}

absl::StatusOr<bool> FileConnector::DoExists(const Key& key) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::string path, ObjectPath(key, "Exists"));
  // Python's exists looks at the marker alone.
  if (python_layout()) return MarkerExists(key, path, "Exists");
  // lstat: a link is not an object, wherever it points.
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    int err = errno;
    if (IsMissing(err)) return false;
    return ErrnoStatus(err, absl::StrCat("file connector Exists of key ",
                                         Quote(key.id()), " at ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("file connector Exists of key ", Quote(key.id()), ": ",
                     path, " is not a regular file"));
  }
  return true;
}

absl::Status FileConnector::DoEvict(const Key& key) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::string path, ObjectPath(key, "Evict"));
  if (python_layout()) {
    // The marker first: a reader never finds a marker whose file is gone
    // because of us (Python's evict goes the other way; readers here treat
    // that as missing).
    const std::string context =
        absl::StrCat("file connector Evict of key ", Quote(key.id()));
    PROXYSTORE_RETURN_IF_ERROR(
        UnlinkIfPresent(absl::StrCat(path, kPythonMarkerSuffix), context));
    return UnlinkIfPresent(path, context);
  }
  if (::unlink(path.c_str()) != 0) {
    int err = errno;
    if (IsMissing(err)) return absl::OkStatus();
    return ErrnoStatus(err, absl::StrCat("file connector Evict of key ",
                                         Quote(key.id()), " at ", path));
  }
  return absl::OkStatus();
}

absl::Status FileConnector::Sweep(bool objects) const {
  const absl::string_view op = objects ? "Close" : "sweep";
  // Names are resolved in the directory opened here, even if its path is
  // replaced meanwhile.
  ScopedFd dir(::open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) {
    const int err = errno;
    if (IsMissing(err)) return absl::OkStatus();  // Nothing to clear.
    return ErrnoStatus(
        err, absl::StrCat("file connector ", op, ": cannot open ", directory_));
  }
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir.get());
  if (!names.ok()) {
    return Annotate(names.status(),
                    absl::StrCat("file connector ", op, ": ", directory_));
  }
  absl::Status result;
  auto remove = [&](const std::string& name) {
    if (::unlinkat(dir.get(), name.c_str(), 0) != 0) {
      const int err = errno;
      // Keep going; report the first failure.
      if (err != ENOENT) {
        result.Update(ErrnoStatus(
            err, absl::StrCat("file connector Close: cannot remove ",
                              directory_, "/", name)));
      }
    }
  };
  // Python layout: each marker of a valid id, then its object file (the
  // order Evict uses).
  absl::flat_hash_set<std::string> marked;
  if (objects && python_layout()) {
    for (const std::string& name : *names) {
      if (!absl::EndsWith(name, kPythonMarkerSuffix)) continue;
      std::string id = name.substr(0, name.size() - kPythonMarkerSuffix.size());
      if (!ValidatePythonObjectName(id).ok()) continue;
      remove(name);
      remove(id);
      marked.insert(std::move(id));
    }
  }
  for (const std::string& name : *names) {
    const bool object = python_layout()
                            ? IsPythonObjectId(name) && !marked.contains(name)
                            : IsObjectId(name);
    if (objects && object) {
      remove(name);
    } else if (IsTemporaryName(name)) {
      absl::StatusOr<bool> removed = RemoveIfAbandoned(dir.get(), name);
      if (!removed.ok()) {
        result.Update(
            Annotate(removed.status(),
                     absl::StrCat("file connector ", op, ": ", directory_)));
      }
    }
  }
  if (!objects) return result;
  dir.Close();
  // Only if empty: whatever else is there (or a live writer's temporary)
  // keeps it.
  if (::rmdir(directory_.c_str()) != 0) {
    const int err = errno;
    if (err != ENOENT && err != ENOTEMPTY && err != EEXIST && err != EBUSY &&
        err != ENOTDIR) {
      result.Update(ErrnoStatus(
          err,
          absl::StrCat("file connector Close: cannot remove ", directory_)));
    }
  }
  return result;
}

absl::Status FileConnector::DoClose(const CloseOptions& options) {
  puts_.CloseAndWait();
  if (!options.clear.value_or(clear_)) return absl::OkStatus();
  return Sweep(/*objects=*/true);
}

PROXYSTORE_REGISTER_CONNECTOR("file", &FileConnector::FromConfig,
                              FileConnector::KindTraits());

}  // namespace proxystore
