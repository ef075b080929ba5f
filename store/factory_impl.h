// StoreFactory<T> and the proxy utilities (ParseProxy, GetKey, ...): the
// definitions documented in factory.h. Included by store.h after the Store
// class, which they use; include store.h or factory.h instead.
#ifndef PROXYSTORE_STORE_FACTORY_IMPL_H_
#define PROXYSTORE_STORE_FACTORY_IMPL_H_

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proxystore/base/timer.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/proxy/proxy.h"
#include "proxystore/serializer/serializer.h"
#include "proxystore/store/polling.h"
#include "proxystore/store/store_config.h"

namespace proxystore {

// The serializable part of a StoreFactory.
struct FactoryData {
  Key key;
  StoreConfig store_config;
  bool evict = false;
  std::string deserializer;
  std::string type_name;
  // Set in the proxies of a future (Store::Future): wait for the object.
  std::optional<PollingOptions> polling;

  std::string Serialize() const;
  static absl::StatusOr<FactoryData> Parse(absl::string_view bytes);
};

namespace store_internal {

// Runs `task` on the process-wide resolve pool.
void RunInBackground(std::function<void()> task);

// The store a factory resolves against (see StoreFactory).
absl::StatusOr<std::shared_ptr<Store>> FindStore(
    const std::weak_ptr<Store>& origin, const StoreConfig& config);

absl::Status MissingKeyError(const Key& key, const Store& store);
// DeadlineExceeded: a future's object was not set within the timeout.
absl::Status FutureTimeoutError(const Key& key, const Store& store,
                                absl::Duration waited);
// Sleeps for `d` (a future's polling interval).
void SleepFor(absl::Duration d);
// How long a future's proxy waits in one Connector::WaitFor before it reads
// the key again.
inline constexpr absl::Duration kWaitStretch = absl::Seconds(1);
// InvalidArgument if `serialized` (a proxy as FactoryData::Serialize wrote
// it, signed or not) is larger than any reader accepts.
absl::Status CheckSerializedProxySize(absl::string_view serialized);

// Proxy references: JSON text that names an object in a store Python
// ProxyStore shares (interop/proxy_reference.h has the format). ParseProxy
// reads one with the parser the //interop:proxy_reference library registers
// when it is linked in; `type_name` is the type asked for.
using ReferenceParser = absl::StatusOr<FactoryData> (*)(
    absl::string_view text, absl::string_view type_name);
void SetReferenceParser(ReferenceParser parser);
// Whether `bytes` may be a proxy reference: after whitespace it starts with
// '{' and it names the "proxystore_reference" field.
bool LooksLikeReference(absl::string_view bytes);
// The registered parser's result. FailedPrecondition if none is registered
// (link //interop:proxy_reference); PermissionDenied if proxies must be
// signed (SetProxySigningKey): a reference carries no MAC, so it is refused
// unread.
absl::StatusOr<FactoryData> ParseReference(absl::string_view bytes,
                                           absl::string_view type_name);

}  // namespace store_internal

template <typename T>
class StoreFactory final
    : public Factory<T>,
      public std::enable_shared_from_this<StoreFactory<T>> {
 public:
  StoreFactory(Key key, std::shared_ptr<const StoreConfig> store_config,
               bool evict, std::string deserializer,
               std::weak_ptr<Store> origin = {},
               std::optional<PollingOptions> polling = std::nullopt)
      : key_(std::move(key)),
        store_config_(std::move(store_config)),
        evict_(evict),
        deserializer_(std::move(deserializer)),
        origin_(std::move(origin)),
        polling_(std::move(polling)) {}

  const Key& key() const { return key_; }
  const StoreConfig& store_config() const { return *store_config_; }
  bool evict() const { return evict_; }
  const std::string& deserializer() const { return deserializer_; }
  // Set for a future's proxy (PollingStoreFactory): Resolve waits for the
  // object as these options say.
  const std::optional<PollingOptions>& polling() const { return polling_; }

  // A future's wait: Resolve with `timeout` in place of the polling
  // options' (Future::Result).
  absl::StatusOr<std::shared_ptr<const T>> ResolveWithin(
      std::optional<absl::Duration> timeout) const {
    return ResolveNow(timeout);
  }

  absl::StatusOr<std::shared_ptr<Store>> GetStore() const {
    return store_internal::FindStore(origin_, *store_config_);
  }

  // ProxyStore's StoreFactory.__call__: takes the result of a background
  // resolve if one was started (in this process), else resolves now.
  absl::StatusOr<std::shared_ptr<const T>> Resolve() override {
    // Always timed: whether the store records metrics is known only once
    // the store is found.
    OperationTimer timer(/*enabled=*/true);
    std::future<Result> pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // A background resolve started before a fork never finishes in the
      // child (the thread running it stayed in the parent).
      if (pending_.valid() && pending_pid_ == getpid()) {
        pending = std::move(pending_);
      }
      pending_ = {};
    }
    Result result = pending.valid() ? pending.get() : ResolveNow();
    if (result.ok()) RecordCall(timer);
    return result;
  }

