// What a serialized proxy can make the process that resolves it do: only
// read (and, with evict, remove) the object it names, where the trust policy
// allows, with the receiver's own limits. docs/security.md maps each defect
// class to the tests here and beside each connector.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

// A proxy as another process (or an attacker) would write it.
std::string Craft(const StoreConfig& config, const Key& key,
                  bool evict = false) {
  return FactoryData{key, config, evict, "",
                     std::string(TypeName<std::string>())}
      .Serialize();
}

absl::StatusOr<std::shared_ptr<const std::string>> Resolve(
    const std::string& wire) {
  PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> p,
                              ParseProxy<std::string>(wire));
  return p.Get();
}

class UntrustedProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat(::proxystore::testing::TestTempDir(), "/untrusted-",
                         getpid(), "-", counter_++);
    fs::create_directories(root_);
    dir_ = root_ + "/objects";
  }
  void TearDown() override {
    SetTrustPolicy(TrustPolicy::Default());
    fs::remove_all(root_);
  }

  // A producer store on dir_ (the user's own: clears on close by default).
  std::shared_ptr<Store> Producer(const std::string& name) {
    absl::StatusOr<std::unique_ptr<Connector>> c =
        MakeConnector({"file", {{"directory", dir_}}});
    EXPECT_THAT(c.status(), IsOk());
    absl::StatusOr<std::shared_ptr<Store>> s =
        Store::Create(name, *std::move(c));
    EXPECT_THAT(s.status(), IsOk());
    return *s;
  }

  // A store of this process on a fresh local namespace (not registered).
  static std::shared_ptr<Store> LocalStore(const std::string& name) {
    absl::StatusOr<std::unique_ptr<Connector>> c = MakeConnector({"local", {}});
    EXPECT_THAT(c.status(), IsOk());
    if (!c.ok()) return nullptr;
    absl::StatusOr<std::shared_ptr<Store>> s =
        Store::Create(name, *std::move(c));
    EXPECT_THAT(s.status(), IsOk());
    return s.ok() ? *s : nullptr;
  }

  // A proxy of `value` made by `store`, as bytes.
  static std::string Wire(Store& store, const std::string& value) {
    absl::StatusOr<Proxy<std::string>> p = store.Proxy(value);
    EXPECT_THAT(p.status(), IsOk());
    absl::StatusOr<std::string> wire = p->Serialize();
    EXPECT_THAT(wire.status(), IsOk());
    return *wire;
  }

  static size_t FilesIn(const std::string& dir) {
    size_t n = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec);
         !ec && it != fs::directory_iterator(); ++it) {
      ++n;
    }
    return n;
  }

  static inline int counter_ = 0;
  std::string root_;
  std::string dir_;
};

TEST_F(UntrustedProxyTest, StoreFromAProxyNeverClears) {
  std::shared_ptr<Store> producer = Producer("never-clears");
  const std::string wire = Wire(*producer, "payload");
  ASSERT_EQ(FilesIn(dir_), 1u);

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  ParseProxy<std::string>(wire));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> receiver, GetStore(p));
  ASSERT_NE(receiver, producer);
  EXPECT_TRUE(receiver->from_wire());
  EXPECT_THAT(receiver->Close(), IsOk());  // A well-behaved consumer.
  EXPECT_EQ(FilesIn(dir_), 1u);

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> q,
                                  ParseProxy<std::string>(wire));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> again, GetStore(q));
  EXPECT_THAT(
      again->Close(CloseOptions{.clear = true}),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("never clears")));
  EXPECT_EQ(FilesIn(dir_), 1u);
  EXPECT_THAT(producer->Close(), IsOk());  // The owner's close clears.
  EXPECT_EQ(FilesIn(dir_), 0u);
}

