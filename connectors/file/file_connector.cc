#include "connectors/file/file_connector.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "connectors/fd_io.h"
#include "store/status.h"

namespace proxystore {
namespace {

constexpr size_t kMaxNameSize = 255;  // NAME_MAX on Linux file systems.

std::string Quote(absl::string_view s) { return QuoteForMessage(s); }

// Missing file, or missing directory (another connector cleared it).
bool IsMissing(int err) { return err == ENOENT || err == ENOTDIR; }

// Reads exactly `n` bytes at the current offset, looping over partial reads
// and EINTR. Returns how many bytes were read before end of file.
absl::StatusOr<size_t> ReadFully(int fd, char* buf, size_t n, size_t chunk) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::read(fd, buf + done, std::min(n - done, chunk));
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

// True if the descriptor has data past its current offset (the file grew).
absl::StatusOr<bool> HasMoreData(int fd) {
  char probe;
  while (true) {
    ssize_t r = ::read(fd, &probe, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus(errno, "read past the end failed");
    return r > 0;
  }
}

}  // namespace

FileConnector::FileConnector(std::string directory, bool clear,
                             int64_t mmap_min_size, TestHooks hooks)
    : directory_(std::move(directory)),
      clear_(clear),
      mmap_min_size_(mmap_min_size),
      hooks_(std::move(hooks)) {}

absl::StatusOr<std::unique_ptr<FileConnector>> FileConnector::Create(
    const ConnectorConfig& options) {
  return CreateForTesting(options, TestHooks{});
}

absl::StatusOr<std::unique_ptr<FileConnector>> FileConnector::CreateForTesting(
    const ConnectorConfig& options, TestHooks hooks) {
  PROXYSTORE_RETURN_IF_ERROR(
      options.CheckKnownOptions({"directory", "clear", "mmap_min_size"}));
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
  PROXYSTORE_ASSIGN_OR_RETURN(bool clear, options.GetBool("clear", true));
  PROXYSTORE_ASSIGN_OR_RETURN(
      int64_t mmap_min_size,
      options.GetInt("mmap_min_size", kDefaultMmapMinSize));
  if (mmap_min_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "connector \"file\": option \"mmap_min_size\" must be >= 0, got ",
        mmap_min_size));
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
  std::string absolute = path.string();
  if (path == path.root_path()) {
    // Clearing (the default on Close) removes the whole directory.
    return absl::InvalidArgumentError(absl::StrCat(
        "connector \"file\": option \"directory\" must not be the file "
        "system root, got ",
        Quote(dir)));
  }

  struct stat st;
  if (::stat(absolute.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("connector \"file\": ", Quote(absolute),
                       " exists and is not a directory"));
    }
  } else {
    std::filesystem::create_directories(path, ec);
    if (ec) {
      return ErrnoStatus(ec.value(),
                         absl::StrCat("connector \"file\": cannot create "
                                      "directory ",
                                      Quote(absolute)));
    }
  }
  // Not make_unique: the constructor is private.
  return std::unique_ptr<FileConnector>(new FileConnector(
      std::move(absolute), clear, mmap_min_size, std::move(hooks)));
}

absl::StatusOr<std::unique_ptr<Connector>> FileConnector::FromConfig(
    const ConnectorConfig& config) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<FileConnector> c, Create(config));
  return std::unique_ptr<Connector>(std::move(c));
}

ConnectorConfig FileConnector::Config() const {
  return ConnectorConfig{std::string(kKind),
                         {{"directory", directory_},
                          {"clear", clear_ ? "true" : "false"},
                          {"mmap_min_size", absl::StrCat(mmap_min_size_)}}};
}

absl::Status FileConnector::ValidateObjectName(absl::string_view id) {
  absl::string_view problem;
  if (id.empty()) {
    problem = "it is empty";
  } else if (id.size() > kMaxNameSize) {
    problem = "it is longer than 255 bytes";
  } else if (id.find('/') != absl::string_view::npos) {
    problem = "it contains '/'";
  } else if (id.find('\0') != absl::string_view::npos) {
    problem = "it contains a NUL byte";
  } else if (id.front() == '.') {
    problem = "it starts with '.'";
  } else {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "key ", Quote(id), " is not a valid object file name: ", problem));
}

