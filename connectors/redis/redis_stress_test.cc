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
#include "connectors/redis/redis_connector.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "testing/redis_server.h"
#include "testing/status_matchers.h"
#include "testing/stress.h"

namespace proxystore {
namespace {

using ::proxystore::testing::RedisServer;
using ::proxystore::testing::RunStoreStress;
using ::proxystore::testing::StressOptions;
using ::proxystore::testing::StressSummary;

// How many keys the server holds under `prefix` (SCAN MATCH, so the
// connector's own view does not count).
int64_t CountKeys(const RedisServer& server, const std::string& prefix) {
  redisContext* c = redisConnect(server.host().c_str(), server.port());
  if (c == nullptr || c->err != 0) {
    if (c != nullptr) redisFree(c);
    return -1;
  }
  int64_t n = 0;
  std::string cursor = "0";
  const std::string pattern = absl::StrCat(prefix, "*");
  do {
    const char* argv[] = {"SCAN",          cursor.c_str(), "MATCH",
                          pattern.c_str(), "COUNT",        "1000"};
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, 6, argv, nullptr));
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
      if (r != nullptr) freeReplyObject(r);
      redisFree(c);
      return -1;
    }
    cursor.assign(r->element[0]->str, r->element[0]->len);
    n += static_cast<int64_t>(r->element[1]->elements);
    freeReplyObject(r);
  } while (cursor != "0");
  redisFree(c);
  return n;
}

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
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(s.threads, 8);
  EXPECT_EQ(s.ops, 8 * options.ops_per_thread);
  EXPECT_TRUE(s.metrics_checked);
  EXPECT_EQ(s.lost, 0);
  EXPECT_GT(s.objects_verified, 0);
  EXPECT_GT(s.evictions_verified, 0);
  EXPECT_EQ(s.objects_verified + s.evictions_verified, s.puts) << s.ToString();
  // One Redis key per live object.
  EXPECT_EQ(CountKeys(*server, prefix), s.objects_verified);
  EXPECT_THAT(store->Close(CloseOptions{.clear = true}), testing::IsOk());
  EXPECT_EQ(CountKeys(*server, prefix), 0);
}

}  // namespace
}  // namespace proxystore
