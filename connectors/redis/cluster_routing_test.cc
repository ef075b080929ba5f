#include "proxystore/connectors/redis/cluster_routing.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::redis_cluster {

// For gtest's messages; here, not in an unnamed namespace, so that
// argument-dependent lookup finds them.
void PrintTo(const Endpoint& e, std::ostream* os) { *os << e.ToString(); }
void PrintTo(const Node& n, std::ostream* os) {
  *os << n.id << "@" << n.endpoint.ToString();
}
void PrintTo(const SlotRange& r, std::ostream* os) {
  *os << r.first << "-" << r.last;
}

namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::RedisServer;
using ::proxystore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;

// --- hiredis plumbing.

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;
struct ReaderFree {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};
struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextFree>;

// The reply tree hiredis's own reader makes of raw RESP bytes, as a
// connection would hand it over; null (and a test failure) if the bytes are
// not one whole reply.
ReplyPtr FromResp(absl::string_view resp) {
  std::unique_ptr<redisReader, ReaderFree> reader(redisReaderCreate());
  if (reader == nullptr ||
      redisReaderFeed(reader.get(), resp.data(), resp.size()) != REDIS_OK) {
    ADD_FAILURE() << "cannot feed the reader";
    return nullptr;
  }
  void* reply = nullptr;
  if (redisReaderGetReply(reader.get(), &reply) != REDIS_OK ||
      reply == nullptr) {
    ADD_FAILURE() << "not one whole reply: " << absl::CHexEscape(resp) << " ("
                  << reader->errstr << ")";
    return nullptr;
  }
  return ReplyPtr(static_cast<redisReply*>(reply));
}

// RESP2 pieces.
std::string Int(long long v) { return absl::StrCat(":", v, "\r\n"); }
std::string Bulk(absl::string_view s) {
  return absl::StrCat("$", s.size(), "\r\n", s, "\r\n");
}
std::string Nil() { return "$-1\r\n"; }
std::string Arr(const std::vector<std::string>& items) {
  std::string out = absl::StrCat("*", items.size(), "\r\n");
  for (const std::string& item : items) out += item;
  return out;
}

std::string Id(char c) { return std::string(40, c); }
// A Redis 7 node: host, port, id, metadata.
std::string NodeResp(absl::string_view host, long long port,
                     absl::string_view id,
                     const std::vector<std::string>& metadata = {}) {
  return Arr({Bulk(host), Int(port), Bulk(id), Arr(metadata)});
}
std::string RangeResp(long long first, long long last,
                      const std::vector<std::string>& nodes) {
  std::vector<std::string> items = {Int(first), Int(last)};
  items.insert(items.end(), nodes.begin(), nodes.end());
  return Arr(items);
}

absl::StatusOr<SlotMap> ParseResp(absl::string_view resp) {
  const ReplyPtr reply = FromResp(resp);
  if (reply == nullptr) return absl::InternalError("test: bad RESP");
  return SlotMap::FromClusterSlots(reply.get());
}

// A cluster-enabled node. redis-server refuses, in cluster mode, a port
// above 55535 (its bus port is port + 10000), and RedisServer takes the
// kernel's pick of an ephemeral port (32768..60999 on Linux), so about one
// start in five is refused at once; those start again on a new port.
absl::StatusOr<std::unique_ptr<RedisServer>> StartClusterNode() {
  absl::StatusOr<std::unique_ptr<RedisServer>> server;
  for (int attempt = 0; attempt < 30; ++attempt) {
    server = RedisServer::Start(
        {.extra_args = {"--cluster-enabled", "yes",
                        // Relative to --dir: the server's private directory.
                        "--cluster-config-file", "nodes.conf"}});
    if (server.ok() ||
        !absl::StrContains(server.status().message(), "port number too high")) {
      break;
    }
  }
  return server;
}

// One cluster-enabled node for the whole binary. A single node answers
// CLUSTER KEYSLOT, and CLUSTER SLOTS for the slots given to it, without
// ever forming a cluster with others.
absl::StatusOr<RedisServer*> ClusterServer() {
  static absl::StatusOr<std::unique_ptr<RedisServer>> server =
      StartClusterNode();
  if (!server.ok()) return server.status();
  return server->get();
}

ContextPtr Connect(const RedisServer& server) {
  ContextPtr c(redisConnect(server.host().c_str(), server.port()));
  if (c == nullptr || c->err != 0) {
    ADD_FAILURE() << "cannot connect: " << (c ? c->errstr : "no memory");
    return nullptr;
  }
  return c;
}

ReplyPtr Command(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(redisCommandArgv(
      c, static_cast<int>(args.size()), argv.data(), lens.data()));
  if (reply == nullptr) ADD_FAILURE() << "no reply: " << c->errstr;
  return ReplyPtr(reply);
}

