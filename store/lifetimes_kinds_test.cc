// Lifetimes and owners end their objects on every connector kind: local,
// file, shm, redis (a real redis-server) and multi (a local and a file
// child). Also: a lease that expires while other threads resolve proxies of
// its object (each resolution gets the whole object or NotFound, never torn
// bytes), and a static lifetime evicting at the exit of a child process.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/key.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/store/lifetime_options_testing.h"
#include "proxystore/store/lifetimes.h"
#include "proxystore/store/ref.h"
#include "proxystore/store/store.h"
#include "proxystore/store/store_config.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::ProxyWith;
using ::proxystore::testing::StatusIs;
using ::proxystore::testing::With;
using ::testing::HasSubstr;

constexpr char kStaticChildFlag[] = "--static-lifetime-child";
constexpr size_t kLargeObject = size_t{1} << 20;  // multi puts it in "file"

std::string FreshDir(absl::string_view tag) {
  static std::atomic<int> counter{0};
  return absl::StrCat(testing::TestTempDir(), "/kinds-", tag, "-", getpid(),
                      "-", counter++);
}

absl::StatusOr<testing::RedisServer*> SharedRedis() {
  static NoDestructor<absl::StatusOr<std::unique_ptr<testing::RedisServer>>>
      server(testing::RedisServer::Start());
  if (!server->ok()) return server->status();
  return server->value().get();
}

// A fresh connector config of `kind`, reaching its own empty space.
absl::StatusOr<ConnectorConfig> ConfigOf(const std::string& kind) {
  if (kind == "local") return ConnectorConfig{"local", {}};
  if (kind == "file") {
    return ConnectorConfig{"file", {{"directory", FreshDir("file")}}};
  }
  if (kind == "shm") {
    return ConnectorConfig{"shm", {{"namespace", NewObjectId()}}};
  }
  if (kind == "redis") {
    PROXYSTORE_ASSIGN_OR_RETURN(testing::RedisServer * server, SharedRedis());
    return ConnectorConfig{
        "redis",
        {{"host", server->host()},
         {"port", absl::StrCat(server->port())},
         {"prefix", absl::StrCat("kinds:", NewObjectId(), ":")}}};
  }
  if (kind == "multi") {
    ConnectorConfig multi{"multi", {}};
    Policy small;
    small.max_size_bytes = 4096;
    small.priority = 1;
    multi.children.push_back({"small", {"local", {}}, small});
    multi.children.push_back(
        {"large", {"file", {{"directory", FreshDir("multi")}}}, Policy{}});
    return multi;
  }
  return absl::InvalidArgumentError(absl::StrCat("no kind ", kind));
}

class LifetimeKindsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    absl::StatusOr<ConnectorConfig> config = ConfigOf(GetParam());
    ASSERT_THAT(config.status(), IsOk());
    config_ = *std::move(config);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> connector,
                                    MakeConnector(config_));
    // No cache: every Get and Exists goes to the connector.
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        store_,
        Store::Create(absl::StrCat("kinds-", GetParam(), "-", NewObjectId()),
                      std::move(connector), {.cache_size = 0}));
  }
  void TearDown() override {
    if (store_ != nullptr) {
      EXPECT_THAT(store_->Close(CloseOptions{.clear = true}), IsOk());
    }
  }

  // One small and one large object through each way a lifetime is given:
  // Put, PutBatch, Proxy, ProxyBatch, ProxyFromKey and AddKey later.
  std::vector<Key> PutEveryWay(Lifetime& lifetime) {
    std::vector<Key> keys;
    const std::string large = testing::PatternBytes(kLargeObject);
    auto put = store_->Put(std::string("small"), With(lifetime));
    EXPECT_THAT(put.status(), IsOk());
    if (put.ok()) keys.push_back(*put);
    auto batch =
        store_->PutBatch(std::vector<std::string>{"a", large}, With(lifetime));
    EXPECT_THAT(batch.status(), IsOk());
    if (batch.ok()) keys.insert(keys.end(), batch->begin(), batch->end());
    auto proxy = store_->Proxy(large, ProxyWith(lifetime));
    EXPECT_THAT(proxy.status(), IsOk());
    if (proxy.ok()) keys.push_back(*GetKey(*proxy));
    auto proxies = store_->ProxyBatch(std::vector<std::string>{"b", "c"},
                                      ProxyWith(lifetime));
    EXPECT_THAT(proxies.status(), IsOk());
    if (proxies.ok()) {
      for (const auto& p : *proxies) keys.push_back(*GetKey(p));
    }
    auto unowned = store_->Put(std::string("from key"));
    EXPECT_THAT(unowned.status(), IsOk());
    if (unowned.ok()) {
      EXPECT_THAT(
          store_->ProxyFromKey<std::string>(*unowned, lifetime).status(),
          IsOk());
      keys.push_back(*unowned);
    }
    auto later = store_->Put(std::string("added later"));
    EXPECT_THAT(later.status(), IsOk());
    if (later.ok()) {
      EXPECT_THAT(lifetime.AddKey(*later), IsOk());
      keys.push_back(*later);
    }
    EXPECT_EQ(keys.size(), 8u);
    return keys;
  }

  void ExpectAll(const std::vector<Key>& keys, bool exist) {
    for (const Key& key : keys) {
      EXPECT_THAT(store_->Exists(key), IsOkAndHolds(exist)) << key.id();
    }
  }

  ConnectorConfig config_;
  std::shared_ptr<Store> store_;
};

