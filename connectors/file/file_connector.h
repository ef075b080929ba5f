// FileConnector: one file per object in a directory (kind "file").
//
// ProxyStore's FileConnector, for processes that share a file system. Each
// object is the file `<directory>/<key id>`; key ids are NewObjectId() hex
// strings. Options (user default; default for a config from a proxy,
// connectors/trust.h):
//   "directory"         required; the only location option. Made absolute
//                       (lexically normalized) at creation. A path that
//                       exists but is not a directory is FailedPrecondition;
//                       the file system root is refused.
//   "create_directory"  bool (true; false): create the directory, with its
//                       parents, if missing. When false, creating the
//                       connector creates nothing: a missing directory reads
//                       as empty (Get std::nullopt, Exists false) and Put is
//                       FailedPrecondition naming it.
//   "clear"             bool (true, as ProxyStore; false): what Close() does
//                       when CloseOptions::clear is unset. Clearing removes
//                       the names this connector writes (objects and
//                       abandoned temporaries, see below), then the directory
//                       if that left it empty (rmdir). Anything else in it
//                       stays.
//   "mmap_min_size"     int >= 0 (2 MiB; 2 MiB): objects at least this large
//                       are read by mmap (see below); smaller ones by read().
//   "max_object_size"   int >= 0 (no limit; 1 GiB): Get of a larger object is
//                       ResourceExhausted naming the key, size and limit,
//                       before anything is allocated or mapped.
// Unknown options are InvalidArgument. Config() round-trips all five, with
// the absolute directory, so connectors in other processes (any cwd) reach
// the same files. KindTraits(): the destination is "file:" plus the
// directory with symbolic links resolved.
//
// Publication: Put writes to a temporary name in the same directory
// (".<key id>.tmp", mode 0600), holding flock(LOCK_EX) on it, and rename(2)s
// it to the key id (mode 0600) once every byte is written, so an object is
// never visible half-written: Get/Exists only look at published names, and
// temporary names can never be addressed by a key. A failed write (ENOSPC,
// EFBIG, ...) removes the temporary file and returns an error naming the key
// and path. A temporary whose lock can be taken lost its writer (killed
// mid-Put): creating a connector and clearing remove such temporaries, never
// a live writer's. (On a network file system whose flock is not coherent
// across hosts, a sweep on one host can remove another host's temporary in
// flight: that Put then fails with Aborted and publishes nothing.) There is
// no fsync: like ProxyStore, this is a transport, not a database.
//
// Keys: a key id must be what NewObjectId() mints, 32 lowercase hex digits;
// anything else ("../etc/passwd", ".bashrc", "a/b", "x.tmp") is
// InvalidArgument naming the key from Get/GetBatch/Exists/Evict, before any
// file is touched.
//
// I/O: writes and reads loop over partial write()/read() results and EINTR,
// so objects larger than the 2 GiB per-call kernel limit are written and read
// whole (ProxyStore once truncated them). Get reads exactly the size fstat
// reported (into a buffer allocated without throwing: ResourceExhausted if
// there is no memory for it) and checks the file did not change size under
// it (shrunk or grew between fstat and the end of the read): DataLoss, never
// garbage. The bytes are not checksummed: a file truncated before Get is read
// as it now is; the serializer above detects such corruption.
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
// Close waits for this connector's Puts in flight in this process, so none
// publishes after it. After Close, Put/Get/Exists/Evict on that object are
// FailedPrecondition.
//
// Thread-safety: all methods may be called concurrently, from any number of
// connectors and processes sharing the directory. The connector keeps no
// descriptor, mapping or lock between calls: a child forked at any time
// (even during a Put in another thread) may use and close its parent's
// connector.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(
//       std::unique_ptr<FileConnector> c,
//       FileConnector::Create({"file", {{"directory", "/scratch/ps"}}}));
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, c->Put(SharedBytes::Copy("data")));
//   // In another process: MakeConnector(c->Config()) reads the same file.
#ifndef PROXYSTORE_CONNECTORS_FILE_FILE_CONNECTOR_H_
#define PROXYSTORE_CONNECTORS_FILE_FILE_CONNECTOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/fd_io.h"

namespace proxystore {

class FileConnector : public Connector {
 public:
  static constexpr absl::string_view kKind = "file";
  static constexpr int64_t kDefaultMmapMinSize = int64_t{2} << 20;
  // "max_object_size" of a connector made by the user: no limit.
  static constexpr int64_t kNoSizeLimit = std::numeric_limits<int64_t>::max();
  // "max_object_size" of a connector made from a proxy's config.
  static constexpr int64_t kReceiverMaxObjectSize = int64_t{1} << 30;
  // Bytes per read()/write() call. Linux moves at most 0x7ffff000 bytes per
  // call anyway; a round 1 GiB keeps every call well-formed.
  static constexpr size_t kDefaultMaxIoChunk = size_t{1} << 30;

  // Test-only hooks into the I/O paths. Not for production use.
  struct TestHooks {
    // Upper bound on bytes per read()/write() call (tests use tiny values
    // to exercise the partial-I/O loops). 0 means kDefaultMaxIoChunk.
    size_t max_io_chunk = 0;
    // Put: after creating the temporary file, before taking its lock.
    std::function<void(const std::string& temp_path)> before_lock;
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
  // What "file" registers with: location option "directory", receiver
  // defaults clear=false, create_directory=false, max_object_size=1 GiB.
  static ConnectorKindTraits KindTraits();

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
  struct Options {
    std::string directory;
    bool clear;
    bool create_directory;
    int64_t mmap_min_size;
    int64_t max_object_size;
  };
  FileConnector(Options options, TestHooks hooks);

  absl::Status CheckOpen(absl::string_view op) const;
  // `directory_/<id>` after validating the key.
  absl::StatusOr<std::string> ObjectPath(const Key& key,
                                         absl::string_view op) const;
  size_t max_io_chunk() const;
  // Removes the abandoned temporaries in the directory; with `objects`,
  // every object too, then the directory if empty.
  absl::Status Sweep(bool objects) const;

  const std::string directory_;
  const bool clear_;
  const bool create_directory_;
  const int64_t mmap_min_size_;
  const int64_t max_object_size_;
  const TestHooks hooks_;
  // Close waits for this process's Puts in flight: none publishes after it.
  mutable PutGate puts_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_FILE_FILE_CONNECTOR_H_
