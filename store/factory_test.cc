#include "proxystore/store/factory.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

std::shared_ptr<Store> MakeStore(StoreOptions options = {}) {
  static std::atomic<int> n{0};
  absl::StatusOr<std::unique_ptr<Connector>> c =
      MakeConnector(ConnectorConfig{"local", {}});
  EXPECT_THAT(c.status(), IsOk());
  absl::StatusOr<std::shared_ptr<Store>> s = Store::Create(
      absl::StrCat("factory-test-", n++), *std::move(c), std::move(options));
  EXPECT_THAT(s.status(), IsOk());
  return *s;
}

TEST(StoreProxy, ResolvesToThePutObject) {
  auto store = MakeStore();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  store->Proxy(std::string("value")));
  EXPECT_FALSE(p.IsResolved());
  EXPECT_EQ(*p, "value");
  EXPECT_TRUE(p.IsResolved());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, GetKey(p));
  EXPECT_TRUE(store->IsCached(k)) << "resolve goes through Store::Get";
}

TEST(StoreProxy, SerializedProxyIsSmallAndStartsUnresolved) {
  auto store = MakeStore();
  std::string big(1000000, 'b');
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p, store->Proxy(big));
  ASSERT_THAT(p.Resolve(), IsOk());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, p.Serialize());
  EXPECT_LT(wire.size(), 512u) << "a proxy of 1 MB must serialize tiny";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> q,
                                  ParseProxy<std::string>(wire));
  EXPECT_FALSE(q.IsResolved()) << "the target never travels";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto v, q.Get());
  EXPECT_EQ(*v, big);
}

TEST(StoreProxy, AProxyNoReceiverWouldReadIsRefusedWhenSerialized) {
  absl::StatusOr<std::unique_ptr<Connector>> c =
      MakeConnector(ConnectorConfig{"local", {}});
  ASSERT_THAT(c.status(), IsOk());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create(std::string(size_t{1} << 20, 'n'), *std::move(c)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  store->Proxy(std::string("v")));
  EXPECT_THAT(p.Serialize(), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("more than a receiver reads")));
  EXPECT_EQ(*p, "v");
}

TEST(StoreProxy, ParseRejectsWrongTypeAndBadBytes) {
  auto store = MakeStore();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<int64_t> p, store->Proxy(int64_t{1}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, p.Serialize());
  EXPECT_THAT(ParseProxy<std::string>(wire),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "the proxy was made for type"));
  EXPECT_THAT(ParseProxy<int64_t>("garbage"),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ParseProxy<int64_t>(""), StatusIs(absl::StatusCode::kDataLoss));
  // Every truncation and every single-byte corruption: an error or a valid
  // proxy, never a crash.
  for (size_t n = 0; n < wire.size(); ++n) {
    EXPECT_FALSE(ParseProxy<int64_t>(wire.substr(0, n)).ok()) << n;
  }
  for (size_t i = 0; i < wire.size(); ++i) {
    std::string bad = wire;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    (void)ParseProxy<int64_t>(bad);
  }
}

TEST(StoreProxy, EvictOnResolveRemovesTheObjectForEveryoneElse) {
  auto store = MakeStore();
  ProxyOptions<std::string> o;
  o.evict = true;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  store->Proxy(std::string("once"), o));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, p.Serialize());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, GetKey(p));
  EXPECT_EQ(*p, "once");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(bool exists, store->Exists(k));
  EXPECT_FALSE(exists);
  EXPECT_FALSE(store->IsCached(k));
  // A copy shares the resolved state...
  Proxy<std::string> copy = p;
  EXPECT_EQ(*copy, "once");
  // ...but a separately deserialized proxy finds nothing.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> q,
                                  ParseProxy<std::string>(wire));
  absl::StatusOr<std::shared_ptr<const std::string>> got = q.Get();
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kNotFound,
                            HasSubstr(absl::StrCat("key='", k.id(), "'"))));
  EXPECT_THAT(got.status().message(),
              HasSubstr(absl::StrCat("Store(name='", store->name(),
                                     "', connector='local')")));
}

TEST(StoreProxy, ProxyFromKeyOfAMissingKeyIsNotFoundOnResolve) {
  auto store = MakeStore();
  Key missing(NewObjectId());
  Proxy<std::string> p = store->ProxyFromKey<std::string>(missing);
  EXPECT_THAT(p.Get(), StatusIs(absl::StatusCode::kNotFound,
                                "there is no object associated with the key"));
  // The key may appear later; the proxy then resolves.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key real, store->Put(std::string("late")));
  Proxy<std::string> q = store->ProxyFromKey<std::string>(real);
  EXPECT_FALSE(q.IsResolved());
  EXPECT_EQ(*q, "late");
}