TEST_F(UntrustedProxyTest, ClearAndLocalOptionsInTheProxyAreIgnored) {
  std::shared_ptr<Store> producer = Producer("crafted-clear");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, producer->Put(std::string("x")));
  StoreConfig config = producer->Config();
  config.connector.options["clear"] = "true";
  config.connector.options["mmap_min_size"] = "0";
  config.connector.options["max_object_size"] = "999999999999";
  config.cache_size = int64_t{1} << 40;
  config.metrics = true;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, Resolve(Craft(config, key)));
  EXPECT_EQ(*got, "x");
  std::shared_ptr<Store> receiver = GetStore("crafted-clear");
  ASSERT_NE(receiver, nullptr);
  EXPECT_EQ(receiver->options().cache_size,
            GetReceiverStoreOptions().cache_size);
  EXPECT_EQ(receiver->metrics(), nullptr);
  const ConnectorConfig used = receiver->connector().Config();
  EXPECT_EQ(used.options.at("clear"), "false");
  EXPECT_NE(used.options.at("max_object_size"), "999999999999");
  EXPECT_THAT(receiver->Close(), IsOk());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(bool exists, producer->Exists(key));
  EXPECT_TRUE(exists);
}

TEST_F(UntrustedProxyTest, ResolvingCreatesNothingOnTheReceiver) {
  StoreConfig config;
  config.name = "creates-nothing";
  const std::string missing = root_ + "/not/there";
  config.connector = {"file", {{"directory", missing}}};
  EXPECT_THAT(Resolve(Craft(config, Key(std::string(32, 'a')))),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(fs::exists(root_ + "/not"));
}

TEST_F(UntrustedProxyTest, PolicyRefusesDestinationsBeforeTouchingThem) {
  std::shared_ptr<Store> producer = Producer("policy-file");
  const std::string wire = Wire(*producer, "v");
  SetTrustPolicy(TrustPolicy::DenyAll().AllowDestination("file:/nowhere"));
  EXPECT_THAT(Resolve(wire),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr(absl::StrCat("\"file:", dir_))));
  SetTrustPolicy(
      TrustPolicy::DenyAll().AllowDestination(absl::StrCat("file:", root_)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, Resolve(wire));
  EXPECT_EQ(*got, "v");

  // A path that climbs out of the allowed root is judged where it leads.
  StoreConfig config = producer->Config();
  config.name = "policy-escape";
  std::string climb = root_ + "/objects";
  for (int i = 0; i < 40; ++i) climb += "/..";
  config.connector.options["directory"] = climb + "/etc";
  EXPECT_THAT(Resolve(Craft(config, Key(std::string(32, 'b')))),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("\"file:/etc\"")));
  EXPECT_THAT(producer->Close(), IsOk());
}

TEST_F(UntrustedProxyTest, ConnectorKindsCanBeRefused) {
  StoreConfig config;
  config.name = "kind-refused";
  config.connector = {"local", {}};
  SetTrustPolicy(TrustPolicy::DenyAll().AllowKind("file"));
  EXPECT_THAT(
      Resolve(Craft(config, Key(std::string(32, 'c')))),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("\"local\"")));
}

TEST_F(UntrustedProxyTest, RedisEndpointsAndPrefixesAreChecked) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<::proxystore::testing::RedisServer> server,
      ::proxystore::testing::RedisServer::Start());
  const std::string port = absl::StrCat(server->port());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Connector> c,
      MakeConnector(
          {"redis",
           {{"host", "127.0.0.1"}, {"port", port}, {"prefix", "app:"}}}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> producer,
                                  Store::Create("policy-redis", std::move(c)));
  const std::string wire = Wire(*producer, "over redis");

  SetTrustPolicy(TrustPolicy::DenyAll().AllowDestination(
      absl::StrCat("redis:127.0.0.1:", port, "/0/app:")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, Resolve(wire));
  EXPECT_EQ(*got, "over redis");

  // Another prefix, another server: refused before any connection is made
  // (nothing listens on port 1, so a connection attempt would be
  // Unavailable, not PermissionDenied).
  StoreConfig config = producer->Config();
  config.name = "policy-redis-prefix";
  config.connector.options["prefix"] = "other:";
  EXPECT_THAT(
      Resolve(Craft(config, Key(std::string(32, 'd')))),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("/0/other:")));
  config.name = "policy-redis-port";
  config.connector.options["prefix"] = "app:";
  config.connector.options["port"] = "1";
  EXPECT_THAT(Resolve(Craft(config, Key(std::string(32, 'd')))),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("redis:127.0.0.1:1/")));
  EXPECT_THAT(producer->Close(CloseOptions{.clear = true}), IsOk());
}