// Expects a +OK reply to `args`.
void ExpectOk(redisContext* c, const std::vector<std::string>& args) {
  const ReplyPtr r = Command(c, args);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->type, REDIS_REPLY_STATUS)
      << args[0] << " " << args[1] << ": "
      << absl::string_view(r->str, r->str ? r->len : 0);
}

// --- KeySlot.

TEST(KeySlotTest, Crc16CheckValue) {
  // The CRC-16/XMODEM check value, as in Redis's crc16.c.
  EXPECT_EQ(cluster_routing_internal::Crc16("123456789"), 0x31C3);
  EXPECT_EQ(cluster_routing_internal::Crc16(""), 0);
}

TEST(KeySlotTest, KnownValues) {
  EXPECT_EQ(KeySlot("123456789"), 12739);
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot(""), 0);
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("{user1000}.followers"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  EXPECT_EQ(KeySlot("a{b}c"), KeySlot("b"));
  // No tag: the whole key.
  const auto whole = [](absl::string_view key) {
    return cluster_routing_internal::Crc16(key) & 0x3FFF;
  };
  for (absl::string_view key :
       {"foo{}{bar}", "{}", "{", "}", "}{", "}x{", "foo{bar", "{}x}"}) {
    EXPECT_EQ(KeySlot(key), whole(key)) << key;
  }
  // Bytes are bytes: NUL, high bit.
  const std::string with_nul("a\0{b}\xff", 6);
  EXPECT_EQ(KeySlot(with_nul), KeySlot("b"));
  EXPECT_EQ(KeySlot(std::string("\0", 1)), whole(std::string("\0", 1)));
  // A NUL ends nothing (CRC16 of zero bytes alone is 0, so look past one).
  EXPECT_NE(KeySlot(std::string("a\0b", 3)), KeySlot("a"));
}

// The real check: Redis's own CLUSTER KEYSLOT for several thousand keys,
// every short key over an alphabet of braces and awkward bytes, random keys
// thick with braces, and long keys.
TEST(KeySlotTest, MatchesServer) {
  absl::StatusOr<RedisServer*> server = ClusterServer();
  ASSERT_THAT(server, IsOk());
  EXPECT_TRUE(std::filesystem::exists((*server)->dir() + "/nodes.conf"));
  const ContextPtr c = Connect(**server);
  ASSERT_NE(c, nullptr);

  std::vector<std::string> keys;
  // Every key of length 0..5 over 5 symbols: 3906 keys.
  const std::string alphabet("{}a\0\xff", 5);
  std::vector<std::string> level = {""};
  keys.push_back("");
  for (int len = 1; len <= 5; ++len) {
    std::vector<std::string> next;
    for (const std::string& k : level) {
      for (char ch : alphabet) next.push_back(k + ch);
    }
    keys.insert(keys.end(), next.begin(), next.end());
    level = std::move(next);
  }
  // Random keys, half their bytes braces. A fixed generator state, so a
  // failure reproduces.
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<int> length(0, 48);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> pick(0, 3);
  for (int i = 0; i < 2500; ++i) {
    std::string key(static_cast<size_t>(length(rng)), '\0');
    for (char& ch : key) {
      const int p = pick(rng);
      ch = p == 0 ? '{' : p == 1 ? '}' : static_cast<char>(byte(rng));
    }
    keys.push_back(std::move(key));
  }
  // Long keys, tags far in.
  keys.push_back(std::string(70000, 'x'));
  keys.push_back(std::string(70000, 'x') + "{tag}");
  keys.push_back("{" + std::string(70000, 'y') + "}");
  keys.push_back("{" + std::string(70000, 'y'));
  keys.push_back("{}" + std::string(70000, 'z') + "{tag}");

  // Pipelined, in batches.
  int mismatches = 0;
  constexpr size_t kBatch = 500;
  for (size_t begin = 0; begin < keys.size(); begin += kBatch) {
    const size_t end = std::min(keys.size(), begin + kBatch);
    for (size_t i = begin; i < end; ++i) {
      const char* argv[] = {"CLUSTER", "KEYSLOT", keys[i].data()};
      const size_t lens[] = {7, 7, keys[i].size()};
      ASSERT_EQ(redisAppendCommandArgv(c.get(), 3, argv, lens), REDIS_OK);
    }
    for (size_t i = begin; i < end; ++i) {
      void* raw = nullptr;
      ASSERT_EQ(redisGetReply(c.get(), &raw), REDIS_OK) << c->errstr;
      const ReplyPtr reply(static_cast<redisReply*>(raw));
      ASSERT_EQ(reply->type, REDIS_REPLY_INTEGER);
      if (reply->integer != KeySlot(keys[i]) && ++mismatches <= 10) {
        ADD_FAILURE() << "key \"" << absl::CHexEscape(keys[i].substr(0, 80))
                      << "\": server " << reply->integer << ", KeySlot "
                      << KeySlot(keys[i]);
      }
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << keys.size() << " keys";
  EXPECT_GT(keys.size(), size_t{6000});
}

// --- SlotMap from a real server.

class RealSlotsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<RedisServer*> server = ClusterServer();
    ASSERT_THAT(server, IsOk());
    server_ = *server;
    c_ = Connect(*server_);
    ASSERT_NE(c_, nullptr);
    // Each test starts with no slots assigned (the database is empty, as
    // FLUSHSLOTS requires).
    ExpectOk(c_.get(), {"CLUSTER", "FLUSHSLOTS"});
    const ReplyPtr id = Command(c_.get(), {"CLUSTER", "MYID"});
    ASSERT_NE(id, nullptr);
    ASSERT_EQ(id->type, REDIS_REPLY_STRING);
    my_id_ = std::string(id->str, id->len);
  }

  absl::StatusOr<SlotMap> Slots() {
    const ReplyPtr reply = Command(c_.get(), {"CLUSTER", "SLOTS"});
    return SlotMap::FromClusterSlots(reply.get());
  }

  RedisServer* server_ = nullptr;
  ContextPtr c_;
  std::string my_id_;
};