TEST_P(LifetimeKindsTest, ContextLifetimeEndEvictsEverything) {
  std::vector<Key> keys;
  Key outside;
  {
    ContextLifetime lifetime(store_);
    keys = PutEveryWay(lifetime);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(outside, store_->Put(std::string("o")));
    ExpectAll(keys, true);
  }
  ExpectAll(keys, false);
  EXPECT_THAT(store_->Exists(outside), IsOkAndHolds(true));
}

TEST_P(LifetimeKindsTest, LeaseExpiryEvictsEverything) {
  LeaseLifetime lease(store_, absl::Hours(1));
  const std::vector<Key> keys = PutEveryWay(lease);
  ASSERT_THAT(lease.Extend(absl::Minutes(1)), IsOk());
  ExpectAll(keys, true);
  ASSERT_THAT(lease.Extend(-absl::Hours(2)), IsOk());  // expires now
  ASSERT_TRUE(lease.WaitUntilDone(absl::InfiniteDuration()));
  ExpectAll(keys, false);
  EXPECT_THAT(lease.AddKey(Key("late")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_P(LifetimeKindsTest, OwnersEvictAndBorrowsDoNot) {
  Key key;
  Key cloned;
  std::string borrowed_wire;
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        OwnedProxy<std::string> owner,
        OwnedProxyOf(*store_, testing::PatternBytes(kLargeObject)));
    key = owner.key();
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(OwnedProxy<std::string> copy, Clone(owner));
    cloned = copy.key();
    {
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(RefProxy<std::string> ref, Borrow(owner));
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(borrowed_wire, ref.Serialize());
    }
    // Dropping a borrow never evicts.
    EXPECT_THAT(store_->Exists(key), IsOkAndHolds(true));
    EXPECT_THAT(store_->Exists(cloned), IsOkAndHolds(true));
  }
  EXPECT_THAT(store_->Exists(key), IsOkAndHolds(false));
  EXPECT_THAT(store_->Exists(cloned), IsOkAndHolds(false));
  // The borrow that travelled no longer resolves (resolved first here, its
  // value would still be in the cache of the store its config made).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> late,
                                  ParseProxy<std::string>(borrowed_wire));
  EXPECT_THAT(late.Get().status(), StatusIs(absl::StatusCode::kNotFound));
}

