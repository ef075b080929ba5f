// The redis connector in cluster mode against a real Redis Cluster of 3
// masters and 3 replicas (testing/redis_cluster.h): the conformance suite,
// proxies resolved in another process, batches spread over the masters,
// replica reads, a clearing Close on every master, and slot migrations in
// the middle of traffic (MOVED and ASK followed, nothing lost).
#include "proxystore/testing/redis_cluster.h"

#include <hiredis/hiredis.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/redis/cluster_routing.h"
#include "proxystore/connectors/redis/cluster_test_util.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/connector_conformance.h"
#include "proxystore/testing/cross_process.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::redis_test::Calls;
using ::proxystore::redis_test::KeysOn;
using ::proxystore::testing::ConnectorTestParams;
using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::RedisCluster;
using ::proxystore::testing::RedisClusterLayout;
using ::proxystore::testing::RedisServer;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

// One cluster for the whole binary: started on first use, killed at exit.
absl::StatusOr<RedisCluster*> SharedCluster() {
  static absl::StatusOr<std::unique_ptr<RedisCluster>> cluster =
      RedisCluster::Start();
  if (!cluster.ok()) return cluster.status();
  return cluster->get();
}

ConnectorConfig ClusterConfig(const RedisCluster& cluster,
                              std::map<std::string, std::string> more = {}) {
  // Two seeds are enough: the connector learns the rest from the slot map.
  more["cluster"] = absl::StrCat(cluster.address(0), ",", cluster.address(1));
  return ConnectorConfig{"redis", std::move(more)};
}

ConnectorTestParams ClusterParams(std::string name) {
  return {.name = std::move(name),
          .make = []() -> absl::StatusOr<std::unique_ptr<Connector>> {
            PROXYSTORE_ASSIGN_OR_RETURN(RedisCluster * cluster,
                                        SharedCluster());
            return RedisConnector::FromConfig(ClusterConfig(*cluster));
          }};
}

// Not with read_from_replicas: a replica may still serve an object for a
// moment after Evict (docs/connectors.md), which the suite checks against.
PROXYSTORE_INSTANTIATE_CONNECTOR_CONFORMANCE(RedisCluster,
                                             ClusterParams("Masters"));

std::string Pattern(size_t i, size_t size) {
  std::string s(size, '\0');
  for (size_t j = 0; j < size; ++j) {
    s[j] = static_cast<char>('a' + (i * 31 + j * 7) % 26);
  }
  return s;
}

