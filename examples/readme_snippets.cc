// The C++ code of README.md, compiled and run. Each block between
// "// [readme: NAME]" and "// [end]" stands in README.md exactly as here
// (//examples:readme_snippets_match_test checks it), so every example a
// reader copies compiles and does what the README says.
// [readme: intro]
#include "proxystore/connectors/file/file_connector.h"  // the "file" kind
#include "proxystore/store/ref.h"  // OwnedProxy, Borrow, ParseOwnedProxy
#include "proxystore/store/store.h"

using namespace proxystore;

// The producer: puts a 10 MB object and sends a proxy of it that owns it.
absl::StatusOr<std::string> Produce(const std::string& dir) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<Connector> connector,
                              MakeConnector({"file", {{"directory", dir}}}));
  // Registered: the registry keeps the store alive until Close(), and
  // proxies resolved in this process find it by name.
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::shared_ptr<Store> store,
      Store::Create("my-store", std::move(connector), {.auto_register = true}));
  // One owner per object; it evicts the object when it goes away.
  PROXYSTORE_ASSIGN_OR_RETURN(
      OwnedProxy<std::string> owner,
      OwnedProxyOf(*store, std::string(10'000'000, 'x')));
  // Ownership travels with the bytes (a few hundred): the receiver's owner
  // evicts. Copying an owner does not compile; this consumes it.
  return std::move(owner).Serialize();
}

// The consumer, in any process that links the "file" connector.
absl::StatusOr<size_t> Consume(const std::string& wire) {
  PROXYSTORE_ASSIGN_OR_RETURN(OwnedProxy<std::string> p,
                              ParseOwnedProxy<std::string>(wire));
  PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> s,
                              p.Get());  // resolves once: reads the file
  return s->size();
}  // p goes: the object is evicted from the store
// [end]

// [readme: lifetimes]
#include "proxystore/store/lifetimes.h"  // ContextLifetime, ...

// Borrows read an owner's object without owning it; a lifetime ends a
// group of objects at once.
absl::StatusOr<size_t> Share(const std::shared_ptr<Store>& store) {
  PROXYSTORE_ASSIGN_OR_RETURN(OwnedProxy<std::string> owner,
                              OwnedProxyOf(*store, std::string("shared")));
  PROXYSTORE_ASSIGN_OR_RETURN(RefProxy<std::string> a, Borrow(owner));
  PROXYSTORE_ASSIGN_OR_RETURN(RefProxy<std::string> b, Borrow(owner));
  // Moving the owner out now (Serialize, Release, Evict) is refused:
  // FailedPrecondition naming the rule, while `a` and `b` live.

  ContextLifetime scope(store);
  PROXYSTORE_ASSIGN_OR_RETURN(
      Proxy<std::string> tmp,
      store->Proxy(std::string("scratch"), {.lifetime = &scope}));
  PROXYSTORE_ASSIGN_OR_RETURN(auto x, a.Get());
  PROXYSTORE_ASSIGN_OR_RETURN(auto y, tmp.Get());
  return x->size() + y->size();
}  // scope ends: "scratch" is evicted; then the borrows and the owner go,
   // and "shared" is evicted
// [end]

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"
// After status_matchers.h (and gmock): proxystore::testing must not exist
// yet where gmock says testing:: under `using namespace proxystore`.
#include "proxystore/testing/redis_server.h"

// [readme: trust]
#include "proxystore/connectors/trust.h"  // SetTrustPolicy
#include "proxystore/store/signing.h"     // SetProxySigningKey

absl::Status AcceptOnlySignedProxiesOfOneDirectory(absl::string_view secret) {
  SetTrustPolicy(TrustPolicy::DenyAll().AllowDestination("file:/scratch/ps"));
  return SetProxySigningKey(secret);  // >= 32 bytes, shared by the processes
}
// [end]

// [readme: batches]
absl::Status PutSeveral(Store& store) {
  std::vector<std::string> objs = {"a", "bb", "ccc"};
  PROXYSTORE_ASSIGN_OR_RETURN(std::vector<Key> keys, store.PutBatch(objs));
  PROXYSTORE_ASSIGN_OR_RETURN(auto got, store.GetBatch<std::string>(keys));
  std::printf("%s; %s\n", got[2]->c_str(),
              ::testing::PrintToString(store.cache_info()).c_str());
  return absl::OkStatus();
}
// [end]

// [readme: futures]
#include <thread>

#include "proxystore/store/future.h"  // Future, PollingOptions

