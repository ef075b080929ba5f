#include "proxystore/store/store.h"

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

SerializeOptions MakeSerializeOptions(const StoreOptions& o) {
  SerializeOptions s;
  s.format = o.python_format ? SerializeOptions::Format::kProxyStorePython
                             : SerializeOptions::Format::kNative;
  s.compress = o.compress;
  s.compress_threshold = o.compress_threshold;
  return s;
}

}  // namespace

Store::Store(PrivateTag, StoreConfig config,
             std::unique_ptr<Connector> connector,
             std::unique_ptr<LruCache<Key, CachedObject>> cache, bool from_wire)
    : name_(config.name),
      connector_(std::move(connector)),
      config_(std::make_shared<const StoreConfig>(std::move(config))),
      cache_(std::move(cache)),
      metrics_(config_->metrics ? std::make_unique<StoreMetrics>() : nullptr),
      timing_(config_->metrics || DebugOn()),
      caching_(config_->cache_size > 0),
      serialize_options_(MakeSerializeOptions(*config_)),
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
  return CreateImpl(StoreConfig{std::move(options), std::move(name), {}},
                    std::move(connector), auto_register, /*from_wire=*/false);
}

absl::StatusOr<std::shared_ptr<Store>> Store::CreateImpl(
    StoreConfig config, std::unique_ptr<Connector> connector, bool register_now,
    bool from_wire) {
  if (config.name.empty()) {
    return absl::InvalidArgumentError("Store::Create: name must not be empty");
  }
  if (connector == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Store::Create(\"", config.name, "\"): connector is null"));
  }
  if (config.cache_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Store::Create(\"", config.name,
        "\"): cache size cannot be negative, got ", config.cache_size));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      auto cache, (LruCache<Key, CachedObject>::Create(config.cache_size)));
  config.connector = connector->Config();
  auto store = std::make_shared<Store>(PrivateTag{}, std::move(config),
                                       std::move(connector), std::move(cache),
                                       from_wire);
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
  StoreConfig store_config = config;
  if (from_wire) {
    const ReceiverStoreOptions receiver = GetReceiverStoreOptions();
    store_config.cache_size = receiver.cache_size;
    store_config.metrics = receiver.metrics;
    store_config.auto_register = false;
  }
  return CreateImpl(std::move(store_config), *std::move(connector),
                    register_now, from_wire);
}

CacheInfo Store::cache_info() const {
  const CacheStats stats = cache_->Stats();
  return CacheInfo{.capacity = stats.capacity,
                   .size = stats.size,
                   .hits = stats.hits,
                   .misses = stats.misses};
}

std::string Store::DebugString() const {
  return absl::StrCat(
      "Store(\"", name_, "\", connector=", connector_->kind(), ", serializer=",
      config_->serializer.empty() ? "default" : config_->serializer,
      ", deserializer=",
      config_->deserializer.empty() ? "default" : config_->deserializer,
      ", cache_size=", config_->cache_size,
      ", metrics=", config_->metrics ? "true" : "false", ")");
}

absl::StatusOr<Key> Store::NewKey(const NewKeyOptions& options) {
  absl::StatusOr<Key> key = connector_->NewKey(options);
  if (!key.ok()) {
    return Annotate(
        key.status(),
        absl::StrCat("Store(name=\"", name_, "\").NewKey: connector \"",
                     connector_->kind(), "\" failed"));
  }
  return key;
}

absl::Status Store::SetSerialized(const Key& key, SharedBytes data,
                                  OpTimer& timer, absl::string_view type_name) {
  const size_t size = data.size();
  return SetThroughConnector(key, size, timer, type_name, [&] {
    return connector_->Set(key, std::move(data));
  });
}

absl::Status Store::SetSerializedParts(
    const Key& key, absl::Span<const absl::string_view> parts, OpTimer& timer,
    absl::string_view type_name) {
  size_t size = 0;
  for (absl::string_view part : parts) size += part.size();
  return SetThroughConnector(key, size, timer, type_name,
                             [&] { return connector_->SetParts(key, parts); });
}

absl::Status Store::SetThroughConnector(const Key& key, size_t size,
                                        OpTimer& timer,
                                        absl::string_view type_name,
                                        absl::FunctionRef<absl::Status()> set) {
  timer.StartLap();
  absl::Status status = set();
  if (!status.ok()) {
    return Annotate(status,
                    absl::StrCat("Store(name=\"", name_, "\").Set<", type_name,
                                 ">(key=\"", key.id(), "\"): connector \"",
                                 connector_->kind(), "\" failed"));
  }
  if (timer.enabled() && metrics_ != nullptr) {
    const int64_t connector_ns = timer.Lap();
    metrics_->AddAttribute("store.set.object_size", key,
                           static_cast<int64_t>(size));
    metrics_->AddTime("store.set.serialize", key, timer.serialize_ns);
    metrics_->AddTime("store.set.connector", key, connector_ns);
    metrics_->AddTime("store.set", key, timer.ElapsedNs());
  }
  return absl::OkStatus();
}

