// ShmConnector: one POSIX shared-memory segment per object (kind "shm").
//
// For processes on one host. ProxyStore has no such connector; this one is
// ours. Each object is the segment "/proxystore.<namespace>.<key id>", i.e.
// what shm_open() of that name opens. Linux only: on Linux (glibc) a POSIX
// shm object is the file of the same name in the tmpfs mounted at /dev/shm,
// and the connector works on those files directly (open/rename/unlink and
// listing /dev/shm), which shm_open/shm_unlink alone cannot do. Create fails
// with FailedPrecondition if /dev/shm is not a directory. Segments live in
// RAM (counted against the tmpfs size) until evicted, cleared, or reboot;
// they are created with mode 0600, so only the same user's processes share
// them. Options (user default; default for a config from a proxy,
// connectors/trust.h):
//   "namespace"          letters, digits, '_' and '-', 1 to 64 characters;
//                        the only location option. Default: a fresh
//                        NewObjectId() per connector created without one.
//                        Config() includes it, so FromConfig in another
//                        process reaches the same segments.
//   "clear"              bool (false; false): what Close() does when
//                        CloseOptions::clear is unset. Unlike ProxyStore's
//                        file connector (default true) and like its Redis
//                        connector: connectors re-created from Config() in
//                        other processes (proxies resolving there) must not
//                        delete the creator's segments when they close. The
//                        owner closes with {.clear = true}; leftovers are
//                        easy to find (`ls /dev/shm/proxystore.<namespace>.*`).
//   "populate_min_size"  int >= 0 (INT64_MAX: never; never): objects at
//                        least this large are mapped with MAP_POPULATE (see
//                        below).
//   "max_object_size"    int >= 0 (no limit; 1 GiB): Get of a larger segment
//                        is ResourceExhausted naming the key, size and
//                        limit, before anything is mapped.
// Unknown options are InvalidArgument. Config() round-trips all four.
// KindTraits(): the destination is "shm:<namespace>".
//
// Publication: Put creates a temporary segment
// "proxystore.<namespace>..<key id>.tmp" (O_CREAT|O_EXCL, mode 0600),
// holds flock(LOCK_EX) on it, write()s the bytes into its descriptor
// (looping over partial writes and EINTR; the writer never maps the segment,
// so it takes no user page faults), and rename(2)s it to the object's name,
// so a reader never sees an object half-written. Temporary names can never
// be addressed by a key. A failed write (ENOSPC when the tmpfs is full,
// EFBIG) removes the temporary segment and returns an error naming the key.
// A temporary whose lock can be taken lost its writer (killed mid-Put):
// creating a connector and clearing remove those of its namespace, so they
// do not hold RAM until reboot; a live writer's temporary is never removed.
//
// Get returns a read-only view of the segment itself, without copying: it
// opens the segment O_RDONLY, fstat()s its size, mmap()s it PROT_READ
// MAP_SHARED, closes the descriptor, and returns SharedBytes::FromOwner with
// a deleter that munmap()s when the last reference dies. An empty object is
// an empty SharedBytes (no mapping). Because a mapping outlives the unlink of
// its segment, a view stays valid after Evict or Close(clear) (by this or any
// process); a Get racing an Evict returns either std::nullopt or a complete
// view, never a partial one. Each live non-empty view is one mapping: a
// process holding more than vm.max_map_count (65530 by default) views at once
// gets ResourceExhausted from Get.
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
// where faults are expensive (machine-performance.md measured ~10 us per
// fault, and touching a 1 MB mapping at 340 us against 85 us populated), set
// "populate_min_size" (e.g. to 8 MiB, or 65536). Put via write() costs 270
// us per MB here, against 760 us for ftruncate+mmap+memcpy.
//
// Caveat of the mapping (as for the file connector): if another process
// truncates a segment while a view of it is alive, touching the lost pages
// raises SIGBUS. This connector never modifies a published segment (Evict and
// Close unlink, which is safe); Get checks the size again after mapping
// (DataLoss if it changed). Do not let outside writers truncate segments of a
// namespace in use. Other than that, a segment's bytes are just bytes to the
// connector: garbage or a wrong size is returned as is, and the serializer
// above detects the corruption.
//
// Keys: a key id must be what NewObjectId() mints, 32 lowercase hex digits.
// Anything else is InvalidArgument naming the key from Get/GetBatch/Exists/
// Evict, before any segment is touched: no name injection.
//
// Close: with clear, removes the segments of this namespace that this
// connector names (objects, and temporaries of dead writers), and nothing
// else: other names under "proxystore.<namespace>." stay.
// Close waits for this connector's Puts in flight in this process, so none
// publishes after it; Puts through other connectors on the namespace may.
// Idempotent; after Close, Put/Get/Exists/Evict on that object are
// FailedPrecondition.
//
// Thread-safety: all methods may be called concurrently, from any number of
// connectors and processes sharing a namespace. The connector keeps no
// descriptor, mapping or lock between calls: a child forked at any time
// (even during a Put in another thread) may use and close its parent's
// connector.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<ShmConnector> c,
//                               ShmConnector::Create({"shm", {}}));
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, c->Put(SharedBytes::Copy("data")));
//   // In another process: MakeConnector(c->Config())->Get(key) maps it.
//   PROXYSTORE_RETURN_IF_ERROR(c->Close({.clear = true}));
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
  // Never populate (see "MAP_POPULATE" above).
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

  static absl::StatusOr<std::unique_ptr<ShmConnector>> Create(
      const ConnectorConfig& options);
  static absl::StatusOr<std::unique_ptr<ShmConnector>> CreateForTesting(
      const ConnectorConfig& options, TestHooks hooks);
  // Registry factory; the config's kind is not checked here.
  static absl::StatusOr<std::unique_ptr<Connector>> FromConfig(
      const ConnectorConfig& config);
  // What "shm" registers with: location option "namespace", receiver
  // defaults clear=false, max_object_size=1 GiB.
  static ConnectorKindTraits KindTraits();

  absl::string_view kind() const override { return kKind; }
  ConnectorConfig Config() const override;

  const std::string& segment_namespace() const { return namespace_; }
  // The shm_open() name of `key`'s segment ("/proxystore.<ns>.<id>");
  // InvalidArgument if the key id is not valid.
  absl::StatusOr<std::string> SegmentName(const Key& key) const;
  // OK iff `ns` is a valid "namespace" option value.
  static absl::Status ValidateNamespace(absl::string_view ns);

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
  ShmConnector(std::string ns, bool clear, int64_t populate_min_size,
               int64_t max_object_size, TestHooks hooks);

  absl::Status CheckOpen(absl::string_view op) const;
  // The segment's file name in /dev/shm after validating the key id.
  absl::StatusOr<std::string> FileName(const Key& key,
                                       absl::string_view op) const;
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
  // Close waits for this process's Puts in flight: none publishes after it.
  mutable PutGate puts_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_SHM_SHM_CONNECTOR_H_
