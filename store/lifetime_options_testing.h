// Test helpers: per-call options that associate objects with a lifetime.
#ifndef PROXYSTORE_STORE_LIFETIME_OPTIONS_TESTING_H_
#define PROXYSTORE_STORE_LIFETIME_OPTIONS_TESTING_H_

#include <string>

#include "proxystore/store/lifetimes.h"
#include "proxystore/store/store.h"

namespace proxystore::testing {

// Put/PutBatch options with `lifetime`.
inline StorePutOptions<std::string> With(Lifetime& lifetime) {
  StorePutOptions<std::string> o;
  o.lifetime = &lifetime;
  return o;
}
// Proxy/ProxyBatch/ProxyFromKey options with `lifetime`.
inline ProxyOptions<std::string> ProxyWith(Lifetime& lifetime) {
  ProxyOptions<std::string> o;
  o.lifetime = &lifetime;
  return o;
}

}  // namespace proxystore::testing

#endif  // PROXYSTORE_STORE_LIFETIME_OPTIONS_TESTING_H_
