#include "proxystore/testing/redis_cluster.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/netns.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kServer[] = "/usr/bin/redis-server";
constexpr char kCli[] = "/usr/bin/redis-cli";

bool Installed() {
  return ::access(kServer, X_OK) == 0 && ::access(kCli, X_OK) == 0;
}

#define SKIP_UNLESS_INSTALLED()                                      \
  if (!Installed())                                                  \
  GTEST_SKIP() << kServer << " or " << kCli                          \
               << " is missing: Redis Cluster tests need both (run " \
                  "tools/setup.sh to install redis-server)"

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

constexpr timeval kTimeout = {5, 0};

Context Connect(const RedisServer& server) {
  return Context(
      redisConnectWithTimeout(server.host().c_str(), server.port(), kTimeout));
}

// Runs one command and renders the reply as text: "+status", "-error",
// ":integer", "$string", "nil", "*n a b ..."; or "!io error".
std::string Cmd(redisContext* c, const std::vector<std::string>& words) {
  if (c == nullptr) return "!no context";
  if (c->err != 0) return absl::StrCat("!", c->errstr);
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& w : words) {
    argv.push_back(w.data());
    lens.push_back(w.size());
  }
  Reply r(static_cast<redisReply*>(redisCommandArgv(
      c, static_cast<int>(argv.size()), argv.data(), lens.data())));
  if (r == nullptr) return absl::StrCat("!", c->errstr);
  switch (r->type) {
    case REDIS_REPLY_STATUS:
      return absl::StrCat("+", std::string(r->str, r->len));
    case REDIS_REPLY_ERROR:
      return absl::StrCat("-", std::string(r->str, r->len));
    case REDIS_REPLY_INTEGER:
      return absl::StrCat(":", r->integer);
    case REDIS_REPLY_STRING:
      return absl::StrCat("$", std::string(r->str, r->len));
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_ARRAY: {
      std::string out = absl::StrCat("*", r->elements);
      for (size_t i = 0; i < r->elements; ++i) {
        out += absl::StrCat(
            " ", std::string(r->element[i]->str, r->element[i]->len));
      }
      return out;
    }
  }
  return "?";
}

// One command on a fresh connection to node i.
std::string On(const RedisCluster& cluster, int i,
               const std::vector<std::string>& words) {
  Context c = Connect(cluster.node(i));
  return Cmd(c.get(), words);
}

// CLUSTER KEYSLOT, asked of the first running node.
int KeySlot(const RedisCluster& cluster, const std::string& key) {
  int asked = 0;
  while (asked + 1 < cluster.size() && !cluster.node(asked).running()) ++asked;
  const std::string r = On(cluster, asked, {"CLUSTER", "KEYSLOT", key});
  int slot = -1;
  if (r.empty() || r[0] != ':' || !absl::SimpleAtoi(r.substr(1), &slot)) {
    ADD_FAILURE() << "CLUSTER KEYSLOT " << key << ": " << r;
  }
  return slot;
}

std::string Moved(int slot, const RedisCluster& cluster, int owner) {
  return absl::StrCat("-MOVED ", slot, " ", cluster.address(owner));
}

// True if no process has this pid any more (after it was reaped).
bool ProcessGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// Every running node says cluster_state:ok.
void ExpectStateOkEverywhere(const RedisCluster& cluster) {
  for (int i = 0; i < cluster.size(); ++i) {
    if (!cluster.node(i).running()) continue;
    EXPECT_THAT(On(cluster, i, {"CLUSTER", "INFO"}),
                HasSubstr("cluster_state:ok"))
        << "node " << i;
  }
}

// The cluster most tests share: starting one takes seconds.
class RedisClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!Installed()) return;
    const absl::Time t0 = absl::Now();
    absl::StatusOr<std::unique_ptr<RedisCluster>> c = RedisCluster::Start();
    ASSERT_THAT(c, IsOk());
    std::cout << "RedisCluster::Start (3 masters, 3 replicas) took "
              << absl::FormatDuration(absl::Now() - t0) << "\n";
    cluster_ = c->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;  // NOLINT: the suite's own cluster
    cluster_ = nullptr;
  }
  void SetUp() override {
    SKIP_UNLESS_INSTALLED();
    ASSERT_NE(cluster_, nullptr) << "the suite's cluster did not start";
  }

  static RedisCluster* cluster_;
};

