#include "proxystore/store/store.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "flatbuffers/flatbuffers.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/factory_generated.h"
#include "proxystore/store/signing.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace proxystore {
namespace {

// The library's logger, "proxystore" (stderr). Its level is "warn" unless
// $PROXYSTORE_LOG_LEVEL (trace, debug, info, warn, error, off) or the
// application (spdlog::get("proxystore")->set_level) says otherwise, so
// debug lines are off, and not even formatted, by default.
spdlog::logger& Logger() {
  // Never destroyed: stores may log from other statics' destructors.
  static NoDestructor<std::shared_ptr<spdlog::logger>> logger([] {
    std::shared_ptr<spdlog::logger> existing = spdlog::get("proxystore");
    if (existing != nullptr) return existing;
    auto l = spdlog::stderr_logger_mt("proxystore");
    l->set_level(spdlog::level::warn);
    if (const char* env = std::getenv("PROXYSTORE_LOG_LEVEL")) {
      // from_str maps unknown names to "off": accept only real level names.
      const spdlog::level::level_enum level = spdlog::level::from_str(env);
      if (level != spdlog::level::off || std::string(env) == "off") {
        l->set_level(level);
      } else {
        l->warn(
            "PROXYSTORE_LOG_LEVEL=\"{}\" is not a level (trace, debug, "
            "info, warn, error, critical, off); using warn",
            env);
      }
    }
    return l;
  }());
  return **logger;
}

bool DebugOn() { return Logger().should_log(spdlog::level::debug); }

double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

// Formats nothing unless the logger is at debug level (checked at run time;
// SPDLOG_DEBUG would be compiled out at spdlog's default active level).
#define PROXYSTORE_LOG_DEBUG(...)                              \
  do {                                                         \
    spdlog::logger& proxystore_logger_ = Logger();             \
    if (proxystore_logger_.should_log(spdlog::level::debug)) { \
      proxystore_logger_.debug(__VA_ARGS__);                   \
    }                                                          \
  } while (false)

}  // namespace

int64_t Store::NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------
// Named (de)serializers.

namespace store_internal {
namespace {

struct FnRegistry {
  Mutex mu;
  // (serializer?, name) -> type tag -> std::function
  std::map<std::pair<bool, std::string>,
           absl::flat_hash_map<const void*, std::shared_ptr<const void>>>
      fns ABSL_GUARDED_BY(mu);
};

FnRegistry& Fns() {
  static NoDestructor<FnRegistry> registry;
  return *registry;
}

}  // namespace

absl::Status RegisterFn(bool serializer, absl::string_view name,
                        const void* type_tag, std::shared_ptr<const void> fn) {
  const char* what = serializer ? "serializer" : "deserializer";
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", what, " name must not be empty"));
  }
  FnRegistry& r = Fns();
  MutexLock lock(r.mu);
  auto& by_type = r.fns[{serializer, std::string(name)}];
  if (!by_type.emplace(type_tag, std::move(fn)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("a ", what, " named \"", name,
                     "\" is already registered for this type"));
  }
  return absl::OkStatus();
}

std::shared_ptr<const void> FindFn(bool serializer, absl::string_view name,
                                   const void* type_tag) {
  FnRegistry& r = Fns();
  ReaderMutexLock lock(r.mu);
  auto it = r.fns.find({serializer, std::string(name)});
  if (it == r.fns.end()) return nullptr;
  auto fn = it->second.find(type_tag);
  return fn == it->second.end() ? nullptr : fn->second;
}

bool IsRegistered(bool serializer, absl::string_view name) {
  FnRegistry& r = Fns();
  ReaderMutexLock lock(r.mu);
  auto it = r.fns.find({serializer, std::string(name)});
  return it != r.fns.end() && !it->second.empty();
}

std::string KeyContext(const Store& store, absl::string_view op,
                       absl::string_view type_name, const Key& key) {
  return absl::StrCat("Store(name=\"", store.name(), "\").", op, "<", type_name,
                      ">(key=\"", key.id(), "\")");
}

}  // namespace store_internal