absl::StatusOr<Key> Store::PutSerializedParts(
    absl::Span<const absl::string_view> parts, const PutOptions& options,
    OpTimer& timer, absl::string_view type_name) {
  size_t size = 0;
  for (absl::string_view part : parts) size += part.size();
  return PutThroughConnector(size, timer, type_name, [&] {
    return connector_->PutParts(parts, options);
  });
}

absl::StatusOr<Key> Store::PutThroughConnector(
    size_t size, OpTimer& timer, absl::string_view type_name,
    absl::FunctionRef<absl::StatusOr<Key>()> put) {
  timer.StartLap();
  return PutDone(put(), size, timer, type_name);
}

absl::StatusOr<Key> Store::PutDone(absl::StatusOr<Key> key, size_t size,
                                   OpTimer& timer,
                                   absl::string_view type_name) {
  if (!key.ok()) {
    return Annotate(
        key.status(),
        absl::StrCat("Store(name=\"", name_, "\").Put<", type_name,
                     ">: connector \"", connector_->kind(), "\" failed"));
  }
  if (timer.enabled()) {
    const int64_t connector_ns = timer.Lap();
    const int64_t total_ns = timer.ElapsedNs();
    if (metrics_ != nullptr) {
      metrics_->AddAttribute("store.put.object_size", *key,
                             static_cast<int64_t>(size));
      metrics_->AddTime("store.put.serialize", *key, timer.serialize_ns);
      metrics_->AddTime("store.put.connector", *key, connector_ns);
      metrics_->AddTime("store.put", *key, total_ns);
    }
    PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): PUT {} in {:.3f} ms", name_,
                         key->id(), Ms(total_ns));
  }
  return key;
}

absl::StatusOr<std::vector<Key>> Store::PutBatchSerialized(
    std::vector<SharedBytes> data, const PutOptions& options, OpTimer& timer) {
  int64_t total = 0;
  for (const SharedBytes& d : data) total += static_cast<int64_t>(d.size());
  timer.StartLap();
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
  if (timer.enabled()) {
    const int64_t connector_ns = timer.Lap();
    const int64_t total_ns = timer.ElapsedNs();
    if (metrics_ != nullptr) {
      metrics_->AddAttribute("store.put_batch.object_sizes", *keys, total);
      metrics_->AddTime("store.put_batch.serialize", *keys, timer.serialize_ns);
      metrics_->AddTime("store.put_batch.connector", *keys, connector_ns);
      metrics_->AddTime("store.put_batch", *keys, total_ns);
    }
    PROXYSTORE_LOG_DEBUG(
        "Store(name=\"{}\"): PUT_BATCH {} objects in {:.3f} ms", name_,
        keys->size(), Ms(total_ns));
  }
  return keys;
}

void Store::CacheInsert(const Key& key, CachedObject object, uint64_t epoch) {
  if (!caching_) return;
  cache_->Set(key, std::move(object));
  // An Evict that ran meanwhile bumped the epoch before clearing the cache;
  // if it cleared before our Set, undo the Set. (Conservative: any evict
  // drops this entry; the next Get simply fetches again.)
  if (EvictEpoch() != epoch) cache_->Evict(key);
}

absl::Status Store::GetFailed(const Key& key,
                              const absl::Status& status) const {
  return Annotate(status, absl::StrCat("Store(name=\"", name_, "\").Get(key=\"",
                                       key.id(), "\"): connector \"",
                                       connector_->kind(), "\" failed"));
}

void Store::RecordGetConnector(const Key& key, int64_t connector_ns) {
  metrics_->AddCounter("store.get.cache_misses", key, 1);
  metrics_->AddTime("store.get.connector", key, connector_ns);
}

absl::StatusOr<std::optional<SharedBytes>> Store::GetSerialized(
    const Key& key, OperationTimer& timer) {
  timer.StartLap();
  absl::StatusOr<std::optional<SharedBytes>> got = connector_->Get(key);
  if (!got.ok()) return GetFailed(key, got.status());
  if (metrics_ != nullptr) RecordGetConnector(key, timer.Lap());
  return got;
}

absl::StatusOr<std::vector<std::optional<SharedBytes>>>
Store::GetBatchSerialized(absl::Span<const Key> keys, OperationTimer& timer) {
  timer.StartLap();
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
    metrics_->AddTime("store.get_batch.connector", keys, timer.Lap());
  }
  return got;
}

