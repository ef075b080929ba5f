#include "proxystore/store/store.h"

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/store/log.h"

namespace proxystore {

using store_internal::DebugOn;
using store_internal::Logger;
using store_internal::Ms;

int64_t Store::NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace store_internal {

std::string KeyContext(const Store& store, absl::string_view op,
                       absl::string_view type_name, const Key& key) {
  return absl::StrCat("Store(name=\"", store.name(), "\").", op, "<", type_name,
                      ">(key=\"", key.id(), "\")");
}

}  // namespace store_internal

// ---------------------------------------------------------------------------
// Store.

namespace {

StoreConfig MakeConfig(const std::string& name, const Connector& connector,
                       const StoreOptions& o) {
  StoreConfig c;
  c.name = name;
  c.connector = connector.Config();
  c.cache_size = o.cache_size;
  c.metrics = o.metrics;
  c.serializer = o.serializer;
  c.deserializer = o.deserializer;
  c.compress = o.compress;
  c.compress_threshold = o.compress_threshold;
  c.python_format = o.python_format;
  c.populate_target = o.populate_target;
  c.auto_register = o.auto_register;
  return c;
}

SerializeOptions MakeSerializeOptions(const StoreOptions& o) {
  SerializeOptions s;
  s.format = o.python_format ? SerializeOptions::Format::kProxyStorePython
                             : SerializeOptions::Format::kNative;
  s.compress = o.compress;
  s.compress_threshold = o.compress_threshold;
  return s;
}

}  // namespace

Store::Store(PrivateTag, std::string name, std::unique_ptr<Connector> connector,
             StoreOptions options,
             std::unique_ptr<LruCache<Key, CachedObject>> cache, bool from_wire)
    : name_(std::move(name)),
      connector_(std::move(connector)),
      options_(std::move(options)),
      cache_(std::move(cache)),
      metrics_(options_.metrics ? std::make_unique<StoreMetrics>() : nullptr),
      timing_(options_.metrics || DebugOn()),
      caching_(options_.cache_size > 0),
      serialize_options_(MakeSerializeOptions(options_)),
      config_(std::make_shared<const StoreConfig>(
          MakeConfig(name_, *connector_, options_))),
      from_wire_(from_wire),
      location_([this]() -> std::optional<ConnectorConfig> {
        absl::StatusOr<ConnectorConfig> l = LocationConfig(config_->connector);
        if (!l.ok()) return std::nullopt;
        return *std::move(l);
      }()),
      wire_config_([this] {
        if (!location_.has_value()) return config_;
        StoreConfig wire = *config_;
        wire.connector = *location_;
        return std::make_shared<const StoreConfig>(std::move(wire));
      }()) {}

Store::~Store() = default;

absl::StatusOr<std::shared_ptr<Store>> Store::Create(
    std::string name, std::unique_ptr<Connector> connector,
    StoreOptions options) {
  // Creating a store by hand is the moment to say that a serializer name is
  // unknown. (FromConfig does not check: a consumer process that only
  // resolves proxies need not register the producer's serializer; a Put or
  // Get that needs a missing name fails then, naming it.)
  if (!options.serializer.empty() &&
      !IsSerializerRegistered(options.serializer)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Store::Create(\"", name, "\"): no serializer named \"",
                     options.serializer, "\" is registered in this process"));
  }
  if (!options.deserializer.empty() &&
      !IsDeserializerRegistered(options.deserializer)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Store::Create(\"", name, "\"): no deserializer named \"",
                     options.deserializer, "\" is registered in this process"));
  }
  const bool auto_register = options.auto_register;
  return CreateImpl(std::move(name), std::move(connector), std::move(options),
                    auto_register, /*from_wire=*/false);
}

absl::StatusOr<std::shared_ptr<Store>> Store::CreateImpl(
    std::string name, std::unique_ptr<Connector> connector,
    StoreOptions options, bool register_now, bool from_wire) {
  if (name.empty()) {
    return absl::InvalidArgumentError("Store::Create: name must not be empty");
  }
  if (connector == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("Store::Create(\"", name, "\"): connector is null"));
  }
  if (options.cache_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Store::Create(\"", name, "\"): cache size cannot be negative, got ",
        options.cache_size));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      auto cache, (LruCache<Key, CachedObject>::Create(options.cache_size)));
  auto store = std::make_shared<Store>(PrivateTag{}, std::move(name),
                                       std::move(connector), std::move(options),
                                       std::move(cache), from_wire);
  if (register_now) {
    PROXYSTORE_RETURN_IF_ERROR(RegisterStore(store));
  }
  Logger().info("Initialized {}", store->DebugString());
  return store;
}

absl::StatusOr<std::shared_ptr<Store>> Store::FromConfig(
    const StoreConfig& config) {
  return FromConfigImpl(config, config.auto_register, /*from_wire=*/false);
}

