#include "proxystore/connectors/local/local_connector.h"

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/status.h"

namespace proxystore {
namespace local_internal {

// One namespace's objects (ProxyStore's shared `store_dict`), split into
// shards by key hash, each behind its own reader/writer lock: readers do not
// block each other and writers contend only per shard.
struct Namespace {
  static constexpr size_t kShards = 16;

  // On cache lines of their own: threads putting to different shards must
  // not move one line between their cores.
  struct alignas(64) Shard {
    mutable Mutex mu;
    // Keyed by Key, whose hash is computed once when the key is made: a
    // lookup hashes nothing.
    absl::flat_hash_map<Key, SharedBytes> objects ABSL_GUARDED_BY(mu);
  };

  // Sets so far: WaitFor sleeps on `set_cv` until this moves (a Set
  // notifies after its insert; Put does not, nobody waits for its keys).
  // std::mutex for std::condition_variable; `sets` is guarded by it.
  std::mutex set_mu;
  std::condition_variable set_cv;
  uint64_t sets = 0;

  // The top bits of the key's hash: the maps inside a shard use (a mix of)
  // all of it.
  Shard& ShardFor(const Key& key) {
    return shards[(static_cast<uint64_t>(key.hash()) >> 32) % kShards];
  }

  bool Empty() {
    for (Shard& s : shards) {
      ReaderMutexLock lock(s.mu);
      if (!s.objects.empty()) return false;
    }
    return true;
  }

  void Clear() {
    for (Shard& s : shards) {
      // Destroy the values outside the lock: a last reference may run an
      // arbitrary owner's deleter.
      absl::flat_hash_map<Key, SharedBytes> dropped;
      {
        MutexLock lock(s.mu);
        dropped.swap(s.objects);
      }
    }
  }

  std::array<Shard, kShards> shards;
};

namespace {

// The process-wide namespace table: namespace id -> storage. Nothing in it is
// shared across processes. `connectors` counts live LocalConnector objects on
// a namespace, so that an empty namespace nobody uses can go.
struct Table {
  struct Entry {
    std::shared_ptr<Namespace> ns;
    int connectors = 0;
  };
  Mutex mu;
  absl::flat_hash_map<std::string, Entry> namespaces ABSL_GUARDED_BY(mu);
};

Table& GetTable() {
  // Never destroyed: connectors in static objects may outlive main().
  static Table* table = [] {
    static Table t;
    return &t;
  }();
  return *table;
}

std::shared_ptr<Namespace> Acquire(const std::string& id) {
  Table& t = GetTable();
  MutexLock lock(t.mu);
  Table::Entry& e = t.namespaces[id];
  if (e.ns == nullptr) e.ns = std::make_shared<Namespace>();
  ++e.connectors;
  return e.ns;
}

// Destroying a connector never drops data: a namespace leaves the table only
// once it has neither objects nor connectors.
void Release(const std::string& id) {
  Table& t = GetTable();
  MutexLock lock(t.mu);
  auto it = t.namespaces.find(id);
  if (it == t.namespaces.end()) return;
  // Only LocalConnector objects touch the namespace's shards; with none left
  // (this one is being destroyed) the emptiness check cannot race.
  if (--it->second.connectors == 0 && it->second.ns->Empty()) {
    t.namespaces.erase(it);
  }
}

// The "namespace" option: nullopt if absent, InvalidArgument if empty.
absl::StatusOr<std::optional<std::string>> NamespaceOption(
    const ConnectorConfig& config) {
  if (!config.options.contains("namespace")) return std::nullopt;
  PROXYSTORE_ASSIGN_OR_RETURN(std::string id, config.GetString("namespace"));
  if (id.empty()) {
    return absl::InvalidArgumentError(
        "connector \"local\": option \"namespace\" must not be empty");
  }
  return id;
}

}  // namespace
}  // namespace local_internal

using local_internal::Namespace;

LocalConnector::LocalConnector(std::string namespace_id,
                               std::shared_ptr<Namespace> ns)
    : namespace_id_(std::move(namespace_id)), ns_(std::move(ns)) {}

LocalConnector::~LocalConnector() { local_internal::Release(namespace_id_); }

absl::StatusOr<std::unique_ptr<LocalConnector>> LocalConnector::Create(
    const ConnectorConfig& options) {
  PROXYSTORE_RETURN_IF_ERROR(options.CheckKnownOptions({"namespace"}));
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<std::string> named,
                              local_internal::NamespaceOption(options));
  std::string id = named.has_value() ? *std::move(named) : NewObjectId();
  std::shared_ptr<Namespace> ns = local_internal::Acquire(id);
  // Not make_unique: the constructor is private.
  return std::unique_ptr<LocalConnector>(
      new LocalConnector(std::move(id), std::move(ns)));
}

absl::StatusOr<std::unique_ptr<Connector>> LocalConnector::FromConfig(
    const ConnectorConfig& config) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<LocalConnector> c,
                              Create(config));
  return std::unique_ptr<Connector>(std::move(c));
}

ConnectorKindTraits LocalConnector::KindTraits() {
  ConnectorKindTraits traits;
  traits.location_options = {"namespace"};
  // Without a namespace the config makes a fresh, empty one: "local:".
  traits.destinations = [](const ConnectorConfig& config)
      -> absl::StatusOr<std::vector<std::string>> {
    PROXYSTORE_ASSIGN_OR_RETURN(std::optional<std::string> named,
                                local_internal::NamespaceOption(config));
    return std::vector<std::string>{
        absl::StrCat(kKind, ":", named.value_or(""))};
  };
  return traits;
}

