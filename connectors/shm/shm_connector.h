// ShmConnector: one POSIX shared-memory segment per object (kind "shm"), for
// processes of one user on one Linux host. ProxyStore has no such connector.
// Each object is the segment "/proxystore.<namespace>.<key id>" (what
// shm_open() of that name opens; mode 0600), held in RAM until evicted,
// cleared or reboot. Get maps the segment: no copy. Deferred writes: NewKey
// mints an id and creates nothing; Set writes the segment as Put does and
// publishes it only if the name is free (renameat2 RENAME_NOREPLACE), so
// across processes one Set of a key wins. Options and guarantees:
// docs/connectors.md.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<ShmConnector> c,
//                               ShmConnector::Create({"shm", {}}));
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, c->Put(SharedBytes::Copy("data")));
//   // In another process: MakeConnector(c->Config())->Get(key) maps it.
//   PROXYSTORE_RETURN_IF_ERROR(c->Close({.clear = true}));
//
// Thread-safety: all methods may be called concurrently, from any number of
// connectors and processes sharing a namespace. The connector holds no
// descriptor, mapping or lock between calls, so a child forked at any time
// (even during a Put in another thread) may use and close it.
#ifndef PROXYSTORE_CONNECTORS_SHM_SHM_CONNECTOR_H_
#define PROXYSTORE_CONNECTORS_SHM_SHM_CONNECTOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/fd_io.h"

namespace proxystore {

class ShmConnector : public Connector {
 public:
  static constexpr absl::string_view kKind = "shm";
  // Where Linux keeps POSIX shared memory objects.
  static constexpr absl::string_view kShmDirectory = "/dev/shm";
  // Every segment name starts with this, then "<namespace>.".
  static constexpr absl::string_view kNamePrefix = "proxystore.";
  static constexpr size_t kMaxNamespaceSize = 64;
  // Never populate (the measurements are at DoGet in the .cc).
  static constexpr int64_t kDefaultPopulateMinSize =
      std::numeric_limits<int64_t>::max();
  // "max_object_size" of a connector made by the user: no limit.
  static constexpr int64_t kNoSizeLimit = std::numeric_limits<int64_t>::max();
  // "max_object_size" of a connector made from a proxy's config.
  static constexpr int64_t kReceiverMaxObjectSize = int64_t{1} << 30;
  // Bytes per write() call; Linux moves at most 0x7ffff000 per call.
  static constexpr size_t kDefaultMaxIoChunk = size_t{1} << 30;

  // Test-only hooks into the I/O paths. Not for production use.
  struct TestHooks {
    // Upper bound on bytes per write() call (tests use tiny values to
    // exercise the partial-write loop). 0 means kDefaultMaxIoChunk.
    size_t max_io_chunk = 0;
    // Put: after each successful write() to the temporary segment, with the
    // key, the temporary segment's path and the bytes written so far.
    std::function<void(const Key& key, const std::string& temp_path,
                       size_t written)>
        after_write;
    // Get: after fstat, before mmap, with the segment's path.
    std::function<void(const std::string& path)> before_map;
  };

  // Opens option "namespace" (a fresh NewObjectId() if absent) and removes
  // temporaries that killed writers left in it. InvalidArgument for an
  // invalid or unknown option; FailedPrecondition if /dev/shm is not a
  // directory.
  static absl::StatusOr<std::unique_ptr<ShmConnector>> Create(
      const ConnectorConfig& options);
  // Create() with `hooks`, for tests.
  static absl::StatusOr<std::unique_ptr<ShmConnector>> CreateForTesting(
      const ConnectorConfig& options, TestHooks hooks);
  // Create(), for the registry; the config's kind is not checked here.
  static absl::StatusOr<std::unique_ptr<Connector>> FromConfig(
      const ConnectorConfig& config);
  // Location option "namespace" (required in a config from outside);
  // receiver defaults clear=false, max_object_size=1 GiB. The destination
  // is "shm:<namespace>".
  static ConnectorKindTraits KindTraits();