bool IsSerializerRegistered(absl::string_view name) {
  return store_internal::IsRegistered(true, name);
}
bool IsDeserializerRegistered(absl::string_view name) {
  return store_internal::IsRegistered(false, name);
}

// ---------------------------------------------------------------------------
// Store.

namespace {
void Unregister(absl::string_view name, const Store* only);
}  // namespace

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
  Unregister(name_, this);
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

// ---------------------------------------------------------------------------
// Registry.

namespace {

// A store being created by GetOrCreateStore: later callers for the same name
// wait for it instead of creating a second one (ProxyStore issue #319).
struct Creation {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;  // Guarded by mu.
  absl::StatusOr<std::shared_ptr<Store>> result =
      absl::InternalError("store creation did not finish");  // Guarded by mu.
};

struct StoreRegistry {
  Mutex mu;
  absl::flat_hash_map<std::string, std::shared_ptr<Store>> stores
      ABSL_GUARDED_BY(mu);
  // Stores re-created from proxies whose store name is taken here by a store
  // that reaches other data (a name collision), keyed by ShadowSlot(): the
  // proxy's own config wins, without touching the registered store.
  absl::flat_hash_map<std::string, std::shared_ptr<Store>> shadowed
      ABSL_GUARDED_BY(mu);
  // Creations under way, keyed by slot ("n:" + name, or "s:" + ShadowSlot).
  absl::flat_hash_map<std::string, std::shared_ptr<Creation>> creating
      ABSL_GUARDED_BY(mu);
};

StoreRegistry& Registry() {
  // Never destroyed: proxies may resolve from other statics' destructors.
  static NoDestructor<StoreRegistry> registry;
  return *registry;
}

}  // namespace

absl::Status RegisterStore(std::shared_ptr<Store> store, bool exist_ok) {
  if (store == nullptr) {
    return absl::InvalidArgumentError("RegisterStore: store is null");
  }
  std::shared_ptr<Store> replaced;  // Destroyed after the lock is released.
  StoreRegistry& r = Registry();
  MutexLock lock(r.mu);
  auto [it, inserted] = r.stores.try_emplace(store->name(), store);
  if (!inserted) {
    if (!exist_ok && !it->second->closed()) {
      return absl::AlreadyExistsError(
          absl::StrCat("A store named \"", store->name(),
                       "\" already exists (use GetStore(name) to reuse it)"));
    }
    replaced = std::exchange(it->second, std::move(store));
  }
  return absl::OkStatus();
}

std::shared_ptr<Store> GetStore(absl::string_view name) {
  StoreRegistry& r = Registry();
  ReaderMutexLock lock(r.mu);
  auto it = r.stores.find(name);
  return it == r.stores.end() || it->second->closed() ? nullptr : it->second;
}