absl::Status FileConnector::CheckOpen(absl::string_view op) const {
  if (closed_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "file connector (", directory_, "): ", op, " after Close"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FileConnector::ObjectPath(
    const Key& key, absl::string_view op) const {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  absl::Status valid = ValidateObjectName(key.id());
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
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("Put"));
  Key key(NewObjectId());
  const std::string path = absl::StrCat(directory_, "/", key.id());
  // A leading '.' keeps the temporary name out of every key's reach.
  const std::string temp = absl::StrCat(directory_, "/.", key.id(), ".tmp");
  auto fail = [&](int err, absl::string_view what) {
    ::unlink(temp.c_str());
    return ErrnoStatus(
        err, absl::StrCat("file connector Put of key ", Quote(key.id()), " to ",
                          path, ": ", what));
  };

  ScopedFd fd(
      ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (fd.get() < 0) {
    int err = errno;
    if (IsMissing(err)) {
      // Typically another connector's clearing Close removed the directory.
      return absl::FailedPreconditionError(
          absl::StrCat("file connector Put of key ", Quote(key.id()),
                       ": directory ", directory_, " no longer exists"));
    }
    return ErrnoStatus(
        err, absl::StrCat("file connector Put of key ", Quote(key.id()),
                          ": cannot create ", temp));
  }
  absl::Status wrote =
      WriteAll(fd.get(), parts, max_io_chunk(), [&](size_t written) {
        if (hooks_.after_write) hooks_.after_write(key, temp, written);
      });
  if (!wrote.ok()) {
    ::unlink(temp.c_str());
    return Annotate(wrote,
                    absl::StrCat("file connector Put of key ", Quote(key.id()),
                                 " to ", path, ": writing ", temp));
  }
  if (fd.Close() != 0) {
    int err = errno;
    return fail(err, absl::StrCat("closing ", temp));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int err = errno;
    return fail(err, absl::StrCat("renaming ", temp));
  }
  return key;
}

absl::StatusOr<std::optional<SharedBytes>> FileConnector::DoGet(
    const Key& key) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::string path, ObjectPath(key, "Get"));
  auto error = [&](absl::StatusCode code, absl::string_view what) {
    return absl::Status(
        code, absl::StrCat("file connector Get of key ", Quote(key.id()),
                           " from ", path, ": ", what));
  };
  auto errno_error = [&](int err, absl::string_view what) {
    return ErrnoStatus(
        err, absl::StrCat("file connector Get of key ", Quote(key.id()),
                          " from ", path, ": ", what));
  };

  // O_NONBLOCK: opening a FIFO planted under a key's name must not hang.
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    int err = errno;
    if (IsMissing(err)) return std::nullopt;
    return errno_error(err, "open failed");
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errno_error(errno, "fstat failed");
  if (!S_ISREG(st.st_mode)) {
    return error(absl::StatusCode::kFailedPrecondition, "not a regular file");
  }
  const size_t n = static_cast<size_t>(st.st_size);
  if (hooks_.before_read) hooks_.before_read(path);

  if (n > 0 &&
      static_cast<uint64_t>(n) >= static_cast<uint64_t>(mmap_min_size_)) {
    void* addr =
        ::mmap(nullptr, n, PROT_READ, MAP_SHARED | MAP_POPULATE, fd.get(), 0);
    if (addr != MAP_FAILED) {
      // Own the mapping before anything can return.
      std::shared_ptr<const void> owner(
          addr, [n](const void* a) { ::munmap(const_cast<void*>(a), n); });
      // Pages past a shrunk end would SIGBUS when touched: check the size
      // again now that the mapping exists, and never touch them.
      struct stat after;
      if (::fstat(fd.get(), &after) != 0) {
        return errno_error(errno, "fstat failed");
      }
      if (static_cast<size_t>(after.st_size) != n) {
        return error(absl::StatusCode::kDataLoss,
                     absl::StrCat("file changed size from ", n, " to ",
                                  after.st_size, " bytes while being read"));
      }
      return SharedBytes::FromOwner(
          std::move(owner),
          absl::string_view(static_cast<const char*>(addr), n));
    }
    // mmap unsupported here (some FUSE/network file systems): read instead.
  }

  std::unique_ptr<char[]> buffer = std::make_unique_for_overwrite<char[]>(n);
  absl::StatusOr<size_t> got =
      ReadFully(fd.get(), buffer.get(), n, max_io_chunk());
  if (!got.ok()) {
    return Annotate(got.status(),
                    absl::StrCat("file connector Get of key ", Quote(key.id()),
                                 " from ", path));
  }
  if (*got != n) {
    return error(absl::StatusCode::kDataLoss,
                 absl::StrCat("file shrank from ", n, " to ", *got,
                              " bytes while being read"));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(bool grew, HasMoreData(fd.get()));
  if (grew) {
    return error(absl::StatusCode::kDataLoss,
                 absl::StrCat("file grew past ", n, " bytes while being read"));
  }
  if (n == 0) return SharedBytes();
  const char* data = buffer.get();
  return SharedBytes::FromOwner(
      std::shared_ptr<const char[]>(std::move(buffer)),
      absl::string_view(data, n));
}

absl::StatusOr<bool> FileConnector::DoExists(const Key& key) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::string path, ObjectPath(key, "Exists"));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
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
  if (::unlink(path.c_str()) != 0) {
    int err = errno;
    if (IsMissing(err)) return absl::OkStatus();
    return ErrnoStatus(err, absl::StrCat("file connector Evict of key ",
                                         Quote(key.id()), " at ", path));
  }
  return absl::OkStatus();
}

absl::Status FileConnector::DoClose(const CloseOptions& options) {
  closed_.store(true, std::memory_order_release);
  if (!options.clear.value_or(clear_)) return absl::OkStatus();
  std::error_code ec;
  // Idempotent: a directory that is already gone removes nothing.
  std::filesystem::remove_all(directory_, ec);
  if (ec) {
    return ErrnoStatus(
        ec.value(),
        absl::StrCat("file connector Close: cannot remove ", directory_));
  }
  return absl::OkStatus();
}

PROXYSTORE_REGISTER_CONNECTOR("file", &FileConnector::FromConfig);

}  // namespace proxystore