TEST_F(RealSlotsTest, AllSlots) {
  ExpectOk(c_.get(), {"CLUSTER", "ADDSLOTSRANGE", "0", "16383"});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SlotMap map, Slots());
  EXPECT_TRUE(map.CoversAllSlots());
  EXPECT_THAT(map.Uncovered(), IsEmpty());
  ASSERT_THAT(map.Masters(), SizeIs(1));
  const Node* me = map.Masters()[0].node;
  EXPECT_THAT(map.Masters()[0].ranges, ElementsAre(SlotRange{0, 16383}));
  // A node that never met another does not know its own IP: "".
  EXPECT_EQ(
      *me,
      (Node{{HostKind::kSameHost, "", static_cast<uint16_t>(server_->port())},
            my_id_}));
  for (const int slot : {0, 1, 8191, 12182, 16383}) {
    EXPECT_EQ(map.MasterFor(static_cast<uint16_t>(slot)), me) << slot;
    EXPECT_THAT(map.Replicas(static_cast<uint16_t>(slot)), IsEmpty());
  }
  EXPECT_EQ(map.MasterFor(16384), nullptr);
}

TEST_F(RealSlotsTest, Holes) {
  ExpectOk(c_.get(), {"CLUSTER", "ADDSLOTSRANGE", "0", "100", "200", "16000"});
  ExpectOk(c_.get(), {"CLUSTER", "ADDSLOTS", "16100", "16102"});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SlotMap map, Slots());
  EXPECT_FALSE(map.CoversAllSlots());
  EXPECT_THAT(map.Uncovered(),
              ElementsAre(SlotRange{101, 199}, SlotRange{16001, 16099},
                          SlotRange{16101, 16101}, SlotRange{16103, 16383}));
  ASSERT_THAT(map.Masters(), SizeIs(1));
  EXPECT_EQ(map.Masters()[0].node->id, my_id_);
  EXPECT_THAT(map.Masters()[0].ranges,
              ElementsAre(SlotRange{0, 100}, SlotRange{200, 16000},
                          SlotRange{16100, 16100}, SlotRange{16102, 16102}));
  EXPECT_NE(map.MasterFor(100), nullptr);
  EXPECT_EQ(map.MasterFor(101), nullptr);
  EXPECT_EQ(map.MasterFor(199), nullptr);
  EXPECT_NE(map.MasterFor(200), nullptr);
  EXPECT_EQ(map.MasterFor(16101), nullptr);
  EXPECT_NE(map.MasterFor(16102), nullptr);
  EXPECT_THAT(map.Replicas(150), IsEmpty());
}

TEST_F(RealSlotsTest, NoSlots) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SlotMap map, Slots());
  EXPECT_THAT(map.Masters(), IsEmpty());
  EXPECT_THAT(map.Uncovered(), ElementsAre(SlotRange{0, 16383}));
  EXPECT_EQ(map.MasterFor(0), nullptr);
}

