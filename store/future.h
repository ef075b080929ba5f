// Future<T>: a proxy of an object that does not exist yet (ProxyStore's
// store.future / PollingStoreFactory, TPDS'24 "proxy futures").
//
//   absl::StatusOr<Future<Matrix>> f = store->Future<Matrix>();
//   Send(f->Proxy().Serialize());          // the consumer starts now ...
//   ... compute ...
//   f->SetResult(result);                  // ... and its proxy resolves
//
// The key is minted by the connector at once (Connector::NewKey); SetResult
// writes it once (Connector::Set; a second SetResult is AlreadyExists). A
// proxy of the future, here or in any process that receives it serialized,
// reads the key when resolved and, while it is missing, waits as
// FutureOptions::polling says (interval, backoff factor, interval limit,
// timeout -> DeadlineExceeded naming the key). A producer that dies before
// SetResult leaves the consumers to their timeout.
//
// Thread-safety: all methods may be called concurrently; a Future is a
// handle (copies refer to the same key and store).
#ifndef PROXYSTORE_STORE_FUTURE_H_
#define PROXYSTORE_STORE_FUTURE_H_

#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
// store.h includes this header after the Store class; included first, this
// header has store.h define Store (and skip this file) before going on.
#include "proxystore/store/store.h"

namespace proxystore {

template <typename T>
class Future {
 public:
  const Key& key() const { return key_; }

  // Serializes and writes the result (once).
  absl::Status SetResult(const T& obj) const {
    return store_->Set(key_, obj, options_.serializer);
  }

  // True once the result is set (the store's Exists).
  absl::StatusOr<bool> Done() const { return store_->Exists(key_); }

  // Waits for the result as the polling options say; `timeout` replaces
  // their timeout (std::nullopt: theirs). DeadlineExceeded naming the key
  // when it passes. With FutureOptions::evict, the object is evicted once
  // read.
  absl::StatusOr<std::shared_ptr<const T>> Result(
      std::optional<absl::Duration> timeout = std::nullopt) const {
    return factory_->ResolveWithin(
        timeout.has_value() ? timeout : options_.polling.timeout);
  }

  // A proxy that resolves to the result, waiting for it if needed. It can
  // be serialized (and sent) before the result exists.
  proxystore::Proxy<T> Proxy() const { return proxystore::Proxy<T>(factory_); }

 private:
  friend class Store;
  Future(std::shared_ptr<Store> store, Key key, FutureOptions<T> options,
         std::shared_ptr<StoreFactory<T>> factory)
      : store_(std::move(store)),
        key_(std::move(key)),
        options_(std::move(options)),
        factory_(std::move(factory)) {}

  std::shared_ptr<Store> store_;
  Key key_;
  FutureOptions<T> options_;
  std::shared_ptr<StoreFactory<T>> factory_;
};

template <typename T>
absl::StatusOr<proxystore::Future<T>> Store::Future(
    const FutureOptions<T>& options) {
  PROXYSTORE_RETURN_IF_ERROR(
      Annotate(options.polling.Validate(),
               absl::StrCat("Store(name=\"", name_, "\").Future")));
  PROXYSTORE_ASSIGN_OR_RETURN(Key key, NewKey(options.connector));
  std::shared_ptr<StoreFactory<T>> factory = MakeStoreFactory<T>(
      key, wire_config_, options.evict, options.deserializer, weak_from_this(),
      options.polling);
  return proxystore::Future<T>(shared_from_this(), std::move(key), options,
                               std::move(factory));
}

}  // namespace proxystore

#endif  // PROXYSTORE_STORE_FUTURE_H_
