// MultiConnector: routes each object to one of several connectors by policy
// (kind "multi").
//
// ProxyStore's MultiConnector + Policy. Each child connector has a name and a
// Policy saying which objects it accepts (size range, tags, hosts). A put goes
// to the first child, in order of Policy::priority DESCENDING (ties keep the
// order the children were given in), whose policy accepts the object's size
// and the put's tags (PutOptions::subset_tags / superset_tags, which come from
// Store::Put via StorePutOptions<T>::connector). Children whose host patterns
// do not match this host are never chosen. No acceptable child is
// FailedPrecondition: "No connector policy was suitable for the constraints:
// size=..., subset_tags=[...], superset_tags=[...]". The put's PutOptions are
// passed on to the chosen child (so a nested "multi" can route further; other
// kinds ignore them).
//
// Keys remember their child: a multi key is MultiKey{connector name, the
// child's key}, encoded as "<name length>:<name>:<child key id>" (e.g.
// "5:local:3f2a..."). Get/Exists/Evict decode the key and go to that child;
// GetBatch groups keys by child, makes one child GetBatch per child and keeps
// the input order; PutBatch routes each item separately (items may land in
// different children), makes one child PutBatch per child, and if any child
// fails evicts what the others stored. A malformed key is InvalidArgument; a
// key naming no child is InvalidArgument "'<name>' does not exist"; a key of
// a dormant child is FailedPrecondition "'<name>' is dormant".
//
// Configuration and dormant children: Config() is kind "multi" with, for the
// i-th child (i = 0, 1, ... in the given order),
//   "child.<i>.name"    the child's name
//   "child.<i>.config"  SerializeChildConfig() of the child's config, e.g.
//                       "file" {"clear": "true", "directory": "/scratch/ps"}
//   "child.<i>.policy"  Policy::Serialize(), e.g. {max_size_bytes: 1024}
// (The config is text rather than base64 of ConnectorConfig::Serialize():
// configs travel inside every proxy, and a "file" child's config takes 84
// bytes as text against 240 as base64 of the FlatBuffer; text can also be
// written by hand.)
// FromConfig (the registry factory) instantiates, through MakeConnector, only
// children whose policy's host patterns match this host; the others become
// DORMANT: never chosen for puts, their keys are errors (above), and Config()
// still carries their configs so that the round trip keeps them. (Create()
// keeps every child it is given active, as ProxyStore's constructor does: a
// child whose host patterns miss this host still serves Get/Exists/Evict but
// is never chosen for puts.) Any kind may be a child, "multi" included, as
// long as this process links it.
//
// Host patterns are regular expressions matched against the whole
// gethostname() ("node-.*" matches "node-12", not "my-node-12"), in the
// syntax Python's re and POSIX EREs share plus Python's \d \w \s, (?:...)
// and lazy quantifiers (HostPattern, connectors/multi/host_pattern.h: a
// linear-time matcher, since patterns arrive inside proxies).
//
// Close closes every active child (passing CloseOptions through) and returns
// the first error, after trying them all; it is idempotent because the
// children's Close is. Each child's own Close semantics apply (e.g. "file"
// clears by default, "local" does not).
//
// Thread-safety: all methods may be called concurrently. The routing tables
// are immutable after creation and children are thread-safe themselves.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(auto local, LocalConnector::Create());
//   PROXYSTORE_ASSIGN_OR_RETURN(auto file, FileConnector::Create(file_config));
//   std::vector<MultiConnector::Entry> entries;
//   entries.push_back({"local", std::move(local), {.max_size_bytes = 1024}});
//   entries.push_back({"file", std::move(file), {.min_size_bytes = 1025}});
//   PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<MultiConnector> multi,
//                               MultiConnector::Create(std::move(entries)));
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, multi->Put(SharedBytes::Copy("hi")));
//   // key.id() == "5:local:<local key id>"
#ifndef PROXYSTORE_CONNECTORS_MULTI_MULTI_CONNECTOR_H_
#define PROXYSTORE_CONNECTORS_MULTI_MULTI_CONNECTOR_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/connector.h"

