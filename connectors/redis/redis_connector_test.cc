#include "proxystore/connectors/redis/redis_connector.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/testing/connector_conformance.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::ConnectorTestParams;
using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::RedisServer;
using ::proxystore::testing::RedisServerOptions;
using ::proxystore::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::SizeIs;

constexpr char kPassword[] = "pr0xy-s3cret";

// One plain server (TCP + Unix socket) and one that requires a password, for
// the whole test binary: started on first use, stopped at exit.
absl::StatusOr<RedisServer*> SharedServer() {
  static absl::StatusOr<std::unique_ptr<RedisServer>> server =
      RedisServer::Start({.unix_socket = true});
  if (!server.ok()) return server.status();
  return server->get();
}
absl::StatusOr<RedisServer*> SharedAuthServer() {
  static absl::StatusOr<std::unique_ptr<RedisServer>> server =
      RedisServer::Start({.password = kPassword});
  if (!server.ok()) return server.status();
  return server->get();
}

ConnectorConfig TcpConfig(const RedisServer& server,
                          std::map<std::string, std::string> more = {}) {
  more["host"] = server.host();
  more["port"] = absl::StrCat(server.port());
  return ConnectorConfig{"redis", std::move(more)};
}
ConnectorConfig UnixConfig(const RedisServer& server,
                           std::map<std::string, std::string> more = {}) {
  more["unix_socket"] = server.unix_socket();
  return ConnectorConfig{"redis", std::move(more)};
}

// The conformance suite over TCP, over the Unix socket, and over TCP with
// AUTH and a non-default database.
ConnectorTestParams Params(std::string name, int transport) {
  return {
      .name = std::move(name),
      .make = [transport]() -> absl::StatusOr<std::unique_ptr<Connector>> {
        if (transport == 2) {
          PROXYSTORE_ASSIGN_OR_RETURN(RedisServer * server, SharedAuthServer());
          return RedisConnector::FromConfig(
              TcpConfig(*server, {{"password", kPassword}, {"db", "2"}}));
        }
        PROXYSTORE_ASSIGN_OR_RETURN(RedisServer * server, SharedServer());
        return RedisConnector::FromConfig(transport == 0 ? TcpConfig(*server)
                                                         : UnixConfig(*server));
      }};
}

PROXYSTORE_INSTANTIATE_CONNECTOR_CONFORMANCE(Redis, Params("Tcp", 0),
                                             Params("UnixSocket", 1),
                                             Params("TcpPasswordDb2", 2));

// A plain hiredis client, to look at the server behind the connector's back.
class RawClient {
 public:
  explicit RawClient(const RedisServer& server,
                     const std::string& password = "")
      : context_(redisConnectWithTimeout(server.host().c_str(), server.port(),
                                         timeval{10, 0})) {
    if (!password.empty()) Command({"AUTH", password});
  }

  // The reply rendered as text: "+status", "-error", ":integer",
  // "$string", "nil", "*n"; "!..." for a connection error.
  std::string Command(const std::vector<std::string>& words) {
    if (context_ == nullptr) return "!no context";
    if (context_->err != 0) return absl::StrCat("!", context_->errstr);
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& w : words) {
      argv.push_back(w.data());
      lens.push_back(w.size());
    }
    std::unique_ptr<redisReply, decltype(&freeReplyObject)> r(
        static_cast<redisReply*>(redisCommandArgv(context_.get(),
                                                  static_cast<int>(argv.size()),
                                                  argv.data(), lens.data())),
        &freeReplyObject);
    if (r == nullptr) return absl::StrCat("!", context_->errstr);
    switch (r->type) {
      case REDIS_REPLY_STATUS:
        return absl::StrCat("+", absl::string_view(r->str, r->len));
      case REDIS_REPLY_ERROR:
        return absl::StrCat("-", absl::string_view(r->str, r->len));
      case REDIS_REPLY_INTEGER:
        return absl::StrCat(":", r->integer);
      case REDIS_REPLY_STRING:
        return absl::StrCat("$", absl::string_view(r->str, r->len));
      case REDIS_REPLY_NIL:
        return "nil";
      case REDIS_REPLY_ARRAY:
        return absl::StrCat("*", r->elements);
    }
    return "?";
  }

  // A field of INFO <section> ("connected_clients"), or -1.
  int64_t Info(const std::string& section, absl::string_view field) {
    std::string text = Command({"INFO", section});
    for (absl::string_view line : absl::StrSplit(text, "\r\n")) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(line, absl::MaxSplits(':', 1));
      int64_t value;
      if (kv.first == field && absl::SimpleAtoi(kv.second, &value)) {
        return value;
      }
    }
    return -1;
  }

  // How many times the server ran `command` ("mset"), from INFO
  // commandstats ("cmdstat_mset:calls=3,usec=...").
  int64_t Calls(absl::string_view command) {
    std::string text = Command({"INFO", "commandstats"});
    const std::string head = absl::StrCat("cmdstat_", command, ":calls=");
    for (absl::string_view line : absl::StrSplit(text, "\r\n")) {
      if (!absl::ConsumePrefix(&line, head)) continue;
      int64_t calls;
      if (absl::SimpleAtoi(line.substr(0, line.find(',')), &calls)) {
        return calls;
      }
    }
    return 0;
  }

 private:
  struct Deleter {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  std::unique_ptr<redisContext, Deleter> context_;
};

// Turns until `ready()` holds or `done` is set, each turn one round trip to
// the server (no sleeps); returns `ready()`'s last answer.
bool SpinUntil(const std::function<bool()>& ready,
               const std::atomic<bool>& done) {
  while (!done.load()) {
    if (ready()) return true;
  }
  return ready();
}

// A thread in WaitFor(key, 1 hour) on `c`: only a wake-up (or an error)
// ends it within the test's time.
class Waiter {
 public:
  Waiter(RedisConnector& c, const Key& key)
      : thread_([this, &c, key] {
          result_ = c.WaitFor(key, absl::Hours(1));
          done_.store(true);
        }) {}
  ~Waiter() {
    if (thread_.joinable()) thread_.join();
  }

  // Turns until `ready()` holds (true) or the waiter returned (false).
  bool WhileWaiting(const std::function<bool()>& ready) {
    return SpinUntil(ready, done_) && !done_.load();
  }
  // Turns until the waiter has subscribed and looked once (the server ran an
  // EXISTS more than `exists_before`): from then on only a message ends its
  // wait. False if it returned first.
  bool WaitUntilListening(RawClient& raw, int64_t exists_before) {
    return WhileWaiting([&] { return raw.Calls("exists") > exists_before; });
  }
  absl::StatusOr<bool> Join() {
    thread_.join();
    return result_;
  }

 private:
  std::atomic<bool> done_{false};
  absl::StatusOr<bool> result_;
  std::thread thread_;
};

// Deterministic bytes with plenty of NULs.
std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = (x >> 24) < 64 ? '\0' : static_cast<char>(x >> 16);
  }
  return s;
}

absl::StatusOr<std::unique_ptr<RedisConnector>> Connect(
    const ConnectorConfig& config) {
  return RedisConnector::Create(config);
}

class RedisConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(server_, SharedServer());
  }
  RedisServer& server() { return *server_; }
  // Raw view of the shared server.
  RawClient Raw() { return RawClient(*server_); }
  // True if the raw Redis key exists.
  bool RawExists(const std::string& redis_key) {
    return Raw().Command({"EXISTS", redis_key}) == ":1";
  }

 private:
  RedisServer* server_ = nullptr;
};

TEST_F(RedisConnectorTest, IsRegisteredAsRedis) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Connector> c,
      MakeConnector({"RedisConnector", TcpConfig(server()).options}));
  EXPECT_EQ(c->kind(), "redis");
  PROXYSTORE_EXPECT_OK(c->Close());
}

