// The redis connector's layout "proxystore-python" against the real Python
// ProxyStore 1.0 RedisConnector on the same redis-server: objects written by
// either side are read, checked and evicted by the other; keys are bare
// uuid4 strings as Python's; and the layout reaches nothing but uuid-named
// keys. The parts that need no Python run everywhere; the round trips skip,
// saying why, where Python ProxyStore cannot be imported.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/redis/cluster_test_util.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/testing/python_proxystore.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::RedisServer;
using ::proxystore::testing::RunPython;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<RedisServer*> SharedServer() {
  static absl::StatusOr<std::unique_ptr<RedisServer>> server =
      RedisServer::Start();
  if (!server.ok()) return server.status();
  return server->get();
}

absl::StatusOr<std::unique_ptr<RedisConnector>> PythonLayout(
    const RedisServer& server, std::map<std::string, std::string> more = {}) {
  more["host"] = server.host();
  more["port"] = absl::StrCat(server.port());
  more["layout"] = "proxystore-python";
  return RedisConnector::Create({"redis", std::move(more)});
}

// Python ProxyStore's RedisConnector on `port`, one operation per run:
//   put <hex>          prints the new key's redis_key
//   put_batch <hex>... prints the keys, one a line
//   get <key>          prints the object as hex, or "None"
//   exists <key>       prints True or False
//   evict <key>
constexpr char kPythonSide[] = R"py(
import sys
from proxystore.connectors.redis import RedisConnector, RedisKey
c = RedisConnector('127.0.0.1', int(sys.argv[1]))
op, args = sys.argv[2], sys.argv[3:]
if op == 'put':
    print(c.put(bytes.fromhex(args[0])).redis_key)
elif op == 'put_batch':
    for k in c.put_batch([bytes.fromhex(a) for a in args]):
        print(k.redis_key)
elif op == 'get':
    v = c.get(RedisKey(redis_key=args[0]))
    print('None' if v is None else bytes(v).hex())
elif op == 'exists':
    print(c.exists(RedisKey(redis_key=args[0])))
elif op == 'evict':
    c.evict(RedisKey(redis_key=args[0]))
c.close()
)py";

absl::StatusOr<std::string> Python(const RedisServer& server,
                                   std::vector<std::string> args) {
  args.insert(args.begin(), absl::StrCat(server.port()));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string out, RunPython(kPythonSide, args));
  return std::string(absl::StripAsciiWhitespace(out));
}

std::string Hex(absl::string_view s) { return absl::BytesToHexString(s); }