RedisCluster* RedisClusterTest::cluster_ = nullptr;

TEST_F(RedisClusterTest, FormsWithEverySlotCoveredAndReplicasInSync) {
  RedisCluster& cluster = *cluster_;
  ASSERT_EQ(cluster.size(), 6);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster.Layout());
  ASSERT_EQ(layout.masters().size(), 3u);
  std::set<int> replicas;
  std::vector<int> owner(kRedisClusterSlots, -1);
  for (int m : layout.masters()) {
    ASSERT_EQ(layout.replicas_of(m).size(), 1u) << "master " << m;
    replicas.insert(layout.replicas_of(m)[0]);
    for (const RedisClusterSlotRange& r : layout.nodes[m].slots) {
      for (int s = r.first; s <= r.last; ++s) {
        EXPECT_EQ(owner[s], -1) << "slot " << s << " has two owners";
        owner[s] = m;
      }
    }
  }
  EXPECT_EQ(replicas.size(), 3u);
  for (int s = 0; s < kRedisClusterSlots; ++s) {
    ASSERT_NE(owner[s], -1) << "slot " << s << " is not covered";
    ASSERT_EQ(layout.SlotOwner(s), owner[s]);
  }

  for (int i = 0; i < cluster.size(); ++i) {
    EXPECT_EQ(layout.nodes[i].index, i);
    EXPECT_EQ(layout.nodes[i].id, cluster.node_id(i));
    EXPECT_EQ(layout.nodes[i].id.size(), 40u);
    EXPECT_FALSE(layout.nodes[i].failed);
    const std::string info = On(cluster, i, {"CLUSTER", "INFO"});
    EXPECT_THAT(info, HasSubstr("cluster_state:ok"));
    EXPECT_THAT(info, HasSubstr("cluster_slots_assigned:16384"));
    EXPECT_THAT(info, HasSubstr("cluster_known_nodes:6"));
    EXPECT_THAT(cluster.node(i).Output(),
                HasSubstr("Cluster state changed: ok"));
    // Every node sees the same owners.
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout view, cluster.Layout(i));
    EXPECT_EQ(view.asked, i);
    for (int m : layout.masters()) {
      EXPECT_EQ(view.nodes[m].slots, layout.nodes[m].slots);
    }
  }
  for (int r : replicas) {
    const int master = layout.nodes[r].master_index;
    const std::string repl = On(cluster, r, {"INFO", "replication"});
    EXPECT_THAT(repl, HasSubstr("role:slave"));
    EXPECT_THAT(repl, HasSubstr(absl::StrCat("master_port:",
                                             cluster.node(master).port())));
    EXPECT_THAT(repl, HasSubstr("master_link_status:up"));
    EXPECT_THAT(cluster.node(r).Output(),
                HasSubstr("MASTER <-> REPLICA sync: Finished with success"));
  }

  const std::vector<std::string> addresses =
      absl::StrSplit(cluster.addresses(), ',');
  ASSERT_EQ(addresses.size(), 6u);
  for (int i = 0; i < cluster.size(); ++i) {
    EXPECT_EQ(addresses[i], absl::StrCat("127.0.0.1:", cluster.node(i).port()));
    EXPECT_EQ(cluster.address(i), addresses[i]);
  }
  EXPECT_TRUE(std::filesystem::exists(cluster.dir()));
  EXPECT_TRUE(std::filesystem::exists(
      absl::StrCat(cluster.dir(), "/node-0/nodes.conf")));
}