TEST_F(RedisConnectorTest, ObjectsAreStringsUnderThePrefix) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  EXPECT_THAT(c->prefix(), MatchesRegex("proxystore:[0-9a-f]{32}:"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  c->Put(SharedBytes::Copy("plain value")));
  EXPECT_EQ(c->RedisKey(key), c->prefix() + key.id());
  EXPECT_EQ(Raw().Command({"GET", c->RedisKey(key)}), "$plain value");
  EXPECT_EQ(Raw().Command({"TYPE", c->RedisKey(key)}), "+string");
  // A value set behind the connector's back is read through it.
  EXPECT_EQ(Raw().Command({"SET", c->RedisKey(key), "changed"}), "+OK");
  EXPECT_THAT(c->Get(key),
              IsOkAndHolds(::testing::Optional(SharedBytes::Copy("changed"))));
  // Each connector without a "prefix" option gets its own.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto other, Connect(TcpConfig(server())));
  EXPECT_NE(other->prefix(), c->prefix());
  EXPECT_THAT(other->Get(key), IsOkAndHolds(std::nullopt));
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
  PROXYSTORE_EXPECT_OK(other->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, ConfigRoundTripsEveryOption) {
  const std::vector<ConnectorConfig> configs = {
      TcpConfig(server()),
      UnixConfig(server(), {{"prefix", "app:"}, {"clear", "true"}}),
      TcpConfig(server(), {{"db", "5"},
                           {"password", "pw"},
                           {"prefix", "x"},
                           {"connect_timeout_ms", "123"},
                           {"command_timeout_ms", "4567"}}),
  };
  for (const ConnectorConfig& config : configs) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(config));
    const ConnectorConfig out = c->Config();
    EXPECT_EQ(out.kind, "redis");
    for (const auto& [name, value] : config.options) {
      EXPECT_EQ(out.options.at(name), value) << name;
    }
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto again, Connect(out));
    EXPECT_EQ(again->Config(), out) << out.DebugString();
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  const ConnectorConfig out = c->Config();
  EXPECT_EQ(out.options.at("db"), "0");
  EXPECT_EQ(out.options.at("clear"), "false");
  EXPECT_EQ(out.options.at("connect_timeout_ms"),
            absl::StrCat(RedisConnector::kDefaultConnectTimeoutMs));
  EXPECT_EQ(out.options.at("command_timeout_ms"),
            absl::StrCat(RedisConnector::kDefaultCommandTimeoutMs));
  EXPECT_EQ(out.options.count("password"), 0u);
  EXPECT_EQ(out.options.count("unix_socket"), 0u);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto u, Connect(UnixConfig(server())));
  EXPECT_EQ(u->Config().options.count("host"), 0u);
  EXPECT_EQ(u->Config().options.count("port"), 0u);
  // Defaults: a local server on 6379.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto d, Connect({"redis", {}}));
  EXPECT_EQ(d->endpoint(), "127.0.0.1:6379");
}

