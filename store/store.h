// Store: puts objects through a Connector and hands back keys and proxies.
//
// A Store wraps one Connector and adds what ProxyStore's `Store` adds: typed
// (de)serialization, a per-process LRU cache of *deserialized* objects,
// optional metrics, debug logging, and proxy creation. Stores are
// write-once / read-many: there is no update.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(auto connector, FileConnector::Create(dir));
//   PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<Store> store,
//                               Store::Create("my-store",
//                               std::move(connector)));
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, store->Put(std::string("hello")));
//   PROXYSTORE_ASSIGN_OR_RETURN(auto value, store->Get<std::string>(key));
//   PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> p,
//                               store->Proxy(std::string("world")));
//
// Cache rules (exactly ProxyStore's): Put does not cache; Get caches the
// decoded object; Exists answers from the cache first; Evict clears the cache
// entry and the connector's copy; a per-call deserializer is not applied on a
// cache hit. A cache hit hands out the cached shared object, never a copy.
//
// Errors: a missing key is not an error for Get (it yields the default,
// nullptr unless given); resolving a proxy of a missing key is NotFound.
// Asking for a different type than the one stored is InvalidArgument.
//
// Stores are shared (std::shared_ptr): the process-wide registry and the
// factories inside proxies hold them. The registry (RegisterStore, GetStore,
// GetOrCreateStore, ...) finds stores by name; a proxy that arrives in a
// process without its store re-creates the store from the config it carries.
//
// Thread-safety: every method may be called from many threads at once.
#ifndef PROXYSTORE_STORE_STORE_H_
#define PROXYSTORE_STORE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/status.h"
#include "proxystore/base/timer.h"
#include "proxystore/cache/cache.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/metrics/metrics.h"
#include "proxystore/proxy/proxy.h"
#include "proxystore/serializer/serializer.h"
#include "proxystore/store/lifetime_base.h"
#include "proxystore/store/polling.h"
#include "proxystore/store/store_config.h"

namespace proxystore {

template <typename T>
using SerializerFn = std::function<absl::StatusOr<SharedBytes>(const T&)>;
template <typename T>
using DeserializerFn = std::function<absl::StatusOr<T>(const SharedBytes&)>;

// Process-wide named (de)serializers: the C++ form of ProxyStore's
// serializer/deserializer callables in a store config. A name travels in
// configs and proxies; each process that resolves them registers the same
// name for the same type. AlreadyExists for a duplicate (name, T).
template <typename T>
absl::Status RegisterSerializer(absl::string_view name, SerializerFn<T> fn);
template <typename T>
absl::Status RegisterDeserializer(absl::string_view name, DeserializerFn<T> fn);
// True if `name` is registered (for any type) as a serializer / deserializer.
bool IsSerializerRegistered(absl::string_view name);
bool IsDeserializerRegistered(absl::string_view name);
// The function registered as `name` for T: what a store, a proxy's factory
// and a caller use alike, e.g. StoreGetOptions<T>{.deserializer =
// *FindDeserializer<T>("json")}. FailedPrecondition naming the name and T if
// none is registered.
template <typename T>
absl::StatusOr<SerializerFn<T>> FindSerializer(absl::string_view name);
template <typename T>
absl::StatusOr<DeserializerFn<T>> FindDeserializer(absl::string_view name);

// StoreOptions (the options of Store::Create) and ReceiverStoreOptions (what
// a store re-created from a serialized proxy uses instead of the producer's
// cache size and metrics flag) are declared in store_config.h, beside
// StoreConfig, which carries the StoreOptions.
//
// Sets the ReceiverStoreOptions of this process. InvalidArgument for a
// negative cache size.
absl::Status SetReceiverStoreOptions(ReceiverStoreOptions options);
ReceiverStoreOptions GetReceiverStoreOptions();

template <typename T>
struct StorePutOptions {
  // Overrides the store's serializer for this call.
  SerializerFn<T> serializer;
  // Passed to the connector (e.g. routing tags for "multi").
  PutOptions connector;
  // Associates the stored objects with this lifetime (lifetimes.h); not
  // owned, and must outlive the call. If the lifetime refuses them (it has
  // ended), the objects just stored are evicted and the call returns the
  // lifetime's error.
  Lifetime* lifetime = nullptr;
};

template <typename T>
struct StoreGetOptions {
  // Overrides the store's deserializer on a cache miss (ignored on a hit).
  // A function, since a get does not travel; FindDeserializer<T>(name) gives
  // the one registered under a name.
  DeserializerFn<T> deserializer;
  // Returned when the key does not exist (ProxyStore's `default=`).
  std::shared_ptr<const T> default_value;
};

template <typename T>
struct ProxyOptions {
  // Evict the object when the proxy resolves.
  bool evict = false;
  SerializerFn<T> serializer;
  // Registered deserializer name used by the proxy's factory; empty = the
  // store's. A name, not a function, because the proxy travels: every
  // process that resolves it registers the same name (RegisterDeserializer).
  std::string deserializer;
  // Start resolved with the object put; unset = the store's setting.
  std::optional<bool> populate_target;
  PutOptions connector;
  // Associates the proxied objects with this lifetime, as in
  // StorePutOptions; not owned, and must outlive the call. InvalidArgument
  // (before anything is stored) together with `evict`.
  Lifetime* lifetime = nullptr;
};

template <typename T>
class StoreFactory;
template <typename T>
class Future;

// Store::Future.
template <typename T>
struct FutureOptions {
  // How the future's proxies (and Future::Result) wait for the object.
  PollingOptions polling;
  // Evict the object when a proxy of the future resolves.
  bool evict = false;
  // Overrides the store's serializer for SetResult.
  SerializerFn<T> serializer;
  // Registered deserializer name for the proxies (see ProxyOptions).
  std::string deserializer;
  // Where the connector places the key ("multi" routes by size_hint).
  NewKeyOptions connector;
};

// What a store's cache holds and how it has served (Store::cache_info()):
// one snapshot (LruCache::Stats()), so the four numbers agree.
struct CacheInfo {
  int64_t capacity = 0;  // entries; 0 = caching disabled
  size_t size = 0;       // entries cached now
  int64_t hits = 0;      // lookups answered from the cache
  int64_t misses = 0;    // lookups that went to the connector
  friend bool operator==(const CacheInfo&, const CacheInfo&) = default;
  friend std::ostream& operator<<(std::ostream& os, const CacheInfo& c) {
    return os << "CacheInfo{capacity=" << c.capacity << ", size=" << c.size
              << ", hits=" << c.hits << ", misses=" << c.misses << "}";
  }
};

class Store : public std::enable_shared_from_this<Store> {
  struct PrivateTag {};

