// LocalConnector: an in-process connector over a hash map (kind "local").
//
// ProxyStore's LocalConnector: objects live in this process's memory, so it
// serves tests, single-process pipelines and as the fastest baseline. Data is
// kept in a *namespace* (ProxyStore's shared `store_dict`): a process-wide
// table maps a namespace id to its storage. Every connector created without
// the "namespace" option gets a fresh id (NewObjectId()); Config() names it,
// so MakeConnector(c.Config()) in the same process reaches the same objects.
// Another process sees an empty namespace of that id (nothing is shared
// across processes).
//
// Zero copy: Put stores the SharedBytes exactly as given (no copy; a put of a
// moved-in buffer copies nothing) and Get returns that same SharedBytes, so
// the caller gets the very buffer that was put (and keeps it alive after an
// eviction or Close).
//
// Lifetime: a namespace's objects live until a connector on it closes with
// clear=true (ProxyStore's local close keeps data, hence clear defaults to
// false), or until the process exits. Destroying or closing connectors
// without clear does not drop data. A namespace with no objects and no
// connectors is removed from the table.
//
// Options: "namespace" (string, optional; non-empty). Unknown options are
// InvalidArgument.
//
// From a serialized proxy (connectors/trust.h): "namespace" is the location
// (destination "local:<namespace>"); there are no other options, so no
// receiver defaults.
//
// After Close, Put/Get/Exists/Evict on that connector object are
// FailedPrecondition; other connectors on the same namespace keep working.
//
// Thread-safety: all methods may be called concurrently. Each namespace is
// split into shards, each behind its own reader/writer lock, so readers do
// not block each other and writers contend only per shard.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<LocalConnector> c,
//                               LocalConnector::Create());
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key,
//                               c->Put(SharedBytes::FromString(std::move(s))));
//   // In the same process, through the registry:
//   PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<Connector> same,
//                               MakeConnector(c->Config()));
#ifndef PROXYSTORE_CONNECTORS_LOCAL_LOCAL_CONNECTOR_H_
#define PROXYSTORE_CONNECTORS_LOCAL_LOCAL_CONNECTOR_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/connector.h"

namespace proxystore {

namespace local_internal {
struct Namespace;
}  // namespace local_internal

class LocalConnector : public Connector {
 public:
  static constexpr absl::string_view kKind = "local";

  // `options` may name a "namespace" to join (created if new).
  static absl::StatusOr<std::unique_ptr<LocalConnector>> Create(
      const ConnectorConfig& options = {std::string(kKind), {}});
  // Registry factory; the config's kind is not checked here.
  static absl::StatusOr<std::unique_ptr<Connector>> FromConfig(
      const ConnectorConfig& config);
  // What "local" registers with (see the file comment).
  static ConnectorKindTraits KindTraits();

  ~LocalConnector() override;

  absl::string_view kind() const override { return kKind; }
  ConnectorConfig Config() const override;

  const std::string& namespace_id() const { return namespace_id_; }

 protected:
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override;
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override;
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> DoGetBatch(
      absl::Span<const Key> keys) override;
  absl::StatusOr<bool> DoExists(const Key& key) override;
  absl::Status DoEvict(const Key& key) override;
  absl::Status DoClose(const CloseOptions& options) override;

 private:
  LocalConnector(std::string namespace_id,
                 std::shared_ptr<local_internal::Namespace> ns);

  absl::Status CheckOpen(absl::string_view op) const;

  const std::string namespace_id_;
  // Shared with every connector on the same namespace and with the table.
  const std::shared_ptr<local_internal::Namespace> ns_;
  std::atomic<bool> closed_{false};
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_LOCAL_LOCAL_CONNECTOR_H_
