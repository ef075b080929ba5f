// Proxies made here resolve in a separate child process through the
// FileConnector (testing/cross_process.h has the scenario).
#include "proxystore/testing/cross_process.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

TEST(CrossProcess, FileConnectorProxiesResolveInAChildProcess) {
  ConnectorConfig config{
      "file", {{"directory", absl::StrCat(testing::TestTempDir(), "/xproc")}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(config));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                                  Store::Create("xproc-file", std::move(c)));
  testing::ExpectProxiesResolveInChildProcess(store);
  EXPECT_THAT(store->Close(), testing::IsOk());
}

}  // namespace
}  // namespace proxystore