namespace {

struct ReceiverStoreSettings {
  Mutex mu;
  ReceiverStoreOptions options ABSL_GUARDED_BY(mu);
};

ReceiverStoreSettings& GetReceiverStoreSettings() {
  static NoDestructor<ReceiverStoreSettings> settings;
  return *settings;
}

}  // namespace

absl::Status SetReceiverStoreOptions(ReceiverStoreOptions options) {
  if (options.cache_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("SetReceiverStoreOptions: cache size cannot be "
                     "negative, got ",
                     options.cache_size));
  }
  ReceiverStoreSettings& s = GetReceiverStoreSettings();
  MutexLock lock(s.mu);
  s.options = options;
  return absl::OkStatus();
}

ReceiverStoreOptions GetReceiverStoreOptions() {
  ReceiverStoreSettings& s = GetReceiverStoreSettings();
  ReaderMutexLock lock(s.mu);
  return s.options;
}

absl::StatusOr<std::shared_ptr<Store>> Store::FromConfigImpl(
    const StoreConfig& config, bool register_now, bool from_wire) {
  PROXYSTORE_RETURN_IF_ERROR(config.Validate());
  absl::StatusOr<std::unique_ptr<Connector>> connector =
      from_wire ? MakeConnectorFromWire(config.connector)
                : MakeConnector(config.connector);
  if (!connector.ok()) {
    return Annotate(connector.status(),
                    absl::StrCat("Store::FromConfig(\"", config.name, "\")"));
  }
  StoreOptions o;
  o.cache_size = config.cache_size;
  o.metrics = config.metrics;
  o.serializer = config.serializer;
  o.deserializer = config.deserializer;
  o.compress = config.compress;
  o.compress_threshold = config.compress_threshold;
  o.python_format = config.python_format;
  o.populate_target = config.populate_target;
  o.auto_register = config.auto_register;
  if (from_wire) {
    const ReceiverStoreOptions receiver = GetReceiverStoreOptions();
    o.cache_size = receiver.cache_size;
    o.metrics = receiver.metrics;
    o.auto_register = false;
  }
  return CreateImpl(config.name, *std::move(connector), std::move(o),
                    register_now, from_wire);
}

CacheInfo Store::cache_info() const {
  return CacheInfo{.capacity = cache_->capacity(),
                   .size = cache_->size(),
                   .hits = cache_->hits(),
                   .misses = cache_->misses()};
}

std::string Store::DebugString() const {
  return absl::StrCat(
      "Store(\"", name_, "\", connector=", connector_->kind(), ", serializer=",
      options_.serializer.empty() ? "default" : options_.serializer,
      ", deserializer=",
      options_.deserializer.empty() ? "default" : options_.deserializer,
      ", cache_size=", options_.cache_size,
      ", metrics=", options_.metrics ? "true" : "false", ")");
}

absl::StatusOr<Key> Store::PutSerialized(SharedBytes data,
                                         const PutOptions& options,
                                         int64_t serialize_ns, int64_t start_ns,
                                         absl::string_view type_name) {
  const size_t size = data.size();
  return PutThroughConnector(size, serialize_ns, start_ns, type_name, [&] {
    return connector_->Put(std::move(data), options);
  });
}

absl::StatusOr<Key> Store::PutSerializedParts(
    absl::Span<const absl::string_view> parts, const PutOptions& options,
    int64_t serialize_ns, int64_t start_ns, absl::string_view type_name) {
  size_t size = 0;
  for (absl::string_view part : parts) size += part.size();
  return PutThroughConnector(size, serialize_ns, start_ns, type_name, [&] {
    return connector_->PutParts(parts, options);
  });
}

absl::StatusOr<Key> Store::PutThroughConnector(
    size_t size, int64_t serialize_ns, int64_t start_ns,
    absl::string_view type_name, absl::FunctionRef<absl::StatusOr<Key>()> put) {
  const int64_t c0 = timing_ ? NowNs() : 0;
  absl::StatusOr<Key> key = put();
  if (!key.ok()) {
    return Annotate(
        key.status(),
        absl::StrCat("Store(name=\"", name_, "\").Put<", type_name,
                     ">: connector \"", connector_->kind(), "\" failed"));
  }
  if (timing_) {
    const int64_t end = NowNs();
    if (metrics_ != nullptr) {
      metrics_->AddAttribute("store.put.object_size", *key,
                             static_cast<int64_t>(size));
      metrics_->AddTime("store.put.serialize", *key, serialize_ns);
      metrics_->AddTime("store.put.connector", *key, end - c0);
      metrics_->AddTime("store.put", *key, end - start_ns);
    }
    PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): PUT {} in {:.3f} ms", name_,
                         key->id(), Ms(end - start_ns));
  }
  return key;
}