TEST_F(UntrustedProxyTest, HugeStoredObjectsAreRefusedNotAllocated) {
  std::shared_ptr<Store> producer = Producer("huge-object");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, producer->Put(std::string("x")));
  // Someone with write access to the directory swaps in a 64 GiB sparse file.
  const fs::path object = fs::path(dir_) / key.id();
  ASSERT_TRUE(fs::exists(object)) << object;
  fs::resize_file(object, uint64_t{64} << 30);
  StoreConfig config = producer->Config();
  config.connector.options["mmap_min_size"] = "999999999999999";
  EXPECT_THAT(
      Resolve(Craft(config, key)),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr(key.id())));
  EXPECT_THAT(producer->Close(), IsOk());
}

TEST_F(UntrustedProxyTest, ClosedStoresDoNotStayRegistered) {
  std::shared_ptr<Store> producer = Producer("closed-stale");
  const std::string wire = Wire(*producer, "still here");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  ParseProxy<std::string>(wire));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> first, GetStore(p));
  ASSERT_THAT(p.Get().status(), IsOk());
  EXPECT_EQ(GetStore("closed-stale"), first);
  ASSERT_THAT(first->Close(), IsOk());
  EXPECT_EQ(GetStore("closed-stale"), nullptr);
  // Every later proxy of that store still resolves (through a new store).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, Resolve(wire));
  EXPECT_EQ(*got, "still here");
  EXPECT_NE(GetStore("closed-stale"), first);
  EXPECT_THAT(producer->Close(), IsOk());
}

TEST_F(UntrustedProxyTest, ProxyOfAClosedOriginStillResolves) {
  std::shared_ptr<Store> producer = Producer("closed-origin");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  producer->Proxy(std::string("kept")));
  ASSERT_THAT(producer->Close(CloseOptions{.clear = false}), IsOk());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, p.Get());
  EXPECT_EQ(*got, "kept");
  std::shared_ptr<Store> receiver = GetStore("closed-origin");
  ASSERT_NE(receiver, nullptr);
  EXPECT_THAT(receiver->Close(), IsOk());
}

TEST_F(UntrustedProxyTest, NameCollisionsResolveThroughTheProxysOwnConfig) {
  // This process has its own store under the name, reaching other data.
  std::shared_ptr<Store> own = LocalStore("collide");
  ASSERT_NE(own, nullptr);
  ASSERT_THAT(RegisterStore(own), IsOk());

  std::shared_ptr<Store> producer = Producer("collide");
  const std::string wire = Wire(*producer, "theirs");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, Resolve(wire));
  EXPECT_EQ(*got, "theirs");
  EXPECT_EQ(GetStore("collide"), own);  // Untouched.
  // Again (the shadow store is reused, not made per resolve).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  ParseProxy<std::string>(wire));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> a, GetStore(p));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> q,
                                  ParseProxy<std::string>(wire));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> b, GetStore(q));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, own);
  EXPECT_THAT(a->Close(), IsOk());
  UnregisterStore("collide");
  EXPECT_THAT(own->Close(), IsOk());
  EXPECT_THAT(producer->Close(), IsOk());
}