TEST_F(RedisConnectorTest, BadOptionsAreInvalidArgument) {
  const auto bad = [](std::map<std::string, std::string> options) {
    return RedisConnector::Create({"redis", std::move(options)}).status();
  };
  EXPECT_THAT(bad({{"hostname", "x"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "hostname"));
  EXPECT_THAT(bad({{"unix_socket", "/tmp/s"}, {"port", "1"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "not both"));
  EXPECT_THAT(bad({{"unix_socket", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "unix_socket"));
  EXPECT_THAT(bad({{"unix_socket", "/" + std::string(200, 'x')}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "longer than 107"));
  EXPECT_THAT(bad({{"host", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "host"));
  EXPECT_THAT(bad({{"port", "0"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "port"));
  EXPECT_THAT(bad({{"port", "65536"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "port"));
  EXPECT_THAT(bad({{"port", "http"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "port"));
  EXPECT_THAT(bad({{"db", "-1"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "db"));
  EXPECT_THAT(bad({{"prefix", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "every key"));
  EXPECT_THAT(bad({{"prefix", std::string(2000, 'p')}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "prefix"));
  EXPECT_THAT(bad({{"connect_timeout_ms", "0"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "connect_timeout"));
  EXPECT_THAT(bad({{"command_timeout_ms", "-5"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "command_timeout"));
  EXPECT_THAT(bad({{"clear", "maybe"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "clear"));
}

TEST_F(RedisConnectorTest, BinaryValuesWithNulsAndTwentyMegabytesRoundTrip) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  const std::string big = Pattern(20'000'000, 1);
  const std::string small = Pattern(1000, 2);
  ASSERT_NE(big.find('\0'), std::string::npos);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key big_key, c->Put(SharedBytes::Copy(big)));
  EXPECT_EQ(Raw().Command({"STRLEN", c->RedisKey(big_key)}), ":20000000");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  c->Get(big_key));
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->view() == big) << "20 MB value differs";

  // In a batch too, and the values outlive the connector.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<Key> keys,
      c->PutBatch({SharedBytes::Copy(small), SharedBytes::Copy(big)}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<std::optional<SharedBytes>> batch,
      c->GetBatch({keys[1], Key("missing"), keys[0]}));
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
  c.reset();
  ASSERT_THAT(batch, SizeIs(3));
  ASSERT_TRUE(batch[0].has_value() && batch[2].has_value());
  EXPECT_FALSE(batch[1].has_value());
  EXPECT_TRUE(batch[0]->view() == big);
  EXPECT_EQ(batch[2]->view(), small);
  batch[0].reset();  // Values own their replies separately.
  EXPECT_EQ(batch[2]->view(), small);
}

TEST_F(RedisConnectorTest, ValuesOverTheBulkLimitAreRefusedBeforeSending) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  // 512 MiB + 1 of address space, never backed: the connector must refuse
  // it by size without touching it.
  const size_t n = RedisConnector::kMaxValueSize + 1;
  void* addr = ::mmap(nullptr, n, PROT_READ,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(addr, MAP_FAILED);
  SharedBytes huge = SharedBytes::FromOwner(
      std::shared_ptr<void>(addr, [n](void* p) { ::munmap(p, n); }),
      absl::string_view(static_cast<const char*>(addr), n));

  RawClient raw = Raw();
  const int64_t sets = raw.Calls("set");
  const int64_t msets = raw.Calls("mset");
  EXPECT_THAT(c->Put(huge), StatusIs(absl::StatusCode::kInvalidArgument,
                                     AllOf(HasSubstr("536870913 bytes"),
                                           HasSubstr("proto-max-bulk-len"))));
  EXPECT_THAT(c->PutBatch({SharedBytes::Copy("ok"), huge}),
              StatusIs(absl::StatusCode::kInvalidArgument, "PutBatch item 1"));
  EXPECT_EQ(raw.Calls("set"), sets);
  EXPECT_EQ(raw.Calls("mset"), msets);
  // The connector is fine afterwards.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("after")));
  EXPECT_THAT(c->Exists(key), IsOkAndHolds(true));
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, NewKeySendsNothingAndSetIsOneSetNxUnderThePrefix) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  RawClient raw = Raw();
  const int64_t sets = raw.Calls("set");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
  EXPECT_THAT(key.id(), MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(raw.Calls("set"), sets);
  EXPECT_FALSE(RawExists(c->RedisKey(key)));

  const int64_t publishes = raw.Calls("publish");
  PROXYSTORE_ASSERT_OK(c->Set(key, SharedBytes::Copy("deferred")));
  EXPECT_EQ(raw.Calls("set") - sets, 1);
  // With its notification for WaitFor, in the same round trip.
  EXPECT_EQ(raw.Calls("publish") - publishes, 1);
  EXPECT_EQ(RedisConnector::SetChannel(c->RedisKey(key)),
            c->RedisKey(key) + ":set");
  EXPECT_EQ(raw.Command({"GET", c->RedisKey(key)}), "$deferred");
  EXPECT_THAT(
      c->Set(key, SharedBytes::Copy("again")),
      StatusIs(absl::StatusCode::kAlreadyExists,
               AllOf(HasSubstr(key.id()), HasSubstr(c->RedisKey(key)))));
  EXPECT_EQ(raw.Command({"GET", c->RedisKey(key)}), "$deferred");
  // Published whatever the SET answered (documented), and its reply read:
  // the pooled connection is in step for the next command.
  EXPECT_EQ(raw.Calls("publish") - publishes, 2);
  EXPECT_THAT(c->Exists(key), IsOkAndHolds(true));
  // Put publishes nothing.
  PROXYSTORE_ASSERT_OK(c->Put(SharedBytes::Copy("put")).status());
  EXPECT_EQ(raw.Calls("publish") - publishes, 2);

  // A value written behind the connector's back takes the key as well, and
  // a large value goes through Put's gathered write.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key taken, c->NewKey());
  ASSERT_EQ(raw.Command({"SET", c->RedisKey(taken), "theirs"}), "+OK");
  EXPECT_THAT(c->Set(taken, SharedBytes::Copy(Pattern(1'000'000, 4))),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(raw.Command({"GET", c->RedisKey(taken)}), "$theirs");
  PROXYSTORE_ASSERT_OK(c->Evict(taken));
  const std::string big = Pattern(1'000'000, 4);
  PROXYSTORE_ASSERT_OK(c->Set(taken, SharedBytes::Copy(big)));
  EXPECT_EQ(raw.Command({"STRLEN", c->RedisKey(taken)}), ":1000000");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  c->Get(taken));
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->view() == big);
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, SetRefusesForeignKeysAndHugeValuesBeforeSending) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  RawClient raw = Raw();
  const int64_t sets = raw.Calls("set");
  EXPECT_THAT(c->Set(Key(), SharedBytes::Copy("v")),
              StatusIs(absl::StatusCode::kInvalidArgument, "empty"));
  std::string upper = NewObjectId();
  upper[0] = 'A';
  for (const std::string& id :
       {std::string("a-list"), upper, NewObjectId() + "0",
        NewObjectId().substr(1), std::string(32, 'g')}) {
    EXPECT_THAT(c->Set(Key(id), SharedBytes::Copy("v")),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("not a key this connector mints")))
        << id;
  }
  // 512 MiB + 1 of address space, never backed (see
  // ValuesOverTheBulkLimitAreRefusedBeforeSending).
  const size_t n = RedisConnector::kMaxValueSize + 1;
  void* addr = ::mmap(nullptr, n, PROT_READ,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(addr, MAP_FAILED);
  SharedBytes huge = SharedBytes::FromOwner(
      std::shared_ptr<void>(addr, [n](void* p) { ::munmap(p, n); }),
      absl::string_view(static_cast<const char*>(addr), n));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
  EXPECT_THAT(c->Set(key, huge),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("Set"), HasSubstr("536870913 bytes"),
                             HasSubstr("proto-max-bulk-len"))));
  EXPECT_EQ(raw.Calls("set"), sets);
  // The key stays free.
  PROXYSTORE_EXPECT_OK(c->Set(key, SharedBytes::Copy("fits")));
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, WaitForIsWokenByASetFromAnotherConnector) {
  // A server of its own: the test counts its commands.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> own,
                                  RedisServer::Start());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(*own)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> setter,
                                  MakeConnector(c->Config()));
  RawClient raw(*own);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
  const int64_t exists = raw.Calls("exists");
  Waiter waiter(*c, key);
  EXPECT_TRUE(waiter.WaitUntilListening(raw, exists));
  EXPECT_EQ(raw.Calls("subscribe"), 1);
  PROXYSTORE_EXPECT_OK(setter->Set(key, SharedBytes::Copy("set elsewhere")));
  EXPECT_THAT(waiter.Join(), IsOkAndHolds(true));
  // One look before the wait, one after the message.
  EXPECT_EQ(raw.Calls("exists") - exists, 2);
  EXPECT_THAT(
      c->Get(key),
      IsOkAndHolds(::testing::Optional(SharedBytes::Copy("set elsewhere"))));
  // Set already: true at once, whatever the timeout.
  EXPECT_THAT(c->WaitFor(key, absl::ZeroDuration()), IsOkAndHolds(true));
  EXPECT_THAT(c->WaitFor(key, absl::Hours(1)), IsOkAndHolds(true));
  PROXYSTORE_EXPECT_OK(setter->Close());
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, WaitForIsNotEndedByPutsOtherKeysOrStrayMessages) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> own,
                                  RedisServer::Start());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(*own)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> other,
                                  MakeConnector(c->Config()));
  RawClient raw(*own);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key sibling, c->NewKey());
  const int64_t exists = raw.Calls("exists");
  Waiter waiter(*c, key);
  EXPECT_TRUE(waiter.WaitUntilListening(raw, exists));
  const int64_t publishes = raw.Calls("publish");
  // A Put sends no message at all; a Set of another key sends one on its own
  // channel, which this waiter does not hear.
  PROXYSTORE_EXPECT_OK(other->Put(SharedBytes::Copy("put")).status());
  EXPECT_EQ(raw.Calls("publish"), publishes);
  PROXYSTORE_EXPECT_OK(other->Set(sibling, SharedBytes::Copy("sibling")));
  EXPECT_EQ(raw.Calls("publish") - publishes, 1);
  // Anyone may publish on the channel, a payload larger than the read buffer
  // too: the waiter looks again, finds nothing, and keeps waiting.
  const std::string channel = RedisConnector::SetChannel(c->RedisKey(key));
  EXPECT_EQ(raw.Command({"PUBLISH", channel, Pattern(100'000, 5)}), ":1");
  // It looked again, and is still waiting.
  EXPECT_TRUE(waiter.WhileWaiting([&] {
    return raw.Calls("exists") - exists >= 2;
  })) << "a stray message ended the wait";
  PROXYSTORE_EXPECT_OK(other->Set(key, SharedBytes::Copy("now")));
  EXPECT_THAT(waiter.Join(), IsOkAndHolds(true));
  // Before the wait, after the stray message, after the Set's: a waiter that
  // had returned on the stray message would have looked twice.
  EXPECT_EQ(raw.Calls("exists") - exists, 3);
  PROXYSTORE_EXPECT_OK(other->Close());
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, WaitForTimesOutWithFalseAndChecksKeysAsSetDoes) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
  EXPECT_THAT(c->WaitFor(key, absl::Milliseconds(20)), IsOkAndHolds(false));
  // No time at all: one EXISTS, no subscription.
  RawClient raw = Raw();
  const int64_t subscribes = raw.Calls("subscribe");
  EXPECT_THAT(c->WaitFor(key, absl::ZeroDuration()), IsOkAndHolds(false));
  EXPECT_THAT(c->WaitFor(key, -absl::Seconds(1)), IsOkAndHolds(false));
  EXPECT_EQ(raw.Calls("subscribe"), subscribes);
  // A value written behind the connector's back, without a message, is found
  // by the looks before and after the wait.
  ASSERT_EQ(raw.Command({"SET", c->RedisKey(key), "raw"}), "+OK");
  EXPECT_THAT(c->WaitFor(key, absl::Milliseconds(20)), IsOkAndHolds(true));

  EXPECT_THAT(c->WaitFor(Key(), absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument, "empty"));
  for (const std::string& id :
       {std::string("a-list"), NewObjectId() + "0", std::string(32, 'g')}) {
    EXPECT_THAT(c->WaitFor(Key(id), absl::Seconds(1)),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("not a key this connector mints")))
        << id;
  }
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, WaitForIsWokenByASetInAForkedChild) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> own,
                                  RedisServer::Start());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(*own)));
  RawClient raw(*own);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
  const int64_t exists = raw.Calls("exists");
  Waiter waiter(*c, key);
  EXPECT_TRUE(waiter.WaitUntilListening(raw, exists));
  // The child sets the key through the connector it inherited (which opens
  // connections of its own) and reports through its exit code; _exit, so
  // that it tears nothing of the parent's down.
  const pid_t pid = ::fork();
  if (pid == 0) {
    const absl::Status s = c->Set(key, SharedBytes::Copy("from the child"));
    ::_exit(s.ok() ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_THAT(waiter.Join(), IsOkAndHolds(true));
  EXPECT_EQ(raw.Calls("exists") - exists, 2);
  EXPECT_THAT(
      c->Get(key),
      IsOkAndHolds(::testing::Optional(SharedBytes::Copy("from the child"))));
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, WaitForEndsUnavailableWhenTheServerDies) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> own,
                                  RedisServer::Start({.unix_socket = true}));
  for (bool unix : {false, true}) {
    SCOPED_TRACE(unix ? "unix socket" : "tcp");
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        auto c, Connect(unix ? UnixConfig(*own) : TcpConfig(*own)));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
    {
      RawClient raw(*own);
      const int64_t exists = raw.Calls("exists");
      Waiter waiter(*c, key);
      EXPECT_TRUE(waiter.WaitUntilListening(raw, exists));
      // Within the hour: at once, from the connection's end.
      EXPECT_THAT(own->Kill(), IsOk());
      EXPECT_THAT(waiter.Join(),
                  StatusIs(absl::StatusCode::kUnavailable,
                           AllOf(HasSubstr("WaitFor"), HasSubstr(key.id()))));
    }
    // No server at all: cannot subscribe.
    EXPECT_THAT(c->WaitFor(key, absl::Hours(1)),
                StatusIs(absl::StatusCode::kUnavailable, "cannot connect"));
    PROXYSTORE_ASSERT_OK(own->Restart());
    EXPECT_THAT(c->WaitFor(key, absl::Milliseconds(1)), IsOkAndHolds(false));
    PROXYSTORE_EXPECT_OK(c->Close());
  }
}

TEST_F(RedisConnectorTest, WaitForIsUnimplementedWhereTheServerRefusesPubSub) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> own,
                                  RedisServer::Start());
  RawClient raw(*own);
  ASSERT_EQ(
      raw.Command({"ACL", "SETUSER", "default", "-subscribe", "-publish"}),
      "+OK");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(*own)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
  // Its callers poll instead (Connector::WaitFor).
  EXPECT_THAT(
      c->WaitFor(key, absl::Hours(1)),
      StatusIs(absl::StatusCode::kUnimplemented,
               AllOf(HasSubstr("refused SUBSCRIBE"), HasSubstr("NOPERM"))));
  // The SET is the Set: a refused PUBLISH leaves it done, and the connection
  // in step.
  PROXYSTORE_EXPECT_OK(c->Set(key, SharedBytes::Copy("written")));
  EXPECT_THAT(c->Get(key),
              IsOkAndHolds(::testing::Optional(SharedBytes::Copy("written"))));
  EXPECT_THAT(c->Set(key, SharedBytes::Copy("again")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(raw.Calls("publish"), 0);
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, BatchesAreOneCommandEach) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  std::vector<SharedBytes> values;
  for (int i = 0; i < 100; ++i) {
    values.push_back(SharedBytes::Copy(Pattern(10'000, i)));
  }
  RawClient raw = Raw();
  int64_t set = raw.Calls("set"), mset = raw.Calls("mset");
  int64_t get = raw.Calls("get"), mget = raw.Calls("mget");

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys, c->PutBatch(values));
  EXPECT_EQ(raw.Calls("mset") - mset, 1);
  EXPECT_EQ(raw.Calls("set") - set, 0);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, c->GetBatch(keys));
  EXPECT_EQ(raw.Calls("mget") - mget, 1);
  EXPECT_EQ(raw.Calls("get") - get, 0);
  ASSERT_THAT(got, SizeIs(100));
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(got[i].has_value()) << i;
    EXPECT_EQ(*got[i], values[i]) << i;
  }

  // A batch past kMaxBatchItems is split into pipelined chunks.
  const size_t n = 2 * RedisConnector::kMaxBatchItems + 500;
  std::vector<SharedBytes> many;
  for (size_t i = 0; i < n; ++i) {
    many.push_back(SharedBytes::Copy(absl::StrCat("item ", i)));
  }
  mset = raw.Calls("mset");
  mget = raw.Calls("mget");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> many_keys,
                                  c->PutBatch(many));
  EXPECT_EQ(raw.Calls("mset") - mset, 3);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto many_got, c->GetBatch(many_keys));
  EXPECT_EQ(raw.Calls("mget") - mget, 3);
  ASSERT_THAT(many_got, SizeIs(n));
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(many_got[i].has_value()) << i;
    ASSERT_EQ(many_got[i]->view(), absl::StrCat("item ", i));
  }
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, ClearingCloseDeletesOnlyKeysUnderItsPrefix) {
  ConnectorConfig a_config = TcpConfig(server(), {{"prefix", "iso:a:"}});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto a, Connect(a_config));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto b, Connect(TcpConfig(server(), {{"prefix", "iso:b:"}})));
  // Glob characters in a prefix match literally: unescaped, "iso:*:*"
  // would match every key above.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto glob, Connect(TcpConfig(server(), {{"prefix", "iso:*:"}})));
  ASSERT_EQ(Raw().Command({"SET", "iso:foreign", "not ours"}), "+OK");
  ASSERT_EQ(Raw().Command({"SET", "iso:a", "not ours either"}), "+OK");

  std::vector<Key> a_keys, b_keys, glob_keys;
  for (int i = 0; i < 5; ++i) {
    std::string v = absl::StrCat("v", i);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, a->Put(SharedBytes::Copy(v)));
    a_keys.push_back(k);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(k, b->Put(SharedBytes::Copy(v)));
    b_keys.push_back(k);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(k, glob->Put(SharedBytes::Copy(v)));
    glob_keys.push_back(k);
  }

  PROXYSTORE_ASSERT_OK(glob->Close({.clear = true}));
  for (const Key& k : glob_keys) EXPECT_FALSE(RawExists(glob->RedisKey(k)));
  for (const Key& k : a_keys) EXPECT_TRUE(RawExists(a->RedisKey(k)));

  PROXYSTORE_ASSERT_OK(a->Close({.clear = true}));
  for (const Key& k : a_keys) EXPECT_FALSE(RawExists(a->RedisKey(k)));
  for (const Key& k : b_keys) {
    EXPECT_TRUE(RawExists(b->RedisKey(k)));
    EXPECT_THAT(b->Exists(k), IsOkAndHolds(true));
  }
  EXPECT_EQ(Raw().Command({"GET", "iso:foreign"}), "$not ours");
  EXPECT_EQ(Raw().Command({"GET", "iso:a"}), "$not ours either");

  // Clearing again (another connector over the same prefix) is fine.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto a2, Connect(a_config));
  PROXYSTORE_EXPECT_OK(a2->Close({.clear = true}));
  PROXYSTORE_EXPECT_OK(a->Close({.clear = true}));

  PROXYSTORE_ASSERT_OK(b->Close({.clear = true}));
  EXPECT_EQ(Raw().Command({"DEL", "iso:foreign", "iso:a"}), ":2");
}

TEST_F(RedisConnectorTest, ClearingDeletesManyKeysInBatches) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  std::vector<SharedBytes> values(5000, SharedBytes::Copy("x"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys, c->PutBatch(values));
  RawClient raw = Raw();
  const int64_t unlinks = raw.Calls("unlink");
  PROXYSTORE_ASSERT_OK(c->Close({.clear = true}));
  EXPECT_GT(raw.Calls("unlink") - unlinks, 1);
  std::vector<std::string> exists = {"EXISTS"};
  for (const Key& k : keys) exists.push_back(c->RedisKey(k));
  EXPECT_EQ(raw.Command(exists), ":0");
}

TEST_F(RedisConnectorTest, CloseKeepsKeysUnlessClearAndThenRefusesWork) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("kept")));
  PROXYSTORE_ASSERT_OK(c->Close());  // Default: clear = false.
  EXPECT_TRUE(RawExists(c->RedisKey(key)));
  PROXYSTORE_EXPECT_OK(c->Close());

  const auto closed =
      StatusIs(absl::StatusCode::kFailedPrecondition, "after Close");
  EXPECT_THAT(c->Put(SharedBytes::Copy("x")), closed);
  EXPECT_THAT(c->PutBatch({SharedBytes::Copy("x")}), closed);
  EXPECT_THAT(c->Get(key), closed);
  EXPECT_THAT(c->GetBatch({key}), closed);
  EXPECT_THAT(c->Exists(key), closed);
  EXPECT_THAT(c->Evict(key), closed);
  EXPECT_THAT(c->NewKey(), closed);
  EXPECT_THAT(c->Set(Key(NewObjectId()), SharedBytes::Copy("x")), closed);
  EXPECT_THAT(c->Set(key, SharedBytes::Copy("x")), closed);
  EXPECT_THAT(c->WaitFor(key, absl::Seconds(1)), closed);
  EXPECT_THAT(c->WaitFor(key, absl::ZeroDuration()), closed);

  // A clone from the config still reads it; "clear" = true makes a plain
  // Close() clear.
  ConnectorConfig config = c->Config();
  config.options["clear"] = "true";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto clone, Connect(config));
  EXPECT_THAT(clone->Get(key),
              IsOkAndHolds(::testing::Optional(SharedBytes::Copy("kept"))));
  PROXYSTORE_ASSERT_OK(clone->Close());
  EXPECT_FALSE(RawExists(c->RedisKey(key)));
}