TEST_F(RedisClusterTest, KeyLivesOnItsSlotsMasterAndOtherNodesAnswerMoved) {
  RedisCluster& cluster = *cluster_;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster.Layout());
  const std::string key = "redis-cluster-test:routed";
  const int slot = KeySlot(cluster, key);
  ASSERT_GE(slot, 0);
  const int owner = layout.SlotOwner(slot);
  ASSERT_GE(owner, 0);

  Context c = Connect(cluster.node(owner));
  EXPECT_EQ(Cmd(c.get(), {"SET", key, "value"}), "+OK");
  EXPECT_EQ(Cmd(c.get(), {"GET", key}), "$value");
  // Replicated before the replica is asked.
  EXPECT_EQ(Cmd(c.get(), {"WAIT", "1", "5000"}), ":1");

  for (int m : layout.masters()) {
    if (m == owner) continue;
    EXPECT_EQ(On(cluster, m, {"GET", key}), Moved(slot, cluster, owner))
        << "master " << m;
    EXPECT_EQ(On(cluster, m, {"SET", key, "x"}), Moved(slot, cluster, owner));
  }
  // A replica sends clients to its master too, unless they ask READONLY.
  const int replica = layout.replicas_of(owner)[0];
  Context r = Connect(cluster.node(replica));
  EXPECT_EQ(Cmd(r.get(), {"GET", key}), Moved(slot, cluster, owner));
  EXPECT_EQ(Cmd(r.get(), {"READONLY"}), "+OK");
  EXPECT_EQ(Cmd(r.get(), {"GET", key}), "$value");
  EXPECT_EQ(Cmd(c.get(), {"DEL", key}), ":1");
}

TEST_F(RedisClusterTest, MigrateSlotMovesItsKeysAndRedirects) {
  RedisCluster& cluster = *cluster_;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster.Layout());
  // One hash tag: every key in one slot.
  const std::string prefix = "{redis-cluster-test-migrate}:";
  const int slot = KeySlot(cluster, prefix);
  const int from = layout.SlotOwner(slot);
  ASSERT_GE(from, 0);
  const int to =
      layout.masters()[0] == from ? layout.masters()[1] : layout.masters()[0];
  constexpr int kKeys = 250;
  {
    Context c = Connect(cluster.node(from));
    for (int k = 0; k < kKeys; ++k) {
      ASSERT_EQ(
          Cmd(c.get(), {"SET", absl::StrCat(prefix, k), absl::StrCat("v", k)}),
          "+OK");
    }
  }
  const std::string count = absl::StrCat(slot);

  // Half-way: `from` keeps some keys and sends clients to `to` with ASK for
  // the others; `to` serves those only after ASKING.
  PROXYSTORE_ASSERT_OK(cluster.BeginSlotMigration(slot, from, to));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(int moved,
                                  cluster.MigrateSlotKeys(slot, from, to, 100));
  EXPECT_EQ(moved, 100);
  EXPECT_EQ(On(cluster, from, {"CLUSTER", "COUNTKEYSINSLOT", count}), ":150");
  EXPECT_EQ(On(cluster, to, {"CLUSTER", "COUNTKEYSINSLOT", count}), ":100");
  const std::string ask = absl::StrCat("-ASK ", slot, " ", cluster.address(to));
  int asked = 0;
  {
    Context source = Connect(cluster.node(from));
    Context target = Connect(cluster.node(to));
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = absl::StrCat(prefix, k);
      const std::string got = Cmd(source.get(), {"GET", key});
      if (got == ask) {
        ++asked;
        EXPECT_EQ(Cmd(target.get(), {"GET", key}), Moved(slot, cluster, from));
        EXPECT_EQ(Cmd(target.get(), {"ASKING"}), "+OK");
        EXPECT_EQ(Cmd(target.get(), {"GET", key}), absl::StrCat("$v", k));
      } else {
        EXPECT_EQ(got, absl::StrCat("$v", k));
      }
    }
  }
  EXPECT_EQ(asked, 100);
  while (true) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(moved,
                                    cluster.MigrateSlotKeys(slot, from, to));
    if (moved == 0) break;
  }
  PROXYSTORE_ASSERT_OK(cluster.FinishSlotMigration(slot, from, to));

  // Done: every key at `to`, MOVED from `from`, and every node agrees.
  EXPECT_EQ(On(cluster, from, {"CLUSTER", "COUNTKEYSINSLOT", count}), ":0");
  EXPECT_EQ(On(cluster, to, {"CLUSTER", "COUNTKEYSINSLOT", count}),
            absl::StrCat(":", kKeys));
  {
    Context source = Connect(cluster.node(from));
    Context target = Connect(cluster.node(to));
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = absl::StrCat(prefix, k);
      EXPECT_EQ(Cmd(target.get(), {"GET", key}), absl::StrCat("$v", k));
      EXPECT_EQ(Cmd(source.get(), {"GET", key}), Moved(slot, cluster, to));
    }
  }
  for (int i = 0; i < cluster.size(); ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout view, cluster.Layout(i));
    EXPECT_EQ(view.SlotOwner(slot), to) << "node " << i;
  }
  ExpectStateOkEverywhere(cluster);

  // And back in one call, in batches of 64.
  PROXYSTORE_ASSERT_OK(cluster.MigrateSlot(slot, to, from, 64));
  {
    Context source = Connect(cluster.node(from));
    Context target = Connect(cluster.node(to));
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = absl::StrCat(prefix, k);
      EXPECT_EQ(Cmd(source.get(), {"GET", key}), absl::StrCat("$v", k));
      EXPECT_EQ(Cmd(target.get(), {"GET", key}), Moved(slot, cluster, from));
    }
    EXPECT_EQ(On(cluster, to, {"CLUSTER", "COUNTKEYSINSLOT", count}), ":0");
    for (int k = 0; k < kKeys; ++k) {
      Cmd(source.get(), {"DEL", absl::StrCat(prefix, k)});
    }
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout after, cluster.Layout());
  EXPECT_EQ(after.SlotOwner(slot), from);

  // A slot without keys moves too.
  const int empty_slot = slot == 0 ? 1 : slot - 1;
  const int empty_owner = after.SlotOwner(empty_slot);
  const int other = after.masters()[0] == empty_owner ? after.masters()[1]
                                                      : after.masters()[0];
  PROXYSTORE_ASSERT_OK(cluster.MigrateSlot(empty_slot, empty_owner, other));
  PROXYSTORE_ASSERT_OK(cluster.MigrateSlot(empty_slot, other, empty_owner));
}