 public:
  // A cached object: the decoded value and its type.
  struct CachedObject {
    const void* type_tag;
    std::shared_ptr<const void> object;
  };

  // InvalidArgument for a bad option (negative cache size, empty name, a
  // serializer name that is not registered) or a null connector.
  static absl::StatusOr<std::shared_ptr<Store>> Create(
      std::string name, std::unique_ptr<Connector> connector,
      StoreOptions options = {});
  // Re-creates a store (and its connector, through the connector registry).
  static absl::StatusOr<std::shared_ptr<Store>> FromConfig(
      const StoreConfig& config);

  // For Create() only (std::make_shared needs a public constructor).
  // `config.connector` is `connector->Config()`.
  Store(PrivateTag, StoreConfig config, std::unique_ptr<Connector> connector,
        std::unique_ptr<LruCache<Key, CachedObject>> cache, bool from_wire);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& name() const { return name_; }
  // Null when metrics are disabled.
  StoreMetrics* metrics() const { return metrics_.get(); }
  Connector& connector() const { return *connector_; }
  // The options part of Config().
  const StoreOptions& options() const { return *config_; }
  const StoreConfig& Config() const { return *config_; }
  // The cache's capacity, size and hit/miss counts (Get, GetBatch, proxy
  // resolves; Exists does not count), read at one instant.
  CacheInfo cache_info() const;
  // Store("name", connector=kind, serializer=..., cache_size=N, metrics=b)
  std::string DebugString() const;

  // --- Typed operations -------------------------------------------------

  // Objects at least this large whose codec writes them verbatim (strings,
  // byte and raw-layout vectors, SharedBytes, FlatBuffers; uncompressed)
  // are put as the envelope header plus the object's own bytes
  // (Connector::PutParts): they move once, from the object to the storage.
  // Smaller ones are cheaper to copy into one serialized buffer.
  static constexpr size_t kPutPartsMinSize = size_t{64} << 10;

