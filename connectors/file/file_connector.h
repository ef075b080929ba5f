// FileConnector: one file per object in a directory (kind "file"), as
// ProxyStore's FileConnector, for processes that share a file system. Each
// object is the file `<directory>/<key id>` (mode 0600), published by
// rename(2) once written whole, so no reader sees it half-written. Deferred
// writes: NewKey mints an id and touches nothing; Set writes the object the
// same way and publishes it only if the name is free (renameat2
// RENAME_NOREPLACE, or link(2)), so across processes one Set of a key wins.
// Options and guarantees: docs/connectors.md.
//
// Option "layout" = "proxystore-python" (default "native") reads and writes
// exactly what Python ProxyStore 1.0's FileConnector does, on a directory
// that Python processes use at the same time: each object `<id>` gets an
// empty marker file `<id>.ready`, created once the object is published whole,
// and only objects with a marker exist. Keys are Python's FileKey filenames
// (NewKey and Put mint str(uuid.uuid4()) as Python does); see Layout.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(
//       std::unique_ptr<FileConnector> c,
//       FileConnector::Create({"file", {{"directory", "/scratch/ps"}}}));
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, c->Put(SharedBytes::Copy("data")));
//   // In another process: MakeConnector(c->Config()) reads the same file.
//
// Thread-safety: all methods may be called concurrently, from any number of
// connectors and processes sharing the directory. The connector holds no
// descriptor, mapping or lock between calls, so a child forked at any time
// (even during a Put in another thread) may use and close it.
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

  // How objects are laid out in the directory (option "layout").
  enum class Layout {
    // "native": the object file `<id>` alone, published by rename(2); ids are
    // 32 lowercase hex digits (NewObjectId).
    kNative,
    // "proxystore-python": Python ProxyStore 1.0's FileConnector layout. The
    // object file `<id>` is published as in kNative, then the empty marker
    // `<id>.ready` (mode 0600) is created: Python reads only objects whose
    // marker exists, and so do we (Get, GetInto, Exists and WaitFor look at
    // the marker; an object file without one, e.g. a Python writer's
    // half-written file, reads as missing, as does a marker without its
    // object). Evict removes the marker, then the object. Ids are what
    // ValidatePythonObjectName accepts; Put and NewKey mint Python's
    // str(uuid.uuid4()) form.
    kProxyStorePython,
  };
  static constexpr absl::string_view kNativeLayoutName = "native";
  static constexpr absl::string_view kPythonLayoutName = "proxystore-python";
  // The marker Python ProxyStore writes after an object: `<id>` + this.
  static constexpr absl::string_view kPythonMarkerSuffix = ".ready";
  // Longest id in the Python layout: the marker's name must fit NAME_MAX.
  static constexpr size_t kMaxPythonObjectName =
      255 - kPythonMarkerSuffix.size();

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
    // Get and GetInto: after fstat, before reading or mapping the object
    // file.
    std::function<void(const std::string& path)> before_read;
    // Set: publish with link(2), as on file systems without renameat2's
    // RENAME_NOREPLACE (NFS), instead of trying that first.
    bool publish_with_link = false;
  };

  // Opens the store in option "directory" (made absolute), creating the
  // directory unless "create_directory" is false, and removes temporaries
  // that killed writers left there. InvalidArgument for a missing or
  // malformed option, the file system root, or an unknown option;
  // FailedPrecondition if the path exists and is not a directory.
  static absl::StatusOr<std::unique_ptr<FileConnector>> Create(
      const ConnectorConfig& options);
  // Create() with `hooks`, for tests.
  static absl::StatusOr<std::unique_ptr<FileConnector>> CreateForTesting(
      const ConnectorConfig& options, TestHooks hooks);
  // Create(), for the registry; the config's kind is not checked here.
  static absl::StatusOr<std::unique_ptr<Connector>> FromConfig(
      const ConnectorConfig& config);
  // Location option "directory"; receiver defaults clear=false,
  // create_directory=false, max_object_size=1 GiB. The destination is
  // "file:" plus the directory with symbolic links resolved.
  static ConnectorKindTraits KindTraits();

  absl::string_view kind() const override { return kKind; }
  // All five options, with the absolute directory, so that connectors in
  // other processes (any working directory) reach the same files; and
  // "layout" when it is not "native" (a location option: it travels in
  // proxies, so every connector made from this config reads the same way).
  ConnectorConfig Config() const override;

  // The absolute store directory.
  const std::string& directory() const { return directory_; }
  Layout layout() const { return layout_; }
  // OK iff `id` is what NewObjectId() mints (32 lowercase hex digits);
  // otherwise InvalidArgument quoting it. The "native" layout's ids.
  static absl::Status ValidateObjectName(absl::string_view id);
  // The "proxystore-python" layout's ids (Python FileKey filenames, which
  // come from outside): OK iff `id` is 1 to kMaxPythonObjectName ASCII
  // letters, digits, '-', '_' and '.', does not start with '.' (".", "..",
  // hidden files and our temporaries) and does not end in ".ready" (another
  // object's marker). So no id names a path outside the directory, a
  // subdirectory or a file that is not an object. Python's uuid4 filenames
  // and NewObjectId()'s ids pass; otherwise InvalidArgument quoting it.
  static absl::Status ValidatePythonObjectName(absl::string_view id);

  // GetInto reads an object of up to this many bytes with one read(2) and
  // offers it in memory (ObjectReader::in_memory); larger ones go straight
  // into the caller's memory.
  static constexpr size_t kWholeReadMax = 32 << 10;

 protected:
  // Every operation is FailedPrecondition after Close. Get, Exists and Evict
  // (and GetBatch) are InvalidArgument naming the key, before any file is
  // touched, unless the layout's check (ValidateObjectName or
  // ValidatePythonObjectName) accepts its id. In the Python layout, read
  // "the object exists" as "its marker exists" below.
  //
  // Put: errors name the key and path, and leave no file behind (a full
  // disk or quota is ResourceExhausted). FailedPrecondition if the directory
  // is missing; Aborted if concurrent sweeps took its temporary file for
  // abandoned.
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override;
  // Writes the parts gathered (writev) into the temporary, then publishes.
  absl::StatusOr<Key> DoPutParts(absl::Span<const absl::string_view> parts,
                                 const PutOptions& options) override;
  // A fresh id (as Put mints); no file is created until Set.
  absl::StatusOr<Key> DoNewKey(const NewKeyOptions& options) override;
  // Put's errors and path, under `key`; InvalidArgument unless the layout's
  // check accepts its id; AlreadyExists (the file untouched) if the object
  // file exists, whoever wrote it (in the Python layout, also an object file
  // without a marker: a Python writer may be writing it).
  absl::Status DoSet(const Key& key, SharedBytes data) override;
  absl::Status DoSetParts(const Key& key,
                          absl::Span<const absl::string_view> parts) override;
  absl::StatusOr<bool> DoWaitFor(const Key& key,
                                 absl::Duration timeout) override;
  // std::nullopt if the file or the directory is missing. Objects of at
  // least "mmap_min_size" bytes come back as a read-only mapping of the
  // file, smaller ones in a buffer of their own. ResourceExhausted if the
  // file is larger than "max_object_size" (checked before allocating or
  // mapping) or memory is short; DataLoss if the file changed size while
  // being read; FailedPrecondition if it is not a regular file.
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override;
  // Opens and checks the file as DoGet does (same errors), with the first
  // min(size, kGetIntoPrefix) bytes read into a stack buffer; `read` preads
  // the rest into `dst` (no heap buffer, no mapping) and is DataLoss if the
  // file changed size. InvalidArgument if `read` is called twice or with an
  // offset past the size. Objects of at most kGetIntoPrefix bytes are read
  // whole and checked up front, and offered as ObjectReader::in_memory. If
  // the fn returns false, the whole object comes back as DoGet would return
  // it (mapped at "mmap_min_size" and above).
  absl::StatusOr<GetIntoResult> DoGetInto(const Key& key,
                                          GetIntoFn fn) override;
  // false if the file or the directory is missing; FailedPrecondition if
  // the name is not a regular file.
  absl::StatusOr<bool> DoExists(const Key& key) override;
  // Unlinks the file (Python layout: the marker, then the file); OK if
  // missing.
  absl::Status DoEvict(const Key& key) override;
  // Waits for this object's Puts and Sets in flight in this process, so
  // none publishes after it. With clear (default: option "clear", true) removes
  // the objects and abandoned temporaries, then the directory if that left
  // it empty; nothing else. Objects are, in the native layout, files named
  // like NewObjectId(); in the Python layout, every marker of a valid id with
  // its object file, and files named like Python's uuid4 ids without a
  // marker (left by writers that died or are still writing). Idempotent.
  absl::Status DoClose(const CloseOptions& options) override;

 private:
  struct Options {
    std::string directory;
    bool clear;
    bool create_directory;
    int64_t mmap_min_size;
    int64_t max_object_size;
    Layout layout;
  };
  FileConnector(Options options, TestHooks hooks);

  absl::Status CheckOpen(absl::string_view op) const;
  // The layout's id check.
  absl::Status ValidateId(absl::string_view id) const;
  // A new id of the layout's form.
  std::string NewId() const;
  bool python_layout() const { return layout_ == Layout::kProxyStorePython; }
  // Python layout: whether the marker of the object at `path` exists; false
  // if it or the directory is missing, FailedPrecondition if it is not a
  // regular file.
  absl::StatusOr<bool> MarkerExists(const Key& key, const std::string& path,
                                    absl::string_view op) const;
  // `directory_/<id>` after validating the key.
  absl::StatusOr<std::string> ObjectPath(const Key& key,
                                         absl::string_view op) const;
  size_t max_io_chunk() const;
  // Put (`set_key` null: mints the key) and Set (writes `set_key` after
  // checking its id, publishing exclusively): the object file from `parts`.
  absl::StatusOr<Key> WriteObject(absl::Span<const absl::string_view> parts,
                                  const Key* set_key);

  // An object file open for reading, and its size when opened.
  struct ObjectFile {
    ScopedFd fd;
    size_t size = 0;
  };
  // Opens `path` for a Get: std::nullopt if it (or the directory) is
  // missing; FailedPrecondition if it is not a regular file;
  // ResourceExhausted if larger than "max_object_size". Errors start with
  // `context`. Runs hooks_.before_read.
  absl::StatusOr<std::optional<ObjectFile>> OpenObject(
      const std::string& path, absl::string_view context) const;
  // The `n` bytes of the open object file `fd` (a mapping from
  // "mmap_min_size" up, else a buffer of their own); DataLoss if the file
  // is no longer `n` bytes long. Independent of the descriptor's offset.
  absl::StatusOr<SharedBytes> ReadObject(int fd, size_t n,
                                         absl::string_view context) const;
  // Removes the abandoned temporaries in the directory; with `objects`,
  // every object too, then the directory if empty.
  absl::Status Sweep(bool objects) const;

  const std::string directory_;
  const bool clear_;
  const bool create_directory_;
  const int64_t mmap_min_size_;
  const int64_t max_object_size_;
  const Layout layout_;
  const TestHooks hooks_;
  // Close waits for this process's Puts and Sets in flight: none publishes
  // after it.
  mutable PutGate puts_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_FILE_FILE_CONNECTOR_H_
