// Proxies of a Store over a MultiConnector resolve in a separate child
// process (testing/cross_process.h has the scenario). Small objects go to one
// "file" child, large ones to another (both reachable from any process on
// this host), and a third child, for another host, is dormant in both
// processes: the child re-creates the whole multi connector from the config
// embedded in each proxy.
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/multi/multi_connector.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/cross_process.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

ConnectorConfig FileChild(const std::string& dir) {
  return {"file", {{"directory", dir}}};
}

TEST(MultiCrossProcess, ProxiesResolveInAChildProcess) {
  // A short base directory: every proxy carries the multi config, which
  // names all three directories, and the scenario checks that proxies stay
  // under 1 KB.
  char base_template[] = "/tmp/pmXXXXXX";
  ASSERT_NE(::mkdtemp(base_template), nullptr);
  const std::string base = base_template;
  const std::string small_dir = base + "/s";
  const std::string large_dir = base + "/l";
  const std::string dormant_dir = base + "/d";
  Policy small;
  small.max_size_bytes = 4096;
  Policy large;
  large.min_size_bytes = 4097;
  Policy elsewhere;
  elsewhere.priority = 100;  // Would take every object if it were active.
  elsewhere.host_patterns = {"no-such-host-.*"};
  const ConnectorConfig config{
      "multi",
      {},
      {{"elsewhere", FileChild(dormant_dir), elsewhere},
       {"small", FileChild(small_dir), small},
       {"large", FileChild(large_dir), large}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(config));
  ASSERT_TRUE(dynamic_cast<MultiConnector&>(*c).IsDormant("elsewhere"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                                  Store::Create("xproc-multi", std::move(c)));

  testing::ExpectProxiesResolveInChildProcess(store);

  // Both file children were used (the scenario sends small values and a
  // 1 MB one); the dormant one never was.
  namespace fs = std::filesystem;
  auto files_in = [](const std::string& dir) {
    size_t n = 0;
    if (fs::exists(dir)) {
      for (const auto& e : fs::directory_iterator(dir)) {
        n += e.is_regular_file();
      }
    }
    return n;
  };
  EXPECT_GT(files_in(small_dir), 0u);
  EXPECT_GT(files_in(large_dir), 0u);
  EXPECT_FALSE(fs::exists(dormant_dir));
  EXPECT_THAT(store->Close(), testing::IsOk());
  std::error_code ec;
  fs::remove_all(base, ec);
}

}  // namespace
}  // namespace proxystore