  // Serializes and stores `obj`; does not cache it.
  template <typename T>
  absl::StatusOr<Key> Put(const T& obj, const StorePutOptions<T>& options = {});

  // Deferred writes (Connector::NewKey/Set): a key now, its object later,
  // possibly from another process. Until Set the key reads as missing. A
  // key is written once: Set of a key that holds an object is
  // AlreadyExists. Unimplemented where the connector cannot defer.
  absl::StatusOr<Key> NewKey(const NewKeyOptions& options = {});
  template <typename T>
  absl::Status Set(const Key& key, const T& obj,
                   const SerializerFn<T>& serializer = {});

  // A future (ProxyStore's Store.future): a key minted now, whose proxies
  // can be serialized and sent before the object exists and wait for it
  // when resolved (FutureOptions::polling). Future<T> is in future.h.
  template <typename T>
  absl::StatusOr<proxystore::Future<T>> Future(
      const FutureOptions<T>& options = {});

  // Serializes every object, then stores them in one connector batch. If any
  // serialization fails nothing is stored.
  template <typename T>
  absl::StatusOr<std::vector<Key>> PutBatch(
      absl::Span<const T> objs, const StorePutOptions<T>& options = {});
  template <typename T>
  absl::StatusOr<std::vector<Key>> PutBatch(
      const std::vector<T>& objs, const StorePutOptions<T>& options = {}) {
    return PutBatch(absl::MakeConstSpan(objs), options);
  }

  // The object under `key` (from the cache if there), or
  // options.default_value (nullptr unless given) if the key does not exist.
  template <typename T>
  absl::StatusOr<std::shared_ptr<const T>> Get(
      const Key& key, const StoreGetOptions<T>& options = {});

  // The objects under `keys`, in order: cached ones from the cache, the rest
  // through ONE connector GetBatch. A missing key yields
  // options.default_value (nullptr unless given).
  template <typename T>
  absl::StatusOr<std::vector<std::shared_ptr<const T>>> GetBatch(
      absl::Span<const Key> keys, const StoreGetOptions<T>& options = {});

  // Stores a caller-filled PayloadBuffer (serializer/serializer.h) without
  // copying its payload; it reads back as any byte type (std::string,
  // SharedBytes, std::vector<uint8_t>, ...). With compression on, the payload
  // is compressed into a new buffer instead.
  absl::StatusOr<Key> PutBuffer(PayloadBuffer&& buffer,
                                const PutOptions& options = {});

  // --- Untyped operations -----------------------------------------------

  // True if cached here or present in the connector.
  absl::StatusOr<bool> Exists(const Key& key);
  // Removes the object from the connector and the cache; OK if missing.
  absl::Status Evict(const Key& key);
  bool IsCached(const Key& key) const;

  // --- Proxies ----------------------------------------------------------

  // Puts `obj` and returns a proxy of it.
  template <typename T>
  absl::StatusOr<proxystore::Proxy<T>> Proxy(
      const T& obj, const ProxyOptions<T>& options = {});
  // Like Proxy, but moves `obj` into the proxy's target when populate_target
  // is on (no copy).
  template <typename T>
  absl::StatusOr<proxystore::Proxy<T>> Proxy(
      T&& obj, const ProxyOptions<T>& options =
                   {}) requires(!std::is_lvalue_reference_v<T>);
  // One PutBatch, one proxy per object, in order.
  template <typename T>
  absl::StatusOr<std::vector<proxystore::Proxy<T>>> ProxyBatch(
      absl::Span<const T> objs, const ProxyOptions<T>& options = {});
  template <typename T>
  absl::StatusOr<std::vector<proxystore::Proxy<T>>> ProxyBatch(
      const std::vector<T>& objs, const ProxyOptions<T>& options = {}) {
    return ProxyBatch(absl::MakeConstSpan(objs), options);
  }
  // A proxy of an existing key (need not exist yet); never pre-resolved.
  // With options.lifetime set, the key is associated with it, but a refusal
  // (an ended lifetime, or `evict`) cannot be reported here: prefer the form
  // below.
  template <typename T>
  proxystore::Proxy<T> ProxyFromKey(const Key& key,
                                    const ProxyOptions<T>& options = {});
  // ProxyFromKey, with `key` associated with `lifetime` (which replaces
  // options.lifetime). InvalidArgument with options.evict; the lifetime's
  // error if it has ended. Nothing is evicted: this call stored nothing.
  template <typename T>
  absl::StatusOr<proxystore::Proxy<T>> ProxyFromKey(
      const Key& key, Lifetime& lifetime, const ProxyOptions<T>& options = {});
  // Proxy() wrapped in a ProxyLocker.
  template <typename T>
  absl::StatusOr<ProxyLocker<T>> LockedProxy(
      const T& obj, const ProxyOptions<T>& options = {});

