// FileConnector: one file per object in a directory (kind "file").
//
// ProxyStore's FileConnector, for processes that share a file system. Each
// object is the file `<directory>/<key id>`; key ids are NewObjectId() hex
// strings. Options:
//   "directory"      required; made absolute (lexically normalized) at
//                    creation and created with its parents if missing. A path
//                    that exists but is not a directory is FailedPrecondition.
//   "clear"          bool, default true (as ProxyStore): what Close() does
//                    when CloseOptions::clear is unset. Clearing removes the
//                    whole directory, recursively, like ProxyStore's rmtree:
//                    point it at a directory of its own (the file system
//                    root is refused).
//   "mmap_min_size"  int >= 0, default 2 MiB: objects at least this large are
//                    read by mmap (see below); smaller ones by read().
// Unknown options are InvalidArgument. Config() round-trips all three, with
// the absolute directory, so connectors in other processes (any cwd) reach
// the same files.
//
// Publication: Put writes to a temporary name in the same directory
// (".<key id>.tmp") and rename(2)s it to the key id once every byte is
// written, so an object is never visible half-written: Get/Exists only look
// at published names, and temporary names can never be addressed by a key
// (object names may not start with '.'). A failed write (ENOSPC, EFBIG, ...)
// removes the temporary file and returns an error naming the key and path.
// There is no fsync: like ProxyStore, this is a transport, not a database.
//
// Keys: a key id must be a plain file name: non-empty, at most 255 bytes, no
// '/' or NUL, not starting with '.' (so no ".", "..", temporaries). Anything
// else is InvalidArgument from Get/GetBatch/Exists/Evict: no path traversal.
//
// I/O: writes and reads loop over partial write()/read() results and EINTR,
// so objects larger than the 2 GiB per-call kernel limit are written and read
// whole (ProxyStore once truncated them). Get reads exactly the size fstat
// reported and checks the file did not change size under it (shrunk or grew
// between fstat and the end of the read): DataLoss, never garbage. The bytes
// are not checksummed: a file truncated before Get is read as it now is; the
// serializer above detects such corruption.
//
// Read strategy (measured on our 2-vCPU VM, ext4, file in page cache,
// median of a fresh-buffer get; see machine-performance.md):
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
// mmap fails, Get falls back to read(). Caveat of the mapping: if another
// process truncates the file in place while a mapped SharedBytes is alive,
// touching the lost pages raises SIGBUS. Connectors never modify a published
// file (eviction and Close unlink, which is safe); set mmap_min_size to a
// huge value if outside writers may truncate files in the directory.
//
// After Close, Put/Get/Exists/Evict on that object are FailedPrecondition.
//
// Thread-safety: all methods may be called concurrently, from any number of
// connectors and processes sharing the directory; the connector holds no
// mutable state but its closed flag.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(
//       std::unique_ptr<FileConnector> c,
//       FileConnector::Create({"file", {{"directory", "/scratch/ps"}}}));
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, c->Put(SharedBytes::Copy("data")));
//   // In another process: MakeConnector(c->Config()) reads the same file.
#ifndef PROXYSTORE_CONNECTORS_FILE_FILE_CONNECTOR_H_
#define PROXYSTORE_CONNECTORS_FILE_FILE_CONNECTOR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "connectors/connector.h"
#include "store/bytes.h"

namespace proxystore {

class FileConnector : public Connector {
 public:
  static constexpr absl::string_view kKind = "file";
  static constexpr int64_t kDefaultMmapMinSize = int64_t{2} << 20;
  // Bytes per read()/write() call. Linux moves at most 0x7ffff000 bytes per
  // call anyway; a round 1 GiB keeps every call well-formed.
  static constexpr size_t kDefaultMaxIoChunk = size_t{1} << 30;

  // Test-only hooks into the I/O paths. Not for production use.
  struct TestHooks {
    // Upper bound on bytes per read()/write() call (tests use tiny values
    // to exercise the partial-I/O loops). 0 means kDefaultMaxIoChunk.
    size_t max_io_chunk = 0;
    // Put: after each successful write() to the temporary file, with the
    // key, the temporary path and the bytes written so far.
    std::function<void(const Key& key, const std::string& temp_path,
                       size_t written)>
        after_write;
    // Get: after fstat, before reading or mapping the object file.
    std::function<void(const std::string& path)> before_read;
  };

  static absl::StatusOr<std::unique_ptr<FileConnector>> Create(
      const ConnectorConfig& options);
  static absl::StatusOr<std::unique_ptr<FileConnector>> CreateForTesting(
      const ConnectorConfig& options, TestHooks hooks);
  // Registry factory; the config's kind is not checked here.
  static absl::StatusOr<std::unique_ptr<Connector>> FromConfig(
      const ConnectorConfig& config);

  absl::string_view kind() const override { return kKind; }
  ConnectorConfig Config() const override;

  // The absolute store directory.
  const std::string& directory() const { return directory_; }
  // OK iff `id` is a valid object file name (see the class comment).
  static absl::Status ValidateObjectName(absl::string_view id);

 protected:
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override;
  // Writes the parts gathered (writev) into the temporary, then publishes.
  absl::StatusOr<Key> DoPutParts(absl::Span<const absl::string_view> parts,
                                 const PutOptions& options) override;
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override;
  absl::StatusOr<bool> DoExists(const Key& key) override;
  absl::Status DoEvict(const Key& key) override;
  absl::Status DoClose(const CloseOptions& options) override;

 private:
  FileConnector(std::string directory, bool clear, int64_t mmap_min_size,
                TestHooks hooks);

  absl::Status CheckOpen(absl::string_view op) const;
  // `directory_/<id>` after validating the key.
  absl::StatusOr<std::string> ObjectPath(const Key& key,
                                         absl::string_view op) const;
  size_t max_io_chunk() const;

  const std::string directory_;
  const bool clear_;
  const int64_t mmap_min_size_;
  const TestHooks hooks_;
  std::atomic<bool> closed_{false};
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_FILE_FILE_CONNECTOR_H_