TEST_F(RedisClusterTest, BadIndicesAndMigrationsAreErrors) {
  RedisCluster& cluster = *cluster_;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster.Layout());
  const int owner = layout.SlotOwner(0);
  const int other =
      layout.masters()[0] == owner ? layout.masters()[1] : layout.masters()[0];
  EXPECT_THAT(cluster.MigrateSlot(kRedisClusterSlots, owner, other),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(cluster.MigrateSlot(0, owner, owner),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // `other` does not own slot 0: it cannot migrate it away.
  EXPECT_THAT(cluster.MigrateSlot(0, other, owner),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(cluster.KillNode(cluster.size()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(cluster.RestartNode(-1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(cluster.WaitForFailover(layout.replicas_of(owner)[0]),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(cluster.Layout(cluster.size()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Nothing was changed: the cluster is as healthy as before.
  PROXYSTORE_EXPECT_OK(cluster.WaitUntilHealthy());
}

TEST(RedisClusterFailover, KilledMasterIsReplacedByItsReplicaAndRejoins) {
  SKIP_UNLESS_INSTALLED();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisCluster> cluster,
                                  RedisCluster::Start());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster->Layout());
  const int master = layout.masters()[0];
  const int replica = layout.replicas_of(master)[0];
  const std::vector<RedisClusterSlotRange> slots = layout.nodes[master].slots;
  ASSERT_FALSE(slots.empty());
  // A key in one of its slots, replicated before the crash.
  std::string key;
  int slot = -1;
  for (int k = 0; k < 1000 && key.empty(); ++k) {
    const std::string candidate = absl::StrCat("redis-cluster-test:", k);
    slot = KeySlot(*cluster, candidate);
    if (layout.SlotOwner(slot) == master) key = candidate;
  }
  ASSERT_FALSE(key.empty());
  {
    Context c = Connect(cluster->node(master));
    ASSERT_EQ(Cmd(c.get(), {"SET", key, "survives"}), "+OK");
    ASSERT_EQ(Cmd(c.get(), {"WAIT", "1", "5000"}), ":1");
  }

  const pid_t old_pid = cluster->node(master).pid();
  PROXYSTORE_ASSERT_OK(cluster->KillNode(master));
  EXPECT_FALSE(cluster->node(master).running());
  EXPECT_TRUE(ProcessGone(old_pid));
  const absl::Time t0 = absl::Now();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(int promoted,
                                  cluster->WaitForFailover(master));
  std::cout << "failover (node timeout "
            << absl::FormatDuration(cluster->options().node_timeout)
            << ") took " << absl::FormatDuration(absl::Now() - t0) << "\n";
  EXPECT_EQ(promoted, replica);
  EXPECT_THAT(cluster->node(replica).Output(),
              HasSubstr("Failover election won"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout after,
                                  cluster->Layout(replica));
  EXPECT_TRUE(after.nodes[replica].master);
  EXPECT_EQ(after.nodes[replica].slots, slots);
  EXPECT_TRUE(after.nodes[master].failed);
  EXPECT_TRUE(after.nodes[master].slots.empty());
  ExpectStateOkEverywhere(*cluster);
  EXPECT_THAT(On(*cluster, replica, {"INFO", "replication"}),
              HasSubstr("role:master"));
  EXPECT_EQ(On(*cluster, replica, {"GET", key}), "$survives");
  for (int m : after.masters()) {
    if (m == replica || m == master) continue;
    EXPECT_EQ(On(*cluster, m, {"GET", key}), Moved(slot, *cluster, replica));
  }

  // Back up, the old master learns it lost its slots and follows the new
  // master.
  const absl::Time t1 = absl::Now();
  PROXYSTORE_ASSERT_OK(cluster->RestartNode(master));
  std::cout << "rejoin of the old master took "
            << absl::FormatDuration(absl::Now() - t1) << "\n";
  EXPECT_TRUE(cluster->node(master).running());
  EXPECT_NE(cluster->node(master).pid(), old_pid);
  for (int asked : {master, replica}) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout view,
                                    cluster->Layout(asked));
    EXPECT_FALSE(view.nodes[master].master) << "as node " << asked << " sees";
    EXPECT_EQ(view.nodes[master].master_index, replica);
    EXPECT_FALSE(view.nodes[master].failed);
    EXPECT_EQ(view.nodes[replica].slots, slots);
  }
  const std::string repl = On(*cluster, master, {"INFO", "replication"});
  EXPECT_THAT(repl, HasSubstr("role:slave"));
  EXPECT_THAT(repl, HasSubstr(absl::StrCat("master_port:",
                                           cluster->node(replica).port())));
  EXPECT_THAT(repl, HasSubstr("master_link_status:up"));
  EXPECT_EQ(On(*cluster, master, {"GET", key}), Moved(slot, *cluster, replica));
  Context c = Connect(cluster->node(master));
  EXPECT_EQ(Cmd(c.get(), {"READONLY"}), "+OK");
  EXPECT_EQ(Cmd(c.get(), {"GET", key}), "$survives");
  ExpectStateOkEverywhere(*cluster);
}

TEST(RedisClusterTeardown, DestructorLeavesNoProcessOrDirectory) {
  SKIP_UNLESS_INSTALLED();
  // With a password (replicas authenticate with --masterauth) and the
  // append-only file on.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisCluster> cluster,
      RedisCluster::Start({.persistence = true, .password = "s3cret"}));
  EXPECT_THAT(On(*cluster, 0, {"PING"}), HasSubstr("-NOAUTH"));
  {
    Context c = Connect(cluster->node(0));
    EXPECT_EQ(Cmd(c.get(), {"AUTH", "s3cret"}), "+OK");
    EXPECT_THAT(Cmd(c.get(), {"CLUSTER", "INFO"}),
                HasSubstr("cluster_state:ok"));
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster->Layout());
  EXPECT_EQ(layout.masters().size(), 3u);
  std::vector<pid_t> pids;
  for (int i = 0; i < cluster->size(); ++i) {
    ASSERT_TRUE(cluster->node(i).running());
    pids.push_back(cluster->node(i).pid());
  }
  const std::string dir = cluster->dir();
  EXPECT_TRUE(std::filesystem::exists(dir));
  cluster.reset();
  for (pid_t pid : pids) EXPECT_TRUE(ProcessGone(pid)) << "pid " << pid;
  EXPECT_FALSE(std::filesystem::exists(dir));
}

// Nodes on two hosts (network namespaces), reached from a third: redis-cli
// and the fixture's queries work inside the namespaces, the nodes gossip
// and replicate across the switch, and a failover happens there too.
TEST(RedisClusterPlacement, NodesOnTwoHostsServeAThirdAndFailOver) {
  SKIP_UNLESS_INSTALLED();
  absl::Status available = Netns::Available();
  if (!available.ok()) GTEST_SKIP() << available.message();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> net,
                                  Netns::Create({.hosts = 3}));
  RedisClusterOptions options;
  for (int i = 0; i < 6; ++i) {
    options.placement.push_back({net->path(i % 2), net->address(i % 2)});
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisCluster> cluster,
                                  RedisCluster::Start(options));
  ASSERT_EQ(cluster->size(), 6);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(cluster->address(i),
              absl::StrCat(net->address(i % 2), ":", cluster->node(i).port()));
  }
  EXPECT_THAT(cluster->addresses(), Not(HasSubstr("127.0.0.1")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout layout, cluster->Layout());
  ASSERT_EQ(layout.masters().size(), 3u);
  std::set<int> master_hosts;
  for (int m : layout.masters()) {
    master_hosts.insert(m % 2);
    EXPECT_EQ(layout.replicas_of(m).size(), 1u) << "master " << m;
  }
  EXPECT_EQ(master_hosts.size(), 2u) << "masters on both hosts";

  // From host 2: each master takes a key of its own slots and sends the
  // others there with MOVED (to an address on host 0 or 1).
  const int master = layout.masters()[0];
  const int replica = layout.replicas_of(master)[0];
  std::string key;
  int slot = -1;
  std::string set, wait, moved;
  PROXYSTORE_ASSERT_OK(net->RunInThread(2, [&] {
    for (int k = 0; k < 1000 && key.empty(); ++k) {
      const std::string candidate = absl::StrCat("placed:", k);
      const std::string r =
          On(*cluster, master, {"CLUSTER", "KEYSLOT", candidate});
      if (r.size() > 1 && absl::SimpleAtoi(r.substr(1), &slot) &&
          layout.SlotOwner(slot) == master) {
        key = candidate;
      }
    }
    Context c = Connect(cluster->node(master));
    set = Cmd(c.get(), {"SET", key, "crossed hosts"});
    wait = Cmd(c.get(), {"WAIT", "1", "5000"});
    moved = On(*cluster, layout.masters()[1], {"GET", key});
  }));
  ASSERT_FALSE(key.empty());
  EXPECT_EQ(set, "+OK");
  EXPECT_EQ(wait, ":1") << "replicated to the other host";
  EXPECT_EQ(moved, Moved(slot, *cluster, master));

  PROXYSTORE_ASSERT_OK(cluster->KillNode(master));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(int promoted,
                                  cluster->WaitForFailover(master));
  EXPECT_EQ(promoted, replica);
  std::string got;
  PROXYSTORE_ASSERT_OK(net->RunInThread(2, [&] {
    got = On(*cluster, replica, {"GET", key});
  }));
  EXPECT_EQ(got, "$crossed hosts");
  PROXYSTORE_ASSERT_OK(cluster->RestartNode(master));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisClusterLayout after,
                                  cluster->Layout(master));
  EXPECT_EQ(after.nodes[master].master_index, replica);
}

TEST(RedisClusterOptions, FewerThanThreeMastersOrMissingBinariesAreErrors) {
  EXPECT_THAT(RedisCluster::Start({.masters = 2}),
              StatusIs(absl::StatusCode::kInvalidArgument, "at least 3"));
  EXPECT_THAT(RedisCluster::Start({.placement = {{"", "127.0.0.1"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "placement has 1 entries for 6 nodes"));
  EXPECT_THAT(
      RedisCluster::Start({.cli_binary = "/nonexistent/redis-cli"}),
      StatusIs(absl::StatusCode::kFailedPrecondition, "tools/setup.sh"));
  EXPECT_THAT(
      RedisCluster::Start({.server_binary = "/nonexistent/redis-server"}),
      StatusIs(absl::StatusCode::kFailedPrecondition, "redis-server"));
}

}  // namespace
}  // namespace proxystore::testing