namespace {

// Unregisters `name` if `only` is null or is the registered store (in either
// map).
void Unregister(absl::string_view name, const Store* only) {
  std::vector<std::shared_ptr<Store>> removed;  // Destroyed after unlocking.
  StoreRegistry& r = Registry();
  MutexLock lock(r.mu);
  auto it = r.stores.find(name);
  if (it != r.stores.end() && (only == nullptr || it->second.get() == only)) {
    removed.push_back(std::move(it->second));
    r.stores.erase(it);
  }
  if (only != nullptr) {
    for (auto s = r.shadowed.begin(); s != r.shadowed.end();) {
      if (s->second.get() == only) {
        removed.push_back(std::move(s->second));
        r.shadowed.erase(s++);
      } else {
        ++s;
      }
    }
  }
}

// Where a store re-created from a proxy goes when its name is taken.
std::string ShadowSlot(const std::string& name,
                       const ConnectorConfig& location) {
  return absl::StrCat(name.size(), ":", name, location.Serialize());
}

enum class Found { kUse, kCreate, kCollision };

// Returns the store in `map` under `key` if `accept` says so (kUse); makes
// way for a new one if there is none or it is closed (kCreate); kCollision
// if it is open but not acceptable.
Found Lookup(absl::flat_hash_map<std::string, std::shared_ptr<Store>>& map,
             const std::string& key,
             const std::function<bool(const Store&)>& accept,
             std::shared_ptr<Store>* out, std::shared_ptr<Store>* stale) {
  auto it = map.find(key);
  if (it == map.end()) return Found::kCreate;
  if (it->second->closed()) {
    *stale = std::move(it->second);
    map.erase(it);
    return Found::kCreate;
  }
  if (accept(*it->second)) {
    *out = it->second;
    return Found::kUse;
  }
  return Found::kCollision;
}

// The store under `key` in the registry's stores (or, with `shadow`, its
// shadowed stores) if `accept` takes it, else a new one from `make`, kept
// there when `keep`. Concurrent callers for the same slot make it once
// (ProxyStore issue #319). A collision (an open store there that `accept`
// refuses) is FailedPrecondition with the payload "proxystore/collision".
absl::StatusOr<std::shared_ptr<Store>> GetOrCreateIn(
    bool shadow, const std::string& key, bool keep,
    const std::function<bool(const Store&)>& accept,
    absl::FunctionRef<absl::StatusOr<std::shared_ptr<Store>>()> make) {
  StoreRegistry& r = Registry();
  const std::string slot = absl::StrCat(shadow ? "s:" : "n:", key);
  std::shared_ptr<Creation> creation;
  std::shared_ptr<Store> stale;  // Destroyed after the lock is released.
  bool creator = false;
  for (;;) {
    {
      MutexLock lock(r.mu);
      auto& map = shadow ? r.shadowed : r.stores;
      std::shared_ptr<Store> found;
      switch (Lookup(map, key, accept, &found, &stale)) {
        case Found::kUse:
          return found;
        case Found::kCollision: {
          absl::Status s = absl::FailedPreconditionError(
              absl::StrCat("store name \"", key, "\" is taken"));
          s.SetPayload("proxystore/collision", absl::Cord("1"));
          return s;
        }
        case Found::kCreate:
          break;
      }
      auto [c, inserted] = r.creating.try_emplace(slot);
      if (inserted) c->second = std::make_shared<Creation>();
      creation = c->second;
      creator = inserted;
    }
    if (creator) break;
    // Someone else is creating this store: wait for their result, and use it
    // if it is acceptable (it was made for another config otherwise).
    std::unique_lock<std::mutex> lock(creation->mu);
    creation->cv.wait(lock, [&] { return creation->done; });
    if (!creation->result.ok()) return creation->result;
    if (accept(**creation->result) && !(*creation->result)->closed()) {
      return creation->result;
    }
  }
  // Created without any registry lock held (connecting may take a while);
  // registered here, not by the store itself.
  absl::StatusOr<std::shared_ptr<Store>> result = make();
  {
    MutexLock lock(r.mu);
    if (result.ok() && keep) {
      auto& map = shadow ? r.shadowed : r.stores;
      auto [it, inserted] = map.try_emplace(key, *result);
      // A store registered meanwhile under this name wins: everyone in the
      // process gets the same store.
      if (!inserted) {
        if (it->second->closed()) {
          it->second = *result;
        } else if (accept(*it->second)) {
          result = it->second;
        }
      }
    }
    r.creating.erase(slot);
  }
  {
    std::lock_guard<std::mutex> lock(creation->mu);
    creation->result = result;
    creation->done = true;
  }
  creation->cv.notify_all();
  return result;
}

}  // namespace

void UnregisterStore(absl::string_view name) { Unregister(name, nullptr); }

// Store's private constructors, for the registry.
struct StoreFactoryAccess {
  static absl::StatusOr<std::shared_ptr<Store>> Make(const StoreConfig& config,
                                                     bool from_wire) {
    return Store::FromConfigImpl(config, /*register_now=*/false, from_wire);
  }
};

absl::StatusOr<std::shared_ptr<Store>> GetOrCreateStore(
    const StoreConfig& config, bool register_store) {
  return GetOrCreateIn(
      /*shadow=*/false, config.name, register_store,
      [](const Store&) { return true; },
      [&] { return StoreFactoryAccess::Make(config, /*from_wire=*/false); });
}