TEST_F(RedisConnectorTest, EmptyKeyIsInvalidArgument) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  const auto empty = StatusIs(absl::StatusCode::kInvalidArgument, "empty");
  EXPECT_THAT(c->Get(Key()), empty);
  EXPECT_THAT(c->Exists(Key()), empty);
  EXPECT_THAT(c->Evict(Key()), empty);
  EXPECT_THAT(c->GetBatch({Key("a"), Key()}), empty);
}

TEST_F(RedisConnectorTest, WrongTypeUnderOurKeyIsAClearError) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(server())));
  const Key key("a-list");
  ASSERT_EQ(Raw().Command({"RPUSH", c->RedisKey(key), "x"}), ":1");
  EXPECT_THAT(c->Get(key), StatusIs(absl::StatusCode::kFailedPrecondition,
                                    AllOf(HasSubstr("GET failed: WRONGTYPE"),
                                          HasSubstr("a-list"))));
  // MGET, by Redis's definition, answers nil for a key of another type.
  EXPECT_THAT(c->GetBatch({key}),
              IsOkAndHolds(::testing::ElementsAre(std::nullopt)));
  // The connection stayed usable.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key ok, c->Put(SharedBytes::Copy("fine")));
  EXPECT_THAT(c->Exists(ok), IsOkAndHolds(true));
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, ConnectionsArePooledNotOnePerCall) {
  // A server of its own, so that no other test's connections are counted.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> own,
                                  RedisServer::Start());
  RawClient raw(*own);
  const int64_t before = raw.Info("clients", "connected_clients");
  ASSERT_EQ(before, 1);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(*own)));
  for (int i = 0; i < 50; ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, c->Put(SharedBytes::Copy("v")));
    PROXYSTORE_ASSERT_OK(c->Get(k).status());
  }
  EXPECT_EQ(raw.Info("clients", "connected_clients"), 2);
  EXPECT_EQ(raw.Info("stats", "total_connections_received"), 2);
}

