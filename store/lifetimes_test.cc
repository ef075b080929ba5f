#include "proxystore/store/lifetimes.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/file/file_connector.h"
#include "proxystore/connectors/local/local_connector.h"
#include "proxystore/store/lifetime_options_testing.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::ProxyWith;
using ::proxystore::testing::StatusIs;
using ::proxystore::testing::With;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

constexpr char kStaticChildFlag[] = "--static-lifetime-child";

std::shared_ptr<Store> MakeStore() {
  auto connector = LocalConnector::Create();
  EXPECT_THAT(connector.status(), IsOk());
  auto store = Store::Create("lifetimes-test", *std::move(connector));
  EXPECT_THAT(store.status(), IsOk());
  return *std::move(store);
}

absl::StatusOr<std::shared_ptr<Store>> MakeFileStore(const std::string& dir) {
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::unique_ptr<FileConnector> connector,
      FileConnector::Create({"file", {{"directory", dir}}}));
  return Store::Create("lifetimes-file", std::move(connector));
}

std::string FreshDir(absl::string_view tag) {
  static int counter = 0;
  return absl::StrCat(testing::TestTempDir(), "/lifetimes-", tag, "-", getpid(),
                      "-", counter++);
}

// Refuses every key, remembering which.
class RefusingLifetime final : public Lifetime {
 public:
  absl::Status AddKeys(absl::Span<const Key> keys) override {
    refused.insert(refused.end(), keys.begin(), keys.end());
    return absl::FailedPreconditionError("refused");
  }
  bool done() const override { return true; }
  absl::Status Close() override { return absl::OkStatus(); }
  const std::string& name() const override { return name_; }
  std::vector<Key> refused;

 private:
  std::string name_ = "refusing";
};

TEST(ContextLifetimeTest, ClosesOnScopeExitAndEvicts) {
  std::shared_ptr<Store> store = MakeStore();
  Key key;
  {
    ContextLifetime lifetime(store, "ctx");
    EXPECT_EQ(lifetime.name(), "ctx");
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        key, store->Put(std::string("value"), With(lifetime)));
    EXPECT_THAT(store->Exists(key), IsOkAndHolds(true));
    EXPECT_THAT(lifetime.keys(), ElementsAre(key));
    EXPECT_FALSE(lifetime.done());
  }
  EXPECT_THAT(store->Exists(key), IsOkAndHolds(false));
}

TEST(ContextLifetimeTest, GeneratesNameWhenEmpty) {
  ContextLifetime lifetime(MakeStore());
  EXPECT_FALSE(lifetime.name().empty());
}

TEST(ContextLifetimeTest, KeysAndProxiesAddedLater) {
  std::shared_ptr<Store> store = MakeStore();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key a, store->Put(std::string("a")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  store->Proxy(std::string("b")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key b, GetKey(p));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key kept, store->Put(std::string("kept")));
  ContextLifetime lifetime(store);
  EXPECT_THAT(lifetime.AddKey(a), IsOk());
  EXPECT_THAT(lifetime.AddProxy(p), IsOk());
  EXPECT_THAT(lifetime.keys(), UnorderedElementsAre(a, b));
  EXPECT_THAT(lifetime.Close(), IsOk());
  EXPECT_TRUE(lifetime.done());
  EXPECT_THAT(store->Exists(a), IsOkAndHolds(false));
  EXPECT_THAT(store->Exists(b), IsOkAndHolds(false));
  EXPECT_THAT(store->Exists(kept), IsOkAndHolds(true));
}

TEST(ContextLifetimeTest, MissingObjectsAreFine) {
  std::shared_ptr<Store> store = MakeStore();
  ContextLifetime lifetime(store);
  EXPECT_THAT(lifetime.AddKey(Key("never-stored")), IsOk());
  EXPECT_THAT(lifetime.Close(), IsOk());
}

