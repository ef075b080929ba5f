// The cross-process proxy test, shared by every connector that crosses a
// process boundary (file, shm, redis, multi).
//
// The parent (the calling test) puts objects through `store`, creates proxies
// (some with evict=true, one of an already-evicted object), writes only their
// serialized bytes into a manifest file, and starts testing/proxy_child as a
// separate process. The child parses each proxy, resolves it through the
// connector named in the proxy's embedded config, checks the value (or the
// NotFound error), and exits 0 only if everything matched. The parent then
// checks that evict=true proxies removed their objects.
//
//   TEST(FileConnector, ProxiesResolveInAnotherProcess) {
//     ... make `store` over a FileConnector ...
//     proxystore::testing::ExpectProxiesResolveInChildProcess(store);
//   }
#ifndef PROXYSTORE_TESTING_CROSS_PROCESS_H_
#define PROXYSTORE_TESTING_CROSS_PROCESS_H_

#include <memory>
#include <string>

#include "proxystore/store/store.h"

namespace proxystore::testing {

// Runs the scenario above with gtest assertions. `large_bytes` sets the size
// of the largest object sent (default 1 MB).
void ExpectProxiesResolveInChildProcess(const std::shared_ptr<Store>& store,
                                        size_t large_bytes = 1000000);

}  // namespace proxystore::testing

#endif  // PROXYSTORE_TESTING_CROSS_PROCESS_H_