TEST_F(RedisConnectorTest, DatabaseIndexIsSelected) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c,
                                  Connect(TcpConfig(server(), {{"db", "3"}})));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("in 3")));
  RawClient raw = Raw();
  EXPECT_EQ(raw.Command({"EXISTS", c->RedisKey(key)}), ":0");  // db 0
  EXPECT_EQ(raw.Command({"SELECT", "3"}), "+OK");
  EXPECT_EQ(raw.Command({"GET", c->RedisKey(key)}), "$in 3");
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
  EXPECT_EQ(raw.Command({"EXISTS", c->RedisKey(key)}), ":0");

  // The server has 16 databases.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto bad,
                                  Connect(TcpConfig(server(), {{"db", "99"}})));
  EXPECT_THAT(bad->Put(SharedBytes::Copy("x")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("SELECT 99 failed"),
                             HasSubstr("out of range"))));
}

TEST_F(RedisConnectorTest, PasswordIsSentAndWrongOnesAreClearErrors) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisServer * auth, SharedAuthServer());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto good, Connect(TcpConfig(*auth, {{"password", kPassword}})));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, good->Put(SharedBytes::Copy("x")));
  EXPECT_THAT(good->Exists(key), IsOkAndHolds(true));
  // It travels in the config, in clear text (documented).
  EXPECT_EQ(good->Config().options.at("password"), kPassword);

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto wrong, Connect(TcpConfig(*auth, {{"password", "nope"}})));
  EXPECT_THAT(wrong->Get(key), StatusIs(absl::StatusCode::kUnauthenticated,
                                        AllOf(HasSubstr("AUTH failed"),
                                              HasSubstr("WRONGPASS"))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto none, Connect(TcpConfig(*auth)));
  EXPECT_THAT(none->Put(SharedBytes::Copy("x")),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       AllOf(HasSubstr("SET failed"), HasSubstr("NOAUTH"))));
  // A password for a server without one.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto extra, Connect(TcpConfig(server(), {{"password", "unneeded"}})));
  EXPECT_THAT(extra->Put(SharedBytes::Copy("x")),
              StatusIs(absl::StatusCode::kUnauthenticated, "AUTH failed"));
  PROXYSTORE_EXPECT_OK(good->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, NoServerIsUnavailable) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> own,
                                  RedisServer::Start());
  const ConnectorConfig config = TcpConfig(*own);
  PROXYSTORE_ASSERT_OK(own->Stop());
  // Creation does no I/O; the first operation finds nobody listening.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(config));
  EXPECT_THAT(
      c->Put(SharedBytes::Copy("x")),
      StatusIs(absl::StatusCode::kUnavailable,
               AllOf(HasSubstr("cannot connect"), HasSubstr(c->endpoint()))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto u, Connect({"redis", {{"unix_socket", "/nonexistent/redis.sock"}}}));
  EXPECT_THAT(u->Get(Key("k")), StatusIs(absl::StatusCode::kUnavailable,
                                         "/nonexistent/redis.sock"));
  // Closing without clear needs no server; clearing does.
  PROXYSTORE_EXPECT_OK(u->Close());
  EXPECT_THAT(c->Close({.clear = true}),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(RedisConnectorTest, KilledServerIsUnavailableThenRestartedOneWorks) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> own,
                                  RedisServer::Start({.unix_socket = true}));
  for (bool unix : {false, true}) {
    SCOPED_TRACE(unix ? "unix socket" : "tcp");
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        auto c, Connect(unix ? UnixConfig(*own) : TcpConfig(*own)));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("v")));

    PROXYSTORE_ASSERT_OK(own->Kill());
    const auto down = StatusIs(absl::StatusCode::kUnavailable);
    EXPECT_THAT(c->Get(key), down);
    EXPECT_THAT(c->Put(SharedBytes::Copy("x")), down);
    EXPECT_THAT(c->PutBatch({SharedBytes::Copy("x")}), down);
    EXPECT_THAT(c->GetBatch({key}), down);
    EXPECT_THAT(c->Exists(key), down);
    EXPECT_THAT(c->Evict(key), down);
    EXPECT_THAT(c->Set(Key(NewObjectId()), SharedBytes::Copy("x")), down);
    EXPECT_THAT(c->WaitFor(Key(NewObjectId()), absl::Seconds(1)), down);

    PROXYSTORE_ASSERT_OK(own->Restart());
    // The same connector object reconnects (the data was not persisted).
    EXPECT_THAT(c->Get(key), IsOkAndHolds(std::nullopt));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key again, c->Put(SharedBytes::Copy("w")));
    EXPECT_THAT(c->Get(again),
                IsOkAndHolds(::testing::Optional(SharedBytes::Copy("w"))));
    PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
  }
}