TEST(ContextLifetimeTest, ClosedRejectsNewKeysAndCloseIsIdempotent) {
  std::shared_ptr<Store> store = MakeStore();
  ContextLifetime lifetime(store, "closed-one");
  EXPECT_THAT(lifetime.Close(), IsOk());
  EXPECT_TRUE(lifetime.done());
  EXPECT_THAT(
      lifetime.AddKey(Key("k")),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("closed-one")));
  EXPECT_THAT(lifetime.Close(), IsOk());
  EXPECT_THAT(lifetime.keys(), IsEmpty());
}

TEST(ContextLifetimeTest, MoveTransfersOwnership) {
  std::shared_ptr<Store> store = MakeStore();
  Key key;
  {
    ContextLifetime outer(store);
    {
      ContextLifetime inner(store);
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(
          key, store->Put(std::string("v"), With(inner)));
      outer = std::move(inner);
      EXPECT_TRUE(inner.done());  // NOLINT(bugprone-use-after-move)
    }
    EXPECT_THAT(store->Exists(key), IsOkAndHolds(true));
  }
  EXPECT_THAT(store->Exists(key), IsOkAndHolds(false));
}

TEST(StoreLifetimeTest, EvictWithLifetimeIsInvalidArgument) {
  std::shared_ptr<Store> store = MakeStore();
  ContextLifetime lifetime(store, "with-evict");
  ProxyOptions<std::string> options = ProxyWith(lifetime);
  options.evict = true;
  EXPECT_THAT(
      store->Proxy(std::string("v"), options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("with-evict")));
  const std::string s = "v";
  EXPECT_THAT(store->Proxy(s, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store->ProxyBatch(std::vector<std::string>{"a", "b"}, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store->ProxyFromKey<std::string>(Key("k"), lifetime, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(lifetime.keys(), IsEmpty());
}

TEST(StoreLifetimeTest, PutsAndProxiesAssociateTheirKeys) {
  std::shared_ptr<Store> store = MakeStore();
  ContextLifetime lifetime(store);
  std::vector<Key> expected;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key put,
                                  store->Put(std::string("p"), With(lifetime)));
  expected.push_back(put);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<Key> batch,
      store->PutBatch(std::vector<std::string>{"b1", "b2"}, With(lifetime)));
  expected.insert(expected.end(), batch.begin(), batch.end());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Proxy<std::string> proxy,
      store->Proxy(std::string("x"), ProxyWith(lifetime)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key proxy_key, GetKey(proxy));
  expected.push_back(proxy_key);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<Proxy<std::string>> proxies,
      store->ProxyBatch(std::vector<std::string>{"y", "z"},
                        ProxyWith(lifetime)));
  for (const Proxy<std::string>& p : proxies) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, GetKey(p));
    expected.push_back(k);
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key existing,
                                  store->Put(std::string("existing")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Proxy<std::string> from_key,
      store->ProxyFromKey<std::string>(existing, lifetime));
  EXPECT_EQ(*from_key, "existing");
  expected.push_back(existing);
  EXPECT_THAT(lifetime.keys(), UnorderedElementsAreArray(expected));

  EXPECT_THAT(lifetime.Close(), IsOk());
  for (const Key& k : expected) {
    EXPECT_THAT(store->Exists(k), IsOkAndHolds(false)) << k;
  }
}