namespace proxystore {

// This host's name (gethostname()), what host patterns are matched against.
std::string CurrentHostname();

// Which objects a MultiConnector child accepts (ProxyStore's Policy).
struct Policy {
  // Higher is tried first.
  int64_t priority = 0;
  // Regular expressions, each matched against the whole host name (Python's
  // re.fullmatch) in linear time; empty = any host. The syntax is the
  // common part of Python's re and POSIX EREs: connectors/multi/
  // host_pattern.h.
  std::vector<std::string> host_patterns;
  // Accepted object sizes, both bounds inclusive.
  uint64_t min_size_bytes = 0;
  uint64_t max_size_bytes = std::numeric_limits<uint64_t>::max();
  // A put's subset tags must all be in here.
  std::vector<std::string> subset_tags;
  // A put's superset tags must include all of these.
  std::vector<std::string> superset_tags;

  friend bool operator==(const Policy&, const Policy&) = default;

  // ProxyStore's is_valid: true iff the size is in [min_size_bytes,
  // max_size_bytes], the given `subset_tags` are a subset of the policy's
  // subset_tags (so a default policy rejects any non-empty request), the
  // given `superset_tags` are a superset of the policy's superset_tags, and
  // IsValidOnHost(). Tags are compared as sets (duplicates do not matter).
  bool IsValid(uint64_t size_bytes,
               absl::Span<const std::string> subset_tags = {},
               absl::Span<const std::string> superset_tags = {}) const;
  // The same without the host check.
  bool IsValidIgnoringHost(uint64_t size_bytes,
                           absl::Span<const std::string> subset_tags,
                           absl::Span<const std::string> superset_tags) const;
  // True if host_patterns is empty or one of them fully matches `hostname`
  // (default: CurrentHostname()). An invalid pattern matches nothing (see
  // Validate).
  bool IsValidOnHost() const;
  bool IsValidOnHost(absl::string_view hostname) const;

  // InvalidArgument naming the problem: a host pattern HostPattern::Compile
  // refuses (bad syntax, a back-reference, a NUL byte, too long, or
  // repetitions that expand past HostPattern::kMaxProgramSize), or
  // min_size_bytes > max_size_bytes (a policy that accepts nothing).
  absl::Status Validate() const;

  // A text form for configs and messages; Parse(Serialize()) == *this. E.g.
  //   {priority: 1, host_patterns: ["node-.*"], max_size_bytes: 1024,
  //    subset_tags: ["gpu"]}
  // Serialize writes the fields in declaration order and leaves out those at
  // their defaults (a default Policy is "{}"): configs travel in every proxy.
  // Strings are double-quoted with C escapes (absl::CHexEscape), so any
  // bytes round-trip. Parse accepts the fields in any order, each at most
  // once (missing ones keep their defaults), and is InvalidArgument for
  // anything else; it does not call Validate().
  std::string Serialize() const;
  static absl::StatusOr<Policy> Parse(absl::string_view text);
  std::string DebugString() const { return Serialize(); }
  friend std::ostream& operator<<(std::ostream& os, const Policy& p) {
    return os << p.DebugString();
  }
};

// A multi key's parts: which child holds the object, and the child's key.
struct MultiKey {
  // Longest child name a multi key (and MultiConnector) accepts.
  static constexpr size_t kMaxNameSize = 255;

  std::string connector_name;
  Key connector_key;

  friend bool operator==(const MultiKey&, const MultiKey&) = default;

  // "<decimal name length>:<name>:<connector key id>".
  Key Encode() const;
  // InvalidArgument, naming the key and the problem, unless `key` is exactly
  // what Encode() makes of a non-empty name of at most kMaxNameSize bytes
  // and a non-empty connector key.
  static absl::StatusOr<MultiKey> Decode(const Key& key);
};

class MultiConnector : public Connector {
 public:
  static constexpr absl::string_view kKind = "multi";

  // An active child.
  struct Entry {
    std::string name;
    std::unique_ptr<Connector> connector;
    Policy policy;
  };
  // A dormant child: kept only as its configuration.
  struct DormantEntry {
    std::string name;
    ConnectorConfig config;
    Policy policy;
  };

