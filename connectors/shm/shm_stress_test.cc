// Concurrency stress of a Store over the "shm" connector
// (testing/stress.h has the scenario): many threads, a seeded random mix of
// every store and proxy operation on one namespace, then every acknowledged
// object checked through a fresh connector.
#include <dirent.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/shm/shm_connector.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/status_matchers.h"
#include "proxystore/testing/stress.h"

namespace proxystore {
namespace {

using ::proxystore::testing::RunStoreStress;
using ::proxystore::testing::StressOptions;
using ::proxystore::testing::StressSummary;

// /dev/shm entries of namespace `ns`: objects, and temporaries (which have
// ".." in their names).
struct Segments {
  int objects = 0;
  int temporaries = 0;
};
Segments CountSegments(const std::string& ns) {
  const std::string prefix = absl::StrCat("proxystore.", ns, ".");
  Segments n;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (const struct dirent* e = ::readdir(d)) {
      if (!absl::StartsWith(e->d_name, prefix)) continue;
      if (absl::StrContains(e->d_name, "..")) {
        ++n.temporaries;
      } else {
        ++n.objects;
      }
    }
    ::closedir(d);
  }
  return n;
}

TEST(ShmStress, ManyThreadsLoseNothing) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShmConnector> c,
                                  ShmConnector::Create({"shm", {}}));
  const std::string ns = c->segment_namespace();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("shm-stress", std::move(c), {.metrics = true}));
  // Segments outlive the process: remove them even if an assertion fails.
  absl::Cleanup clear = [&] {
    (void)store->Close(CloseOptions{.clear = true});
  };
  StressOptions options;
  options.seed = 21;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(StressSummary s,
                                  RunStoreStress(store, options));
  ExpectStressHeld(s, options);
  // One segment per live object; no temporaries left behind.
  Segments before = CountSegments(ns);
  EXPECT_EQ(before.objects, s.objects_verified);
  EXPECT_EQ(before.temporaries, 0);
  EXPECT_THAT(store->Close(CloseOptions{.clear = true}), testing::IsOk());
  Segments after = CountSegments(ns);
  EXPECT_EQ(after.objects + after.temporaries, 0);
}

}  // namespace
}  // namespace proxystore
