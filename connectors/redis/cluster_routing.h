// Redis Cluster routing primitives for the redis connector: which hash slot
// a key lives in (KeySlot), which node serves a slot (SlotMap, parsed from a
// CLUSTER SLOTS reply), and what a redirect or cluster error says
// (ParseRedirect, ClassifyError). No I/O and no connector state: the
// connector asks the server and hands the replies and error texts in.
//
//   uint16_t slot = redis_cluster::KeySlot(redis_key);
//   PROXYSTORE_ASSIGN_OR_RETURN(redis_cluster::SlotMap map,
//                               redis_cluster::SlotMap::FromClusterSlots(r));
//   const redis_cluster::Node* master = map.MasterFor(slot);  // null: none
//   ...
//   // An error reply "MOVED 3999 10.0.0.7:6381": refresh the map, or at
//   // least send the command to the node it names.
//   PROXYSTORE_ASSIGN_OR_RETURN(redis_cluster::Redirect redirect,
//                               redis_cluster::ParseRedirect(error_text));
//
// Why CLUSTER SLOTS and not CLUSTER SHARDS (Redis 7 has both): SLOTS is
// answered the same way by every cluster-capable Redis (the node id since
// 4.0, the endpoint metadata since 7.0) and by Redis-compatible servers
// (KeyDB, Valkey, managed services), it is what hiredis-cluster, redis-py
// and Jedis route by, and its reply is a plain nest of arrays whose shape is
// fixed. SHARDS exists only from 7.0 on, its nodes are maps of named fields
// (a parser must pick fields out and decide about ones it does not know),
// and it lists every node, failed ones included, so the client must pick
// routable ones itself (Redis 7's SLOTS lists only replicas that are not
// failing and have synced). SLOTS is marked deprecated since 7.0 but is
// still answered. Its one drawback is size: a node appears once per slot
// range it serves, which only matters for heavily fragmented slot maps, and
// the bounds below cap it.
//
// Every reply and error text is untrusted: each element's type, each number's
// range and each string's length and characters are checked, and what is
// wrong is named in a DataLoss status. Nothing here trusts a count before
// checking it against a fixed bound.
//
// Thread-safety: the functions are stateless; a SlotMap is immutable after
// parsing, so any number of threads may read one.
#ifndef PROXYSTORE_CONNECTORS_REDIS_CLUSTER_ROUTING_H_
#define PROXYSTORE_CONNECTORS_REDIS_CLUSTER_ROUTING_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// hiredis's reply type (<hiredis/hiredis.h>); declared here so that users of
// this header need not include hiredis.
struct redisReply;

namespace proxystore::redis_cluster {

// Redis Cluster's fixed number of hash slots; slots are 0..kNumSlots-1.
inline constexpr int kNumSlots = 16384;

// The hash slot of `key`, as Redis's keyHashSlot computes it: CRC16 of the
// key modulo 16384, where a key holding a hash tag hashes only the tag. The
// tag is what lies between the key's first '{' and the first '}' after it,
// if that is non-empty; otherwise the whole key is hashed ("foo{}{bar}"
// hashes all of it, "foo{{bar}}zap" hashes "{bar"). Any bytes, NUL included.
uint16_t KeySlot(absl::string_view key);

namespace cluster_routing_internal {
// CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection, no final
// xor), as Redis's crc16.c: "123456789" gives 0x31C3. Table-driven, one
// lookup per byte; the 256-entry table is computed at compile time from the
// polynomial rather than copied, and static_asserts pin entries of Redis's
// crc16tab.
uint16_t Crc16(absl::string_view data);
}  // namespace cluster_routing_internal

// How a reply names a node's host.
enum class HostKind {
  // `host` is an IP address or a hostname to connect to.
  kGiven,
  // Redis sent no host (NULL, or "" as a single node that never met another
  // reports its own IP, or ":port" in a redirect with
  // cluster-preferred-endpoint-type unknown-endpoint): connect to the host
  // the reply came from, at `port`.
  kSameHost,
  // Redis sent "?": hostnames are the preferred endpoint but this node
  // announces none (cluster-announce-hostname unset). Not routable.
  kUnknown,
};

struct Endpoint {
  HostKind kind = HostKind::kGiven;
  // Non-empty exactly when kind is kGiven. IPv6 addresses as Redis prints
  // them, without brackets ("::1", "fe80::1%eth0").
  std::string host;
  uint16_t port = 0;  // 1..65535.

  // For messages: "10.0.0.7:6381", "[::1]:6381", "<same host>:6381",
  // "<unknown host>:6381".
  std::string ToString() const;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

struct Node {
  Endpoint endpoint;
  // The node's 40-character name ([0-9a-z], as Redis checks node names).
  std::string id;
  friend bool operator==(const Node&, const Node&) = default;
};

// Slots first..last, both included.
struct SlotRange {
  uint16_t first = 0;
  uint16_t last = 0;
  friend bool operator==(const SlotRange&, const SlotRange&) = default;
};

// Which node serves each slot: the masters and replicas of every slot range
// in one CLUSTER SLOTS reply. Slots that no range covers have no master (a
// cluster with cluster-require-full-coverage no serves the rest); they are
// listed by Uncovered().
//
// A node is identified by its id: every entry with one id must name the same
// endpoint, and a node is either a master (of one or more ranges) or a
// replica, never both. Move-only: Node pointers handed out stay valid for
// the map's life, moves included.
class SlotMap {
 public:
  // Bounds on a reply, beyond which it is DataLoss. Ranges cannot overlap,
  // so more than kNumSlots ranges is malformed anyway.
  static constexpr size_t kMaxRanges = kNumSlots;
  static constexpr size_t kMaxReplicasPerRange = 64;
  // Distinct nodes. Redis's guidance is at most about 1000.
  static constexpr size_t kMaxNodes = kNumSlots;
  // DNS names are at most 253 bytes; Redis limits announced hostnames to
  // 255.
  static constexpr size_t kMaxHostLength = 255;
  // Elements of a node's metadata array (Redis 7 sends "ip" and/or
  // "hostname", each followed by its value), and bytes of each key or value.
  static constexpr size_t kMaxMetadataElements = 32;
  static constexpr size_t kMaxMetadataStringLength = 255;