TEST(StoreProxy, ProxyBatchKeepsOrder) {
  auto store = MakeStore();
  std::vector<std::string> objs = {"a", "b", "c"};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Proxy<std::string>> ps,
                                  store->ProxyBatch<std::string>(objs));
  ASSERT_EQ(ps.size(), 3u);
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_FALSE(ps[i].IsResolved());
    EXPECT_EQ(*ps[i], objs[i]);
  }
}

TEST(StoreProxy, PopulateTargetStartsResolvedWithoutAFetch) {
  StoreOptions so;
  so.populate_target = true;
  auto store = MakeStore(so);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  store->Proxy(std::string("here")));
  EXPECT_TRUE(p.IsResolved());
  EXPECT_EQ(*p, "here");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, GetKey(p));
  EXPECT_FALSE(store->IsCached(k)) << "no get happened";
  // Per call override, and serialized copies still start unresolved.
  ProxyOptions<std::string> off;
  off.populate_target = false;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> q,
                                  store->Proxy(std::string("x"), off));
  EXPECT_FALSE(q.IsResolved());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, p.Serialize());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> r,
                                  ParseProxy<std::string>(wire));
  EXPECT_FALSE(r.IsResolved());
  EXPECT_EQ(*r, "here");
}

TEST(StoreProxy, LockedProxyUnlocksUnresolved) {
  auto store = MakeStore();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ProxyLocker<std::string> locker,
                                  store->LockedProxy(std::string("locked")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, locker.Serialize());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ProxyLocker<std::string> back,
                                  ParseProxyLocker<std::string>(wire));
  Proxy<std::string> p = back.Unlock();
  EXPECT_FALSE(p.IsResolved());
  EXPECT_EQ(*p, "locked");
}

TEST(StoreProxy, UtilitiesRejectProxiesOfOtherFactories) {
  Proxy<int> simple(std::make_shared<SimpleFactory<int>>(1));
  EXPECT_THAT(GetKey(simple), StatusIs(absl::StatusCode::kFailedPrecondition,
                                       "must contain a factory with type "
                                       "StoreFactory"));
  EXPECT_THAT(GetStore(simple),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(ResolveAsync(simple),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(StoreProxy, GetStoreOfAProxyFindsItsStore) {
  auto store = MakeStore();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<int64_t> p, store->Proxy(int64_t{3}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> s, GetStore(p));
  EXPECT_EQ(s, store);
}

TEST(StoreProxy, ResolveAsyncThenResolveFetchesOnce) {
  StoreOptions so;
  so.metrics = true;
  auto store = MakeStore(so);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  store->Proxy(std::string("async")));
  ASSERT_THAT(ResolveAsync(p), IsOk());
  EXPECT_EQ(*p, "async");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, GetKey(p));
  std::optional<Metrics> m = store->metrics()->GetMetrics(k);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->counters.at("store.get.cache_misses"), 1);
  EXPECT_EQ(m->times.at("factory.resolve").count, 1);
  EXPECT_EQ(m->times.at("store.proxy").count, 1);
}

TEST(StoreProxy, ResolveAsyncOutlivesEveryHandle) {
  auto store = MakeStore();
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                    store->Proxy(std::string(1 << 16, 'a')));
    ASSERT_THAT(ResolveAsync(p), IsOk());
    ASSERT_THAT(ResolveAsync(p), IsOk());  // Twice: one resolve under way.
  }  // Proxy and factory handles dropped while the task may still run.
  // A second proxy resolves normally afterwards (the pool keeps working).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> q,
                                  store->Proxy(std::string("after")));
  ASSERT_THAT(ResolveAsync(q), IsOk());
  EXPECT_EQ(*q, "after");
}

TEST(StoreProxy, FailedAsyncResolveIsRetriedByTheNextAccess) {
  auto store = MakeStore();
  Key later(NewObjectId());
  Proxy<std::string> p = store->ProxyFromKey<std::string>(later);
  ASSERT_THAT(ResolveAsync(p), IsOk());
  EXPECT_THAT(p.Get(), StatusIs(absl::StatusCode::kNotFound));
  // Nothing is remembered from the failure: a later access runs again.
  EXPECT_THAT(p.Get(), StatusIs(absl::StatusCode::kNotFound));
}