  // Starts resolving on the background pool. Only for factories owned by a
  // std::shared_ptr (as every proxy's is); otherwise a no-op and Resolve()
  // does the work.
  void ResolveAsync() override {
    std::shared_ptr<StoreFactory> self = this->weak_from_this().lock();
    if (self == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.valid() && pending_pid_ == getpid()) return;  // Under way.
    // The promise, not the future's shared state, holds the task: once the
    // task ran, nothing refers back to the factory (no ownership cycle).
    auto promise = std::make_shared<std::promise<Result>>();
    pending_ = promise->get_future();
    pending_pid_ = getpid();
    store_internal::RunInBackground(
        [self, promise] { promise->set_value(self->ResolveNow()); });
  }

  absl::StatusOr<std::string> Serialize() const override {
    std::string wire = FactoryData{key_,
                                   *store_config_,
                                   evict_,
                                   deserializer_,
                                   std::string(TypeName<T>()),
                                   polling_}
                           .Serialize();
    PROXYSTORE_RETURN_IF_ERROR(store_internal::CheckSerializedProxySize(wire));
    return wire;
  }

 private:
  using Result = absl::StatusOr<std::shared_ptr<const T>>;

  void RecordCall(OperationTimer& timer) const {
    absl::StatusOr<std::shared_ptr<Store>> store = GetStore();
    if (!store.ok()) return;
    if (StoreMetrics* m = (*store)->metrics()) {
      m->AddTime("factory.call", key_, timer.Stop());
    }
  }

  Result ResolveNow() const {
    return ResolveNow(polling_.has_value() ? polling_->timeout : std::nullopt);
  }

  Result ResolveNow(std::optional<absl::Duration> timeout) const {
    OperationTimer timer(/*enabled=*/true);
    absl::StatusOr<std::shared_ptr<Store>> store = GetStore();
    if (!store.ok()) {
      return Annotate(
          store.status(),
          absl::StrCat("resolving key \"", key_.id(), "\": cannot get store \"",
                       store_config_->name, "\""));
    }
    StoreGetOptions<T> options;
    if (!deserializer_.empty()) {
      absl::StatusOr<DeserializerFn<T>> fn = FindDeserializer<T>(deserializer_);
      if (!fn.ok()) {
        return Annotate(fn.status(),
                        absl::StrCat("resolving key \"", key_.id(), "\""));
      }
      options.deserializer = *std::move(fn);
    }
    PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const T> obj,
                                (*store)->template Get<T>(key_, options));
    if (obj == nullptr && polling_.has_value()) {
      // PollingStoreFactory: read again after each interval until the
      // object is there or the timeout has passed.
      const absl::Time start = absl::Now();
      absl::Duration interval = polling_->interval;
      int64_t polls = 1;
      while (obj == nullptr) {
        const absl::Duration waited = absl::Now() - start;
        if (timeout.has_value() && waited >= *timeout) {
          return store_internal::FutureTimeoutError(key_, **store, waited);
        }
        // Where the connector can wait for the key (Connector::WaitFor), a
        // Set ends the wait at once, so it waits in stretches of at least
        // store_internal::kWaitStretch (a wait may cost a watch or a
        // connection; the key is read again after each stretch, which also
        // bounds how late a change the backend does not report is seen);
        // elsewhere the interval is slept out.
        const absl::Duration left =
            timeout.has_value() ? *timeout - waited : absl::InfiniteDuration();
        absl::StatusOr<bool> woke = absl::UnimplementedError("");
        if (waits_) {
          woke = (*store)->connector().WaitFor(
              key_,
              std::min(std::max(interval, store_internal::kWaitStretch), left));
          if (absl::IsUnimplemented(woke.status())) waits_ = false;
        }
        if (absl::IsUnimplemented(woke.status())) {
          store_internal::SleepFor(std::min(interval, left));
        } else if (!woke.ok()) {
          return Annotate(woke.status(),
                          absl::StrCat("waiting for key \"", key_.id(), "\""));
        }
        // Duration * double saturates; no interval grows past the longest
        // one the options may start with.
        interval = std::min(interval * polling_->backoff_factor,
                            PollingOptions::kMaxInterval);
        if (polling_->interval_limit.has_value()) {
          interval = std::min(interval, *polling_->interval_limit);
        }
        PROXYSTORE_ASSIGN_OR_RETURN(obj,
                                    (*store)->template Get<T>(key_, options));
        ++polls;
      }
      if (StoreMetrics* m = (*store)->metrics()) {
        m->AddTime("factory.wait", key_,
                   absl::ToInt64Nanoseconds(absl::Now() - start));
        m->AddAttribute("factory.polls", key_, polls);
      }
    }
    if (obj == nullptr) return store_internal::MissingKeyError(key_, **store);
    if (evict_) {
      PROXYSTORE_RETURN_IF_ERROR(Annotate(
          (*store)->Evict(key_), absl::StrCat("resolved key \"", key_.id(),
                                              "\" but evicting it failed")));
    }
    if (StoreMetrics* m = (*store)->metrics()) {
      m->AddTime("factory.resolve", key_, timer.Stop());
    }
    return obj;
  }

  const Key key_;
  const std::shared_ptr<const StoreConfig> store_config_;
  const bool evict_;
  const std::string deserializer_;
  const std::weak_ptr<Store> origin_;
  const std::optional<PollingOptions> polling_;
  // False once the connector said it cannot wait for a key (then polls).
  mutable std::atomic<bool> waits_{true};
  std::mutex mu_;
  std::future<Result> pending_;  // Guarded by mu_.
  pid_t pending_pid_ = 0;        // Guarded by mu_.
};