  // Closes the connector (with `options.clear` as given) and unregisters the
  // store if the registry holds it. Only call at the end: closing may delete
  // data that proxies still point to. A store re-created from a serialized
  // proxy never clears (the data is the producer's): its Close ignores the
  // connector's clear setting, and an explicit `clear = true` closes without
  // clearing and returns PermissionDenied. Proxies of a closed store resolve
  // through a new store made from their config.
  absl::Status Close(const CloseOptions& options = {});
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  // True for a store that a proxy re-created from its serialized config.
  bool from_wire() const { return from_wire_; }
  // The connector's LocationConfig (connectors/trust.h): which data this
  // store reaches. Null if the connector's kind is not registered.
  const ConnectorConfig* location() const {
    return location_.has_value() ? &*location_ : nullptr;
  }

 private:
  friend struct StoreFactoryAccess;

  // --- Building blocks of the typed templates (store_inl.h) ---------------

  // The timing of one operation: an OperationTimer (base/timer.h) started
  // when the operation begins, enabled only when the store times (metrics or
  // debug logging on; otherwise it reads no clock), and the lengths of the
  // phases measured before the operation's key is known, recorded with it.
  // Operations pass it by reference to the steps that time their own phases
  // (the connector call) and record the metrics.
  struct OpTimer : OperationTimer {
    using OperationTimer::OperationTimer;
    int64_t serialize_ns = 0;    // Put, PutBatch, PutBuffer
    int64_t deserialize_ns = 0;  // Get on a cache miss
    // Get through GetInto: the connector's part (-1: not yet read) and the
    // size of the object decoded straight from it.
    int64_t connector_ns = -1;
    uint64_t stored_size = 0;
  };
  OpTimer StartTimer() const { return OpTimer(timing_); }

  // Stores already-serialized bytes: connector put, metrics, debug log.
  // Inline, with what an untimed put that succeeds does not need out of line
  // (PutDone): every small put passes here.
  absl::StatusOr<Key> PutSerialized(SharedBytes data, const PutOptions& options,
                                    OpTimer& timer,
                                    absl::string_view type_name) {
    const size_t size = data.size();
    timer.StartLap();
    absl::StatusOr<Key> key = connector_->Put(std::move(data), options);
    if (!key.ok() || timer.enabled()) [[unlikely]] {
      return PutDone(std::move(key), size, timer, type_name);
    }
    return key;
  }
  // Connector Set of serialized bytes, metrics (store.set.*), debug log.
  absl::Status SetSerialized(const Key& key, SharedBytes data, OpTimer& timer,
                             absl::string_view type_name);
  absl::Status SetSerializedParts(const Key& key,
                                  absl::Span<const absl::string_view> parts,
                                  OpTimer& timer, absl::string_view type_name);
  // The connector Set of SetSerialized/SetSerializedParts (`set`), with its
  // error annotated and its metrics recorded.
  absl::Status SetThroughConnector(const Key& key, size_t size, OpTimer& timer,
                                   absl::string_view type_name,
                                   absl::FunctionRef<absl::Status()> set);
  // PutSerialized of serialized bytes in parts (Connector::PutParts).
  absl::StatusOr<Key> PutSerializedParts(
      absl::Span<const absl::string_view> parts, const PutOptions& options,
      OpTimer& timer, absl::string_view type_name);
  absl::StatusOr<std::vector<Key>> PutBatchSerialized(
      std::vector<SharedBytes> data, const PutOptions& options, OpTimer& timer);

  // Cache lookup (nullptr on a miss or with the cache disabled).
  std::shared_ptr<const CachedObject> CacheLookup(const Key& key) {
    if (!caching_) return nullptr;
    return cache_->Get(key);
  }
  // Caches `object` unless `key` was evicted since `epoch` (EvictEpoch()
  // read before the object was fetched): a get racing an evict must not
  // re-cache what the evict removed.
  void CacheInsert(const Key& key, CachedObject object, uint64_t epoch);
  uint64_t EvictEpoch() const {
    return evict_epoch_.load(std::memory_order_acquire);
  }

