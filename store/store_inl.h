// Template definitions of the Store class. Included by store.h after the
// Store class and factory_impl.h; include store.h instead.
#ifndef PROXYSTORE_STORE_STORE_INL_H_
#define PROXYSTORE_STORE_STORE_INL_H_

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace proxystore {
namespace store_internal {

// Types that Python ProxyStore can also read when python_format is on.
template <typename T>
inline constexpr bool kPythonCompatible =
    std::is_same_v<T, std::string> || std::is_same_v<T, std::vector<uint8_t>> ||
    std::is_same_v<T, std::vector<char>> ||
    std::is_same_v<T, std::vector<std::byte>> || std::is_same_v<T, SharedBytes>;

std::string KeyContext(const Store& store, absl::string_view op,
                       absl::string_view type_name, const Key& key);

// Associates `keys`, just stored by `store`, with `lifetime` (if not null);
// if the lifetime refuses them, evicts them and returns its error.
inline absl::Status AddToLifetime(Store& store, Lifetime* lifetime,
                                  absl::Span<const Key> keys) {
  if (lifetime == nullptr) return absl::OkStatus();
  absl::Status status = lifetime->AddKeys(keys);
  if (!status.ok()) {
    for (const Key& key : keys) store.Evict(key).IgnoreError();
  }
  return status;
}

// InvalidArgument for a proxy that both evicts on resolve and has a lifetime.
inline absl::Status CheckProxyLifetime(const Store& store, bool evict,
                                       const Lifetime* lifetime) {
  if (evict && lifetime != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("Store(name=\"", store.name(),
                     "\"): a proxy cannot both evict on "
                     "resolve and belong to lifetime \"",
                     lifetime->name(), "\""));
  }
  return absl::OkStatus();
}

// Types whose default codec can decode straight from a connector's
// GetInto (a copy out of memory the connector holds, or a read into the
// value's own storage).
template <typename T>
inline constexpr bool kDecodesDirect =
    internal::HasDecodeView<T>&& internal::HasDecodeFilled<T>;

}  // namespace store_internal

template <typename T>
absl::StatusOr<std::optional<SharedBytes>> Store::GetDirect(
    const Key& key, OpTimer& timer, std::optional<T>& out) {
  using C = Codec<T>;
  // Decodes an uncompressed envelope (or ProxyStore Python bytes/str data)
  // whose codec accepts T; anything else (compressed, another type, corrupt)
  // is handed back whole, and the ordinary decode reports it.
  auto decode = [&](const ObjectReader& r) -> absl::StatusOr<bool> {
    absl::StatusOr<internal::ParsedData> parsed =
        internal::ParseHeader(r.prefix, r.size);
    if (!parsed.ok() || parsed->compressed) return false;
    if (parsed->format == SerializeOptions::Format::kNative) {
      if (!internal::CodecAccepts<T>(parsed->codec, parsed->type_name)) {
        return false;
      }
    } else if (internal::PythonTypeOf<T>() == PythonType::kNone ||
               parsed->python_type == PythonType::kNone) {
      return false;
    }
    timer.connector_ns = timer.Lap();
    timer.stored_size = r.size;
    const size_t header = parsed->header_size;
    absl::StatusOr<T> value =
        r.in_memory.has_value()
            ? C::DecodeView(r.in_memory->substr(header))
            : C::DecodeFilled(static_cast<size_t>(r.size - header),
                              [&](char* dst) { return r.read(dst, header); });
    if (!value.ok()) return value.status();
    out.emplace(*std::move(value));
    timer.deserialize_ns = timer.Lap();
    return true;
  };
  timer.StartLap();
  absl::StatusOr<GetIntoResult> got = connector_->GetInto(key, decode);
  if (!got.ok()) return GetFailed(key, got.status());
  if (metrics_ != nullptr) {
    if (timer.connector_ns < 0) timer.connector_ns = timer.Lap();
    RecordGetConnector(key, timer.connector_ns);
  }
  if (!got->found) return std::nullopt;
  if (got->whole.has_value()) return *std::move(got->whole);
  return SharedBytes();  // decoded into `out`
}

template <typename T>
SerializeOptions Store::SerializeOptionsFor() const {
  SerializeOptions so = serialize_options_;
  if (!store_internal::kPythonCompatible<T>) {
    so.format = SerializeOptions::Format::kNative;
  }
  return so;
}

