// StoreFactory<T>: the factory inside every store-backed proxy.
//
// It holds a key, the config of the store that made it, an evict flag and a
// deserializer choice (ProxyStore's StoreFactory). Resolve() finds the store
// (the one that made the factory if it is still alive in this process, else
// the registered store with that name, else a new store made from the config
// and registered), then gets the object. A missing object is NotFound naming
// the key, the store and its connector kind (ProxyStore's
// ProxyResolveMissingKeyError). With evict, the object is evicted after a
// successful resolve, so any later resolve anywhere fails with NotFound.
//
// ResolveAsync() starts the resolve on a small process-wide background pool;
// the next Resolve() waits for it and takes its result.
//
// Serialize() writes key + store config + flags + the proxied type's name
// with FlatBuffers; ParseProxy<T>() verifies the bytes, checks that they were
// made for T, and returns an unresolved proxy.
//
// Thread-safety: all methods may be called concurrently.
#ifndef PROXYSTORE_STORE_FACTORY_H_
#define PROXYSTORE_STORE_FACTORY_H_

// StoreFactory, ParseProxy, GetKey, GetStore, GetMetrics and ResolveAsync are
// defined in factory_impl.h, which store.h includes after the Store class.
#include "proxystore/store/store.h"  // IWYU pragma: export

#endif  // PROXYSTORE_STORE_FACTORY_H_