// Redis 7's other endpoint forms: NULL (unknown-endpoint), "?" (hostname
// preferred, none announced; the metadata then carries "ip"), a hostname.
TEST_F(RealSlotsTest, PreferredEndpointTypes) {
  const absl::Cleanup restore = [this] {
    ExpectOk(c_.get(),
             {"CONFIG", "SET", "cluster-preferred-endpoint-type", "ip"});
    ExpectOk(c_.get(), {"CONFIG", "SET", "cluster-announce-hostname", ""});
  };
  ExpectOk(c_.get(), {"CLUSTER", "ADDSLOTSRANGE", "0", "16383"});
  const auto port = static_cast<uint16_t>(server_->port());

  ExpectOk(c_.get(), {"CONFIG", "SET", "cluster-preferred-endpoint-type",
                      "unknown-endpoint"});
  {
    const ReplyPtr raw = Command(c_.get(), {"CLUSTER", "SLOTS"});
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(SlotMap map,
                                    SlotMap::FromClusterSlots(raw.get()));
    EXPECT_EQ(map.MasterFor(0)->endpoint,
              (Endpoint{HostKind::kSameHost, "", port}));
    // The parse checked the shape: one range, its master's host is nil.
    EXPECT_EQ(raw->element[0]->element[2]->element[0]->type, REDIS_REPLY_NIL);
  }

  ExpectOk(c_.get(),
           {"CONFIG", "SET", "cluster-preferred-endpoint-type", "hostname"});
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(SlotMap map, Slots());
    EXPECT_EQ(map.MasterFor(0)->endpoint,
              (Endpoint{HostKind::kUnknown, "", port}));
  }

  ExpectOk(c_.get(),
           {"CONFIG", "SET", "cluster-announce-hostname", "node-1.example"});
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(SlotMap map, Slots());
    EXPECT_EQ(map.MasterFor(16383)->endpoint,
              (Endpoint{HostKind::kGiven, "node-1.example", port}));
    EXPECT_EQ(map.MasterFor(16383)->endpoint.ToString(),
              absl::StrCat("node-1.example:", port));
  }
}

// A real cluster error: with no slot served, a key command is refused.
TEST_F(RealSlotsTest, ClusterDownIsClassified) {
  const ReplyPtr r = Command(c_.get(), {"SET", "foo", "bar"});
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->type, REDIS_REPLY_ERROR);
  const absl::string_view error(r->str, r->len);
  EXPECT_THAT(std::string(error), StartsWith("CLUSTERDOWN "));
  EXPECT_EQ(ClassifyError(error), ClusterError::kClusterDown);
  EXPECT_TRUE(IsClusterDown(error));
  EXPECT_FALSE(IsTryAgain(error));
  EXPECT_THAT(ParseRedirect(error),
              StatusIs(absl::StatusCode::kInvalidArgument, "not a MOVED"));
}

TEST(RealSlotsErrorTest, ServerWithoutClusterSupport) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> plain,
                                  RedisServer::Start());
  const ContextPtr c = Connect(*plain);
  ASSERT_NE(c, nullptr);
  const ReplyPtr reply = Command(c.get(), {"CLUSTER", "SLOTS"});
  EXPECT_THAT(SlotMap::FromClusterSlots(reply.get()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "cluster support disabled"));
}

// --- SlotMap from hand-made replies.

