// The redis connector in cluster mode when nodes die: a master killed and
// its replica promoted (operations resume by themselves; with
// "wait_replicas" no acknowledged object is lost), and a whole shard down
// (its keys are Unavailable within the timeout, the other shards keep
// working, a batch touching it is rolled back). Each test has a cluster of
// its own (testing/redis_cluster.h).
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/redis/cluster_routing.h"
#include "proxystore/connectors/redis/cluster_test_util.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/testing/redis_cluster.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::RedisCluster;
using ::proxystore::testing::RedisClusterLayout;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

std::string Value(size_t i) { return absl::StrCat("object ", i, " ", i * i); }

// A hash tag whose slot `master` serves, for a prefix that puts every key
// of a connector on that master.
std::string TagOn(const RedisClusterLayout& layout, int master) {
  for (int i = 0;; ++i) {
    const std::string tag = absl::StrCat("tag", i);
    if (layout.SlotOwner(redis_cluster::KeySlot(tag)) == master) return tag;
  }
}

absl::StatusOr<std::unique_ptr<RedisConnector>> Connect(
    const RedisCluster& cluster, std::map<std::string, std::string> more) {
  std::string seeds;
  for (int i = 0; i < cluster.size(); ++i) {
    absl::StrAppend(&seeds, i == 0 ? "" : ",", cluster.address(i));
  }
  more["cluster"] = seeds;
  return RedisConnector::Create({"redis", std::move(more)});
}

TEST(RedisClusterFailover, OperationsResumeAndWaitedWritesSurvive) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisCluster> cluster,
                                  RedisCluster::Start());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster->Layout());
  const int master = layout.masters()[0];
  // Every key on `master`, each write acknowledged by its replica (WAIT 1).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisConnector> c,
      Connect(*cluster,
              {{"prefix", absl::StrCat("{", TagOn(layout, master), "}:")},
               {"wait_replicas", "1"},
               {"wait_timeout_ms", "5000"},
               {"command_timeout_ms", "30000"}}));
  std::vector<Key> keys;
  for (size_t i = 0; i < 200; ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, c->Put(SharedBytes::Copy(Value(i))));
    keys.push_back(k);
  }
  std::vector<SharedBytes> batch;
  for (size_t i = 200; i < 300; ++i) {
    batch.push_back(SharedBytes::Copy(Value(i)));
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> batch_keys,
                                  c->PutBatch(batch));
  keys.insert(keys.end(), batch_keys.begin(), batch_keys.end());

  ASSERT_THAT(cluster->KillNode(master), IsOk());
  // The first read meets a refused connection, then a map that still names
  // the dead master, and retries until the replica has taken over.
  const absl::Time killed = absl::Now();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> first,
                                  c->Get(keys[0]));
  std::cerr << "first read after the kill answered in "
            << absl::FormatDuration(absl::Now() - killed) << "\n";
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->view(), Value(0));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(int promoted,
                                  cluster->WaitForFailover(master));
  for (size_t i = 0; i < keys.size(); ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                    c->Get(keys[i]));
    ASSERT_TRUE(got.has_value()) << "acknowledged object " << i << " lost";
    EXPECT_EQ(got->view(), Value(i));
  }
  // The promoted master has no replica now: a waited write is not
  // acknowledged, fails, and is taken back.
  EXPECT_THAT(c->Put(SharedBytes::Copy("unreplicated")),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("only 0 of the 1 replicas"),
                             HasSubstr("removed again"))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout after, cluster->Layout());
  EXPECT_EQ(after.SlotOwner(redis_cluster::KeySlot(TagOn(layout, master))),
            promoted);
  // The old master comes back as the new master's replica.
  ASSERT_THAT(cluster->RestartNode(master), IsOk());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key again,
                                  c->Put(SharedBytes::Copy("replicated")));
  EXPECT_THAT(c->Exists(again), testing::IsOkAndHolds(true));
  EXPECT_THAT(c->Close({.clear = true}), IsOk());
}

TEST(RedisClusterFailover, TheOnlySeedMayDieAfterTheMapWasRead) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisCluster> cluster,
                                  RedisCluster::Start());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster->Layout());
  const int master = layout.masters()[0];
  // Its only seed is `master`; its keys on `master` (a hash tag).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisConnector> c,
      RedisConnector::Create(
          {"redis",
           {{"cluster", cluster->address(master)},
            {"prefix", absl::StrCat("{", TagOn(layout, master), "}:")},
            {"wait_replicas", "1"},
            {"command_timeout_ms", "30000"}}}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key before, c->Put(SharedBytes::Copy("a")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key later, c->NewKey());
  ASSERT_THAT(cluster->KillNode(master), IsOk());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(int promoted,
                                  cluster->WaitForFailover(master));
  (void)promoted;
  // The map is read again from the nodes of the last one, not only the
  // (dead) seed.
  EXPECT_THAT(c->Get(before),
              testing::IsOkAndHolds(::testing::Optional(
                  ::testing::Property(&SharedBytes::view, "a"))));
  // WaitFor subscribes on the new master. The replica-less new master makes
  // the Set's WAIT fall short, but the object is written (a Set's object
  // stays), which is what the waiter sees.
  EXPECT_THAT(
      c->Set(later, SharedBytes::Copy("b")),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("written and stays")));
  EXPECT_THAT(c->WaitFor(later, absl::Seconds(30)),
              testing::IsOkAndHolds(true));
}