absl::StatusOr<std::vector<Key>> Store::PutBatchSerialized(
    std::vector<SharedBytes> data, const PutOptions& options,
    int64_t serialize_ns, int64_t start_ns) {
  int64_t total = 0;
  for (const SharedBytes& d : data) total += static_cast<int64_t>(d.size());
  const int64_t c0 = timing_ ? NowNs() : 0;
  absl::StatusOr<std::vector<Key>> keys = connector_->PutBatch(data, options);
  if (!keys.ok()) {
    return Annotate(
        keys.status(),
        absl::StrCat("Store(name=\"", name_, "\").PutBatch: ", "connector \"",
                     connector_->kind(), "\" failed"));
  }
  if (keys->size() != data.size()) {
    return absl::InternalError(absl::StrCat(
        "Store(name=\"", name_, "\").PutBatch: connector returned ",
        keys->size(), " keys for ", data.size(), " objects"));
  }
  if (timing_) {
    const int64_t end = NowNs();
    if (metrics_ != nullptr) {
      metrics_->AddAttribute("store.put_batch.object_sizes", *keys, total);
      metrics_->AddTime("store.put_batch.serialize", *keys, serialize_ns);
      metrics_->AddTime("store.put_batch.connector", *keys, end - c0);
      metrics_->AddTime("store.put_batch", *keys, end - start_ns);
    }
    PROXYSTORE_LOG_DEBUG(
        "Store(name=\"{}\"): PUT_BATCH {} objects in {:.3f} ms", name_,
        keys->size(), Ms(end - start_ns));
  }
  return keys;
}

std::shared_ptr<const Store::CachedObject> Store::CacheLookup(const Key& key) {
  if (!caching_) return nullptr;
  return cache_->Get(key);
}

void Store::CacheInsert(const Key& key, CachedObject object, uint64_t epoch) {
  if (!caching_) return;
  cache_->Set(key, std::move(object));
  // An Evict that ran meanwhile bumped the epoch before clearing the cache;
  // if it cleared before our Set, undo the Set. (Conservative: any evict
  // drops this entry; the next Get simply fetches again.)
  if (EvictEpoch() != epoch) cache_->Evict(key);
}

absl::StatusOr<std::optional<SharedBytes>> Store::GetSerialized(
    const Key& key) {
  const int64_t c0 = timing_ ? NowNs() : 0;
  absl::StatusOr<std::optional<SharedBytes>> got = connector_->Get(key);
  if (!got.ok()) {
    return Annotate(
        got.status(),
        absl::StrCat("Store(name=\"", name_, "\").Get(key=\"", key.id(),
                     "\"): connector \"", connector_->kind(), "\" failed"));
  }
  if (metrics_ != nullptr) {
    metrics_->AddCounter("store.get.cache_misses", key, 1);
    metrics_->AddTime("store.get.connector", key, NowNs() - c0);
  }
  return got;
}

absl::StatusOr<std::vector<std::optional<SharedBytes>>>
Store::GetBatchSerialized(absl::Span<const Key> keys) {
  const int64_t c0 = timing_ ? NowNs() : 0;
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> got =
      connector_->GetBatch(keys);
  if (!got.ok()) {
    return Annotate(
        got.status(),
        absl::StrCat("Store(name=\"", name_, "\").GetBatch(", keys.size(),
                     " keys): connector \"", connector_->kind(), "\" failed"));
  }
  if (got->size() != keys.size()) {
    return absl::InternalError(absl::StrCat(
        "Store(name=\"", name_, "\").GetBatch: connector returned ",
        got->size(), " results for ", keys.size(), " keys"));
  }
  if (metrics_ != nullptr) {
    metrics_->AddCounter("store.get_batch.cache_misses", keys,
                         static_cast<int64_t>(keys.size()));
    metrics_->AddTime("store.get_batch.connector", keys, NowNs() - c0);
  }
  return got;
}

void Store::RecordGetBatch(absl::Span<const Key> keys, int64_t start_ns,
                           size_t hits) {
  if (!timing_) return;
  const int64_t end = NowNs();
  if (metrics_ != nullptr) {
    metrics_->AddCounter("store.get_batch.cache_hits", keys,
                         static_cast<int64_t>(hits));
    metrics_->AddTime("store.get_batch", keys, end - start_ns);
  }
  PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): GET_BATCH {} objects in {:.3f} ms",
                       name_, keys.size(), Ms(end - start_ns));
}