TEST(SlotMapTest, ParsesSeveralMastersAndReplicas) {
  const std::string a = NodeResp("10.0.0.1", 7000, Id('a'),
                                 {Bulk("hostname"), Bulk("a.example")});
  const std::string d = NodeResp("::1", 7003, Id('d'));
  const std::string e = Arr({Nil(), Int(7004), Bulk(Id('e')), Arr({})});
  // Redis 4..6 nodes: no metadata.
  const std::string b = Arr({Bulk("b.example"), Int(7001), Bulk(Id('b'))});
  const std::string c = NodeResp("10.0.0.3", 7002, Id('c'));
  const std::string f = NodeResp(
      "10.0.0.6", 7005, Id('f'),
      {Bulk("ip"), Bulk("10.0.0.6"), Bulk("x"), Int(1), Bulk("y"), Nil()});
  // Out of slot order, as Redis lists ranges by node.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SlotMap map,
      ParseResp(
          Arr({RangeResp(10923, 16383, {c, f}), RangeResp(0, 5460, {a, d, e}),
               RangeResp(5461, 10000, {b}), RangeResp(10001, 10900, {a, d})})));
  const Node* na = map.MasterFor(0);
  ASSERT_NE(na, nullptr);
  EXPECT_EQ(*na, (Node{{HostKind::kGiven, "10.0.0.1", 7000}, Id('a')}));
  EXPECT_EQ(map.MasterFor(5460), na);
  EXPECT_EQ(map.MasterFor(10001), na);
  EXPECT_EQ(map.MasterFor(10900), na);
  EXPECT_EQ(map.MasterFor(5461)->id, Id('b'));
  EXPECT_EQ(map.MasterFor(10000)->id, Id('b'));
  EXPECT_EQ(map.MasterFor(10901), nullptr);
  EXPECT_EQ(map.MasterFor(10922), nullptr);
  EXPECT_EQ(map.MasterFor(10923)->id, Id('c'));
  EXPECT_EQ(map.MasterFor(16383)->id, Id('c'));

  const absl::Span<const Node* const> r0 = map.Replicas(0);
  ASSERT_THAT(r0, SizeIs(2));
  EXPECT_EQ(*r0[0], (Node{{HostKind::kGiven, "::1", 7003}, Id('d')}));
  EXPECT_EQ(r0[0]->endpoint.ToString(), "[::1]:7003");
  EXPECT_EQ(*r0[1], (Node{{HostKind::kSameHost, "", 7004}, Id('e')}));
  EXPECT_EQ(r0[1]->endpoint.ToString(), "<same host>:7004");
  // Node d is one Node, whichever range lists it.
  ASSERT_THAT(map.Replicas(10001), SizeIs(1));
  EXPECT_EQ(map.Replicas(10001)[0], r0[0]);
  EXPECT_THAT(map.Replicas(5461), IsEmpty());
  EXPECT_THAT(map.Replicas(10901), IsEmpty());
  ASSERT_THAT(map.Replicas(16383), SizeIs(1));
  EXPECT_EQ(map.Replicas(16383)[0]->id, Id('f'));

  ASSERT_THAT(map.Masters(), SizeIs(3));
  EXPECT_EQ(map.Masters()[0].node, na);
  EXPECT_THAT(map.Masters()[0].ranges,
              ElementsAre(SlotRange{0, 5460}, SlotRange{10001, 10900}));
  EXPECT_EQ(map.Masters()[1].node->id, Id('b'));
  EXPECT_EQ(map.Masters()[1].node->endpoint.ToString(), "b.example:7001");
  EXPECT_THAT(map.Masters()[1].ranges, ElementsAre(SlotRange{5461, 10000}));
  EXPECT_EQ(map.Masters()[2].node->id, Id('c'));
  EXPECT_THAT(map.Masters()[2].ranges, ElementsAre(SlotRange{10923, 16383}));
  EXPECT_THAT(map.Uncovered(), ElementsAre(SlotRange{10901, 10922}));
  EXPECT_FALSE(map.CoversAllSlots());

  // Moving the map keeps every Node where it was.
  SlotMap moved = std::move(map);
  EXPECT_EQ(moved.MasterFor(0), na);
  EXPECT_EQ(moved.Replicas(0)[0], r0[0]);
}

TEST(SlotMapTest, LimitsAreInclusive) {
  // A 255-byte host, 64 replicas.
  std::vector<std::string> nodes = {
      NodeResp(std::string(255, 'h'), 65535, Id('m'))};
  for (int i = 0; i < 64; ++i) {
    nodes.push_back(NodeResp("10.1.0.1", 1 + i, absl::StrFormat("%040d", i)));
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SlotMap map,
                                  ParseResp(Arr({RangeResp(5, 5, nodes)})));
  EXPECT_EQ(map.MasterFor(5)->endpoint.host, std::string(255, 'h'));
  EXPECT_EQ(map.MasterFor(5)->endpoint.port, 65535);
  EXPECT_THAT(map.Replicas(5), SizeIs(64));
  EXPECT_THAT(map.Uncovered(),
              ElementsAre(SlotRange{0, 4}, SlotRange{6, 16383}));
}

// 16384 one-slot ranges, each its own master: the most ranges and nodes
// there may be. One node more is too many.
TEST(SlotMapTest, MostRangesAndNodes) {
  std::vector<std::string> ranges;
  for (int s = 0; s < kNumSlots; ++s) {
    ranges.push_back(RangeResp(
        s, s, {NodeResp("10.2.0.1", 1 + s, absl::StrFormat("%040d", s))}));
  }
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(SlotMap map, ParseResp(Arr(ranges)));
    EXPECT_TRUE(map.CoversAllSlots());
    EXPECT_THAT(map.Masters(), SizeIs(kNumSlots));
    EXPECT_EQ(map.MasterFor(16383)->endpoint.port, 16384);
  }
  ranges.back() =
      RangeResp(16383, 16383,
                {NodeResp("10.2.0.1", 16384, absl::StrFormat("%040d", 16383)),
                 NodeResp("10.2.0.2", 1, Id('r'))});
  EXPECT_THAT(ParseResp(Arr(ranges)),
              StatusIs(absl::StatusCode::kDataLoss,
                       "range 16383: replica 1: more than 16384 distinct "
                       "nodes"));
  // And 16385 ranges are refused before any is looked at.
  std::string too_many = absl::StrCat("*", kNumSlots + 1, "\r\n");
  for (int i = 0; i <= kNumSlots; ++i) too_many += "*0\r\n";
  EXPECT_THAT(ParseResp(too_many),
              StatusIs(absl::StatusCode::kDataLoss,
                       "16385 slot ranges; at most 16384"));
}