  // Connector get with metrics (timed as a lap of `timer`); nullopt if
  // missing.
  absl::StatusOr<std::optional<SharedBytes>> GetSerialized(
      const Key& key, OperationTimer& timer);
  // Get of a T straight from the connector (Connector::GetInto) into `out`;
  // returns the bytes instead when they are not a plain encoding of T (the
  // caller decodes them as usual), nullopt if missing.
  template <typename T>
  absl::StatusOr<std::optional<SharedBytes>> GetDirect(const Key& key,
                                                       OpTimer& timer,
                                                       std::optional<T>& out);
  // The error of a connector get of `key`, with the store's context.
  absl::Status GetFailed(const Key& key, const absl::Status& status) const;
  // Metrics of a cache miss's connector get (metrics on).
  void RecordGetConnector(const Key& key, int64_t connector_ns);
  // Connector batch get for `keys` (all cache misses), with metrics.
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> GetBatchSerialized(
      absl::Span<const Key> keys, OperationTimer& timer);

  // Metrics/logging hooks for the typed templates: each ends the operation
  // (`timer`'s last reading) and records it. No-ops when timing is off.
  void RecordGet(const Key& key, OpTimer& timer, size_t object_size, bool hit,
                 bool found) {
    if (timer.enabled()) RecordTimedGet(key, timer, object_size, hit, found);
  }
  void RecordTimedGet(const Key& key, OpTimer& timer, size_t object_size,
                      bool hit, bool found);
  void RecordGetBatch(absl::Span<const Key> keys, OperationTimer& timer,
                      size_t hits);
  void RecordProxy(const Key& key, OperationTimer& timer);
  void RecordProxyBatch(absl::Span<const Key> keys, OperationTimer& timer);

  // `config.connector` is ignored: the store's is `connector->Config()`.
  static absl::StatusOr<std::shared_ptr<Store>> CreateImpl(
      StoreConfig config, std::unique_ptr<Connector> connector,
      bool register_now, bool from_wire);
  // A store from a trusted config (FromConfig, GetOrCreateStore), or from a
  // serialized proxy's (`from_wire`: connectors/trust.h's ReceiverConfig and
  // ReceiverStoreOptions apply).
  static absl::StatusOr<std::shared_ptr<Store>> FromConfigImpl(
      const StoreConfig& config, bool register_now, bool from_wire);

  // The connector put of PutSerializedParts (`put`), with its error
  // context, metrics and debug log.
  absl::StatusOr<Key> PutThroughConnector(
      size_t size, OpTimer& timer, absl::string_view type_name,
      absl::FunctionRef<absl::StatusOr<Key>()> put);
  // The end of a connector put of `size` bytes that failed or is timed: the
  // error's context, or the metrics and debug log.
  absl::StatusOr<Key> PutDone(absl::StatusOr<Key> key, size_t size,
                              OpTimer& timer, absl::string_view type_name);
  // The store's serialize options as they apply to T.
  template <typename T>
  SerializeOptions SerializeOptionsFor() const;
  template <typename T>
  absl::StatusOr<SharedBytes> SerializeObject(const T& obj,
                                              const SerializerFn<T>& per_call);
  template <typename T>
  absl::StatusOr<T> DeserializeObject(const Key& key, const SharedBytes& data,
                                      const DeserializerFn<T>& per_call) const;
  template <typename T>
  std::shared_ptr<StoreFactory<T>> MakeFactory(const Key& key,
                                               const ProxyOptions<T>& options);