template <typename T>
absl::StatusOr<SharedBytes> Store::SerializeObject(
    const T& obj, const SerializerFn<T>& per_call) {
  if (per_call) return per_call(obj);
  if (!config_->serializer.empty()) {
    PROXYSTORE_ASSIGN_OR_RETURN(SerializerFn<T> fn,
                                FindSerializer<T>(config_->serializer));
    return fn(obj);
  }
  static_assert(kHasCodec<T>,
                "no Codec<T> for this type: specialize proxystore::Codec<T>, "
                "or pass a serializer");
  return proxystore::Serialize<T>(obj, SerializeOptionsFor<T>());
}

template <typename T>
absl::StatusOr<T> Store::DeserializeObject(
    const Key& key, const SharedBytes& data,
    const DeserializerFn<T>& per_call) const {
  absl::StatusOr<T> out = [&]() -> absl::StatusOr<T> {
    if (per_call) return per_call(data);
    if (!config_->deserializer.empty()) {
      PROXYSTORE_ASSIGN_OR_RETURN(DeserializerFn<T> fn,
                                  FindDeserializer<T>(config_->deserializer));
      return fn(data);
    }
    static_assert(kHasCodec<T>,
                  "no Codec<T> for this type: specialize proxystore::Codec<T>, "
                  "or pass a deserializer");
    return proxystore::Deserialize<T>(data);
  }();
  if (!out.ok()) {
    return Annotate(out.status(), store_internal::KeyContext(
                                      *this, "Get", TypeName<T>(), key) +
                                      ": failed to deserialize");
  }
  return out;
}

template <typename T>
absl::StatusOr<Key> Store::Put(const T& obj,
                               const StorePutOptions<T>& options) {
  if (options.lifetime != nullptr) {
    StorePutOptions<T> without = options;
    without.lifetime = nullptr;
    PROXYSTORE_ASSIGN_OR_RETURN(Key key, Put(obj, without));
    PROXYSTORE_RETURN_IF_ERROR(
        store_internal::AddToLifetime(*this, options.lifetime, {&key, 1}));
    return key;
  }
  OpTimer timer = StartTimer();
  if constexpr (internal::HasContiguousView<T>) {
    // A large object the codec writes verbatim: its bytes go straight from
    // the object to the storage, after the envelope header. (Size first:
    // small puts skip building a header they would not use.)
    std::optional<SerializedParts> parts;
    if (!options.serializer && config_->serializer.empty() &&
        Codec<T>::ContiguousView(obj).size() >= kPutPartsMinSize) {
      parts = SerializeParts(obj, SerializeOptionsFor<T>());
    }
    if (parts.has_value()) {
      timer.serialize_ns = timer.Lap();
      const absl::string_view pieces[] = {parts->header, parts->payload};
      return PutSerializedParts(pieces, options.connector, timer,
                                TypeName<T>());
    }
  }
  absl::StatusOr<SharedBytes> data = SerializeObject(obj, options.serializer);
  if (!data.ok()) {
    return Annotate(data.status(),
                    absl::StrCat("Store(name=\"", name_, "\").Put<",
                                 TypeName<T>(), ">: serializer failed"));
  }
  timer.serialize_ns = timer.Lap();
  return PutSerialized(*std::move(data), options.connector, timer,
                       TypeName<T>());
}

template <typename T>
absl::StatusOr<std::vector<Key>> Store::PutBatch(
    absl::Span<const T> objs, const StorePutOptions<T>& options) {
  OpTimer timer = StartTimer();
  std::vector<SharedBytes> data;
  data.reserve(objs.size());
  for (size_t i = 0; i < objs.size(); ++i) {
    absl::StatusOr<SharedBytes> one =
        SerializeObject(objs[i], options.serializer);
    if (!one.ok()) {
      return Annotate(one.status(), absl::StrCat("Store(name=\"", name_,
                                                 "\").PutBatch<", TypeName<T>(),
                                                 ">: serializer failed on "
                                                 "object ",
                                                 i, "; nothing was stored"));
    }
    data.push_back(*std::move(one));
  }
  timer.serialize_ns = timer.Lap();
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::vector<Key> keys,
      PutBatchSerialized(std::move(data), options.connector, timer));
  PROXYSTORE_RETURN_IF_ERROR(
      store_internal::AddToLifetime(*this, options.lifetime, keys));
  return keys;
}