TEST(RedisClusterFailover, PausedMastersAndDeadReplicasAreRoutedAround) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisCluster> cluster,
                                  RedisCluster::Start());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster->Layout());
  const int a = layout.masters()[0];
  const int b = layout.masters()[1];
  ASSERT_FALSE(layout.replicas_of(a).empty());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisConnector> on_a,
      Connect(*cluster, {{"prefix", absl::StrCat("{", TagOn(layout, a), "}:")},
                         {"read_from_replicas", "true"},
                         {"wait_replicas", "1"},
                         {"command_timeout_ms", "2000"},
                         {"wait_timeout_ms", "1000"}}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisConnector> on_b,
      Connect(*cluster, {{"prefix", absl::StrCat("{", TagOn(layout, b), "}:")},
                         {"command_timeout_ms", "2000"}}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key ka, on_a->Put(SharedBytes::Copy("a")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key kb, on_b->Put(SharedBytes::Copy("b")));
  // A's replica dies: reads of A's keys go to A itself.
  ASSERT_THAT(cluster->KillNode(layout.replicas_of(a)[0]), IsOk());
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(on_a->Get(ka),
                testing::IsOkAndHolds(::testing::Optional(
                    ::testing::Property(&SharedBytes::view, "a"))));
  }
  // B hangs (SIGSTOP) and its replica takes over; the connector's map still
  // names B. The first operation waits out its time on B; the map is read
  // again afterwards, and the next operation finds the new master.
  ASSERT_THAT(cluster->node(b).Pause(), IsOk());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(int promoted, cluster->WaitForFailover(b));
  (void)promoted;
  EXPECT_THAT(on_b->Get(kb), StatusIs(absl::StatusCode::kUnavailable,
                                      HasSubstr("did not respond")));
  EXPECT_THAT(on_b->Get(kb),
              testing::IsOkAndHolds(::testing::Optional(
                  ::testing::Property(&SharedBytes::view, "b"))));
  ASSERT_THAT(cluster->node(b).Resume(), IsOk());
}

TEST(RedisClusterShardDown, ItsKeysAreUnavailableTheOthersWork) {
  // Without full coverage required, the masters that are up keep serving
  // their slots while a shard is down.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisCluster> cluster,
      RedisCluster::Start(
          {.extra_args = {"--cluster-require-full-coverage", "no"}}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster->Layout());
  const int down = layout.masters()[0];
  const int up = layout.masters()[1];
  std::map<std::string, std::string> options = {{"command_timeout_ms", "1500"}};
  options["prefix"] = absl::StrCat("{", TagOn(layout, down), "}:");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisConnector> on_down,
                                  Connect(*cluster, options));
  options["prefix"] = absl::StrCat("{", TagOn(layout, up), "}:");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisConnector> on_up,
                                  Connect(*cluster, options));
  options["prefix"] = "spread:";
  options["command_timeout_ms"] = "1000";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisConnector> spread,
                                  Connect(*cluster, options));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key lost,
                                  on_down->Put(SharedBytes::Copy("a")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key kept, on_up->Put(SharedBytes::Copy("b")));

  for (int replica : layout.replicas_of(down)) {
    ASSERT_THAT(cluster->KillNode(replica), IsOk());
  }
  ASSERT_THAT(cluster->KillNode(down), IsOk());

  EXPECT_THAT(on_down->Get(lost),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("gave up after"),
                             HasSubstr("command_timeout_ms"))));
  EXPECT_THAT(on_down->Put(SharedBytes::Copy("c")),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(on_up->Get(kept),
              testing::IsOkAndHolds(::testing::Optional(
                  ::testing::Property(&SharedBytes::view, "b"))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key more, on_up->Put(SharedBytes::Copy("d")));
  EXPECT_THAT(on_up->Exists(more), testing::IsOkAndHolds(true));

  // A batch over every shard: all or nothing.
  std::vector<SharedBytes> batch;
  for (size_t i = 0; i < 60; ++i) batch.push_back(SharedBytes::Copy(Value(i)));
  EXPECT_THAT(spread->PutBatch(batch),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("were removed again")));
  // Nothing of the batch stayed on the shards that are up.
  for (int m : layout.masters()) {
    if (m == down) continue;
    EXPECT_EQ(redis_test::KeysOn(cluster->node(m), "spread:"), 0);
  }

  // A clearing Close reaches the masters that are up and says which is not.
  EXPECT_THAT(on_up->Close({.clear = true}),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(redis_test::KeysOn(cluster->node(up), options["prefix"]), 0);
}

}  // namespace
}  // namespace proxystore
