// Proxies made here resolve in a separate child process (testing/proxy_child)
// through the shm connector: the child re-creates the connector from the
// proxy's embedded config and maps the parent's segments.
#include <dirent.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/shm/shm_connector.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/cross_process.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

// How many /dev/shm entries namespace `ns` has.
int CountSegments(const std::string& ns) {
  const std::string prefix = absl::StrCat("proxystore.", ns, ".");
  int n = 0;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (const struct dirent* e = ::readdir(d)) {
      if (absl::StartsWith(e->d_name, prefix)) ++n;
    }
    ::closedir(d);
  }
  return n;
}

TEST(ShmCrossProcess, ProxiesResolveInAChildProcess) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShmConnector> c,
                                  ShmConnector::Create({"shm", {}}));
  const std::string ns = c->segment_namespace();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                                  Store::Create("xproc-shm", std::move(c)));
  testing::ExpectProxiesResolveInChildProcess(store, 3'000'000);
  EXPECT_GT(CountSegments(ns), 0);
  EXPECT_THAT(store->Close(CloseOptions{.clear = true}), testing::IsOk());
  EXPECT_EQ(CountSegments(ns), 0);
}

}  // namespace
}  // namespace proxystore
