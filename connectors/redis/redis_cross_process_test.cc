// Proxies made here resolve in a separate child process through the
// RedisConnector (testing/cross_process.h has the scenario), against a private
// redis-server.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/cross_process.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

TEST(CrossProcess, RedisConnectorProxiesResolveInAChildProcess) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<testing::RedisServer> server,
                                  testing::RedisServer::Start());
  ConnectorConfig config{"redis",
                         {{"host", server->host()},
                          {"port", absl::StrCat(server->port())},
                          {"db", "1"}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(config));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                                  Store::Create("xproc-redis", std::move(c)));
  testing::ExpectProxiesResolveInChildProcess(store, 5'000'000);
  EXPECT_THAT(store->Close(), testing::IsOk());
}

}  // namespace
}  // namespace proxystore
