// MultiConnector: routes each object to one of several child connectors by
// policy (kind "multi"; ProxyStore's MultiConnector).
//
// Each child has a name and a Policy (connectors/policy.h) saying which
// objects it accepts. A put goes to the first child, by Policy::priority
// descending (ties in the given order), whose policy accepts the object's
// size and the put's PutOptions tags; children whose host patterns do not
// match this host are never chosen. No such child is FailedPrecondition
// "No connector policy was suitable for the constraints: size=...,
// subset_tags=[...], superset_tags=[...]". The PutOptions are passed on to
// the chosen child, so a nested "multi" routes further.
//
// Keys remember their child: MultiKey{child name, child key}, encoded as
// "<name length>:<name>:<child key id>" (e.g. "5:local:3f2a..."). Get,
// Exists and Evict go to the key's child; GetBatch and PutBatch make one
// child call per child and keep the input order, and a PutBatch that fails
// in one child evicts what the others stored. A malformed key is
// InvalidArgument, a key naming no child InvalidArgument "'<name>' does not
// exist", a key of a dormant child FailedPrecondition "'<name>' is dormant".
//
// Deferred writes: NewKey places the key as Put would place an object of
// NewKeyOptions::size_hint bytes with its tags, and wraps the child's
// NewKey; without a hint it takes the first child whose policy has no size
// bound (InvalidArgument asking for a hint if there is none). Set goes to
// the key's child, whatever the object's size. A child that cannot defer
// gives its Unimplemented error, with its name added.
//
// Configuration: kind "multi", no options, one ConnectorChild per child in
// the given order (ConnectorConfig::children, connectors/connector.h):
//   ConnectorConfig{"multi", {},
//                   {{"small", {"local", {}}, Policy{.max_size_bytes = 1024}},
//                    {"big", {"file", {{"directory", "/scratch"}}}, Policy{}}}}
// FromConfig makes, with MakeConnector, only the children whose policy
// matches this host; the others are DORMANT: never chosen, their keys are
// errors, and Config() carries their configs unchanged. Create() keeps every
// child it is given active. Any kind this process links may be a child,
// "multi" included. Configs from serialized proxies are reduced and checked
// child by child by the trust layer (connectors/trust.h); a dormant child is
// carried as it came.
//
// Close closes every active child with the given CloseOptions and returns the
// first error after trying them all; each child's own Close semantics apply.
//
// Thread-safety: all methods may be called concurrently. The routing tables
// are immutable after creation and children are thread-safe themselves.
//
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
#include <memory>
#include <optional>
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
#include "proxystore/connectors/policy.h"

namespace proxystore {

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
  // The registry factory (see the file comment): InvalidArgument for any
  // option, no children, a child name that is empty, longer than
  // MultiKey::kMaxNameSize or used twice, or a policy that fails Validate();
  // a child MakeConnector refuses fails the whole creation, with the child's
  // name in the message.
  static absl::StatusOr<std::unique_ptr<Connector>> FromConfig(
      const ConnectorConfig& config);
  // How "multi" configs from serialized proxies are treated
  // (connectors/trust.h): no location options of its own, no destinations
  // of its own, and children, which the trust layer reduces and checks as
  // configs of their own kinds.
  static ConnectorKindTraits KindTraits();

  absl::string_view kind() const override { return kKind; }
  // Kind "multi", no options, and each child (active: its connector's
  // Config(); dormant: its stored config) with its name and policy.
  ConnectorConfig Config() const override;

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
  // The child's GetInto (a file child reads straight into the caller's
  // memory).
  absl::StatusOr<GetIntoResult> DoGetInto(const Key& key,
                                          GetIntoFn fn) override;
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> DoGetBatch(
      absl::Span<const Key> keys) override;
  absl::StatusOr<bool> DoExists(const Key& key) override;
  absl::StatusOr<Key> DoNewKey(const NewKeyOptions& options) override;
  absl::Status DoSet(const Key& key, SharedBytes data) override;
  absl::Status DoSetParts(const Key& key,
                          absl::Span<const absl::string_view> parts) override;
  absl::StatusOr<bool> DoWaitFor(const Key& key,
                                 absl::Duration timeout) override;
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
  // The child index for NewKey: ChooseChild(*size_hint) with its tags, or
  // without a hint the first put candidate whose policy has no size bound.
  absl::StatusOr<size_t> ChooseChildForNewKey(
      const NewKeyOptions& options) const;
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
  // The multi key for `inner` of child `child`; errors name `op`.
  absl::StatusOr<Key> WrapKey(size_t child, Key inner,
                              absl::string_view op) const;

  const std::vector<Child> children_;
  const absl::flat_hash_map<std::string, size_t> by_name_;
  // Active children whose host patterns match this host, by priority
  // descending, ties in the given order: the put candidates.
  const std::vector<size_t> put_order_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_MULTI_MULTI_CONNECTOR_H_
