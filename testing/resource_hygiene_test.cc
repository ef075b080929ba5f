// After stores over file, shm, redis and multi are stressed and closed with
// clear, nothing of ours is left: no /dev/shm segments of the namespaces
// used, no files or directories under the temp directories used, no Redis
// keys under the prefixes used, no mappings of our segments, no file
// descriptors (files, segments, Redis connections), and no stray references
// to the store.
#include <dirent.h>
#include <hiredis/hiredis.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/file/file_connector.h"
#include "proxystore/connectors/local/local_connector.h"
#include "proxystore/connectors/multi/multi_connector.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/connectors/shm/shm_connector.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"
#include "proxystore/testing/stress.h"

namespace proxystore::testing {
namespace {

namespace fs = std::filesystem;

// Entries of /dev/shm whose names start with "proxystore.<ns>.".
std::vector<std::string> ShmEntries(const std::string& ns) {
  const std::string prefix = absl::StrCat("proxystore.", ns, ".");
  std::vector<std::string> out;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (const struct dirent* e = ::readdir(d)) {
      if (absl::StartsWith(e->d_name, prefix)) out.push_back(e->d_name);
    }
    ::closedir(d);
  }
  return out;
}

// Lines of /proc/self/maps that mention `needle`.
std::vector<std::string> Mappings(const std::string& needle) {
  std::vector<std::string> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (absl::StrContains(line, needle)) out.push_back(line);
  }
  return out;
}

// Open file descriptors of this process, by what they point to.
std::vector<std::string> OpenFds() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/self/fd", ec)) {
    std::error_code link_ec;
    out.push_back(fs::read_symlink(e.path(), link_ec).string());
  }
  return out;
}

// Files and directories under `dir` (0 if it does not exist).
int64_t CountTree(const std::string& dir) {
  int64_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

StressOptions HygieneOptions(uint64_t seed) {
  StressOptions o;
  o.seed = seed;
#ifdef PROXYSTORE_SANITIZER
  o.ops_per_thread = 100;
#else
  o.ops_per_thread = 150;
#endif
  return o;
}

class ResourceHygiene : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // One-time process state (the resolve pool's threads, the logger, the
    // randomness behind key ids) is set up here, before any baseline.
    absl::StatusOr<std::unique_ptr<LocalConnector>> c =
        LocalConnector::Create();
    ASSERT_THAT(c.status(), IsOk());
    absl::StatusOr<std::shared_ptr<Store>> store =
        Store::Create("hygiene-warmup", *std::move(c));
    ASSERT_THAT(store.status(), IsOk());
    StressOptions o = HygieneOptions(1);
    o.ops_per_thread = 20;
    o.print = false;
    ASSERT_THAT(RunStoreStress(*store, o).status(), IsOk());
    ASSERT_THAT((*store)->Close(CloseOptions{.clear = true}), IsOk());
  }

  // Stresses `store`, checks that the backend holds exactly the live objects
  // (`count` counts them), closes with clear, and checks that the backend is
  // empty and that the store leaves nothing behind once dropped.
  void StressAndClear(std::shared_ptr<Store> store,
                      const std::function<int64_t()>& count,
                      const std::vector<std::string>& fds_before,
                      uint64_t seed) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        StressSummary s, RunStoreStress(store, HygieneOptions(seed)));
    if (!s.ok()) {
      ADD_FAILURE() << s.ToString();
      (void)store->Close(CloseOptions{.clear = true});  // Leave nothing.
      return;
    }
    EXPECT_EQ(count(), s.objects_verified)
        << "the backend must hold exactly the live objects";
    EXPECT_THAT(store->Close(CloseOptions{.clear = true}), IsOk());
    EXPECT_EQ(count(), 0);
    // Nobody else holds the store: the harness unregistered it and proxies'
    // factories hold it weakly.
    EXPECT_EQ(store.use_count(), 1);
    EXPECT_EQ(GetStore(s.store_name), nullptr);
    store.reset();
    EXPECT_EQ(OpenFds(), fds_before) << "file descriptors leaked";
  }
};

TEST_F(ResourceHygiene, FileLeavesNoFiles) {
  const std::string base = absl::StrCat(TestTempDir(), "/hygiene-file");
  const std::string dir = base + "/objects";
  const std::vector<std::string> fds = OpenFds();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Connector> c,
      MakeConnector({"file", {{"directory", dir}}}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("hygiene-file", std::move(c), {.metrics = true}));
  StressAndClear(
      std::move(store), [&] { return CountTree(dir); }, fds, 101);
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_EQ(CountTree(base), 0);
}

TEST_F(ResourceHygiene, ShmLeavesNoSegmentsOrMappings) {
  const std::vector<std::string> fds = OpenFds();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShmConnector> c,
                                  ShmConnector::Create({"shm", {}}));
  const std::string ns = c->segment_namespace();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("hygiene-shm", std::move(c), {.metrics = true}));
  StressAndClear(
      std::move(store),
      [&] { return static_cast<int64_t>(ShmEntries(ns).size()); }, fds, 102);
  EXPECT_TRUE(ShmEntries(ns).empty());
  EXPECT_TRUE(Mappings(absl::StrCat("/dev/shm/proxystore.", ns)).empty())
      << "views of our segments are still mapped";
}

TEST_F(ResourceHygiene, RedisLeavesNoKeysOrConnections) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start());
  const std::vector<std::string> fds = OpenFds();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisConnector> c,
      RedisConnector::Create({"redis",
                              {{"host", server->host()},
                               {"port", absl::StrCat(server->port())}}}));
  const std::string prefix = c->prefix();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("hygiene-redis", std::move(c), {.metrics = true}));
  StressAndClear(
      std::move(store), [&] { return server->CountKeys(prefix); }, fds, 103);
  EXPECT_EQ(server->CountKeys(prefix), 0);
  // Nothing else on the server either: the store used only its prefix.
  EXPECT_EQ(server->CountKeys(""), 0);
}

TEST_F(ResourceHygiene, MultiLeavesNothingInEitherChild) {
  const std::string dir = absl::StrCat(TestTempDir(), "/hygiene-multi");
  const std::vector<std::string> fds = OpenFds();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShmConnector> shm,
                                  ShmConnector::Create({"shm", {}}));
  const std::string ns = shm->segment_namespace();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> file,
      FileConnector::Create({"file", {{"directory", dir}}}));
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"small", std::move(shm), {.max_size_bytes = 4096}});
  entries.push_back({"large", std::move(file), {.min_size_bytes = 4097}});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<MultiConnector> multi,
                                  MultiConnector::Create(std::move(entries)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("hygiene-multi", std::move(multi), {.metrics = true}));
  StressAndClear(
      std::move(store),
      [&] {
        return static_cast<int64_t>(ShmEntries(ns).size()) + CountTree(dir);
      },
      fds, 104);
  EXPECT_TRUE(ShmEntries(ns).empty());
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_TRUE(Mappings(absl::StrCat("/dev/shm/proxystore.", ns)).empty());
}

}  // namespace
}  // namespace proxystore::testing