  absl::string_view kind() const override { return kKind; }
  // All four options, the namespace included, so that a connector made from
  // it in another process reaches the same segments.
  ConnectorConfig Config() const override;

  const std::string& segment_namespace() const { return namespace_; }
  // The shm_open() name of `key`'s segment ("/proxystore.<ns>.<id>");
  // InvalidArgument if the key id is not valid.
  absl::StatusOr<std::string> SegmentName(const Key& key) const;
  // OK iff `ns` is 1 to 64 letters, digits, '_' or '-'; otherwise
  // InvalidArgument saying why.
  static absl::Status ValidateNamespace(absl::string_view ns);

 protected:
  // Every operation is FailedPrecondition after Close. Get, Exists and Evict
  // (and GetBatch) are InvalidArgument naming the key, before any segment is
  // touched, unless its id is what NewObjectId() mints (32 lowercase hex
  // digits).
  //
  // Put: errors name the key and leave no segment behind (a full tmpfs is
  // ResourceExhausted); Aborted if concurrent sweeps took its temporary
  // segment for abandoned.
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override;
  // Writes the parts gathered (writev) into the temporary, then publishes.
  absl::StatusOr<Key> DoPutParts(absl::Span<const absl::string_view> parts,
                                 const PutOptions& options) override;
  // A fresh id (as Put mints); no segment is created until Set.
  absl::StatusOr<Key> DoNewKey(const NewKeyOptions& options) override;
  // Put's errors, under `key`; InvalidArgument unless its id is what
  // NewObjectId() mints; AlreadyExists (the segment untouched) if the
  // segment exists, whoever wrote it.
  absl::Status DoSet(const Key& key, SharedBytes data) override;
  absl::Status DoSetParts(const Key& key,
                          absl::Span<const absl::string_view> parts) override;
  absl::StatusOr<bool> DoWaitFor(const Key& key,
                                 absl::Duration timeout) override;
  // A read-only mapping of the segment itself (an empty object is an empty
  // SharedBytes), valid after Evict or Close(clear) by any process; a Get
  // racing an Evict returns std::nullopt or the whole object. std::nullopt
  // if missing. ResourceExhausted if the segment is larger than
  // "max_object_size" (checked before mapping) or the process has no
  // mapping left (vm.max_map_count live views); DataLoss if its size
  // changed while being mapped; FailedPrecondition if not a regular file.
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override;
  // false if missing; FailedPrecondition if the name is not a regular file.
  absl::StatusOr<bool> DoExists(const Key& key) override;
  // Unlinks the segment; OK if it is missing.
  absl::Status DoEvict(const Key& key) override;
  // Waits for this object's Puts and Sets in flight in this process, so
  // none publishes after it (those through other connectors on the
  // namespace may). With clear (default: option "clear", false) removes the
  // namespace's objects and abandoned temporaries, and no other name under
  // "proxystore.<namespace>.". Idempotent.
  absl::Status DoClose(const CloseOptions& options) override;

 private:
  ShmConnector(std::string ns, bool clear, int64_t populate_min_size,
               int64_t max_object_size, TestHooks hooks);

  absl::Status CheckOpen(absl::string_view op) const;
  // The segment's file name in /dev/shm after validating the key id.
  absl::StatusOr<std::string> FileName(const Key& key,
                                       absl::string_view op) const;
  // Put (`set_key` null: mints the key) and Set (writes `set_key` after
  // checking its id, publishing exclusively): the segment from `parts`.
  absl::StatusOr<Key> WriteObject(absl::Span<const absl::string_view> parts,
                                  const Key* set_key);
  // Removes this namespace's abandoned temporaries; with `objects`, its
  // objects too.
  absl::Status Sweep(bool objects) const;

  const std::string namespace_;
  // "proxystore.<namespace>.": every segment of this namespace, no other.
  const std::string file_prefix_;
  const bool clear_;
  const int64_t populate_min_size_;
  const int64_t max_object_size_;
  const TestHooks hooks_;
  // Close waits for this process's Puts and Sets in flight: none publishes
  // after it.
  mutable PutGate puts_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_SHM_SHM_CONNECTOR_H_