TEST(StoreLifetimeTest, RefusedKeysAreEvictedAndTheErrorReturned) {
  std::shared_ptr<Store> store = MakeStore();
  RefusingLifetime refusing;
  EXPECT_THAT(store->Put(std::string("a"), With(refusing)),
              StatusIs(absl::StatusCode::kFailedPrecondition, "refused"));
  EXPECT_THAT(
      store->PutBatch(std::vector<std::string>{"b", "c"}, With(refusing)),
      StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(store->Proxy(std::string("d"), ProxyWith(refusing)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(
      store->ProxyBatch(std::vector<std::string>{"e"}, ProxyWith(refusing)),
      StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_EQ(refusing.refused.size(), 5u);
  for (const Key& k : refusing.refused) {
    EXPECT_THAT(store->Exists(k), IsOkAndHolds(false)) << k;
  }
}

TEST(StoreLifetimeTest, ClosedLifetimeMakesPutFail) {
  std::shared_ptr<Store> store = MakeStore();
  ContextLifetime lifetime(store, "ended");
  ASSERT_THAT(lifetime.Close(), IsOk());
  EXPECT_THAT(
      store->Put(std::string("v"), With(lifetime)),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ended")));
  EXPECT_THAT(store->ProxyFromKey<std::string>(Key("k"), lifetime),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(LeaseLifetimeTest, NotDoneBeforeExpiryAndExtendMovesDeadline) {
  std::shared_ptr<Store> store = MakeStore();
  LeaseLifetime lease(store, absl::Hours(1), {.name = "lease"});
  EXPECT_EQ(lease.name(), "lease");
  EXPECT_FALSE(lease.done());
  EXPECT_FALSE(lease.WaitUntilDone(absl::ZeroDuration()));
  const LeaseLifetime::Clock::time_point before = lease.deadline();
  EXPECT_THAT(lease.Extend(absl::Minutes(30)), IsOk());
  EXPECT_EQ(lease.deadline() - before, std::chrono::minutes(30));
  EXPECT_FALSE(lease.done());

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  store->Put(std::string("v"), With(lease)));
  EXPECT_THAT(lease.Close(), IsOk());
  EXPECT_TRUE(lease.done());
  EXPECT_TRUE(lease.WaitUntilDone(absl::ZeroDuration()));
  EXPECT_THAT(store->Exists(key), IsOkAndHolds(false));
  EXPECT_THAT(
      lease.Extend(absl::Seconds(1)),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease")));
  EXPECT_THAT(lease.AddKey(Key("k")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(LeaseLifetimeTest, ExpiryEvicts) {
  std::shared_ptr<Store> store = MakeStore();
  LeaseLifetime lease(store, absl::Hours(1));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  store->Put(std::string("v"), With(lease)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Proxy<std::string> proxy,
      store->Proxy(std::string("w"), ProxyWith(lease)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key proxy_key, GetKey(proxy));
  EXPECT_FALSE(lease.done());
  // Moves the deadline into the past: the lease thread wakes and expires it.
  ASSERT_THAT(lease.Extend(-absl::Hours(2)), IsOk());
  ASSERT_TRUE(lease.WaitUntilDone(absl::InfiniteDuration()));
  EXPECT_TRUE(lease.done());
  EXPECT_THAT(store->Exists(key), IsOkAndHolds(false));
  EXPECT_THAT(store->Exists(proxy_key), IsOkAndHolds(false));
  EXPECT_THAT(lease.Extend(absl::Hours(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(LeaseLifetimeTest, ExtendSaturatesAtTheClocksRange) {
  LeaseLifetime lease(MakeStore(), absl::Hours(1));
  ASSERT_THAT(lease.Extend(absl::InfiniteDuration()), IsOk());
  EXPECT_EQ(lease.deadline(), LeaseLifetime::Clock::time_point::max());
  EXPECT_FALSE(lease.done());
  ASSERT_THAT(lease.Extend(-absl::InfiniteDuration()), IsOk());
  ASSERT_TRUE(lease.WaitUntilDone(absl::InfiniteDuration()));
  EXPECT_TRUE(lease.done());
}

TEST(LeaseLifetimeTest, ZeroExpiryEndsOnItsOwn) {
  LeaseLifetime lease(MakeStore(), absl::ZeroDuration());
  ASSERT_TRUE(lease.WaitUntilDone(absl::InfiniteDuration()));
  EXPECT_TRUE(lease.done());
}

TEST(LeaseLifetimeTest, DestructionCloses) {
  std::shared_ptr<Store> store = MakeStore();
  Key key;
  {
    LeaseLifetime lease(store, absl::InfiniteDuration());
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(key,
                                    store->Put(std::string("v"), With(lease)));
    EXPECT_THAT(lease.Extend(absl::InfiniteDuration()), IsOk());
  }
  EXPECT_THAT(store->Exists(key), IsOkAndHolds(false));
}

TEST(StaticLifetimeTest, OnePerStoreAndRecordsKeys) {
  std::shared_ptr<Store> store = MakeStore();
  std::shared_ptr<Store> other = MakeStore();
  StaticLifetime& lifetime = StaticLifetime::For(store);
  EXPECT_EQ(&lifetime, &StaticLifetime::For(store));
  EXPECT_NE(&lifetime, &StaticLifetime::For(other));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  store->Put(std::string("v"), With(lifetime)));
  EXPECT_THAT(lifetime.keys(), ElementsAre(key));
  EXPECT_THAT(StaticLifetime::For(other).keys(), IsEmpty());
  EXPECT_FALSE(lifetime.done());
  EXPECT_THAT(lifetime.Close(), IsOk());
  EXPECT_THAT(store->Exists(key), IsOkAndHolds(false));
  EXPECT_THAT(lifetime.AddKey(key),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

// The child: puts an object with the store's static lifetime, prints its
// key and exits normally; the exit handler evicts the object.
int StaticChildMain(const std::string& dir) {
  absl::StatusOr<std::shared_ptr<Store>> store = MakeFileStore(dir);
  if (!store.ok()) return 2;
  absl::StatusOr<Key> key =
      (*store)->Put(std::string("static"), With(StaticLifetime::For(*store)));
  if (!key.ok()) return 3;
  absl::StatusOr<bool> exists = (*store)->Exists(*key);
  if (!exists.ok() || !*exists) return 4;
  std::printf("KEY=%s\n", key->id().c_str());
  std::fflush(stdout);
  return 0;
}

TEST(StaticLifetimeTest, EvictsAtProcessExit) {
  const std::string dir = FreshDir("exit");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      testing::ChildResult r,
      testing::RunChild(testing::RunfilePath("store/lifetimes_test"),
                        {kStaticChildFlag, dir}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.find("KEY=");
  ASSERT_NE(at, std::string::npos) << r.output;
  std::string id = r.output.substr(at + 4);
  id = id.substr(0, id.find('\n'));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                                  MakeFileStore(dir));
  EXPECT_THAT(store->Exists(Key(id)), IsOkAndHolds(false));
}

TEST(StaticLifetimeTest, ForkedChildDoesNotEvictAtExit) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                                  MakeFileStore(FreshDir("fork")));
  StaticLifetime& lifetime = StaticLifetime::For(store);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  store->Put(std::string("v"), With(lifetime)));
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) std::exit(0);  // Runs the inherited exit handler.
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_THAT(store->Exists(key), IsOkAndHolds(true));
  EXPECT_THAT(lifetime.Close(), IsOk());
  EXPECT_THAT(store->Exists(key), IsOkAndHolds(false));
}

TEST(LeaseLifetimeTest, ForkedChildLeaseDoesNothing) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                                  MakeFileStore(FreshDir("lease-fork")));
  LeaseLifetime lease(store, absl::InfiniteDuration());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  store->Put(std::string("v"), With(lease)));
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child's copy refuses keys and its Close evicts nothing.
    const bool ok =
        lease.done() && !lease.AddKey(Key("x")).ok() && lease.Close().ok();
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_THAT(store->Exists(key), IsOkAndHolds(true));
  EXPECT_FALSE(lease.done());
  EXPECT_THAT(lease.Close(), IsOk());
  EXPECT_THAT(store->Exists(key), IsOkAndHolds(false));
}

}  // namespace
}  // namespace proxystore

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], proxystore::kStaticChildFlag) == 0) {
    return proxystore::StaticChildMain(argv[2]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
