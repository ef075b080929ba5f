// Concurrency stress of a Store over the "file" connector
// (testing/stress.h has the scenario): many threads, a seeded random mix of
// every store and proxy operation on one directory, then every acknowledged
// object checked through a fresh connector.
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/file/file_connector.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/status_matchers.h"
#include "proxystore/testing/stress.h"

namespace proxystore {
namespace {

using ::proxystore::testing::RunStoreStress;
using ::proxystore::testing::StressOptions;
using ::proxystore::testing::StressSummary;

TEST(FileStress, ManyThreadsLoseNothing) {
  const std::string dir =
      absl::StrCat(testing::TestTempDir(), "/file-stress-objects");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::Create({"file", {{"directory", dir}}}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("file-stress", std::move(c), {.metrics = true}));
  StressOptions options;
  options.seed = 11;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(StressSummary s,
                                  RunStoreStress(store, options));
  ExpectStressHeld(s, options);
  // One published file per live object; no temporaries left behind.
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
    ++files;
  }
  EXPECT_EQ(files, static_cast<size_t>(s.objects_verified));
  EXPECT_THAT(store->Close(CloseOptions{.clear = true}), testing::IsOk());
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace proxystore
