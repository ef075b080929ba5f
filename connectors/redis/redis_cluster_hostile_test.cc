// The redis connector's cluster mode (and wait_replicas, and the Python
// layout's clearing Close) against scripted servers
// (connectors/redis/scripted_server.h): what a real cluster sends rarely or
// never, each case a reply or a failure at one exact point.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/redis/cluster_routing.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/connectors/redis/scripted_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::redis_test::ScriptedRedisServer;
using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

const Key kKey("0123456789abcdef0123456789abcdef");

std::string Bulk(const std::string& s) {
  return absl::StrCat("$", s.size(), "\r\n", s, "\r\n");
}
std::string NodeId(char c) { return std::string(40, c); }
// CLUSTER SLOTS: every slot served by 127.0.0.1:port.
std::string SlotsAllOn(int port) {
  return absl::StrCat("*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n", Bulk("127.0.0.1"),
                      ":", port, "\r\n", Bulk(NodeId('a')));
}

absl::StatusOr<std::unique_ptr<RedisConnector>> ClusterOn(
    int port, std::map<std::string, std::string> more = {}) {
  more["cluster"] = absl::StrCat("127.0.0.1:", port);
  return RedisConnector::Create({"redis", std::move(more)});
}

TEST(RedisClusterHostile, AMalformedReplyIsTheResultNotRetried) {
  std::atomic<int> port{0};
  ScriptedRedisServer s([&](const std::vector<std::string>& cmd) {
    if (cmd[0] == "CLUSTER") return SlotsAllOn(port);
    if (cmd[0] == "GET") return std::string("!garbage\r\n");
    return std::string("+OK\r\n");
  });
  port = s.port();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, ClusterOn(s.port()));
  EXPECT_THAT(c->Get(kKey), StatusIs(absl::StatusCode::kInternal,
                                     HasSubstr("not a RESP2 reply line")));
  EXPECT_EQ(s.Count("GET"), 1);
  EXPECT_EQ(s.Count("CLUSTER SLOTS"), 1);
}

TEST(RedisClusterHostile, ASeedWithoutClusterSupportIsNotRetried) {
  ScriptedRedisServer s([](const std::vector<std::string>& cmd) {
    if (cmd[0] == "CLUSTER") {
      return std::string("-ERR This instance has cluster support disabled\r\n");
    }
    return std::string("+OK\r\n");
  });
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, ClusterOn(s.port()));
  EXPECT_THAT(c->Exists(kKey), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("cluster support disabled")));
  EXPECT_EQ(s.Count("CLUSTER SLOTS"), 1);
}

TEST(RedisClusterHostile, AskIsFollowedWithoutReadingTheMapAgain) {
  std::atomic<int> port{0};
  std::atomic<bool> asking{false};
  ScriptedRedisServer s([&](const std::vector<std::string>& cmd) {
    if (cmd[0] == "CLUSTER") return SlotsAllOn(port);
    if (cmd[0] == "ASKING") {
      asking = true;
      return std::string("+OK\r\n");
    }
    if (cmd[0] == "GET") {
      if (asking.exchange(false)) return Bulk("moved here");
      return absl::StrCat("-ASK ", redis_cluster::KeySlot(cmd[1]),
                          " 127.0.0.1:", port.load(), "\r\n");
    }
    return std::string("+OK\r\n");
  });
  port = s.port();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, ClusterOn(s.port()));
  for (int i = 0; i < 5; ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                    c->Get(kKey));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->view(), "moved here");
  }
  EXPECT_EQ(s.Count("ASKING"), 5);
  EXPECT_EQ(s.Count("CLUSTER SLOTS"), 1);
}

TEST(RedisClusterHostile, NoFurtherSeedIsAskedOnceTheTimeIsUp) {
  // Seeds that accept connections and never answer.
  std::vector<std::unique_ptr<ScriptedRedisServer>> silent;
  std::string seeds;
  for (int i = 0; i < 3; ++i) {
    silent.push_back(std::make_unique<ScriptedRedisServer>(
        [](const std::vector<std::string>&) {
          return std::string(ScriptedRedisServer::kSilent);
        }));
    absl::StrAppend(&seeds, "127.0.0.1:", silent.back()->port(), ",");
  }
  std::atomic<int> port{0};
  ScriptedRedisServer s([&](const std::vector<std::string>& cmd) {
    if (cmd[0] == "CLUSTER") return SlotsAllOn(port);
    return std::string(":0\r\n");
  });
  port = s.port();
  absl::StrAppend(&seeds, "127.0.0.1:", s.port());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto c,
      RedisConnector::Create(
          {"redis", {{"cluster", seeds}, {"command_timeout_ms", "300"}}}));
  // The first silent seed uses the operation's time up.
  EXPECT_THAT(c->Exists(kKey), StatusIs(absl::StatusCode::kUnavailable));
  int asked = 0;
  for (const auto& seed : silent) asked += seed->Count("CLUSTER SLOTS");
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(s.Count("CLUSTER SLOTS"), 0);
}