TEST(StoreProxy, AMovedFromProxyIsStillAValidHandle) {
  auto store = MakeStore();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  store->Proxy(std::string("m")));
  Proxy<std::string> q = std::move(p);
  EXPECT_FALSE(p.IsResolved());  // NOLINT(bugprone-use-after-move): defined.
  EXPECT_EQ(*q, "m");
  EXPECT_TRUE(p.IsResolved());  // Same state as q.
}

TEST(StoreProxy, BatchAndCallMetrics) {
  StoreOptions so;
  so.metrics = true;
  so.populate_target = true;
  auto store = MakeStore(so);
  std::vector<std::string> objs = {"x", "y"};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto ps,
                                  store->ProxyBatch<std::string>(objs));
  EXPECT_TRUE(ps[0].IsResolved()) << "populate_target applies to batches";
  std::vector<Key> keys = {*GetKey(ps[0]), *GetKey(ps[1])};
  std::optional<Metrics> batch =
      store->metrics()->GetMetrics(absl::Span<const Key>(keys));
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->times.count("store.proxy_batch"), 1u);
  EXPECT_EQ(batch->times.count("store.put_batch.connector"), 1u);
  Proxy<std::string> fresh = store->ProxyFromKey<std::string>(keys[0]);
  EXPECT_FALSE(fresh.IsResolved()) << "ProxyFromKey never pre-resolves";
  EXPECT_EQ(*fresh, "x");
  std::optional<Metrics> m = store->metrics()->GetMetrics(keys[0]);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->times.at("factory.call").count, 1);
  EXPECT_EQ(m->times.at("factory.resolve").count, 1);
}

TEST(StoreProxy, ResolveAsyncErrorsReachTheResolver) {
  auto store = MakeStore();
  Proxy<std::string> p = store->ProxyFromKey<std::string>(Key(NewObjectId()));
  ASSERT_THAT(ResolveAsync(p), IsOk());
  EXPECT_THAT(p.Get(), StatusIs(absl::StatusCode::kNotFound));
}

TEST(StoreProxy, ProxyInAProcessWithoutTheStoreRecreatesAndRegistersIt) {
  auto store = MakeStore();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  store->Proxy(std::string("far")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, p.Serialize());
  const std::string name = store->name();
  store.reset();  // The creating store is gone from this process.
  ASSERT_EQ(GetStore(name), nullptr);
  // Many threads resolve copies at once: one store is created (issue #319).
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      absl::StatusOr<Proxy<std::string>> q = ParseProxy<std::string>(wire);
      if (q.ok() && q->Get().ok() && **q == "far") ++ok;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
  std::shared_ptr<Store> recreated = GetStore(name);
  ASSERT_NE(recreated, nullptr);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> again,
                                  ParseProxy<std::string>(wire));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto s, GetStore(again));
  EXPECT_EQ(s, recreated);
  UnregisterStore(name);
}

TEST(StoreProxy, NamedDeserializerTravelsWithTheProxy) {
  ASSERT_THAT(RegisterDeserializer<std::string>(
                  "shout",
                  [](const SharedBytes& b) -> absl::StatusOr<std::string> {
                    PROXYSTORE_ASSIGN_OR_RETURN(std::string s,
                                                Deserialize<std::string>(b));
                    for (char& ch : s) ch = static_cast<char>(std::toupper(ch));
                    return s;
                  }),
              IsOk());
  auto store = MakeStore();
  ProxyOptions<std::string> o;
  o.deserializer = "shout";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  store->Proxy(std::string("quiet"), o));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, p.Serialize());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> q,
                                  ParseProxy<std::string>(wire));
  EXPECT_EQ(*q, "QUIET");
  ProxyOptions<std::string> unknown;
  unknown.deserializer = "nobody-registered-this";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> r,
                                  store->Proxy(std::string("x"), unknown));
  EXPECT_THAT(r.Get(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                "nobody-registered-this"));
}

TEST(StoreProxy, ManyThreadsProxyAndResolve) {
  auto store = MakeStore();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        std::string v = absl::StrCat(t, ":", i);
        absl::StatusOr<Proxy<std::string>> p = store->Proxy(v);
        if (!p.ok()) continue;
        absl::StatusOr<std::string> wire = p->Serialize();
        if (!wire.ok()) continue;
        absl::StatusOr<Proxy<std::string>> q = ParseProxy<std::string>(*wire);
        if (q.ok() && q->Get().ok() && **q == v) ++ok;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 800);
}

}  // namespace
}  // namespace proxystore