TEST_F(UntrustedProxyTest, AProxyArrivingFirstDoesNotChooseTheAppsStore) {
  // A proxy (crafted or not) names store "first-come" and resolves before
  // this process makes its own store of that name, reaching other data.
  std::shared_ptr<Store> producer = Producer("first-come");
  const std::string wire = Wire(*producer, "theirs");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, Resolve(wire));
  EXPECT_EQ(*got, "theirs");
  std::shared_ptr<Store> from_proxy = GetStore("first-come");
  ASSERT_NE(from_proxy, nullptr);
  EXPECT_TRUE(from_proxy->from_wire());

  // The application's own config wins the name.
  StoreConfig mine;
  mine.name = "first-come";
  mine.connector = {"local", {}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> app,
                                  GetOrCreateStore(mine));
  EXPECT_FALSE(app->from_wire());
  EXPECT_EQ(app->connector().kind(), "local");
  EXPECT_EQ(GetStore("first-come"), app);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> again,
                                  GetOrCreateStore(mine));
  EXPECT_EQ(again, app);
  // Proxies of the producer still resolve, through the store moved aside.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto again_got, Resolve(wire));
  EXPECT_EQ(*again_got, "theirs");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  ParseProxy<std::string>(wire));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> resolver, GetStore(p));
  EXPECT_EQ(resolver, from_proxy);

  // RegisterStore of the application's store replaces one a proxy made,
  // even without exist_ok.
  std::shared_ptr<Store> second_producer = Producer("first-come-2");
  PROXYSTORE_ASSERT_OK(Resolve(Wire(*second_producer, "x")).status());
  ASSERT_NE(GetStore("first-come-2"), nullptr);
  std::shared_ptr<Store> registered = LocalStore("first-come-2");
  ASSERT_NE(registered, nullptr);
  EXPECT_THAT(RegisterStore(registered, /*exist_ok=*/false), IsOk());
  EXPECT_EQ(GetStore("first-come-2"), registered);
  // An application's store is not replaced that way.
  std::shared_ptr<Store> duplicate = LocalStore("first-come-2");
  ASSERT_NE(duplicate, nullptr);
  EXPECT_THAT(RegisterStore(duplicate, /*exist_ok=*/false),
              StatusIs(absl::StatusCode::kAlreadyExists));

  UnregisterStore("first-come");
  UnregisterStore("first-come-2");
  EXPECT_THAT(from_proxy->Close(), IsOk());
  EXPECT_THAT(app->Close(), IsOk());
  EXPECT_THAT(registered->Close(), IsOk());
  EXPECT_THAT(duplicate->Close(), IsOk());
  EXPECT_THAT(second_producer->Close(), IsOk());
  EXPECT_THAT(producer->Close(), IsOk());
}

TEST_F(UntrustedProxyTest, MultiChildrenGetTheReceiversTreatment) {
  StoreConfig config;
  config.name = "multi-wire";
  config.connector = {"multi",
                      {},
                      {{"f",
                        {"file",
                         {{"directory", dir_},
                          {"clear", "true"},
                          {"create_directory", "true"}}},
                        Policy()}}};
  const std::string wire = Craft(config, Key("1:f:" + std::string(32, 'e')));
  EXPECT_THAT(Resolve(wire), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(fs::exists(dir_));  // Nothing was created.
  std::shared_ptr<Store> receiver = GetStore("multi-wire");
  ASSERT_NE(receiver, nullptr);
  const ConnectorConfig received = receiver->connector().Config();
  ASSERT_EQ(received.children.size(), 1u);
  EXPECT_EQ(received.children[0].config.options.at("clear"), "false");
  EXPECT_EQ(received.children[0].config.options.at("create_directory"),
            "false");
  EXPECT_THAT(receiver->Close(), IsOk());

  config.name = "multi-wire-denied";
  SetTrustPolicy(TrustPolicy::DenyAll().AllowDestination("file:/nowhere"));
  EXPECT_THAT(Resolve(Craft(config, Key("1:f:" + std::string(32, 'e')))),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr(absl::StrCat("\"file:", dir_))));
}

}  // namespace
}  // namespace proxystore