absl::StatusOr<Key> Store::PutBuffer(PayloadBuffer&& buffer,
                                     const PutOptions& options) {
  const int64_t start = timing_ ? NowNs() : 0;
  absl::StatusOr<SharedBytes> data =
      SerializeInPlace(std::move(buffer), serialize_options_);
  if (!data.ok()) {
    return Annotate(data.status(),
                    absl::StrCat("Store(name=\"", name_, "\").PutBuffer"));
  }
  const int64_t serialize_ns = timing_ ? NowNs() - start : 0;
  return PutSerialized(*std::move(data), options, serialize_ns, start,
                       "PayloadBuffer");
}

void Store::RecordGet(const Key& key, int64_t start_ns, int64_t deserialize_ns,
                      size_t object_size, bool hit, bool found) {
  if (!timing_) return;
  const int64_t end = NowNs();
  if (metrics_ != nullptr) {
    if (hit) {
      metrics_->AddCounter("store.get.cache_hits", key, 1);
    } else if (found) {
      metrics_->AddTime("store.get.deserialize", key, deserialize_ns);
      metrics_->AddAttribute("store.get.object_size", key,
                             static_cast<int64_t>(object_size));
    }
    metrics_->AddTime("store.get", key, end - start_ns);
  }
  PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): GET {} in {:.3f} ms{}", name_,
                       key.id(), Ms(end - start_ns),
                       hit ? " (cache hit)" : (found ? "" : " (missing)"));
}

void Store::RecordProxy(const Key& key, int64_t start_ns) {
  if (!timing_) return;
  const int64_t end = NowNs();
  if (metrics_ != nullptr)
    metrics_->AddTime("store.proxy", key, end - start_ns);
  PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): PROXY {} in {:.3f} ms", name_,
                       key.id(), Ms(end - start_ns));
}

void Store::RecordProxyBatch(absl::Span<const Key> keys, int64_t start_ns) {
  if (!timing_) return;
  const int64_t end = NowNs();
  if (metrics_ != nullptr) {
    metrics_->AddTime("store.proxy_batch", keys, end - start_ns);
  }
  PROXYSTORE_LOG_DEBUG(
      "Store(name=\"{}\"): PROXY_BATCH {} objects in {:.3f} ms", name_,
      keys.size(), Ms(end - start_ns));
}

absl::StatusOr<bool> Store::Exists(const Key& key) {
  const int64_t start = timing_ ? NowNs() : 0;
  bool exists = caching_ && cache_->Exists(key);
  if (!exists) {
    const int64_t c0 = timing_ ? NowNs() : 0;
    absl::StatusOr<bool> got = connector_->Exists(key);
    if (!got.ok()) {
      return Annotate(got.status(),
                      absl::StrCat("Store(name=\"", name_, "\").Exists(key=\"",
                                   key.id(), "\")"));
    }
    exists = *got;
    if (metrics_ != nullptr) {
      metrics_->AddTime("store.exists.connector", key, NowNs() - c0);
    }
  }
  if (timing_) {
    const int64_t end = NowNs();
    if (metrics_ != nullptr)
      metrics_->AddTime("store.exists", key, end - start);
    PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): EXISTS {} in {:.3f} ms", name_,
                         key.id(), Ms(end - start));
  }
  return exists;
}

absl::Status Store::Evict(const Key& key) {
  const int64_t start = timing_ ? NowNs() : 0;
  absl::Status s = connector_->Evict(key);
  if (!s.ok()) {
    return Annotate(s, absl::StrCat("Store(name=\"", name_, "\").Evict(key=\"",
                                    key.id(), "\")"));
  }
  const int64_t connector_end = timing_ ? NowNs() : 0;
  evict_epoch_.fetch_add(1, std::memory_order_acq_rel);
  if (caching_) cache_->Evict(key);
  if (timing_) {
    const int64_t end = NowNs();
    if (metrics_ != nullptr) {
      metrics_->AddTime("store.evict.connector", key, connector_end - start);
      metrics_->AddTime("store.evict", key, end - start);
    }
    PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): EVICT {} in {:.3f} ms", name_,
                         key.id(), Ms(end - start));
  }
  return absl::OkStatus();
}

bool Store::IsCached(const Key& key) const {
  return caching_ && cache_->Exists(key);
}

absl::Status Store::Close(const CloseOptions& options) {
  closed_.store(true, std::memory_order_release);
  // Only this store: another registered under the name meanwhile stays.
  store_internal::UnregisterIf(name_, this);
  if (from_wire_) {
    absl::Status closed =
        Annotate(connector_->Close(CloseOptions{.clear = false}),
                 absl::StrCat("Store(name=\"", name_, "\").Close"));
    if (closed.ok() && options.clear.value_or(false)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "Store(name=\"", name_,
          "\").Close: closed without clearing; a store re-created from a "
          "serialized proxy never clears the producer's data"));
    }
    return closed;
  }
  return Annotate(connector_->Close(options),
                  absl::StrCat("Store(name=\"", name_, "\").Close"));
}

}  // namespace proxystore