TEST(SlotMapTest, NullAndErrorReplies) {
  EXPECT_THAT(SlotMap::FromClusterSlots(nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseResp("-ERR This instance has cluster support disabled\r\n"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "CLUSTER SLOTS failed: \"ERR This instance has cluster "
                       "support disabled\""));
}

struct MalformedCase {
  std::string name;
  std::string resp;
  std::string message;  // A substring of the status message.
};

TEST(SlotMapTest, RejectsMalformedReplies) {
  const std::string a = NodeResp("10.0.0.1", 7000, Id('a'));
  const std::string b = NodeResp("10.0.0.2", 7001, Id('b'));
  const auto with_host = [](const std::string& host_resp) {
    return Arr({RangeResp(
        0, 1, {Arr({host_resp, Int(7000), Bulk(Id('a')), Arr({})})})});
  };
  const auto with_port = [](const std::string& port_resp) {
    return Arr({RangeResp(
        0, 1, {Arr({Bulk("h"), port_resp, Bulk(Id('a')), Arr({})})})});
  };
  const auto with_id = [](const std::string& id_resp) {
    return Arr(
        {RangeResp(0, 1, {Arr({Bulk("h"), Int(7000), id_resp, Arr({})})})});
  };
  const auto with_metadata = [](const std::string& metadata_resp) {
    return Arr({RangeResp(
        0, 1, {Arr({Bulk("h"), Int(7000), Bulk(Id('a')), metadata_resp})})});
  };
  std::vector<std::string> many_replicas = {a};
  for (int i = 0; i < 65; ++i) {
    many_replicas.push_back(
        NodeResp("10.1.0.1", 1 + i, absl::StrFormat("%040d", i)));
  }
  std::vector<std::string> long_metadata;
  for (int i = 0; i < 17; ++i) {
    long_metadata.push_back(Bulk("k"));
    long_metadata.push_back(Bulk("v"));
  }

  const std::vector<MalformedCase> cases = {
      {"integer", Int(1), "reply: is an integer, not an array"},
      {"status", "+OK\r\n", "reply: is a status, not an array"},
      {"nil", Nil(), "reply: is nil, not an array"},
      {"range not an array", Arr({Int(0)}),
       "range 0: is an integer, not an array"},
      {"range of two", Arr({Arr({Int(0), Int(1)})}),
       "range 0: 2 elements; at least 3"},
      {"too many replicas", Arr({RangeResp(0, 1, many_replicas)}),
       "range 0: 65 replicas; at most 64"},
      {"slot as string", Arr({Arr({Bulk("0"), Int(1), a})}),
       "range 0: first slot: is a string, not an integer"},
      {"negative slot", Arr({RangeResp(-1, 1, {a})}),
       "first slot: -1 is not in [0, 16383]"},
      {"slot 16384", Arr({RangeResp(0, 16384, {a})}),
       "last slot: 16384 is not in [0, 16383]"},
      {"huge slot", Arr({RangeResp(0, 9223372036854775807LL, {a})}),
       "last slot: 9223372036854775807 is not in"},
      {"reversed", Arr({RangeResp(10, 5, {a})}),
       "first slot 10 is after last slot 5"},
      {"overlap", Arr({RangeResp(0, 100, {a}), RangeResp(100, 200, {b})}),
       "range 1: slots 100-200 overlap slots 0-100 of range 0"},
      {"same range twice", Arr({RangeResp(7, 7, {a}), RangeResp(7, 7, {a})}),
       "range 1: slots 7-7 overlap slots 7-7 of range 0"},
      {"master nil", Arr({Arr({Int(0), Int(1), Nil()})}),
       "range 0: master: is nil, not an array"},
      {"node of two", Arr({RangeResp(0, 1, {Arr({Bulk("h"), Int(1)})})}),
       "master: 2 elements; 3 (host, port, id) or 4"},
      {"node of five",
       Arr({RangeResp(
           0, 1, {Arr({Bulk("h"), Int(1), Bulk(Id('a')), Arr({}), Arr({})})})}),
       "master: 5 elements"},
      {"host integer", with_host(Int(1)),
       "master: host: is an integer, not a string or nil"},
      {"host array", with_host(Arr({})), "host: is an array"},
      {"host too long", with_host(Bulk(std::string(256, 'h'))),
       "host: host of 256 bytes; at most 255"},
      {"host with space", with_host(Bulk("a b")), "has a character"},
      {"host with CRLF", with_host(Bulk("h\r\nx")), "has a character"},
      {"host with NUL", with_host(Bulk(std::string("h\0x", 3))),
       "has a character"},
      {"host bracketed", with_host(Bulk("[::1]")), "has a character"},
      {"port 0", with_port(Int(0)), "master: port: 0 is not in [1, 65535]"},
      {"port 65536", with_port(Int(65536)), "port: 65536 is not in"},
      {"port negative", with_port(Int(-6379)), "port: -6379 is not in"},
      {"port string", with_port(Bulk("6379")),
       "port: is a string, not an integer"},
      {"id short", with_id(Bulk(std::string(39, 'a'))),
       "is not 40 characters [0-9a-z]"},
      {"id long", with_id(Bulk(std::string(41, 'a'))), "is not 40 characters"},
      {"id upper case", with_id(Bulk(std::string(40, 'A'))),
       "is not 40 characters"},
      {"id punctuation", with_id(Bulk(std::string(39, 'a') + "-")),
       "is not 40 characters"},
      {"id integer", with_id(Int(1)), "id: is an integer, not a string"},
      {"metadata integer", with_metadata(Int(1)),
       "master: metadata: is an integer, not an array"},
      {"metadata odd", with_metadata(Arr({Bulk("ip")})), "an odd number"},
      {"metadata long", with_metadata(Arr(long_metadata)),
       "34 elements; at most 32"},
      {"metadata key integer", with_metadata(Arr({Int(1), Bulk("v")})),
       "metadata: element 0: is an integer, not a string"},
      {"metadata value array", with_metadata(Arr({Bulk("ip"), Arr({})})),
       "element 1: is an array, not a string, an integer or nil"},
      {"metadata value long",
       with_metadata(Arr({Bulk("hostname"), Bulk(std::string(256, 'v'))})),
       "element 1: a string of 256 bytes; at most 255"},
      {"one id, two endpoints",
       Arr({RangeResp(0, 10, {a}),
            RangeResp(11, 20, {NodeResp("10.0.0.1", 7999, Id('a'))})}),
       absl::StrCat("range 1: master: node ", Id('a'),
                    " is at 10.0.0.1:7999 here but at 10.0.0.1:7000 before")},
      {"master and replica",
       Arr({RangeResp(0, 10, {a, b}), RangeResp(11, 20, {b})}),
       absl::StrCat("range 1: master: node ", Id('b'),
                    " is listed both as a master and as a replica")},
      {"own replica", Arr({RangeResp(0, 10, {a, a})}),
       "range 0: replica 1: node"},
      {"replica twice", Arr({RangeResp(0, 10, {a, b, b})}),
       absl::StrCat("range 0: replica 2: node ", Id('b'), " is listed twice")},
  };
  for (const MalformedCase& test : cases) {
    SCOPED_TRACE(test.name);
    const absl::StatusOr<SlotMap> map = ParseResp(test.resp);
    EXPECT_THAT(map, StatusIs(absl::StatusCode::kDataLoss,
                              StartsWith("malformed CLUSTER SLOTS reply: ")));
    EXPECT_THAT(map, StatusIs(absl::StatusCode::kDataLoss, test.message));
  }
}

// --- Redirects and cluster errors.

TEST(RedirectTest, ParsesRedisForms) {
  struct Good {
    std::string text;
    Redirect::Kind kind;
    int slot;
    Endpoint endpoint;
  };
  const std::vector<Good> good = {
      {"MOVED 3999 127.0.0.1:6381",
       Redirect::Kind::kMoved,
       3999,
       {HostKind::kGiven, "127.0.0.1", 6381}},
      {"ASK 3999 127.0.0.1:6381",
       Redirect::Kind::kAsk,
       3999,
       {HostKind::kGiven, "127.0.0.1", 6381}},
      {"MOVED 3999 ::1:6381",
       Redirect::Kind::kMoved,
       3999,
       {HostKind::kGiven, "::1", 6381}},
      {"ASK 0 fe80::1%eth0:1",
       Redirect::Kind::kAsk,
       0,
       {HostKind::kGiven, "fe80::1%eth0", 1}},
      {"MOVED 16383 redis-0.redis.svc.cluster.local:65535",
       Redirect::Kind::kMoved,
       16383,
       {HostKind::kGiven, "redis-0.redis.svc.cluster.local", 65535}},
      // cluster-preferred-endpoint-type unknown-endpoint.
      {"MOVED 12 :6380",
       Redirect::Kind::kMoved,
       12,
       {HostKind::kSameHost, "", 6380}},
      // Hostnames preferred, none announced.
      {"ASK 12 ?:6380",
       Redirect::Kind::kAsk,
       12,
       {HostKind::kUnknown, "", 6380}},
      {"MOVED 00012 h:06380",
       Redirect::Kind::kMoved,
       12,
       {HostKind::kGiven, "h", 6380}},
      {"MOVED 1 " + std::string(255, 'h') + ":1",
       Redirect::Kind::kMoved,
       1,
       {HostKind::kGiven, std::string(255, 'h'), 1}},
  };
  for (const Good& g : good) {
    SCOPED_TRACE(g.text);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Redirect r, ParseRedirect(g.text));
    EXPECT_EQ(r.kind, g.kind);
    EXPECT_EQ(r.slot, g.slot);
    EXPECT_EQ(r.endpoint, g.endpoint);
  }
}