  const std::string name_;
  const std::unique_ptr<Connector> connector_;
  // The store's options, name and connector config; immutable. (Declared
  // before the members made from the options.)
  const std::shared_ptr<const StoreConfig> config_;
  const std::unique_ptr<LruCache<Key, CachedObject>> cache_;
  const std::unique_ptr<StoreMetrics> metrics_;
  const bool timing_;   // metrics on, or debug logging on at creation
  const bool caching_;  // cache_size > 0
  // Incremented by every Evict (after the connector evict, before the cache
  // evict); see CacheInsert.
  std::atomic<uint64_t> evict_epoch_{0};
  const SerializeOptions serialize_options_;
  const bool from_wire_;
  const std::optional<ConnectorConfig> location_;
  // What proxies carry: config_ with only the connector's location options
  // (a receiver takes nothing else from it), so proxies stay small and do
  // not reveal this process's local settings.
  const std::shared_ptr<const StoreConfig> wire_config_;
  std::atomic<bool> closed_{false};
};

// --- Store registry (process-wide, thread-safe) ---------------------------

// AlreadyExists if the name is taken and !exist_ok; exist_ok overwrites.
absl::Status RegisterStore(std::shared_ptr<Store> store, bool exist_ok = false);
// The registered store, or nullptr.
std::shared_ptr<Store> GetStore(absl::string_view name);
// No-op if absent.
void UnregisterStore(absl::string_view name);
// The registered store named config.name, or a new one from `config`
// (registered when `register_store`). Race-free: concurrent callers with the
// same name create it once. A store that resolving a proxy made under that
// name is not returned: it is moved aside (proxies of its name and location
// still resolve through it) and a store of `config` takes the name, so a
// proxy that arrives first cannot choose the caller's store or data.
// RegisterStore likewise replaces such a store, whatever `exist_ok`.
absl::StatusOr<std::shared_ptr<Store>> GetOrCreateStore(
    const StoreConfig& config, bool register_store = true);

// Registers stores for its lifetime (ProxyStore's store_registration()).
class StoreRegistration {
 public:
  static absl::StatusOr<StoreRegistration> Create(
      std::vector<std::shared_ptr<Store>> stores, bool exist_ok = false);
  StoreRegistration(StoreRegistration&& other) noexcept
      : names_(std::move(other.names_)) {
    other.names_.clear();
  }
  // Unregisters the stores this one holds, then takes `other`'s.
  StoreRegistration& operator=(StoreRegistration&& other) noexcept;
  ~StoreRegistration();

 private:
  explicit StoreRegistration(std::vector<std::string> names)
      : names_(std::move(names)) {}
  std::vector<std::string> names_;
};

namespace store_internal {

template <typename T>
const void* TypeTag() {
  static const char tag = 0;
  return &tag;
}

// Type-erased named (de)serializer tables.
absl::Status RegisterFn(bool serializer, absl::string_view name,
                        const void* type_tag, std::shared_ptr<const void> fn);
std::shared_ptr<const void> FindFn(bool serializer, absl::string_view name,
                                   const void* type_tag);
// Unregisters `name` if `only` is null or is the registered store (Close).
void UnregisterIf(absl::string_view name, const Store* only);

}  // namespace store_internal

template <typename T>
absl::Status RegisterSerializer(absl::string_view name, SerializerFn<T> fn) {
  return store_internal::RegisterFn(
      true, name, store_internal::TypeTag<T>(),
      std::make_shared<const SerializerFn<T>>(std::move(fn)));
}
template <typename T>
absl::Status RegisterDeserializer(absl::string_view name,
                                  DeserializerFn<T> fn) {
  return store_internal::RegisterFn(
      false, name, store_internal::TypeTag<T>(),
      std::make_shared<const DeserializerFn<T>>(std::move(fn)));
}

template <typename T>
absl::StatusOr<SerializerFn<T>> FindSerializer(absl::string_view name) {
  std::shared_ptr<const void> fn =
      store_internal::FindFn(true, name, store_internal::TypeTag<T>());
  if (fn == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("no serializer named \"", name,
                     "\" is registered for type ", TypeName<T>()));
  }
  return *static_cast<const SerializerFn<T>*>(fn.get());
}
template <typename T>
absl::StatusOr<DeserializerFn<T>> FindDeserializer(absl::string_view name) {
  std::shared_ptr<const void> fn =
      store_internal::FindFn(false, name, store_internal::TypeTag<T>());
  if (fn == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("no deserializer named \"", name,
                     "\" is registered for type ", TypeName<T>()));
  }
  return *static_cast<const DeserializerFn<T>*>(fn.get());
}

}  // namespace proxystore

// Definitions that need the complete Store class: StoreFactory and the proxy
// utilities (documented in factory.h), then the Store's templates.
#include "proxystore/store/factory_impl.h"  // IWYU pragma: export
#include "proxystore/store/future.h"        // IWYU pragma: export
#include "proxystore/store/store_inl.h"     // IWYU pragma: export

#endif  // PROXYSTORE_STORE_STORE_H_