ConnectorConfig LocalConnector::Config() const {
  return ConnectorConfig{std::string(kKind), {{"namespace", namespace_id_}}};
}

absl::Status LocalConnector::ClosedError(absl::string_view op) const {
  return absl::FailedPreconditionError(absl::StrCat(
      "local connector (namespace ", namespace_id_, "): ", op, " after Close"));
}

absl::StatusOr<Key> LocalConnector::DoPut(SharedBytes data,
                                          const PutOptions& /*options*/) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("Put"));
  Key key(NewObjectId());
  Namespace::Shard& shard = ns_->ShardFor(key);
  // Zero copy: the SharedBytes is kept as given (a put of a moved-in buffer
  // copies nothing), and Get hands out this same buffer.
  MutexLock lock(shard.mu);
  shard.objects.insert_or_assign(key, std::move(data));
  return key;
}

absl::StatusOr<Key> LocalConnector::DoNewKey(const NewKeyOptions& /*options*/) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("NewKey"));
  return Key(NewObjectId());
}

absl::Status LocalConnector::DoSet(const Key& key, SharedBytes data) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("Set"));
  if (!IsObjectId(key.id())) {
    // Keys may come from a proxy: echo a bounded part.
    return absl::InvalidArgumentError(
        absl::StrCat("local connector: Set of key \"",
                     absl::CHexEscape(key.id().substr(0, 100)),
                     "\", which this kind did not mint (32 lowercase hex "
                     "digits)"));
  }
  Namespace::Shard& shard = ns_->ShardFor(key);
  {
    MutexLock lock(shard.mu);
    if (!shard.objects.try_emplace(key, std::move(data)).second) {
      return absl::AlreadyExistsError(
          absl::StrCat("local connector: key ", key.id(),
                       " already holds an object (a key is written once)"));
    }
  }
  {
    std::lock_guard<std::mutex> lock(ns_->set_mu);
    ++ns_->sets;
  }
  ns_->set_cv.notify_all();
  return absl::OkStatus();
}

absl::StatusOr<bool> LocalConnector::DoWaitFor(const Key& key,
                                               absl::Duration timeout) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("WaitFor"));
  const auto deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(ns_->set_mu);
      seen = ns_->sets;
    }
    // Looked up after `seen` was read: a Set before it is found here, one
    // after it moves the count.
    PROXYSTORE_ASSIGN_OR_RETURN(const bool there, DoExists(key));
    if (there) return true;
    std::unique_lock<std::mutex> lock(ns_->set_mu);
    if (!ns_->set_cv.wait_until(lock, deadline,
                                [&] { return ns_->sets != seen; })) {
      return false;
    }
  }
}

absl::StatusOr<std::optional<SharedBytes>> LocalConnector::DoGet(
    const Key& key) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("Get"));
  Namespace::Shard& shard = ns_->ShardFor(key);
  ReaderMutexLock lock(shard.mu);
  auto it = shard.objects.find(key);
  if (it == shard.objects.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<GetIntoResult> LocalConnector::DoGetInto(const Key& key,
                                                        GetIntoFn fn) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("GetInto"));
  Namespace::Shard& shard = ns_->ShardFor(key);
  GetIntoResult result;
  {
    ReaderMutexLock lock(shard.mu);
    auto it = shard.objects.find(key);
    if (it == shard.objects.end()) return result;
    result.found = true;
    const absl::string_view bytes = it->second.view();
    if (bytes.size() <= kInPlaceGetMax) {
      PROXYSTORE_ASSIGN_OR_RETURN(const bool consumed,
                                  GetIntoInMemory(key, bytes, fn));
      if (!consumed) result.whole = it->second;
      return result;
    }
  }
  // Large: the default, with the reference taken under the lock.
  return Connector::DoGetInto(key, fn);
}

absl::StatusOr<std::vector<std::optional<SharedBytes>>>
LocalConnector::DoGetBatch(absl::Span<const Key> keys) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("GetBatch"));
  std::vector<std::optional<SharedBytes>> out;
  out.reserve(keys.size());
  for (const Key& key : keys) {
    Namespace::Shard& shard = ns_->ShardFor(key);
    ReaderMutexLock lock(shard.mu);
    auto it = shard.objects.find(key);
    if (it == shard.objects.end()) {
      out.emplace_back(std::nullopt);
    } else {
      out.emplace_back(it->second);
    }
  }
  return out;
}

absl::StatusOr<bool> LocalConnector::DoExists(const Key& key) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("Exists"));
  Namespace::Shard& shard = ns_->ShardFor(key);
  ReaderMutexLock lock(shard.mu);
  return shard.objects.contains(key);
}

absl::Status LocalConnector::DoEvict(const Key& key) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("Evict"));
  Namespace::Shard& shard = ns_->ShardFor(key);
  std::optional<SharedBytes> dropped;  // Released after the lock.
  MutexLock lock(shard.mu);
  auto it = shard.objects.find(key);
  if (it != shard.objects.end()) {
    dropped = std::move(it->second);
    shard.objects.erase(it);
  }
  return absl::OkStatus();
}

// clear defaults to false because ProxyStore's local close keeps the data.
// Closing only this object leaves other connectors on the namespace working.
absl::Status LocalConnector::DoClose(const CloseOptions& options) {
  closed_.store(true, std::memory_order_release);
  if (options.clear.value_or(false)) ns_->Clear();
  return absl::OkStatus();
}

PROXYSTORE_REGISTER_CONNECTOR("local", &LocalConnector::FromConfig,
                              LocalConnector::KindTraits());

}  // namespace proxystore
