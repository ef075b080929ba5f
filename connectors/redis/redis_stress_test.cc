// Concurrency stress of a Store over the "redis" connector against a private
// redis-server (testing/stress.h has the scenario): many threads sharing the
// connector's connection pool, a seeded random mix of every store and proxy
// operation, then every acknowledged object checked through a fresh
// connector.
#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"
#include "proxystore/testing/stress.h"

namespace proxystore {
namespace {

using ::proxystore::testing::RedisServer;
using ::proxystore::testing::RunStoreStress;
using ::proxystore::testing::StressOptions;
using ::proxystore::testing::StressSummary;

TEST(RedisStress, ManyThreadsLoseNothing) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisConnector> c,
      RedisConnector::Create({"redis",
                              {{"host", server->host()},
                               {"port", absl::StrCat(server->port())}}}));
  const std::string prefix = c->prefix();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("redis-stress", std::move(c), {.metrics = true}));
  StressOptions options;
  options.seed = 31;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(StressSummary s,
                                  RunStoreStress(store, options));
  ExpectStressHeld(s, options);
  // One Redis key per live object.
  EXPECT_EQ(server->CountKeys(prefix), s.objects_verified);
  EXPECT_THAT(store->Close(CloseOptions{.clear = true}), testing::IsOk());
  EXPECT_EQ(server->CountKeys(prefix), 0);
}

}  // namespace
}  // namespace proxystore