// Readers resolve fresh proxies of a 1 MiB object (no cache) in a loop while
// the lease holding it expires in the background: each resolution returns
// the whole object or NotFound, nothing else, and after expiry only
// NotFound.
TEST_P(LifetimeKindsTest, LeaseExpiringWhileResolvingIsNotFoundNeverTorn) {
  const std::string value = testing::PatternBytes(kLargeObject);
  LeaseLifetime lease(store_, absl::Hours(1));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, store_->Put(value, With(lease)));

  constexpr int kReaders = 3;
  std::atomic<int> started{0};
  std::atomic<int> wholes{0};
  std::atomic<int> not_found{0};
  absl::Notification expired;
  std::vector<std::string> failures(kReaders);
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      bool counted = false;
      bool done = false;
      while (!done && failures[r].empty()) {
        // Read once more after expiry was observed: that one must miss.
        done = expired.HasBeenNotified();
        Proxy<std::string> proxy = store_->ProxyFromKey<std::string>(key);
        absl::StatusOr<std::shared_ptr<const std::string>> got = proxy.Get();
        if (got.ok()) {
          if (done) {
            failures[r] = "resolved after the lease ended";
          } else if (**got != value) {
            failures[r] =
                absl::StrCat("torn object of ", (*got)->size(), " bytes");
          } else {
            wholes.fetch_add(1);
          }
        } else if (got.status().code() == absl::StatusCode::kNotFound) {
          not_found.fetch_add(1);
        } else {
          failures[r] = got.status().ToString();
        }
        if (!counted) {
          counted = true;
          started.fetch_add(1);
        }
      }
    });
  }
  // Every reader has resolved once (whole: the lease runs for an hour).
  while (started.load() < kReaders) std::this_thread::yield();
  ASSERT_THAT(lease.Extend(-absl::Hours(2)), IsOk());
  ASSERT_TRUE(lease.WaitUntilDone(absl::InfiniteDuration()));
  expired.Notify();
  for (std::thread& t : readers) t.join();
  for (const std::string& f : failures) EXPECT_EQ(f, "");
  EXPECT_GE(wholes.load(), kReaders);
  EXPECT_GE(not_found.load(), kReaders);
  EXPECT_THAT(store_->Exists(key), IsOkAndHolds(false));
}

// The child process: re-creates the store from the hex StoreConfig given,
// puts one object with the store's static lifetime and one without, prints
// both keys, and exits normally; the exit handler evicts the first.
int StaticChildMain(const std::string& hex_config) {
  absl::StatusOr<StoreConfig> config =
      StoreConfig::Parse(absl::HexStringToBytes(hex_config));
  if (!config.ok()) return 2;
  config->name = absl::StrCat(config->name, "-child");
  absl::StatusOr<std::unique_ptr<Connector>> connector =
      MakeConnector(config->connector);
  if (!connector.ok()) return 3;
  absl::StatusOr<std::shared_ptr<Store>> store =
      Store::Create(config->name, *std::move(connector));
  if (!store.ok()) return 4;
  absl::StatusOr<Key> key = (*store)->Put(testing::PatternBytes(kLargeObject),
                                          With(StaticLifetime::For(*store)));
  if (!key.ok()) return 5;
  absl::StatusOr<Key> kept = (*store)->Put(testing::PatternBytes(kLargeObject));
  if (!kept.ok()) return 6;
  std::printf("KEYS=%s %s\n", absl::BytesToHexString(key->Serialize()).c_str(),
              absl::BytesToHexString(kept->Serialize()).c_str());
  std::fflush(stdout);
  return 0;
}

TEST_P(LifetimeKindsTest, StaticLifetimeEvictsAtChildExit) {
  if (GetParam() == "local") {
    GTEST_SKIP() << "a local store lives in one process and ends with it";
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      testing::ChildResult r,
      testing::RunChild(testing::RunfilePath("store/lifetimes_kinds_test"),
                        {kStaticChildFlag, absl::BytesToHexString(
                                               store_->Config().Serialize())}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.find("KEYS=");
  ASSERT_NE(at, std::string::npos) << r.output;
  std::string line = r.output.substr(at + 5);
  line = line.substr(0, line.find('\n'));
  const size_t space = line.find(' ');
  ASSERT_NE(space, std::string::npos) << line;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key ended, Key::Parse(absl::HexStringToBytes(line.substr(0, space))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key kept, Key::Parse(absl::HexStringToBytes(line.substr(space + 1))));
  EXPECT_THAT(store_->Exists(ended), IsOkAndHolds(false));
  // The child wrote where this store reads: its other object is here (so the
  // first one is gone, not elsewhere).
  EXPECT_THAT(store_->Exists(kept), IsOkAndHolds(true));
}

INSTANTIATE_TEST_SUITE_P(EveryKind, LifetimeKindsTest,
                         ::testing::Values("local", "file", "shm", "redis",
                                           "multi"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace proxystore

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], proxystore::kStaticChildFlag) == 0) {
    return proxystore::StaticChildMain(argv[2]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