absl::StatusOr<StoreRegistration> StoreRegistration::Create(
    std::vector<std::shared_ptr<Store>> stores, bool exist_ok) {
  std::vector<std::string> names;
  for (std::shared_ptr<Store>& s : stores) {
    absl::Status status = RegisterStore(s, exist_ok);
    if (!status.ok()) {
      for (const std::string& n : names) UnregisterStore(n);
      return status;
    }
    names.push_back(s->name());
  }
  return StoreRegistration(std::move(names));
}

StoreRegistration& StoreRegistration::operator=(
    StoreRegistration&& other) noexcept {
  if (this != &other) {
    for (const std::string& n : names_) UnregisterStore(n);
    names_ = std::move(other.names_);
    other.names_.clear();
  }
  return *this;
}

StoreRegistration::~StoreRegistration() {
  for (const std::string& n : names_) UnregisterStore(n);
}

// ---------------------------------------------------------------------------
// Factories.

std::string FactoryData::Serialize() const {
  flatbuffers::FlatBufferBuilder fbb(512);
  std::string config = store_config.Serialize();
  auto key_off = fbb.CreateString(key.id());
  // A nested FlatBuffer: keep it 8-aligned so Parse needs no copy.
  fbb.ForceVectorAlignment(config.size(), sizeof(uint8_t), 8);
  auto config_off = fbb.CreateVector(
      reinterpret_cast<const uint8_t*>(config.data()), config.size());
  auto deser_off = fbb.CreateString(deserializer);
  auto type_off = fbb.CreateString(type_name);
  fb::StoreFactoryBuilder b(fbb);
  b.add_key(key_off);
  b.add_store_config(config_off);
  b.add_evict(evict);
  b.add_deserializer(deser_off);
  b.add_type_name(type_off);
  // Size-prefixed, so that a truncated proxy is always detected (trailing
  // padding would otherwise verify).
  fbb.FinishSizePrefixed(b.Finish());
  return signing_internal::Sign(std::string(
      reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()));
}

absl::StatusOr<FactoryData> FactoryData::Parse(absl::string_view wire) {
  // With a signing key set, nothing is read before the MAC checks out.
  PROXYSTORE_ASSIGN_OR_RETURN(absl::string_view unaligned,
                              signing_internal::Verify(wire));
  // The FlatBuffers verifier asserts on buffers this large: refuse them first
  // (and before AlignedView could copy them).
  if (unaligned.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return absl::DataLossError(
        absl::StrCat("ParseProxy: ", unaligned.size(),
                     " bytes are too large for a serialized proxy"));
  }
  AlignedView bytes(unaligned);
  const uint8_t* data = bytes.data();
  if (bytes.size() < sizeof(flatbuffers::uoffset_t) ||
      flatbuffers::GetPrefixedSize(data) !=
          bytes.size() - sizeof(flatbuffers::uoffset_t)) {
    return absl::DataLossError(absl::StrCat(
        "ParseProxy: ", bytes.size(),
        " bytes are not a serialized proxy (truncated or extended)"));
  }
  flatbuffers::Verifier verifier(data, bytes.size());
  if (!fb::VerifySizePrefixedStoreFactoryBuffer(verifier)) {
    return absl::DataLossError(absl::StrCat(
        "ParseProxy: ", bytes.size(), " bytes are not a serialized proxy"));
  }
  const fb::StoreFactory* root = fb::GetSizePrefixedStoreFactory(data);
  if (root->version() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ParseProxy: unsupported proxy version ", root->version(),
                     " (this build reads version 1)"));
  }
  if (root->key() == nullptr || root->store_config() == nullptr ||
      root->type_name() == nullptr) {
    return absl::DataLossError(
        "ParseProxy: serialized proxy lacks its key, store config or type");
  }
  FactoryData out;
  PROXYSTORE_ASSIGN_OR_RETURN(
      out.key,
      Key::Parse(absl::string_view(root->key()->data(), root->key()->size())));
  PROXYSTORE_ASSIGN_OR_RETURN(
      out.store_config,
      StoreConfig::Parse(absl::string_view(
          reinterpret_cast<const char*>(root->store_config()->data()),
          root->store_config()->size())));
  out.evict = root->evict();
  out.deserializer = root->deserializer() ? root->deserializer()->str() : "";
  out.type_name = root->type_name()->str();
  return out;
}