template <typename T>
absl::StatusOr<std::shared_ptr<const T>> Store::Get(
    const Key& key, const StoreGetOptions<T>& options) {
  OpTimer timer = StartTimer();
  if (std::shared_ptr<const CachedObject> cached = CacheLookup(key)) {
    // A hit of another type falls through to a fresh decode as T.
    if (cached->type_tag == store_internal::TypeTag<T>()) {
      RecordGet(key, timer, 0, /*hit=*/true, /*found=*/true);
      const T* object = static_cast<const T*>(cached->object.get());
      return std::shared_ptr<const T>(std::move(cached), object);
    }
  }
  const uint64_t epoch = EvictEpoch();
  std::optional<SharedBytes> data;
  std::optional<T> direct;  // decoded by GetDirect
  if constexpr (store_internal::kDecodesDirect<T>) {
    if (!options.deserializer && config_->deserializer.empty()) {
      PROXYSTORE_ASSIGN_OR_RETURN(data, GetDirect<T>(key, timer, direct));
    } else {
      PROXYSTORE_ASSIGN_OR_RETURN(data, GetSerialized(key, timer));
    }
  } else {
    PROXYSTORE_ASSIGN_OR_RETURN(data, GetSerialized(key, timer));
  }
  if (!data.has_value()) {
    RecordGet(key, timer, 0, /*hit=*/false, /*found=*/false);
    return options.default_value;
  }
  std::shared_ptr<const T> shared;
  if (direct.has_value()) {
    shared = std::make_shared<const T>(*std::move(direct));
  } else {
    timer.StartLap();
    PROXYSTORE_ASSIGN_OR_RETURN(
        T obj, DeserializeObject<T>(key, *data, options.deserializer));
    shared = std::make_shared<const T>(std::move(obj));
    timer.deserialize_ns = timer.Lap();
  }
  if (caching_) {
    CacheInsert(key, CachedObject{store_internal::TypeTag<T>(), shared}, epoch);
  }
  RecordGet(key, timer, direct.has_value() ? timer.stored_size : data->size(),
            /*hit=*/false, /*found=*/true);
  return shared;
}

template <typename T>
absl::StatusOr<std::vector<std::shared_ptr<const T>>> Store::GetBatch(
    absl::Span<const Key> keys, const StoreGetOptions<T>& options) {
  OpTimer timer = StartTimer();
  std::vector<std::shared_ptr<const T>> out(keys.size());
  std::vector<Key> misses;
  std::vector<size_t> miss_index;
  for (size_t i = 0; i < keys.size(); ++i) {
    std::shared_ptr<const CachedObject> cached = CacheLookup(keys[i]);
    if (cached != nullptr && cached->type_tag == store_internal::TypeTag<T>()) {
      const T* object = static_cast<const T*>(cached->object.get());
      out[i] = std::shared_ptr<const T>(std::move(cached), object);
    } else {
      misses.push_back(keys[i]);
      miss_index.push_back(i);
    }
  }
  if (!misses.empty()) {
    const uint64_t epoch = EvictEpoch();
    PROXYSTORE_ASSIGN_OR_RETURN(std::vector<std::optional<SharedBytes>> data,
                                GetBatchSerialized(misses, timer));
    for (size_t j = 0; j < misses.size(); ++j) {
      if (!data[j].has_value()) {
        out[miss_index[j]] = options.default_value;
        continue;
      }
      PROXYSTORE_ASSIGN_OR_RETURN(
          T obj,
          DeserializeObject<T>(misses[j], *data[j], options.deserializer));
      auto shared = std::make_shared<const T>(std::move(obj));
      CacheInsert(misses[j], CachedObject{store_internal::TypeTag<T>(), shared},
                  epoch);
      out[miss_index[j]] = std::move(shared);
    }
  }
  RecordGetBatch(keys, timer, keys.size() - misses.size());
  return out;
}

template <typename T>
std::shared_ptr<StoreFactory<T>> Store::MakeFactory(
    const Key& key, const ProxyOptions<T>& options) {
  return MakeStoreFactory<T>(key, wire_config_, options.evict,
                             options.deserializer, weak_from_this());
}

template <typename T>
absl::StatusOr<proxystore::Proxy<T>> Store::Proxy(
    const T& obj, const ProxyOptions<T>& options) {
  PROXYSTORE_RETURN_IF_ERROR(store_internal::CheckProxyLifetime(
      *this, options.evict, options.lifetime));
  OpTimer timer = StartTimer();
  PROXYSTORE_ASSIGN_OR_RETURN(
      Key key,
      Put(obj, StorePutOptions<T>{options.serializer, options.connector,
                                  options.lifetime}));
  std::shared_ptr<StoreFactory<T>> factory = MakeFactory(key, options);
  RecordProxy(key, timer);
  if (options.populate_target.value_or(config_->populate_target)) {
    return proxystore::Proxy<T>(std::move(factory),
                                std::make_shared<const T>(obj));
  }
  return proxystore::Proxy<T>(std::move(factory));
}