TEST(RedirectTest, RejectsMalformed) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"MOVED", "no slot"},
      {"MOVED ", "no endpoint after the slot"},
      {"MOVED 3999", "no endpoint after the slot"},
      {"ASK 3999 ", "no ':' before a port"},
      {"MOVED  3999 h:1", "more than a slot and an endpoint"},
      {"MOVED 3999  h:1", "more than a slot and an endpoint"},
      {"MOVED 3999 h:1 ", "more than a slot and an endpoint"},
      {"MOVED 3999 h:1 extra", "more than a slot and an endpoint"},
      {"MOVED 16384 h:1", "slot \"16384\" is not a number in [0, 16383]"},
      {"MOVED -1 h:1", "slot \"-1\""},
      {"MOVED +5 h:1", "slot \"+5\""},
      {"MOVED 0x10 h:1", "slot \"0x10\""},
      {"MOVED 000001 h:1", "slot \"000001\""},
      {"MOVED 99999999999999999999 h:1", "slot \"99999999999999999999\""},
      {"MOVED 3999 h", "no ':' before a port"},
      {"MOVED 3999 h:", "port \"\" is not a number in [1, 65535]"},
      {"MOVED 3999 h:0", "port \"0\""},
      {"MOVED 3999 h:65536", "port \"65536\""},
      {"MOVED 3999 h:+1", "port \"+1\""},
      {"MOVED 3999 h:1x", "port \"1x\""},
      {"MOVED 3999 [::1]:1", "has a character"},
      {"ASK 3999 h\tx:1", "has a character"},
      {"ASK 3999 h\r\n:1", "has a character"},
      {std::string("MOVED 3999 h\0:1", 15), "has a character"},
      {"MOVED 1 " + std::string(256, 'h') + ":1", "host of 256 bytes"},
      {"MOVED 1 h:1" + std::string(600, 'x'), "longer than 512 bytes"},
  };
  for (const auto& [text, message] : bad) {
    SCOPED_TRACE(absl::CHexEscape(text));
    EXPECT_THAT(ParseRedirect(text),
                StatusIs(absl::StatusCode::kDataLoss, message));
  }
  // "::1" alone reads as host ":" and port 1: ':' is a host character, so
  // this is a (useless) address, not garbage; Redis never writes a redirect
  // without a port.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Redirect r, ParseRedirect("MOVED 3999 ::1"));
  EXPECT_EQ(r.endpoint, (Endpoint{HostKind::kGiven, ":", 1}));

  for (const std::string text :
       {"", "ERR unknown command", "MOVEDX 1 h:1", "moved 1 h:1",
        " MOVED 1 h:1",
        "TRYAGAIN Multiple keys request during rehashing of slot"}) {
    SCOPED_TRACE(text);
    EXPECT_THAT(ParseRedirect(text),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "not a MOVED or ASK redirect"));
  }
}