TEST(RedisClusterConnector, OptionsAreChecked) {
  EXPECT_THAT(RedisConnector::Create({"redis", {{"cluster", ""}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(RedisConnector::Create({"redis", {{"cluster", "h1"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("port")));
  EXPECT_THAT(RedisConnector::Create({"redis", {{"cluster", "h1:0"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("port")));
  EXPECT_THAT(RedisConnector::Create({"redis", {{"cluster", "h/1:7000"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("host")));
  EXPECT_THAT(
      RedisConnector::Create({"redis", {{"cluster", "[::1:7000"}}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unclosed")));
  EXPECT_THAT(
      RedisConnector::Create({"redis", {{"cluster", "h:1"}, {"port", "7"}}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not both")));
  EXPECT_THAT(
      RedisConnector::Create({"redis", {{"cluster", "h:1"}, {"db", "1"}}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("database 0")));
  EXPECT_THAT(
      RedisConnector::Create({"redis", {{"read_from_replicas", "true"}}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cluster")));
  EXPECT_THAT(RedisConnector::Create({"redis",
                                      {{"wait_replicas", "1"},
                                       {"wait_timeout_ms", "5000"},
                                       {"command_timeout_ms", "5000"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("less than \"command_timeout_ms\"")));
  std::string many;
  for (int i = 0; i <= 64; ++i)
    absl::StrAppend(&many, i ? "," : "", "h:", i + 1);
  EXPECT_THAT(
      RedisConnector::Create({"redis", {{"cluster", many}}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than 64")));

  // Seeds are normalized and travel in Config(); IPv6 in brackets.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisConnector> c,
      RedisConnector::Create(
          {"redis", {{"cluster", " a:1,[::1]:2,a:1 "}, {"prefix", "p:"}}}));
  EXPECT_TRUE(c->cluster());
  EXPECT_EQ(c->Config().options.at("cluster"), "a:1,[::1]:2");
  EXPECT_EQ(c->endpoint(), "cluster a:1,[::1]:2");
  EXPECT_EQ(c->Config().options.count("host"), 0u);
  EXPECT_THAT(ConnectorDestinations(c->Config()),
              IsOkAndHolds(::testing::ElementsAre("redis:a:1/0/p:",
                                                  "redis:[::1]:2/0/p:")));
}

TEST(RedisClusterConnector, NoReachableSeedIsUnavailableWithinTheTimeout) {
  // A port nobody listens on: the connection is refused at once, then
  // retried until command_timeout_ms.
  const int port = testing::PickFreeLoopbackPort().value_or(1);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisConnector> c,
      RedisConnector::Create({"redis",
                              {{"cluster", absl::StrCat("127.0.0.1:", port)},
                               {"command_timeout_ms", "200"}}}));
  EXPECT_THAT(c->Put(SharedBytes::Copy("x")),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("no node answered CLUSTER SLOTS")));
}

TEST(RedisClusterConnector, BatchesSpreadOverEveryMasterInInputOrder) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisCluster * cluster, SharedCluster());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(ClusterConfig(*cluster)));
  const std::string prefix = c->Config().options.at("prefix");
  std::vector<SharedBytes> data;
  for (size_t i = 0; i < 300; ++i) {
    data.push_back(SharedBytes::Copy(Pattern(i, 10 + i * 37)));
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys, c->PutBatch(data));
  ASSERT_EQ(keys.size(), data.size());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster->Layout());
  int total = 0;
  for (int m : layout.masters()) {
    const int n = KeysOn(cluster->node(m), prefix);
    EXPECT_GT(n, 0) << "master " << m << " got none of the batch";
    total += n;
  }
  EXPECT_EQ(total, 300);
  std::vector<Key> asked = keys;
  asked.insert(asked.begin() + 100, Key("00000000000000000000000000000000"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::optional<SharedBytes>> got,
                                  c->GetBatch(asked));
  ASSERT_EQ(got.size(), asked.size());
  for (size_t i = 0, j = 0; i < asked.size(); ++i) {
    if (i == 100) {
      EXPECT_FALSE(got[i].has_value());
      continue;
    }
    ASSERT_TRUE(got[i].has_value()) << i;
    EXPECT_EQ(got[i]->view(), data[j].view()) << i;
    ++j;
  }
  // A clearing Close scans every master.
  EXPECT_THAT(c->Close({.clear = true}), IsOk());
  for (int m : layout.masters()) EXPECT_EQ(KeysOn(cluster->node(m), prefix), 0);
}

TEST(RedisClusterConnector, ReplicaReadsAreServedByReplicas) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisCluster * cluster, SharedCluster());
  // Healthy includes: CLUSTER SLOTS lists every replica (a node lists a
  // replica once gossip told it the replica's offset).
  ASSERT_THAT(cluster->WaitUntilHealthy(), IsOk());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Connector> c,
      MakeConnector(ClusterConfig(
          *cluster, {{"read_from_replicas", "true"}, {"wait_replicas", "1"}})));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster->Layout());
  std::vector<int> replicas;
  for (int m : layout.masters()) {
    for (int r : layout.replicas_of(m)) replicas.push_back(r);
  }
  ASSERT_FALSE(replicas.empty());
  int64_t before = 0;
  for (int r : replicas) before += Calls(cluster->node(r), "get");
  std::vector<Key> keys;
  for (size_t i = 0; i < 60; ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                    c->Put(SharedBytes::Copy(Pattern(i, 100))));
    keys.push_back(key);
  }
  // WAIT made the writes reach a replica before Put returned, so the
  // replicas answer these.
  for (size_t i = 0; i < keys.size(); ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                    c->Get(keys[i]));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->view(), Pattern(i, 100));
  }
  int64_t after = 0;
  for (int r : replicas) after += Calls(cluster->node(r), "get");
  EXPECT_GE(after - before, 60);
  EXPECT_THAT(c->Close({.clear = true}), IsOk());
}

TEST(RedisClusterConnector, ProxiesResolveInAChildProcess) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisCluster * cluster, SharedCluster());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(ClusterConfig(*cluster)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("xproc-redis-cluster", std::move(c)));
  testing::ExpectProxiesResolveInChildProcess(store, 3'000'000);
  EXPECT_THAT(store->Close(), IsOk());
}

// Every key of this test lives in one slot (a hash tag in the prefix), and
// that slot moves from master to master, twice, key batch by key batch,
// while threads put, get, check and evict objects: each operation meets a
// MOVED or an ASK at some point, and none may fail or lose anything.
TEST(RedisClusterConnector, SlotMigrationUnderTrafficLosesNothing) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisCluster * cluster, SharedCluster());
  const std::string prefix = "migrate{slot-under-test}:";
  const int slot = redis_cluster::KeySlot("slot-under-test");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Connector> c,
      MakeConnector(ClusterConfig(*cluster, {{"prefix", prefix}})));
  // Objects that exist before the traffic starts, so that the migration
  // has keys to move from the first batch on.
  std::vector<Key> early;
  for (size_t i = 0; i < 500; ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k,
                                    c->Put(SharedBytes::Copy(Pattern(i, 64))));
    early.push_back(k);
  }
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::vector<std::pair<Key, std::string>>> written(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; !done.load() || i < 50; ++i) {
        const std::string value = Pattern(i * 2 + t, 32 + i % 500);
        absl::StatusOr<Key> k = c->Put(SharedBytes::Copy(value));
        if (!k.ok()) {
          ADD_FAILURE() << k.status();
          ++failures;
          continue;
        }
        absl::StatusOr<std::optional<SharedBytes>> got = c->Get(*k);
        if (!got.ok() || !got->has_value() || (*got)->view() != value) {
          ADD_FAILURE() << "read back of " << k->id() << ": "
                        << (got.ok() ? "missing or wrong"
                                     : got.status().ToString());
          ++failures;
        }
        const Key& old = early[i % early.size()];
        absl::StatusOr<bool> there = c->Exists(old);
        if (!there.ok() || !*there) {
          ADD_FAILURE() << "early key " << old.id()
                        << " not found: " << there.status();
          ++failures;
        }
        if (i % 3 == 0) {
          if (absl::Status s = c->Evict(*k); !s.ok()) {
            ADD_FAILURE() << s;
            ++failures;
          }
        } else {
          written[t].emplace_back(*k, value);
        }
        if (i % 10 == 0) {
          std::vector<SharedBytes> batch = {SharedBytes::Copy(value),
                                            SharedBytes::Copy(value + "b")};
          absl::StatusOr<std::vector<Key>> keys = c->PutBatch(batch);
          if (!keys.ok()) {
            ADD_FAILURE() << keys.status();
            ++failures;
            continue;
          }
          absl::StatusOr<std::vector<std::optional<SharedBytes>>> back =
              c->GetBatch(*keys);
          if (!back.ok() || (*back)[1] == std::nullopt ||
              (*back)[1]->view() != value + "b") {
            ADD_FAILURE() << "batch read back failed";
            ++failures;
          }
        }
      }
    });
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster->Layout());
  const int first = layout.SlotOwner(slot);
  int second = -1;
  for (int m : layout.masters()) {
    if (m != first) second = m;
  }
  ASSERT_GE(second, 0);
  int64_t asking_before = 0;
  for (int m : layout.masters()) {
    asking_before += Calls(cluster->node(m), "asking");
  }
  // Key by key batches of 20, so the slot stays half-moved for a while.
  for (auto [from, to] : {std::pair{first, second}, std::pair{second, first}}) {
    ASSERT_THAT(cluster->BeginSlotMigration(slot, from, to), IsOk());
    for (;;) {
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(
          int moved, cluster->MigrateSlotKeys(slot, from, to, 20));
      if (moved == 0) break;
    }
    ASSERT_THAT(cluster->FinishSlotMigration(slot, from, to), IsOk());
  }
  done = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  // The half-moved slot sent operations to the importing node (ASK).
  int64_t asking_after = 0;
  for (int m : layout.masters()) {
    asking_after += Calls(cluster->node(m), "asking");
  }
  EXPECT_GT(asking_after, asking_before);
  for (size_t i = 0; i < early.size(); ++i) {
    EXPECT_THAT(c->Get(early[i]),
                IsOkAndHolds(::testing::Optional(
                    ::testing::Property(&SharedBytes::view, Pattern(i, 64)))));
  }
  size_t checked = 0;
  for (const auto& list : written) {
    for (const auto& [key, value] : list) {
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                      c->Get(key));
      ASSERT_TRUE(got.has_value()) << key.id();
      EXPECT_EQ(got->view(), value);
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);
  EXPECT_THAT(c->Close({.clear = true}), IsOk());
  EXPECT_EQ(KeysOn(cluster->node(first), prefix), 0);
  EXPECT_EQ(KeysOn(cluster->node(second), prefix), 0);
}

}  // namespace
}  // namespace proxystore
