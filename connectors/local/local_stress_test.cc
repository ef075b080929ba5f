// Concurrency stress of a Store over the "local" connector
// (testing/stress.h has the scenario): many threads, a seeded random mix of
// every store and proxy operation, then every acknowledged object checked.
#include <memory>
#include <utility>

#include "gtest/gtest.h"
#include "proxystore/connectors/local/local_connector.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/status_matchers.h"
#include "proxystore/testing/stress.h"

namespace proxystore {
namespace {

using ::proxystore::testing::RunStoreStress;
using ::proxystore::testing::StressOptions;
using ::proxystore::testing::StressSummary;

void RunLocal(const char* name, StoreOptions store_options, uint64_t seed) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> c,
                                  LocalConnector::Create());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create(name, std::move(c), std::move(store_options)));
  StressOptions options;
  options.seed = seed;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(StressSummary s,
                                  RunStoreStress(store, options));
  ExpectStressHeld(s, options);
  EXPECT_GT(s.shared_resolves, 0);
  EXPECT_GT(s.serialized_resolves, 0);
  EXPECT_GT(s.async_resolves, 0);
  EXPECT_THAT(store->Close(CloseOptions{.clear = true}), testing::IsOk());
}

TEST(LocalStress, ManyThreadsLoseNothing) {
  RunLocal("local-stress", {.cache_size = 16, .metrics = true}, 1);
}

// Without a cache every read reaches the connector.
TEST(LocalStress, ManyThreadsLoseNothingWithoutCache) {
  RunLocal("local-stress-nocache", {.cache_size = 0, .metrics = true}, 2);
}

}  // namespace
}  // namespace proxystore