template <typename T>
absl::StatusOr<proxystore::Proxy<T>> Store::Proxy(
    T&& obj,
    const ProxyOptions<T>& options) requires(!std::is_lvalue_reference_v<T>) {
  PROXYSTORE_RETURN_IF_ERROR(store_internal::CheckProxyLifetime(
      *this, options.evict, options.lifetime));
  OpTimer timer = StartTimer();
  PROXYSTORE_ASSIGN_OR_RETURN(
      Key key, Put(static_cast<const T&>(obj),
                   StorePutOptions<T>{options.serializer, options.connector,
                                      options.lifetime}));
  std::shared_ptr<StoreFactory<T>> factory = MakeFactory(key, options);
  RecordProxy(key, timer);
  if (options.populate_target.value_or(config_->populate_target)) {
    return proxystore::Proxy<T>(std::move(factory),
                                std::make_shared<const T>(std::move(obj)));
  }
  return proxystore::Proxy<T>(std::move(factory));
}

template <typename T>
absl::StatusOr<std::vector<proxystore::Proxy<T>>> Store::ProxyBatch(
    absl::Span<const T> objs, const ProxyOptions<T>& options) {
  PROXYSTORE_RETURN_IF_ERROR(store_internal::CheckProxyLifetime(
      *this, options.evict, options.lifetime));
  OpTimer timer = StartTimer();
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::vector<Key> keys,
      PutBatch(objs, StorePutOptions<T>{options.serializer, options.connector,
                                        options.lifetime}));
  const bool populate =
      options.populate_target.value_or(config_->populate_target);
  std::vector<proxystore::Proxy<T>> proxies;
  proxies.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    std::shared_ptr<StoreFactory<T>> factory = MakeFactory(keys[i], options);
    if (populate) {
      proxies.emplace_back(std::move(factory),
                           std::make_shared<const T>(objs[i]));
    } else {
      proxies.emplace_back(std::move(factory));
    }
  }
  RecordProxyBatch(keys, timer);
  return proxies;
}

template <typename T>
proxystore::Proxy<T> Store::ProxyFromKey(const Key& key,
                                         const ProxyOptions<T>& options) {
  if (options.lifetime != nullptr && !options.evict) {
    // Documented: this form cannot report a refusal.
    options.lifetime->AddKey(key).IgnoreError();
  }
  return proxystore::Proxy<T>(MakeFactory(key, options));
}

template <typename T>
absl::StatusOr<proxystore::Proxy<T>> Store::ProxyFromKey(
    const Key& key, Lifetime& lifetime, const ProxyOptions<T>& options) {
  PROXYSTORE_RETURN_IF_ERROR(
      store_internal::CheckProxyLifetime(*this, options.evict, &lifetime));
  PROXYSTORE_RETURN_IF_ERROR(lifetime.AddKey(key));
  return proxystore::Proxy<T>(MakeFactory(key, options));
}

template <typename T>
absl::Status Store::Set(const Key& key, const T& obj,
                        const SerializerFn<T>& serializer) {
  OpTimer timer = StartTimer();
  timer.StartLap();
  if constexpr (internal::HasContiguousView<T>) {
    // As Put: a large object the codec writes verbatim goes straight from
    // the object to the storage, after the envelope header.
    if (!serializer && config_->serializer.empty() &&
        Codec<T>::ContiguousView(obj).size() >= kPutPartsMinSize) {
      std::optional<SerializedParts> parts =
          SerializeParts(obj, SerializeOptionsFor<T>());
      if (parts.has_value()) {
        timer.serialize_ns = timer.Lap();
        const absl::string_view pieces[] = {parts->header, parts->payload};
        return SetSerializedParts(key, pieces, timer, TypeName<T>());
      }
    }
  }
  absl::StatusOr<SharedBytes> data = SerializeObject<T>(obj, serializer);
  if (!data.ok()) {
    return Annotate(data.status(),
                    absl::StrCat("Store(name=\"", name_, "\").Set<",
                                 TypeName<T>(), ">: serializer failed"));
  }
  timer.serialize_ns = timer.Lap();
  return SetSerialized(key, *std::move(data), timer, TypeName<T>());
}

template <typename T>
absl::StatusOr<ProxyLocker<T>> Store::LockedProxy(
    const T& obj, const ProxyOptions<T>& options) {
  PROXYSTORE_ASSIGN_OR_RETURN(proxystore::Proxy<T> p, Proxy(obj, options));
  return ProxyLocker<T>(std::move(p));
}

}  // namespace proxystore

#endif  // PROXYSTORE_STORE_STORE_INL_H_