TEST_F(RedisConnectorTest, StalePooledConnectionsAreReplacedTransparently) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> own,
                                  RedisServer::Start({.persistence = true}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(*own)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  c->Put(SharedBytes::Copy("durable")));
  // Crash and restart between two calls: the pooled connection is dead, and
  // the next call retries on a new one instead of failing.
  PROXYSTORE_ASSERT_OK(own->Kill());
  PROXYSTORE_ASSERT_OK(own->Restart());
  EXPECT_THAT(c->Get(key),
              IsOkAndHolds(::testing::Optional(SharedBytes::Copy("durable"))));
  PROXYSTORE_ASSERT_OK(own->Restart());  // Graceful this time.
  EXPECT_THAT(c->Exists(key), IsOkAndHolds(true));
  // Set's SET NX too: the retry on a new connection writes the key, and is
  // not mistaken for a lost race (the first attempt never reached a server).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key deferred, c->NewKey());
  PROXYSTORE_ASSERT_OK(own->Restart());
  EXPECT_THAT(c->Set(deferred, SharedBytes::Copy("set")), IsOk());
  EXPECT_THAT(c->Get(deferred),
              IsOkAndHolds(::testing::Optional(SharedBytes::Copy("set"))));
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, DeadServerUnderALargePutIsAnErrorNotSigpipe) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> own,
                                  RedisServer::Start());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(*own)));
  PROXYSTORE_ASSERT_OK(c->Put(SharedBytes::Copy("warm up the pool")).status());
  PROXYSTORE_ASSERT_OK(own->Kill());
  // Writing 30 MB into a connection whose peer is gone gets EPIPE/ECONNRESET;
  // a plain write(2) would raise SIGPIPE and kill this test.
  const SharedBytes big = SharedBytes::Copy(Pattern(30'000'000, 7));
  EXPECT_THAT(c->Put(big), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(c->PutBatch({big, big}),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(RedisConnectorTest, SilentServerTimesOutAsUnavailable) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> own,
                                  RedisServer::Start());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto c, Connect(TcpConfig(*own, {{"connect_timeout_ms", "300"},
                                       {"command_timeout_ms", "300"}})));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("v")));
  PROXYSTORE_ASSERT_OK(own->Pause());
  // The kernel still accepts connections; nobody answers.
  EXPECT_THAT(c->Get(key), StatusIs(absl::StatusCode::kUnavailable,
                                    "did not respond within "
                                    "command_timeout_ms=300 ms"));
  EXPECT_THAT(c->Exists(key), StatusIs(absl::StatusCode::kUnavailable));
  PROXYSTORE_ASSERT_OK(own->Resume());
  EXPECT_THAT(c->Get(key),
              IsOkAndHolds(::testing::Optional(SharedBytes::Copy("v"))));
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest,
       DefaultPrefixesAreUniqueAndClearingOneLeavesTheOther) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto a, Connect(TcpConfig(server())));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto b, Connect(TcpConfig(server())));
  EXPECT_THAT(a->prefix(), MatchesRegex("proxystore:[0-9a-f]{32}:"));
  EXPECT_THAT(b->prefix(), MatchesRegex("proxystore:[0-9a-f]{32}:"));
  ASSERT_NE(a->prefix(), b->prefix());
  // Neither prefix is a prefix of the other (both end in ':').
  ASSERT_FALSE(b->prefix().starts_with(a->prefix()));
  std::vector<Key> b_keys;
  for (int i = 0; i < 20; ++i) {
    PROXYSTORE_ASSERT_OK(
        a->Put(SharedBytes::Copy(absl::StrCat("a", i))).status());
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        Key k, b->Put(SharedBytes::Copy(absl::StrCat("b", i))));
    b_keys.push_back(k);
  }
  ASSERT_EQ(Raw().Command({"SET", "proxystore:someone-else", "theirs"}), "+OK");
  ASSERT_EQ(server().CountKeys(a->prefix()), 20);

  PROXYSTORE_ASSERT_OK(a->Close({.clear = true}));
  EXPECT_EQ(server().CountKeys(a->prefix()), 0);
  EXPECT_EQ(server().CountKeys(b->prefix()), 20);
  for (int i = 0; i < 20; ++i) {
    EXPECT_THAT(b->Get(b_keys[i]),
                IsOkAndHolds(::testing::Optional(
                    SharedBytes::Copy(absl::StrCat("b", i)))));
  }
  EXPECT_EQ(Raw().Command({"GET", "proxystore:someone-else"}), "$theirs");
  PROXYSTORE_ASSERT_OK(b->Close({.clear = true}));
  EXPECT_EQ(Raw().Command({"DEL", "proxystore:someone-else"}), ":1");
}

TEST_F(RedisConnectorTest, PutBatchIsAllOrNothingWhenALaterChunkFails) {
  // A server of its own: its memory limit must not disturb other tests.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisServer> own,
      RedisServer::Start({.extra_args = {"--maxmemory-policy", "noeviction"}}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c, Connect(TcpConfig(*own)));
  // Three MSET chunks of 1000 values of 4 KB (4 MB each), against a limit
  // 6 MB above what the server uses now: the first chunk fits, the second
  // finds the server full and is refused (OOM).
  std::vector<SharedBytes> values;
  for (size_t i = 0; i < 3 * RedisConnector::kMaxBatchItems; ++i) {
    values.push_back(
        SharedBytes::Copy(Pattern(4000, static_cast<uint32_t>(i))));
  }
  RawClient raw(*own);
  const int64_t used = raw.Info("memory", "used_memory");
  ASSERT_GT(used, 0);
  ASSERT_EQ(raw.Command({"CONFIG", "SET", "maxmemory",
                         absl::StrCat(used + (int64_t{6} << 20))}),
            "+OK");
  const int64_t msets = raw.Calls("mset");

  EXPECT_THAT(c->PutBatch(values),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("MSET 2 of 3 (items 1000 to 1999)"),
                             HasSubstr("OOM"),
                             HasSubstr("the 1000 objects that may have been "
                                       "stored were removed again"))));
  EXPECT_EQ(raw.Calls("mset") - msets, 1);    // The first chunk was stored...
  EXPECT_EQ(own->CountKeys(c->prefix()), 0);  // ...and removed again.

  // Room again: the same batch goes through whole.
  ASSERT_EQ(raw.Command({"CONFIG", "SET", "maxmemory", "0"}), "+OK");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys, c->PutBatch(values));
  EXPECT_EQ(own->CountKeys(c->prefix()), 3000);
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

