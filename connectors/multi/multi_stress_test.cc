// Concurrency stress of a Store over the "multi" connector
// (testing/stress.h has the scenario): small objects go to a "shm" child,
// large ones to a "file" child; many threads, a seeded random mix of every
// store and proxy operation, then every acknowledged object checked through a
// fresh multi connector re-created from the config.
#include <dirent.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/file/file_connector.h"
#include "proxystore/connectors/multi/multi_connector.h"
#include "proxystore/connectors/shm/shm_connector.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/status_matchers.h"
#include "proxystore/testing/stress.h"

namespace proxystore {
namespace {

using ::proxystore::testing::RunStoreStress;
using ::proxystore::testing::StressOptions;
using ::proxystore::testing::StressSummary;

constexpr uint64_t kSmallMax = 4096;

int CountSegments(const std::string& ns) {
  const std::string prefix = absl::StrCat("proxystore.", ns, ".");
  int n = 0;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (const struct dirent* e = ::readdir(d)) {
      n += absl::StartsWith(e->d_name, prefix);
    }
    ::closedir(d);
  }
  return n;
}

int CountFiles(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    (void)e;
    ++n;
  }
  return n;
}

TEST(MultiStress, ShmSmallFileLargeLoseNothing) {
  const std::string dir =
      absl::StrCat(testing::TestTempDir(), "/multi-stress-large");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShmConnector> shm,
                                  ShmConnector::Create({"shm", {}}));
  const std::string ns = shm->segment_namespace();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> file,
      FileConnector::Create({"file", {{"directory", dir}}}));
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"small", std::move(shm), {.max_size_bytes = kSmallMax}});
  entries.push_back(
      {"large", std::move(file), {.min_size_bytes = kSmallMax + 1}});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<MultiConnector> multi,
                                  MultiConnector::Create(std::move(entries)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("multi-stress", std::move(multi), {.metrics = true}));
  // Segments outlive the process: remove them even if an assertion fails.
  absl::Cleanup clear = [&] {
    (void)store->Close(CloseOptions{.clear = true});
  };
  StressOptions options;
  options.seed = 41;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(StressSummary s,
                                  RunStoreStress(store, options));
  ExpectStressHeld(s, options);
  // Both children hold objects (values are 100 B - 64 KB), one entry per
  // live object in all.
  const int segments = CountSegments(ns);
  const int files = CountFiles(dir);
  EXPECT_GT(segments, 0);
  EXPECT_GT(files, 0);
  EXPECT_EQ(segments + files, s.objects_verified);
  EXPECT_THAT(store->Close(CloseOptions{.clear = true}), testing::IsOk());
  EXPECT_EQ(CountSegments(ns), 0);
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace proxystore