void Store::RecordGetBatch(absl::Span<const Key> keys, OperationTimer& timer,
                           size_t hits) {
  if (!timer.enabled()) return;
  const int64_t total_ns = timer.Stop();
  if (metrics_ != nullptr) {
    metrics_->AddCounter("store.get_batch.cache_hits", keys,
                         static_cast<int64_t>(hits));
    metrics_->AddTime("store.get_batch", keys, total_ns);
  }
  PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): GET_BATCH {} objects in {:.3f} ms",
                       name_, keys.size(), Ms(total_ns));
}

absl::StatusOr<Key> Store::PutBuffer(PayloadBuffer&& buffer,
                                     const PutOptions& options) {
  OpTimer timer = StartTimer();
  absl::StatusOr<SharedBytes> data =
      SerializeInPlace(std::move(buffer), serialize_options_);
  if (!data.ok()) {
    return Annotate(data.status(),
                    absl::StrCat("Store(name=\"", name_, "\").PutBuffer"));
  }
  timer.serialize_ns = timer.Lap();
  return PutSerialized(*std::move(data), options, timer, "PayloadBuffer");
}

void Store::RecordTimedGet(const Key& key, OpTimer& timer, size_t object_size,
                           bool hit, bool found) {
  const int64_t total_ns = timer.Stop();
  if (metrics_ != nullptr) {
    if (hit) {
      metrics_->AddCounter("store.get.cache_hits", key, 1);
    } else if (found) {
      metrics_->AddTime("store.get.deserialize", key, timer.deserialize_ns);
      metrics_->AddAttribute("store.get.object_size", key,
                             static_cast<int64_t>(object_size));
    }
    metrics_->AddTime("store.get", key, total_ns);
  }
  PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): GET {} in {:.3f} ms{}", name_,
                       key.id(), Ms(total_ns),
                       hit ? " (cache hit)" : (found ? "" : " (missing)"));
}

void Store::RecordProxy(const Key& key, OperationTimer& timer) {
  if (!timer.enabled()) return;
  const int64_t total_ns = timer.Stop();
  if (metrics_ != nullptr) metrics_->AddTime("store.proxy", key, total_ns);
  PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): PROXY {} in {:.3f} ms", name_,
                       key.id(), Ms(total_ns));
}

void Store::RecordProxyBatch(absl::Span<const Key> keys,
                             OperationTimer& timer) {
  if (!timer.enabled()) return;
  const int64_t total_ns = timer.Stop();
  if (metrics_ != nullptr) {
    metrics_->AddTime("store.proxy_batch", keys, total_ns);
  }
  PROXYSTORE_LOG_DEBUG(
      "Store(name=\"{}\"): PROXY_BATCH {} objects in {:.3f} ms", name_,
      keys.size(), Ms(total_ns));
}

absl::StatusOr<bool> Store::Exists(const Key& key) {
  OpTimer timer = StartTimer();
  bool exists = caching_ && cache_->Exists(key);
  if (!exists) {
    timer.StartLap();
    absl::StatusOr<bool> got = connector_->Exists(key);
    if (!got.ok()) {
      return Annotate(got.status(),
                      absl::StrCat("Store(name=\"", name_, "\").Exists(key=\"",
                                   key.id(), "\")"));
    }
    exists = *got;
    if (metrics_ != nullptr) {
      metrics_->AddTime("store.exists.connector", key, timer.Lap());
    }
  }
  if (timer.enabled()) {
    const int64_t total_ns = timer.Stop();
    if (metrics_ != nullptr) metrics_->AddTime("store.exists", key, total_ns);
    PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): EXISTS {} in {:.3f} ms", name_,
                         key.id(), Ms(total_ns));
  }
  return exists;
}

absl::Status Store::Evict(const Key& key) {
  OpTimer timer = StartTimer();
  absl::Status s = connector_->Evict(key);
  if (!s.ok()) {
    return Annotate(s, absl::StrCat("Store(name=\"", name_, "\").Evict(key=\"",
                                    key.id(), "\")"));
  }
  const int64_t connector_ns = timer.Lap();
  evict_epoch_.fetch_add(1, std::memory_order_acq_rel);
  if (caching_) cache_->Evict(key);
  if (timer.enabled()) {
    const int64_t total_ns = timer.Stop();
    if (metrics_ != nullptr) {
      metrics_->AddTime("store.evict.connector", key, connector_ns);
      metrics_->AddTime("store.evict", key, total_ns);
    }
    PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): EVICT {} in {:.3f} ms", name_,
                         key.id(), Ms(total_ns));
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