TEST_F(RedisConnectorTest, ValuesOverMaxObjectSizeAreRefusedNamingKeyAndSizes) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto writer, Connect(TcpConfig(server())));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key big, writer->Put(SharedBytes::Copy(Pattern(100'000, 3))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key small,
                                  writer->Put(SharedBytes::Copy("small")));
  ConnectorConfig config = writer->Config();
  EXPECT_EQ(config.options.at("max_object_size"),
            absl::StrCat(RedisConnector::kMaxValueSize));
  config.options["max_object_size"] = "1000";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto reader, Connect(config));
  EXPECT_EQ(reader->Config().options.at("max_object_size"), "1000");

  const auto too_big =
      StatusIs(absl::StatusCode::kResourceExhausted,
               AllOf(HasSubstr(big.id()), HasSubstr("100000 bytes"),
                     HasSubstr("max_object_size of 1000 bytes")));
  EXPECT_THAT(reader->Get(big), too_big);
  EXPECT_THAT(reader->GetBatch({small, big}), too_big);
  // The connection that held the unread value was closed; the next one works.
  EXPECT_THAT(reader->Get(small),
              IsOkAndHolds(::testing::Optional(SharedBytes::Copy("small"))));
  EXPECT_THAT(
      reader->GetBatch({small, Key("missing")}),
      IsOkAndHolds(ElementsAre(::testing::Optional(SharedBytes::Copy("small")),
                               std::nullopt)));
  EXPECT_THAT(Connect(TcpConfig(server(), {{"max_object_size", "-1"}})),
              StatusIs(absl::StatusCode::kInvalidArgument, "max_object_size"));
  PROXYSTORE_EXPECT_OK(writer->Close({.clear = true}));
}

// A fake server: accepts connections one at a time on a loopback port, reads
// the request, answers `reply` (any bytes), then half-closes and waits for
// the client to hang up.
class FakeServer {
 public:
  explicit FakeServer(std::string reply) : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 ||
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeServer() {
    ::shutdown(fd_, SHUT_RDWR);  // Wakes accept().
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }

  int port() const { return port_; }

 private:
  void Serve() {
    for (;;) {
      const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) return;
      char buf[4096];
      (void)::recv(conn, buf, sizeof(buf), 0);
      size_t sent = 0;
      while (sent < reply_.size()) {
        const ssize_t n = ::send(conn, reply_.data() + sent,
                                 reply_.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
      ::shutdown(conn, SHUT_WR);
      while (::recv(conn, buf, sizeof(buf), 0) > 0) {
      }
      ::close(conn);
    }
  }

  const std::string reply_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// What a connector makes of `reply` to its first command, `op`.
absl::Status AgainstFakeServer(
    const std::string& reply,
    const std::function<absl::Status(RedisConnector&)>& op,
    std::map<std::string, std::string> more = {}) {
  FakeServer fake(reply);
  if (fake.port() == 0) return absl::InternalError("no fake server");
  more["host"] = "127.0.0.1";
  more["port"] = absl::StrCat(fake.port());
  more["command_timeout_ms"] = "60000";
  PROXYSTORE_ASSIGN_OR_RETURN(auto c, Connect({"redis", std::move(more)}));
  absl::Status status = op(*c);
  c.reset();  // Hangs up, so that the fake server's thread ends.
  return status;
}

TEST(RedisHostileServer, RepliesAreReadWithBoundedMemory) {
  const auto get = [](RedisConnector& c) { return c.Get(Key("k")).status(); };
  const auto get_batch = [](RedisConnector& c) {
    return c.GetBatch({Key("a"), Key("b")}).status();
  };
  const auto exists = [](RedisConnector& c) {
    return c.Exists(Key("k")).status();
  };
  const auto clear = [](RedisConnector& c) { return c.Close({.clear = true}); };
  // An announced length past max_object_size: refused before any allocation
  // (1 TiB here; with a 1 MB limit, 2 MB).
  EXPECT_THAT(AgainstFakeServer("$1099511627776\r\n", get),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("\"k\""), HasSubstr("1099511627776"),
                             HasSubstr("max_object_size of 536870912"))));
  EXPECT_THAT(AgainstFakeServer("*2\r\n$-1\r\n$2000000\r\n", get_batch,
                                {{"max_object_size", "1000000"}}),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("\"b\""), HasSubstr("2000000 bytes"))));
  // An array longer than what was asked for, or absurdly long.
  EXPECT_THAT(AgainstFakeServer("*3\r\n", get_batch),
              StatusIs(absl::StatusCode::kInternal, "returned 3 values"));
  EXPECT_THAT(AgainstFakeServer("*9223372036854775807\r\n", get_batch),
              StatusIs(absl::StatusCode::kInternal, "protocol error"));
  EXPECT_THAT(AgainstFakeServer("*2\r\n$1\r\n7\r\n*4294967296\r\n", clear),
              StatusIs(absl::StatusCode::kInternal, "oversized list of keys"));
  EXPECT_THAT(AgainstFakeServer(
                  absl::StrCat("*2\r\n$1\r\n0\r\n*1\r\n$",
                               RedisConnector::kMaxBatchBytes + 1, "\r\n"),
                  clear),
              StatusIs(absl::StatusCode::kInternal, "too many key bytes"));
  // A line that never ends: the read buffer's size, no more.
  EXPECT_THAT(AgainstFakeServer(std::string(1 << 20, '+'), exists),
              StatusIs(absl::StatusCode::kInternal,
                       "a reply line is longer than 16384 bytes"));
  // Not RESP2 at all, malformed numbers, a string without its CRLF.
  EXPECT_THAT(AgainstFakeServer("HTTP/1.1 400 Bad Request\r\n", get),
              StatusIs(absl::StatusCode::kInternal, "not a RESP2 reply line"));
  EXPECT_THAT(AgainstFakeServer("$-2\r\n", get),
              StatusIs(absl::StatusCode::kInternal, "malformed reply line"));
  EXPECT_THAT(AgainstFakeServer(":12x\r\n", exists),
              StatusIs(absl::StatusCode::kInternal, "malformed reply line"));
  EXPECT_THAT(AgainstFakeServer("$3\r\nabcXY", get),
              StatusIs(absl::StatusCode::kInternal, "not followed by CRLF"));
  // The wrong type, or a reply cut short.
  EXPECT_THAT(AgainstFakeServer("*1\r\n$1\r\nx\r\n", get),
              StatusIs(absl::StatusCode::kInternal,
                       "GET returned an unexpected array reply"));
  EXPECT_THAT(AgainstFakeServer("$100\r\nshort", get),
              StatusIs(absl::StatusCode::kUnavailable, "closed"));
  // Well-formed replies still work against the fake server.
  EXPECT_THAT(AgainstFakeServer("$5\r\nhello\r\n", get), IsOk());
  EXPECT_THAT(AgainstFakeServer("*2\r\n$0\r\n\r\n$-1\r\n", get_batch), IsOk());
}

TEST(RedisHostileServer, WaitForReadsPushesWithBoundedMemory) {
  const auto wait = [](RedisConnector& c) {
    return c.WaitFor(Key(std::string(32, 'a')), absl::Hours(1)).status();
  };
  const auto bad = [](absl::string_view what) {
    return StatusIs(absl::StatusCode::kInternal,
                    AllOf(HasSubstr("WaitFor"), HasSubstr(what)));
  };
  // What SUBSCRIBE's confirmation cannot be: another reply, an array of
  // another length (however long), an oversized kind, another kind, another
  // channel (refused by its announced size before it is read), another
  // count.
  EXPECT_THAT(AgainstFakeServer("+OK\r\n", wait), bad("not a push"));
  EXPECT_THAT(AgainstFakeServer("*9223372036854775807\r\n", wait),
              bad("not a push"));
  EXPECT_THAT(AgainstFakeServer("*3\r\n$1099511627776\r\n", wait),
              bad("without a kind"));
  EXPECT_THAT(AgainstFakeServer("*3\r\n$4\r\npong\r\n", wait),
              bad("of kind \"pong\""));
  EXPECT_THAT(
      AgainstFakeServer("*3\r\n$9\r\nsubscribe\r\n$1099511627776\r\n", wait),
      bad("another channel"));
  const std::string channel = "p:" + std::string(32, 'a') + ":set";
  const std::string other = "p:" + std::string(32, 'b') + ":set";
  EXPECT_THAT(
      AgainstFakeServer(absl::StrCat("*3\r\n$9\r\nsubscribe\r\n$", other.size(),
                                     "\r\n", other, "\r\n:1\r\n"),
                        wait, {{"prefix", "p:"}}),
      bad("another channel"));
  EXPECT_THAT(AgainstFakeServer(
                  absl::StrCat("*3\r\n$9\r\nsubscribe\r\n$", channel.size(),
                               "\r\n", channel, "\r\n$1\r\n1\r\n"),
                  wait, {{"prefix", "p:"}}),
              bad("malformed confirmation"));
  EXPECT_THAT(
      AgainstFakeServer(absl::StrCat("*3\r\n$7\r\nmessage\r\n$", channel.size(),
                                     "\r\n", channel, "\r\n$0\r\n\r\n"),
                        wait, {{"prefix", "p:"}}),
      bad("before SUBSCRIBE was confirmed"));
  // A refusal: the caller polls.
  EXPECT_THAT(AgainstFakeServer("-ERR unknown command 'SUBSCRIBE'\r\n", wait),
              StatusIs(absl::StatusCode::kUnimplemented, "unknown command"));
}

