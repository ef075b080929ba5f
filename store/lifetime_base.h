// Lifetime: the interface through which Store::Put, PutBatch, Proxy,
// ProxyBatch and ProxyFromKey associate the objects they store with a
// lifetime (ProxyStore's `lifetime=` argument). The implementations
// (ContextLifetime, LeaseLifetime, StaticLifetime) are in lifetimes.h.
//
// A lifetime records keys; when it ends (Close) it evicts every recorded
// object from its store. An ended lifetime rejects new keys.
//
// Thread-safety: implementations are safe to use from many threads.
#ifndef PROXYSTORE_STORE_LIFETIME_BASE_H_
#define PROXYSTORE_STORE_LIFETIME_BASE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "proxystore/base/key.h"
#include "proxystore/base/status.h"
#include "proxystore/proxy/proxy.h"

namespace proxystore {

// Defined in factory_impl.h.
template <typename T>
absl::StatusOr<Key> GetKey(const Proxy<T>& p);

class Lifetime {
 public:
  virtual ~Lifetime() = default;

  // Associates objects with the lifetime. The keys must belong to the store
  // the lifetime evicts from. FailedPrecondition naming the lifetime if it
  // has ended (nothing is recorded then).
  virtual absl::Status AddKeys(absl::Span<const Key> keys) = 0;
  absl::Status AddKey(const Key& key) { return AddKeys({&key, 1}); }
  // Associates the object a store proxy refers to. FailedPrecondition if the
  // proxy's factory is not a StoreFactory, or if the lifetime has ended.
  template <typename T>
  absl::Status AddProxy(const Proxy<T>& proxy) {
    PROXYSTORE_ASSIGN_OR_RETURN(Key key, GetKey(proxy));
    return AddKey(key);
  }

  // True once the lifetime has ended (it no longer accepts keys).
  virtual bool done() const = 0;
  // Ends the lifetime and evicts every associated object (a missing object
  // is fine). Idempotent: later calls return OK. Tries every key and returns
  // the first eviction error.
  virtual absl::Status Close() = 0;
  // Used in log lines and errors.
  virtual const std::string& name() const = 0;
};

}  // namespace proxystore

#endif  // PROXYSTORE_STORE_LIFETIME_BASE_H_