  struct Master {
    const Node* node = nullptr;
    std::vector<SlotRange> ranges;  // Ascending; adjacent ones not merged.
  };

  // Parses a CLUSTER SLOTS reply as hiredis returns it (RESP2): an array of
  // [first slot, last slot, master, replica...], each node an array of
  // [host, port, id] (Redis 4..6) or [host, port, id, metadata] (Redis 7:
  // metadata is an array of key, value pairs, checked for shape and
  // otherwise ignored, since the host element already is the endpoint Redis
  // wants clients to use). Errors: InvalidArgument for a null reply;
  // FailedPrecondition, with the server's message, for an error reply (a
  // server with cluster support disabled says so); DataLoss naming the
  // element for anything malformed, out of range, overlapping, inconsistent
  // or over a bound above. An empty array is a map with no masters.
  static absl::StatusOr<SlotMap> FromClusterSlots(const redisReply* reply);

  SlotMap(SlotMap&&) = default;
  SlotMap& operator=(SlotMap&&) = default;
  SlotMap(const SlotMap&) = delete;
  SlotMap& operator=(const SlotMap&) = delete;

  // The master serving `slot`; null if no range covers it or slot >=
  // kNumSlots.
  const Node* MasterFor(uint16_t slot) const;
  // The replicas listed for `slot`'s range (Redis 7 lists only replicas
  // that are not failing and have synced); empty if none or uncovered.
  absl::Span<const Node* const> Replicas(uint16_t slot) const;
  // Each distinct master once with all its ranges, ordered by lowest slot.
  absl::Span<const Master> Masters() const { return masters_; }
  // The maximal runs of slots that no master covers, ascending.
  absl::Span<const SlotRange> Uncovered() const { return uncovered_; }
  bool CoversAllSlots() const { return uncovered_.empty(); }

 private:
  struct Range {
    SlotRange slots;
    const Node* master = nullptr;
    std::vector<const Node*> replicas;
  };
  static constexpr uint16_t kNoRange = 0xFFFF;

  SlotMap();

  // Every distinct node, each once. A deque, so that growing it while
  // parsing and moving the map never moves a Node.
  std::deque<Node> nodes_;
  std::vector<Range> ranges_;            // In reply order.
  std::vector<uint16_t> range_of_slot_;  // kNumSlots entries, or kNoRange.
  std::vector<Master> masters_;
  std::vector<SlotRange> uncovered_;

  friend class SlotMapParser;
};

// A MOVED or ASK error reply. MOVED: the slot now lives at `endpoint` for
// good; refresh the slot map (or at least remember the new master) and
// resend there. ASK: the slot is being migrated and this one key is already
// at `endpoint`; send ASKING and then the command to that node, once,
// without changing the map.
struct Redirect {
  enum class Kind { kMoved, kAsk };
  Kind kind = Kind::kMoved;
  uint16_t slot = 0;
  Endpoint endpoint;
};

// Longest redirect text accepted: "ASK"/"MOVED", a slot, a host of at most
// SlotMap::kMaxHostLength bytes and a port, with room to spare.
inline constexpr size_t kMaxRedirectLength = 512;

// Parses an error reply's text, without the RESP '-' (hiredis's
// redisReply::str, the connector's error text): "MOVED <slot> <host>:<port>"
// or "ASK <slot> <host>:<port>", single spaces, as Redis writes them. The
// port follows the last ':', so IPv6 hosts need no brackets ("MOVED 3999
// ::1:6381" is host "::1"); host "" is HostKind::kSameHost and "?" is
// HostKind::kUnknown. Errors: InvalidArgument if `error` is not a MOVED or
// ASK error at all (check ClassifyError first); DataLoss naming the part
// that is wrong if it is one but malformed, out of range or longer than
// kMaxRedirectLength.
absl::StatusOr<Redirect> ParseRedirect(absl::string_view error);

// The cluster-related error codes, by an error text's first word (Redis's
// error code; case-sensitive, as Redis writes them upper-case).
enum class ClusterError {
  kOther,        // Not one of the below (or not an error a cluster sends).
  kMoved,        // See Redirect.
  kAsk,          // See Redirect.
  kTryAgain,     // A multi-key command met a slot being migrated with some
                 // keys already moved: retry later, same node.
  kClusterDown,  // The cluster is down or the slot is unassigned
                 // ("CLUSTERDOWN Hash slot not served"): refresh the map,
                 // retry later.
  kLoading,      // The node is loading its dataset: retry later.
};
ClusterError ClassifyError(absl::string_view error);
inline bool IsTryAgain(absl::string_view error) {
  return ClassifyError(error) == ClusterError::kTryAgain;
}
inline bool IsClusterDown(absl::string_view error) {
  return ClassifyError(error) == ClusterError::kClusterDown;
}
inline bool IsLoading(absl::string_view error) {
  return ClassifyError(error) == ClusterError::kLoading;
}

}  // namespace proxystore::redis_cluster

#endif  // PROXYSTORE_CONNECTORS_REDIS_CLUSTER_ROUTING_H_