TEST(RedisPythonLayout, KeysAreBareUuidsAndNothingElseIsReached) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisServer * server, SharedServer());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisConnector> c,
                                  PythonLayout(*server));
  EXPECT_EQ(c->prefix(), "");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("hi")));
  EXPECT_TRUE(IsPythonObjectId(key.id())) << key.id();
  EXPECT_EQ(c->RedisKey(key), key.id());
  EXPECT_EQ(redis_test::NodeCommand(*server, {"GET", key.id()}), "hi");
  // Any other key of the database stays out of reach.
  EXPECT_EQ(redis_test::NodeCommand(*server, {"SET", "accounts:admin", "x"}),
            "OK");
  EXPECT_THAT(
      c->Get(Key("accounts:admin")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not a uuid")));
  EXPECT_THAT(c->Evict(Key("accounts:admin")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(c->Set(Key("accounts:admin"), SharedBytes::Copy("y")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // The layout travels in the config, so a receiver reads the same way.
  ConnectorConfig config = c->Config();
  EXPECT_EQ(config.options.at("layout"), "proxystore-python");
  EXPECT_EQ(config.options.at("prefix"), "");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> again,
                                  MakeConnector(config));
  EXPECT_THAT(again->Get(key),
              IsOkAndHolds(::testing::Optional(
                  ::testing::Property(&SharedBytes::view, "hi"))));
  // A clearing Close removes uuid-named keys only: never a FLUSHDB.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key ours, c->Put(SharedBytes::Copy("o")));
  EXPECT_THAT(c->Close({.clear = true}), IsOk());
  EXPECT_EQ(redis_test::NodeCommand(*server, {"EXISTS", ours.id()}), "0");
  EXPECT_EQ(redis_test::NodeCommand(*server, {"GET", "accounts:admin"}), "x");
  EXPECT_THAT(
      RedisConnector::Create({"redis", {{"layout", "proxystore-pickle"}}}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("\"native\" or \"proxystore-python\"")));
  // The native layout keeps its non-empty prefix rule.
  EXPECT_THAT(RedisConnector::Create({"redis", {{"prefix", ""}}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

class RedisPythonRoundTrip : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = testing::PythonProxyStoreDir();
    if (!dir.ok()) GTEST_SKIP() << dir.status();
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(server_, SharedServer());
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(c_, PythonLayout(*server_));
  }

  RedisServer* server_ = nullptr;
  std::unique_ptr<RedisConnector> c_;
};

TEST_F(RedisPythonRoundTrip, PythonPutsCppGetsAndEvicts) {
  const std::string value("py\0bytes\xff", 9);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string id,
                                  Python(*server_, {"put", Hex(value)}));
  const Key key(id);
  EXPECT_THAT(c_->Exists(key), IsOkAndHolds(true));
  EXPECT_THAT(c_->Get(key),
              IsOkAndHolds(::testing::Optional(
                  ::testing::Property(&SharedBytes::view, value))));
  EXPECT_THAT(c_->Evict(key), IsOk());
  EXPECT_THAT(Python(*server_, {"exists", id}), IsOkAndHolds("False"));
}

TEST_F(RedisPythonRoundTrip, CppPutsPythonGetsAndEvicts) {
  const std::string value(100'000, 'z');
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c_->Put(SharedBytes::Copy(value)));
  EXPECT_THAT(Python(*server_, {"exists", key.id()}), IsOkAndHolds("True"));
  EXPECT_THAT(Python(*server_, {"get", key.id()}), IsOkAndHolds(Hex(value)));
  EXPECT_THAT(Python(*server_, {"evict", key.id()}), IsOk());
  EXPECT_THAT(c_->Exists(key), IsOkAndHolds(false));
  EXPECT_THAT(c_->Get(key), IsOkAndHolds(std::nullopt));
}

TEST_F(RedisPythonRoundTrip, BatchesCrossTheBorder) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::string ids, Python(*server_, {"put_batch", Hex("a"), Hex("bb")}));
  std::vector<Key> python_keys;
  for (absl::string_view id : absl::StrSplit(ids, '\n')) {
    python_keys.emplace_back(std::string(id));
  }
  ASSERT_EQ(python_keys.size(), 2u);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::optional<SharedBytes>> got,
                                  c_->GetBatch(python_keys));
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(got[0].has_value() && got[1].has_value());
  EXPECT_EQ(got[0]->view(), "a");
  EXPECT_EQ(got[1]->view(), "bb");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<Key> ours,
      c_->PutBatch({SharedBytes::Copy("c"), SharedBytes::Copy("dd")}));
  EXPECT_THAT(Python(*server_, {"get", ours[1].id()}), IsOkAndHolds(Hex("dd")));
}

TEST_F(RedisPythonRoundTrip, SetOfAKeyPythonMintedIsWriteOnce) {
  // A key id minted by Python (uuid4) works for deferred writes too.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string id,
                                  Python(*server_, {"put", Hex("first")}));
  EXPECT_THAT(c_->Set(Key(id), SharedBytes::Copy("second")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key fresh, c_->NewKey());
  EXPECT_TRUE(IsPythonObjectId(fresh.id()));
  EXPECT_THAT(Python(*server_, {"get", fresh.id()}), IsOkAndHolds("None"));
  EXPECT_THAT(c_->Set(fresh, SharedBytes::Copy("later")), IsOk());
  EXPECT_THAT(Python(*server_, {"get", fresh.id()}),
              IsOkAndHolds(Hex("later")));
}

}  // namespace
}  // namespace proxystore