TEST(ClassifyErrorTest, ByFirstWord) {
  EXPECT_EQ(ClassifyError("MOVED 3999 127.0.0.1:6381"), ClusterError::kMoved);
  EXPECT_EQ(ClassifyError("ASK 3999 127.0.0.1:6381"), ClusterError::kAsk);
  EXPECT_EQ(ClassifyError("MOVED garbage"), ClusterError::kMoved);
  EXPECT_EQ(
      ClassifyError("TRYAGAIN Multiple keys request during rehashing of slot"),
      ClusterError::kTryAgain);
  EXPECT_EQ(ClassifyError("CLUSTERDOWN The cluster is down"),
            ClusterError::kClusterDown);
  EXPECT_EQ(ClassifyError("CLUSTERDOWN Hash slot not served"),
            ClusterError::kClusterDown);
  EXPECT_EQ(ClassifyError("LOADING Redis is loading the dataset in memory"),
            ClusterError::kLoading);
  EXPECT_EQ(ClassifyError("LOADING"), ClusterError::kLoading);
  for (absl::string_view other :
       {"", "ERR unknown command", "TRYAGAINX", "loading x", " LOADING x",
        "CLUSTERDOWNx", "WRONGTYPE Operation against a key",
        "MASTERDOWN Link with MASTER is down"}) {
    EXPECT_EQ(ClassifyError(other), ClusterError::kOther) << other;
  }
  EXPECT_TRUE(IsTryAgain("TRYAGAIN x"));
  EXPECT_TRUE(IsClusterDown("CLUSTERDOWN x"));
  EXPECT_TRUE(IsLoading("LOADING x"));
  EXPECT_FALSE(IsLoading("TRYAGAIN x"));
  EXPECT_FALSE(IsTryAgain("LOADING x"));
  EXPECT_FALSE(IsClusterDown("ERR x"));
}

}  // namespace
}  // namespace proxystore::redis_cluster
