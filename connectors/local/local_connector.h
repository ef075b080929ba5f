// LocalConnector: objects in this process's memory (kind "local"), as
// ProxyStore's LocalConnector. Connectors created on the same "namespace"
// share its objects; other processes see that namespace empty. Put keeps the
// given SharedBytes without copying and Get returns that very buffer.
// Options and guarantees: docs/connectors.md.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<LocalConnector> c,
//                               LocalConnector::Create());
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, c->Put(SharedBytes::Copy("data")));
//   // Same process: MakeConnector(c->Config()) reaches the same objects.
//
// Thread-safety: all methods may be called concurrently.
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

  // Joins the namespace named by option "namespace" (created if new), or a
  // fresh one (NewObjectId()) if there is none. InvalidArgument for an empty
  // namespace or an unknown option.
  static absl::StatusOr<std::unique_ptr<LocalConnector>> Create(
      const ConnectorConfig& options = {std::string(kKind), {}});
  // Create(), for the registry; the config's kind is not checked here.
  static absl::StatusOr<std::unique_ptr<Connector>> FromConfig(
      const ConnectorConfig& config);
  // Location option "namespace", no receiver defaults; the destination is
  // "local:<namespace>" ("local:" without one).
  static ConnectorKindTraits KindTraits();

  ~LocalConnector() override;

  absl::string_view kind() const override { return kKind; }
  // {"namespace": namespace_id()}.
  ConnectorConfig Config() const override;

  const std::string& namespace_id() const { return namespace_id_; }

  // GetInto visits objects up to this size in place, under a reader lock.
  static constexpr size_t kInPlaceGetMax = 64 << 10;

 protected:
  // Put, Get, Exists and Evict (and the batches) are FailedPrecondition once
  // this object is closed; other connectors on the namespace keep working.
  // Put stores `data` as given; Get returns the stored SharedBytes itself,
  // which stays valid after Evict or Close.
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override;
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override;
  // Objects up to kInPlaceGetMax bytes are visited in place, under the
  // shard's reader lock (no reference taken on the buffer); larger ones as
  // the default does, outside the lock, so that a long decode never holds
  // up puts to the shard.
  absl::StatusOr<GetIntoResult> DoGetInto(const Key& key,
                                          GetIntoFn fn) override;
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> DoGetBatch(
      absl::Span<const Key> keys) override;
  absl::StatusOr<bool> DoExists(const Key& key) override;
  // NewKey mints an id as Put does; Set inserts under the shard's writer
  // lock unless the key holds an object (AlreadyExists).
  absl::StatusOr<Key> DoNewKey(const NewKeyOptions& options) override;
  absl::Status DoSet(const Key& key, SharedBytes data) override;
  absl::StatusOr<bool> DoWaitFor(const Key& key,
                                 absl::Duration timeout) override;
  absl::Status DoEvict(const Key& key) override;
  // Close({.clear = true}) drops every object of the namespace, whoever put
  // it. Without clear (the default) the objects stay until a clearing Close
  // or the process exits.
  absl::Status DoClose(const CloseOptions& options) override;

 private:
  LocalConnector(std::string namespace_id,
                 std::shared_ptr<local_internal::Namespace> ns);

  absl::Status CheckOpen(absl::string_view op) const {
    if (closed_.load(std::memory_order_acquire)) return ClosedError(op);
    return absl::OkStatus();
  }
  absl::Status ClosedError(absl::string_view op) const;

  const std::string namespace_id_;
  // Shared with every connector on the same namespace and with the table.
  const std::shared_ptr<local_internal::Namespace> ns_;
  std::atomic<bool> closed_{false};
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_LOCAL_LOCAL_CONNECTOR_H_