TEST(RedisClusterHostile, AWriteWhoseWaitIsNotAnsweredFails) {
  // The SET runs, then the connection drops before PUBLISH's and WAIT's
  // replies: the write is not confirmed on any replica.
  ScriptedRedisServer s([](const std::vector<std::string>& cmd) {
    if (cmd[0] == "PUBLISH") return std::string(ScriptedRedisServer::kClose);
    return std::string("+OK\r\n");
  });
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto c, RedisConnector::Create({"redis",
                                      {{"host", "127.0.0.1"},
                                       {"port", absl::StrCat(s.port())},
                                       {"wait_replicas", "1"}}}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
  EXPECT_THAT(c->Set(key, SharedBytes::Copy("x")),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("WAIT was not answered"),
                             HasSubstr("written and stays"))));
}

TEST(RedisClusterHostile, PutBatchTakesBackAnObjectWhoseSetMayHaveRun) {
  // The first SET runs and its reply is lost; the retry meets CLUSTERDOWN
  // until the time is up. The object may be stored: it is unlinked.
  std::atomic<int> port{0};
  std::atomic<int> sets{0};
  ScriptedRedisServer s([&](const std::vector<std::string>& cmd) {
    if (cmd[0] == "CLUSTER") return SlotsAllOn(port);
    if (cmd[0] == "SET") {
      if (sets++ == 0) return std::string(ScriptedRedisServer::kClose);
      return std::string("-CLUSTERDOWN The cluster is down\r\n");
    }
    if (cmd[0] == "UNLINK") return std::string(":1\r\n");
    return std::string("+OK\r\n");
  });
  port = s.port();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto c, ClusterOn(s.port(), {{"command_timeout_ms", "300"}}));
  EXPECT_THAT(c->PutBatch({SharedBytes::Copy("v")}),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("SET failed: CLUSTERDOWN"),
                             HasSubstr("removed again"))));
  EXPECT_EQ(s.Count("UNLINK"), 1);
}

TEST(RedisClusterHostile, AnOversizedSlotMapIsRefusedBeforeItIsParsed) {
  // Within the byte budget, but two million ranges.
  const size_t n = 2'000'000;
  std::string big = absl::StrCat("*", n, "\r\n");
  for (size_t i = 0; i < n; ++i) big += "*0\r\n";
  ASSERT_LE(big.size(), RedisConnector::kMaxSlotsReplySize);
  ScriptedRedisServer s([&](const std::vector<std::string>& cmd) {
    if (cmd[0] == "CLUSTER") return big;
    return std::string("+OK\r\n");
  });
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, ClusterOn(s.port()));
  EXPECT_THAT(c->Exists(kKey),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("beyond what a slot map holds")));
}

TEST(RedisClusterHostile, ClearingTouchesOnlyKeysUnderThePrefix) {
  // A server that ignores MATCH: a key shorter than the prefix and one
  // outside it come back from SCAN, besides one of ours.
  const std::string ours = "pfx:5f0c8c3e-1b2d-4c5e-8f9a-0b1c2d3e4f50";
  ScriptedRedisServer s([&](const std::vector<std::string>& cmd) {
    if (cmd[0] == "SCAN") {
      return absl::StrCat("*2\r\n$1\r\n0\r\n*3\r\n", Bulk("x"),
                          Bulk("zzzz5f0c8c3e-1b2d-4c5e-8f9a-0b1c2d3e4f50"),
                          Bulk(ours));
    }
    if (cmd[0] == "UNLINK") return absl::StrCat(":", cmd.size() - 1, "\r\n");
    return std::string("+OK\r\n");
  });
  for (const char* layout : {"native", "proxystore-python"}) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        auto c, RedisConnector::Create({"redis",
                                        {{"host", "127.0.0.1"},
                                         {"port", absl::StrCat(s.port())},
                                         {"layout", layout},
                                         {"prefix", "pfx:"}}}));
    EXPECT_THAT(c->Close({.clear = true}), IsOk());
  }
  for (const std::vector<std::string>& cmd : s.Log()) {
    if (cmd[0] != "UNLINK") continue;
    EXPECT_THAT(cmd, ::testing::ElementsAre("UNLINK", ours));
  }
  EXPECT_EQ(s.Count("UNLINK"), 2);
}

}  // namespace
}  // namespace proxystore