// A proxy sent before its object exists: the consumer starts now and its
// Get() waits until the producer sets the result.
absl::StatusOr<size_t> Pipelined(const std::shared_ptr<Store>& store) {
  PROXYSTORE_ASSIGN_OR_RETURN(Future<std::string> future,
                              store->Future<std::string>());
  PROXYSTORE_ASSIGN_OR_RETURN(std::string wire, future.Proxy().Serialize());
  absl::StatusOr<size_t> got;
  std::thread consumer([&got, wire] {  // or another process, or host
    absl::StatusOr<Proxy<std::string>> p = ParseProxy<std::string>(wire);
    absl::StatusOr<std::shared_ptr<const std::string>> v =
        p.ok() ? p->Get() : p.status();
    got = v.ok() ? absl::StatusOr<size_t>((*v)->size()) : v.status();
  });
  PROXYSTORE_RETURN_IF_ERROR(future.SetResult(std::string(1'000'000, 'r')));
  consumer.join();
  return got;
}
// [end]

// [readme: streams]
#include "proxystore/stream/redis_broker.h"  // Redis Streams
#include "proxystore/stream/stream.h"        // StreamProducer, ...

// Events through a broker, objects through a store: each consumer gets
// small proxies and resolves (then evicts) only what it uses.
absl::Status Frames(const std::shared_ptr<Store>& store,
                    const RedisBrokerOptions& broker) {
  PROXYSTORE_ASSIGN_OR_RETURN(auto publisher,
                              RedisStreamPublisher::Create(broker));
  StreamProducer<std::string> producer(std::move(publisher),
                                       {.default_store = store});
  for (int step = 0; step < 3; ++step) {
    PROXYSTORE_RETURN_IF_ERROR(
        producer.Send("frames", std::string(100'000, 'f'),
                      {.metadata = {{"step", std::to_string(step)}}}));
  }
  PROXYSTORE_RETURN_IF_ERROR(producer.CloseTopics({"frames"}));

  // Consumers of one group share the topic; each event goes to one of them.
  PROXYSTORE_ASSIGN_OR_RETURN(
      auto subscriber, RedisStreamSubscriber::Create(
                           broker, {.topic = "frames", .consumer = "w1"}));
  StreamConsumer<std::string> consumer(std::move(subscriber));
  return consumer.ForEach([](StreamItem<std::string>& item) -> absl::Status {
    PROXYSTORE_ASSIGN_OR_RETURN(auto frame, item.proxy.Get());
    std::printf("step %s: %zu bytes\n", item.metadata["step"].c_str(),
                frame->size());
    return absl::OkStatus();
  });
}
// [end]

namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;

TEST(Readme, IntroProducerAndConsumer) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/objects";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, Produce(dir));
  EXPECT_LT(wire.size(), 1024u);
  EXPECT_THAT(Consume(wire), IsOkAndHolds(10'000'000u));
  // The consumer's owner evicted the object when it went away.
  EXPECT_THAT(Consume(wire), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_NE(GetStore("my-store"), nullptr);
  EXPECT_THAT(GetStore("my-store")->Close(), IsOk());
}

TEST(Readme, BorrowsAndLifetimes) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/scoped";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("lifetimes",
                    *MakeConnector({"file", {{"directory", dir}}})));
  EXPECT_THAT(Share(store), IsOkAndHolds(13u));
  // Nothing is left: the scope, the borrows and the owner evicted it all.
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  EXPECT_THAT(store->Close(), IsOk());
}

TEST(Readme, TrustPolicyAndSigning) {
  EXPECT_THAT(AcceptOnlySignedProxiesOfOneDirectory("too short"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(AcceptOnlySignedProxiesOfOneDirectory(std::string(32, 'k')),
              IsOk());
  EXPECT_TRUE(ProxySigningEnabled());
  EXPECT_FALSE(GetTrustPolicy().allows_everything());
  ClearProxySigningKey();
  SetTrustPolicy(TrustPolicy::Default());
}

TEST(Readme, Batches) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("batches", *MakeConnector({"local", {}})));
  EXPECT_THAT(PutSeveral(*store), IsOk());
  EXPECT_EQ(store->cache_info().misses, 3);
}

TEST(Readme, Futures) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("futures", *MakeConnector({"local", {}})));
  EXPECT_THAT(Pipelined(store), IsOkAndHolds(1'000'000u));
  EXPECT_THAT(store->Close(), IsOk());
}

TEST(Readme, Streams) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<proxystore::testing::RedisServer> server,
      proxystore::testing::RedisServer::Start());
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/frames";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("frames", *MakeConnector({"file", {{"directory", dir}}})));
  RedisBrokerOptions broker;
  broker.host = server->host();
  broker.port = server->port();
  EXPECT_THAT(Frames(store, broker), IsOk());
  // Every frame was resolved once and evicted.
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  EXPECT_THAT(store->Close(), IsOk());
}

}  // namespace