TEST_F(RedisConnectorTest, ReceiverConfigKeepsOnlyTheLocationAndSafeDefaults) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto c,
                                  Connect(TcpConfig(server(), {{"db", "4"}})));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("data")));
  // What a hostile proxy could carry: clear on close, timeouts of a day, a
  // huge read limit, options this kind does not even have.
  ConnectorConfig wire = c->Config();
  wire.options["clear"] = "true";
  wire.options["connect_timeout_ms"] = "86400000";
  wire.options["command_timeout_ms"] = "86400000";
  wire.options["max_object_size"] = "9223372036854775807";
  wire.options["max_idle_connections"] = "1000000";
  wire.options["password"] = "";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig receiver,
                                  ReceiverConfig(wire, TrustPolicy::Default()));
  const std::map<std::string, std::string> expected = {
      {"host", server().host()},
      {"port", absl::StrCat(server().port())},
      {"db", "4"},
      {"prefix", c->prefix()},
      {"password", ""},
      {"clear", "false"},
      {"max_object_size", "1073741824"}};
  EXPECT_EQ(receiver.kind, "redis");
  EXPECT_EQ(receiver.options, expected);
  // It reaches the data, and its plain Close() leaves it there.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> r,
                                  MakeConnector(receiver));
  EXPECT_THAT(r->Get(key),
              IsOkAndHolds(::testing::Optional(SharedBytes::Copy("data"))));
  PROXYSTORE_EXPECT_OK(r->Close());
  EXPECT_THAT(c->Exists(key), IsOkAndHolds(true));

  // Destinations, as documented in the header.
  const std::string endpoint =
      absl::StrCat("redis:127.0.0.1:", server().port());
  EXPECT_THAT(
      ConnectorDestinations(wire),
      IsOkAndHolds(ElementsAre(absl::StrCat(endpoint, "/4/", c->prefix()))));
  EXPECT_THAT(ConnectorDestinations(
                  {"redis", {{"host", "LocalHost"}, {"prefix", "app:x"}}}),
              IsOkAndHolds(ElementsAre("redis:localhost:6379/0/app:x")));
  EXPECT_THAT(ConnectorDestinations({"redis", {{"host", "::1"}, {"db", "2"}}}),
              IsOkAndHolds(ElementsAre("redis:[::1]:6379/2/")));
  EXPECT_THAT(ConnectorDestinations(UnixConfig(server(), {{"prefix", "p:"}})),
              IsOkAndHolds(ElementsAre(absl::StrCat(
                  "redis:unix:", server().unix_socket(), "/0/p:"))));
  EXPECT_THAT(ConnectorDestinations(
                  {"redis", {{"unix_socket", "/run/../tmp/./r.sock"}}}),
              IsOkAndHolds(ElementsAre("redis:unix:/tmp/r.sock/0/")));
  EXPECT_THAT(ConnectorDestinations({"redis", {{"unix_socket", "r.sock"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "absolute"));
  EXPECT_THAT(ConnectorDestinations({"redis", {{"host", "unix"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "ambiguous"));
  EXPECT_THAT(
      ConnectorDestinations({"redis", {{"host", "10.0.0.5:6379/0/app:"}}}),
      StatusIs(absl::StatusCode::kInvalidArgument, "host"));

  // A policy naming one server, database and key prefix.
  const TrustPolicy policy = TrustPolicy::DenyAll().AllowDestination(
      absl::StrCat(endpoint, "/4/", c->prefix()));
  EXPECT_THAT(ReceiverConfig(wire, policy), IsOk());
  ConnectorConfig elsewhere = wire;
  elsewhere.options["db"] = "5";
  EXPECT_THAT(ReceiverConfig(elsewhere, policy),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       absl::StrCat(endpoint, "/5/")));
  elsewhere = wire;
  elsewhere.options["prefix"] = "proxystore:";
  EXPECT_THAT(ReceiverConfig(elsewhere, policy),
              StatusIs(absl::StatusCode::kPermissionDenied));
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));
}

}  // namespace
}  // namespace proxystore

namespace proxystore {
namespace {

TEST(RedisPasswordReference, IsReadWhereTheConnectorIsMadeAndNeverCarried) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RedisServer * server, SharedAuthServer());
  const std::string file =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/redis-password");
  { std::ofstream(file) << kPassword << "\n"; }
  ASSERT_EQ(::setenv("PROXYSTORE_TEST_REDIS_PASSWORD", kPassword, 1), 0);
  const std::string self = absl::StrCat(server->host(), ":", server->port());
  const std::string servers = absl::StrCat("10.9.9.9:1,", self);
  for (const auto& [option, value] :
       {std::pair<std::string, std::string>{"password_file", file},
        {"password_env", "PROXYSTORE_TEST_REDIS_PASSWORD"}}) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<RedisConnector> c,
        RedisConnector::Create(
            TcpConfig(*server, {{option, value}, {"password_for", servers}})));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("x")));
    EXPECT_THAT(c->Exists(key), IsOkAndHolds(true));
    // The reference travels in Config(), the password nowhere; a proxy
    // (the location options) carries neither.
    const ConnectorConfig config = c->Config();
    EXPECT_EQ(config.options.at(option), value);
    EXPECT_EQ(config.options.at("password_for"), servers);
    EXPECT_EQ(config.options.count("password"), 0u);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig location,
                                    LocationConfig(config));
    EXPECT_EQ(location.options.count(option), 0u);
    EXPECT_EQ(location.options.count("password_for"), 0u);
    EXPECT_EQ(location.options.count("password"), 0u);
    // A reference wins over a literal password (a receiver's own over a
    // proxy's).
    ConnectorConfig both = config;
    both.options["password"] = "wrong";
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> again,
                                    MakeConnector(both));
    EXPECT_THAT(again->Exists(key), IsOkAndHolds(true));
    EXPECT_THAT(c->Close({.clear = true}), IsOk());
  }
  // For a server password_for does not list (as a proxy naming a server of
  // its own would make), the secret is neither read nor sent: the server
  // sees no AUTH.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisConnector> elsewhere,
      RedisConnector::Create(TcpConfig(
          *server, {{"password_file", file}, {"password_for", "h:1"}})));
  EXPECT_THAT(
      elsewhere->Exists(Key("k")),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("NOAUTH")));
  EXPECT_THAT(
      RedisConnector::Create(TcpConfig(*server, {{"password_file", file}})),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("needs \"password_for\"")));
  EXPECT_THAT(
      RedisConnector::Create(TcpConfig(*server, {{"password_env", "A"},
                                                 {"password_file", file},
                                                 {"password_for", self}})),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("give one")));
  EXPECT_THAT(RedisConnector::Create(TcpConfig(
                  *server, {{"password_env", "PROXYSTORE_TEST_UNSET_VAR"},
                            {"password_for", self}})),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("is not set")));
  EXPECT_THAT(
      RedisConnector::Create(TcpConfig(
          *server, {{"password_file", "relative"}, {"password_for", self}})),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute path")));
}

}  // namespace
}  // namespace proxystore