template <typename T>
std::shared_ptr<StoreFactory<T>> MakeStoreFactory(
    Key key, std::shared_ptr<const StoreConfig> config, bool evict,
    std::string deserializer, std::weak_ptr<Store> origin,
    std::optional<PollingOptions> polling = std::nullopt) {
  return std::make_shared<StoreFactory<T>>(
      std::move(key), std::move(config), evict, std::move(deserializer),
      std::move(origin), std::move(polling));
}

// Rebuilds an unresolved proxy from Proxy<T>::Serialize() bytes, or from a
// proxy reference (JSON text; interop/proxy_reference.h) where
// //interop:proxy_reference is linked in. DataLoss for bytes that are not a
// serialized proxy; InvalidArgument if they were made for another type than
// T; a reference's errors are its parser's.
template <typename T>
absl::StatusOr<Proxy<T>> ParseProxy(absl::string_view bytes) {
  absl::StatusOr<FactoryData> parsed = FactoryData::Parse(bytes);
  if (!parsed.ok() && store_internal::LooksLikeReference(bytes)) {
    parsed = store_internal::ParseReference(bytes, TypeName<T>());
  }
  PROXYSTORE_ASSIGN_OR_RETURN(FactoryData data, std::move(parsed));
  if (data.type_name != TypeName<T>()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ParseProxy: the proxy was made for type ", data.type_name,
                     ", not ", TypeName<T>()));
  }
  return Proxy<T>(MakeStoreFactory<T>(
      std::move(data.key),
      std::make_shared<const StoreConfig>(std::move(data.store_config)),
      data.evict, std::move(data.deserializer), {}, std::move(data.polling)));
}

// ProxyLocker form of ParseProxy.
template <typename T>
absl::StatusOr<ProxyLocker<T>> ParseProxyLocker(absl::string_view bytes) {
  PROXYSTORE_ASSIGN_OR_RETURN(Proxy<T> p, ParseProxy<T>(bytes));
  return ProxyLocker<T>(std::move(p));
}

// ProxyStore's store utilities: FailedPrecondition ("The proxy must contain a
// factory with type StoreFactory") for proxies of other factories.
template <typename T>
absl::StatusOr<const StoreFactory<T>*> GetStoreFactory(const Proxy<T>& p) {
  auto* f = dynamic_cast<const StoreFactory<T>*>(p.factory().get());
  if (f == nullptr) {
    return absl::FailedPreconditionError(
        "The proxy must contain a factory with type StoreFactory");
  }
  return f;
}
template <typename T>
absl::StatusOr<Key> GetKey(const Proxy<T>& p) {
  PROXYSTORE_ASSIGN_OR_RETURN(const StoreFactory<T>* f, GetStoreFactory(p));
  return f->key();
}
template <typename T>
absl::StatusOr<std::shared_ptr<Store>> GetStore(const Proxy<T>& p) {
  PROXYSTORE_ASSIGN_OR_RETURN(const StoreFactory<T>* f, GetStoreFactory(p));
  return f->GetStore();
}
// What the proxy's store recorded for the proxy's key (StoreMetrics::
// GetMetrics): std::nullopt if nothing was recorded; FailedPrecondition if
// the proxy is not a store proxy or its store has metrics disabled.
template <typename T>
absl::StatusOr<std::optional<Metrics>> GetMetrics(const Proxy<T>& p) {
  PROXYSTORE_ASSIGN_OR_RETURN(const StoreFactory<T>* f, GetStoreFactory(p));
  PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, f->GetStore());
  if (store->metrics() == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "GetMetrics: store \"", store->name(), "\" has metrics disabled"));
  }
  return store->metrics()->GetMetrics(f->key());
}

template <typename T>
absl::Status ResolveAsync(const Proxy<T>& p) {
  PROXYSTORE_RETURN_IF_ERROR(GetStoreFactory(p).status());
  p.ResolveAsync();
  return absl::OkStatus();
}

}  // namespace proxystore

#endif  // PROXYSTORE_STORE_FACTORY_IMPL_H_