namespace store_internal {
namespace {

// A small fixed pool for ResolveAsync, never destroyed (tasks may still be
// queued when the process exits; they simply never run).
class ResolvePool {
 public:
  static constexpr int kThreads = 4;

  ResolvePool() : pid_(getpid()) {}

  // Runs `task` on a worker. In a forked child the parent's workers do not
  // exist and its mutex may have been held at fork time, so the child never
  // touches them: each task gets a thread of its own instead.
  void Submit(std::function<void()> task) {
    if (getpid() != pid_) {
      if (!StartThread(task)) task();
      return;
    }
    std::unique_lock<std::mutex> lock(mu_);
    while (started_ < kThreads && started_ <= static_cast<int>(queue_.size())) {
      if (!StartThread([this] { Work(); })) break;
      ++started_;
    }
    if (started_ == 0) {
      // No thread could be started: run it here rather than never.
      lock.unlock();
      task();
      return;
    }
    queue_.push_back(std::move(task));
    cv_.notify_one();
  }

 private:
  // Starts a detached thread running a copy of `fn`; false if the system
  // refused (std::thread reports that by throwing; nothing else here throws).
  static bool StartThread(const std::function<void()>& fn) {
    try {
      std::thread(fn).detach();
      return true;
    } catch (const std::system_error&) {
      return false;
    }
  }

  void Work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  const pid_t pid_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // Guarded by mu_.
  int started_ = 0;                          // Guarded by mu_.
};

}  // namespace

void RunInBackground(std::function<void()> task) {
  static NoDestructor<ResolvePool> pool;
  pool->Submit(std::move(task));
}

absl::StatusOr<std::shared_ptr<Store>> FindStore(
    const std::weak_ptr<Store>& origin, const StoreConfig& config) {
  if (std::shared_ptr<Store> s = origin.lock(); s != nullptr && !s->closed()) {
    return s;
  }
  // From here on the config is the proxy's, and may have come from anywhere:
  // a store of this process is used only if it reaches the same data.
  absl::StatusOr<ConnectorConfig> location = LocationConfig(config.connector);
  if (!location.ok()) {
    return Annotate(location.status(),
                    absl::StrCat("store \"", config.name, "\" from a proxy"));
  }
  auto same_data = [&location](const Store& s) {
    return s.location() != nullptr && *s.location() == *location;
  };
  auto make = [&] {
    return StoreFactoryAccess::Make(config, /*from_wire=*/true);
  };
  absl::StatusOr<std::shared_ptr<Store>> named = GetOrCreateIn(
      /*shadow=*/false, config.name, /*keep=*/true, same_data, make);
  if (named.ok() || !named.status().GetPayload("proxystore/collision")) {
    return named;
  }
  // The name is taken here by a store that reaches other data: the proxy's
  // own config wins, in a store kept apart from the registered one.
  return GetOrCreateIn(
      /*shadow=*/true, ShadowSlot(config.name, *location), /*keep=*/true,
      same_data, [&]() -> absl::StatusOr<std::shared_ptr<Store>> {
        Logger().warn(
            "proxies of store \"{}\" ({}) resolve through their own config: "
            "the store registered under that name here reaches other data",
            config.name, location->DebugString());
        return make();
      });
}

absl::Status MissingKeyError(const Key& key, const Store& store) {
  absl::Status s = absl::NotFoundError(absl::StrCat(
      "Cannot resolve target object with key='", key.id(),
      "' from Store(name='", store.name(), "', connector='",
      store.connector().kind(),
      "') because there is no object associated with the key. This can often "
      "occur when the target object is evicted from the store while proxies "
      "of the target still exist."));
  s.SetPayload("proxystore/missing-key", absl::Cord(key.id()));
  return s;
}

}  // namespace store_internal
}  // namespace proxystore