  // InvalidArgument if there are no children, a name is empty, longer than
  // MultiKey::kMaxNameSize or used twice (across both lists), a connector is
  // null, a dormant config has no kind, or a policy fails Validate(). Config()
  // lists `entries` first, then `dormant`.
  static absl::StatusOr<std::unique_ptr<MultiConnector>> Create(
      std::vector<Entry> entries, std::vector<DormantEntry> dormant = {});
  // Registry factory (see the file comment); InvalidArgument for malformed
  // options, naming the option; a child that fails to be created fails the
  // whole creation, with the child's name in the message.
  // How "multi" configs from serialized proxies are treated
  // (connectors/trust.h): every "child.*" option travels; each active
  // child's config is reduced, checked and completed as a config of its own
  // kind would be; dormant children's configs are carried unread.
  static ConnectorKindTraits KindTraits();

  static absl::StatusOr<std::unique_ptr<Connector>> FromConfig(
      const ConnectorConfig& config);

  absl::string_view kind() const override { return kKind; }
  ConnectorConfig Config() const override;

  // The text form of a child's config in Config():
  //   "kind" {"option": "value", ...}
  // with C-escaped double-quoted strings (any bytes round-trip) and the
  // options in map order. ParseChildConfig accepts any spacing and is
  // InvalidArgument for anything else (an empty kind, a repeated option).
  static std::string SerializeChildConfig(const ConnectorConfig& config);
  static absl::StatusOr<ConnectorConfig> ParseChildConfig(
      absl::string_view text);

  // Children's names in the given order, active and dormant.
  std::vector<std::string> names() const;
  // The active child called `name`; nullptr if it is dormant or unknown.
  // Owned by this connector.
  Connector* connector(absl::string_view name) const;
  // True if `name` is a dormant child.
  bool IsDormant(absl::string_view name) const;
  // `name`'s policy; nullptr if unknown.
  const Policy* policy(absl::string_view name) const;

 protected:
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override;
  // Routes by the joined size and forwards the parts to the child's
  // PutParts.
  absl::StatusOr<Key> DoPutParts(absl::Span<const absl::string_view> parts,
                                 const PutOptions& options) override;
  absl::StatusOr<std::vector<Key>> DoPutBatch(
      absl::Span<const SharedBytes> data, const PutOptions& options) override;
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override;
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> DoGetBatch(
      absl::Span<const Key> keys) override;
  absl::StatusOr<bool> DoExists(const Key& key) override;
  absl::Status DoEvict(const Key& key) override;
  absl::Status DoClose(const CloseOptions& options) override;

 private:
  struct Child {
    std::string name;
    Policy policy;
    // Null for a dormant child.
    std::unique_ptr<Connector> connector;
    // A dormant child's configuration (unused for active ones).
    ConnectorConfig dormant_config;
  };
  // Where a key leads: the child's index and the child's key.
  struct Route {
    size_t child;
    Key inner;
  };

  explicit MultiConnector(std::vector<Child> children);
  static absl::StatusOr<std::unique_ptr<MultiConnector>> CreateFromChildren(
      std::vector<Child> children);

  // The child index for a put of `size` bytes with `options`'s tags.
  absl::StatusOr<size_t> ChooseChild(uint64_t size,
                                     const PutOptions& options) const;
  // Chooses the child for a put of `size` bytes, stores with `put` on it and
  // wraps the child's key (Put and PutParts).
  absl::StatusOr<Key> PutThroughChild(
      size_t size, const PutOptions& options,
      absl::FunctionRef<absl::StatusOr<Key>(Connector&)> put);
  // Decodes `key` and checks its child exists and is active.
  absl::StatusOr<Route> RouteKey(const Key& key, absl::string_view op) const;
  // `status` (if not OK) prefixed with the operation and the child's name.
  absl::Status ChildError(const absl::Status& status, absl::string_view op,
                          size_t child) const;
  // The multi key for `inner` stored in child `child`.
  absl::StatusOr<Key> WrapKey(size_t child, Key inner) const;

  const std::vector<Child> children_;
  const absl::flat_hash_map<std::string, size_t> by_name_;
  // Active children whose host patterns match this host, by priority
  // descending, ties in the given order: the put candidates.
  const std::vector<size_t> put_order_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_MULTI_MULTI_CONNECTOR_H_
