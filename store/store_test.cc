#include "proxystore/store/store.h"

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/store/factory.h"
#include "proxystore/testing/status_matchers.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

// Counts connector calls on top of a real "local" connector.
class CountingConnector : public Connector {
 public:
  explicit CountingConnector(std::unique_ptr<Connector> inner)
      : inner_(std::move(inner)) {}
  absl::string_view kind() const override { return inner_->kind(); }
  ConnectorConfig Config() const override { return inner_->Config(); }
  std::atomic<int> puts{0}, put_parts{0}, gets{0}, exists{0}, evicts{0};
  // The parts of the last PutParts (valid during that call only).
  std::vector<absl::string_view> last_parts;
  // Runs inside DoGet after the bytes were read (to interleave operations).
  std::function<void(const Key&)> after_get;

 protected:
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override {
    ++puts;
    return inner_->Put(std::move(data), options);
  }
  absl::StatusOr<Key> DoPutParts(absl::Span<const absl::string_view> parts,
                                 const PutOptions& options) override {
    ++put_parts;
    last_parts.assign(parts.begin(), parts.end());
    return inner_->PutParts(parts, options);
  }
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override {
    ++gets;
    absl::StatusOr<std::optional<SharedBytes>> got = inner_->Get(key);
    if (after_get) after_get(key);
    return got;
  }
  absl::StatusOr<bool> DoExists(const Key& key) override {
    ++exists;
    return inner_->Exists(key);
  }
  absl::Status DoEvict(const Key& key) override {
    ++evicts;
    return inner_->Evict(key);
  }
  absl::Status DoClose(const CloseOptions& options) override {
    return inner_->Close(options);
  }

 private:
  std::unique_ptr<Connector> inner_;
};

std::unique_ptr<Connector> Local() {
  absl::StatusOr<std::unique_ptr<Connector>> c =
      MakeConnector(ConnectorConfig{"local", {}});
  EXPECT_THAT(c.status(), IsOk());
  return *std::move(c);
}

struct Counted {
  std::shared_ptr<Store> store;
  CountingConnector* connector;  // Owned by store.
};

Counted MakeCounted(StoreOptions options = {}, std::string name = "") {
  static std::atomic<int> n{0};
  if (name.empty()) name = absl::StrCat("store-test-", n++);
  auto connector = std::make_unique<CountingConnector>(Local());
  CountingConnector* raw = connector.get();
  absl::StatusOr<std::shared_ptr<Store>> s =
      Store::Create(name, std::move(connector), std::move(options));
  EXPECT_THAT(s.status(), IsOk());
  return {*std::move(s), raw};
}

// --- Creation and options --------------------------------------------------

TEST(StoreCreate, RejectsBadOptionsWithAnError) {
  StoreOptions negative;
  negative.cache_size = -1;
  EXPECT_THAT(Store::Create("s", Local(), negative),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "cache size cannot be negative, got -1"));
  EXPECT_THAT(Store::Create("", Local()),
              StatusIs(absl::StatusCode::kInvalidArgument, "name"));
  EXPECT_THAT(
      Store::Create("s", nullptr),
      StatusIs(absl::StatusCode::kInvalidArgument, "connector is null"));
  StoreOptions unknown;
  unknown.serializer = "no-such-serializer";
  EXPECT_THAT(
      Store::Create("s", Local(), unknown),
      StatusIs(absl::StatusCode::kInvalidArgument, "no-such-serializer"));
}

TEST(StoreCreate, AccessorsDescribeTheStore) {
  StoreOptions o;
  o.cache_size = 4;
  o.metrics = true;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto store, Store::Create("acc", Local(), o));
  EXPECT_EQ(store->name(), "acc");
  EXPECT_NE(store->metrics(), nullptr);
  EXPECT_EQ(store->connector().kind(), "local");
  EXPECT_EQ(store->DebugString(),
            "Store(\"acc\", connector=local, serializer=default, "
            "deserializer=default, cache_size=4, metrics=true)");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto plain, Store::Create("p", Local()));
  EXPECT_EQ(plain->metrics(), nullptr);
}

// --- Put / Get / cache rules ---------------------------------------------

TEST(Store, PutThenGetRoundTripsTypedValues) {
  auto [store, c] = MakeCounted();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k1, store->Put(std::string("hello")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k2, store->Put(int64_t{-7}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k3,
                                  store->Put(std::vector<double>{1.0, 2.5}));
  EXPECT_NE(k1, k2);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto s, store->Get<std::string>(k1));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(*s, "hello");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto i, store->Get<int64_t>(k2));
  EXPECT_EQ(*i, -7);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto v, store->Get<std::vector<double>>(k3));
  EXPECT_EQ(*v, (std::vector<double>{1.0, 2.5}));
}

TEST(Store, PutDoesNotCacheGetDoes) {
  auto [store, c] = MakeCounted();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("v")));
  EXPECT_FALSE(store->IsCached(k));
  ASSERT_THAT(store->Get<std::string>(k).status(), IsOk());
  EXPECT_TRUE(store->IsCached(k));
  EXPECT_EQ(c->gets.load(), 1);
  ASSERT_THAT(store->Get<std::string>(k).status(), IsOk());
  EXPECT_EQ(c->gets.load(), 1) << "second get must be a cache hit";
}

TEST(Store, CacheHitSharesTheObjectInsteadOfCopying) {
  auto [store, c] = MakeCounted();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string(1 << 20, 'x')));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto a, store->Get<std::string>(k));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto b, store->Get<std::string>(k));
  EXPECT_EQ(a.get(), b.get());
}

TEST(Store, MissingKeyGivesTheDefaultAndCachesNothing) {
  auto [store, c] = MakeCounted();
  Key missing(NewObjectId());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto v, store->Get<std::string>(missing));
  EXPECT_EQ(v, nullptr);
  StoreGetOptions<std::string> with_default;
  with_default.default_value = std::make_shared<const std::string>("dflt");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto d, store->Get<std::string>(missing, with_default));
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(*d, "dflt");
  EXPECT_FALSE(store->IsCached(missing));
}

TEST(Store, ExistsAnswersFromTheCacheFirst) {
  auto [store, c] = MakeCounted();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("v")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(bool e, store->Exists(k));
  EXPECT_TRUE(e);
  EXPECT_EQ(c->exists.load(), 1);
  ASSERT_THAT(store->Get<std::string>(k).status(), IsOk());
  // Evicted behind the store's back (as by another process): the local cache
  // still answers true, as in ProxyStore.
  ASSERT_THAT(store->connector().Evict(k), IsOk());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(e, store->Exists(k));
  EXPECT_TRUE(e);
  EXPECT_EQ(c->exists.load(), 1);
}

TEST(Store, EvictClearsCacheAndConnectorAndMissingIsOk) {
  auto [store, c] = MakeCounted();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("v")));
  ASSERT_THAT(store->Get<std::string>(k).status(), IsOk());
  ASSERT_THAT(store->Evict(k), IsOk());
  EXPECT_FALSE(store->IsCached(k));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(bool e, store->Exists(k));
  EXPECT_FALSE(e);
  EXPECT_THAT(store->Evict(k), IsOk());
  EXPECT_THAT(store->Evict(Key(NewObjectId())), IsOk());
}

TEST(Store, CacheSizeZeroDisablesCaching) {
  StoreOptions o;
  o.cache_size = 0;
  auto [store, c] = MakeCounted(o);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("v")));
  ASSERT_THAT(store->Get<std::string>(k).status(), IsOk());
  ASSERT_THAT(store->Get<std::string>(k).status(), IsOk());
  EXPECT_FALSE(store->IsCached(k));
  EXPECT_EQ(c->gets.load(), 2);
}

TEST(Store, CacheKeepsOnlyTheMostRecentObjects) {
  StoreOptions o;
  o.cache_size = 2;
  auto [store, c] = MakeCounted(o);
  std::vector<Key> keys;
  for (int i = 0; i < 3; ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(int64_t{i}));
    ASSERT_THAT(store->Get<int64_t>(k).status(), IsOk());
    keys.push_back(k);
  }
  EXPECT_FALSE(store->IsCached(keys[0]));
  EXPECT_TRUE(store->IsCached(keys[1]));
  EXPECT_TRUE(store->IsCached(keys[2]));
}

TEST(Store, PerCallDeserializerIsNotAppliedOnACacheHit) {
  auto [store, c] = MakeCounted();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("stored")));
  StoreGetOptions<std::string> custom;
  int calls = 0;
  custom.deserializer =
      [&calls](const SharedBytes&) -> absl::StatusOr<std::string> {
    ++calls;
    return std::string("custom");
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto first,
                                  store->Get<std::string>(k, custom));
  EXPECT_EQ(*first, "custom");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto again,
                                  store->Get<std::string>(k, custom));
  EXPECT_EQ(*again, "custom");
  EXPECT_EQ(calls, 1);
  // And a plain get now hits the cached (custom-decoded) object.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto plain, store->Get<std::string>(k));
  EXPECT_EQ(plain.get(), first.get());
}

TEST(Store, PerCallSerializerIsUsed) {
  auto [store, c] = MakeCounted();
  StorePutOptions<std::string> o;
  o.serializer = [](const std::string& s) -> absl::StatusOr<SharedBytes> {
    return SharedBytes::Copy("raw:" + s);
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("x"), o));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto raw, store->connector().Get(k));
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->view(), "raw:x");
}

TEST(Store, FailingSerializerNamesTheTypeAndStoresNothing) {
  auto [store, c] = MakeCounted();
  StorePutOptions<std::string> o;
  o.serializer = [](const std::string&) -> absl::StatusOr<SharedBytes> {
    return absl::InvalidArgumentError("cannot encode");
  };
  absl::StatusOr<Key> k = store->Put(std::string("x"), o);
  EXPECT_THAT(k, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("serializer failed: cannot encode")));
  EXPECT_THAT(k.status().message(), HasSubstr(TypeName<std::string>()));
  EXPECT_EQ(c->puts.load(), 0);

  std::vector<std::string> objs = {"a", "b", "c"};
  int n = 0;
  StorePutOptions<std::string> third_fails;
  third_fails.serializer =
      [&n](const std::string& s) -> absl::StatusOr<SharedBytes> {
    if (++n == 3) return absl::InternalError("boom");
    return SharedBytes::Copy(s);
  };
  EXPECT_THAT(store->PutBatch<std::string>(objs, third_fails),
              StatusIs(absl::StatusCode::kInternal, "nothing was stored"));
  EXPECT_EQ(c->puts.load(), 0);
}

TEST(Store, FailingDeserializerNamesKeyAndStore) {
  auto [store, c] = MakeCounted();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("x")));
  StoreGetOptions<std::string> o;
  o.deserializer = [](const SharedBytes&) -> absl::StatusOr<std::string> {
    return absl::DataLossError("bad bytes");
  };
  absl::StatusOr<std::shared_ptr<const std::string>> got =
      store->Get<std::string>(k, o);
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kDataLoss, "bad bytes"));
  EXPECT_THAT(got.status().message(), HasSubstr(k.id()));
  EXPECT_THAT(got.status().message(), HasSubstr(store->name()));
  EXPECT_FALSE(store->IsCached(k));
}

TEST(Store, GettingTheWrongTypeIsAnErrorNotGarbage) {
  auto [store, c] = MakeCounted();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(int32_t{5}));
  EXPECT_THAT(store->Get<std::string>(k),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Also when the object is already cached as its real type.
  ASSERT_THAT(store->Get<int32_t>(k).status(), IsOk());
  EXPECT_THAT(store->Get<double>(k),
              StatusIs(absl::StatusCode::kInvalidArgument));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto again, store->Get<int32_t>(k));
  EXPECT_EQ(*again, 5);
}

TEST(Store, PutBatchKeepsOrder) {
  auto [store, c] = MakeCounted();
  std::vector<std::string> objs = {"zero", "one", "two"};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys,
                                  store->PutBatch<std::string>(objs));
  ASSERT_EQ(keys.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto v, store->Get<std::string>(keys[i]));
    EXPECT_EQ(*v, objs[i]);
  }
}

TEST(Store, GetBatchUsesTheCacheThenOneConnectorBatch) {
  auto [store, c] = MakeCounted();
  std::vector<std::string> objs = {"a", "b", "c"};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys,
                                  store->PutBatch<std::string>(objs));
  ASSERT_THAT(store->Get<std::string>(keys[0]).status(), IsOk());
  const int gets_before = c->gets.load();
  std::vector<Key> ask = {keys[0], Key(NewObjectId()), keys[1], keys[2]};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, store->GetBatch<std::string>(ask));
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(*got[0], "a");
  EXPECT_EQ(got[1], nullptr);
  EXPECT_EQ(*got[2], "b");
  EXPECT_EQ(*got[3], "c");
  // keys[0] came from the cache; the three misses went to the connector.
  EXPECT_EQ(c->gets.load() - gets_before, 3);
  EXPECT_TRUE(store->IsCached(keys[2]));
}

TEST(Store, PutBufferStoresTheCallersBufferWithoutACopy) {
  auto [store, c] = MakeCounted();
  PayloadBuffer buf = PayloadBuffer::Allocate(1 << 20);
  std::memset(buf.data(), 'z', buf.size());
  const char* payload = buf.data();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->PutBuffer(std::move(buf)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto raw, store->connector().Get(k));
  ASSERT_TRUE(raw.has_value());
  // The local connector keeps what it was given: the payload is still at its
  // original address, right after the envelope header.
  EXPECT_EQ(raw->data() + raw->size() - (1 << 20), payload);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto view, store->Get<SharedBytes>(k));
  EXPECT_EQ(view->data(), payload);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k2,
                                  store->PutBuffer(PayloadBuffer::Allocate(0)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto empty, store->Get<std::string>(k2));
  EXPECT_EQ(*empty, "");
}

// A large object the codec writes verbatim reaches the connector as the
// envelope header and the object's own bytes (no serialized copy); small,
// encoded or compressed ones as one serialized buffer. Either way the stored
// bytes are exactly Serialize's.
TEST(Store, LargeContiguousObjectsArePutAsHeaderAndTheirOwnBytes) {
  auto [store, c] = MakeCounted();
  const std::string big(Store::kPutPartsMinSize, 'b');
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(big));
  EXPECT_EQ(c->put_parts, 1);
  ASSERT_EQ(c->last_parts.size(), 2u);
  EXPECT_EQ(c->last_parts[1].data(), big.data());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto raw, store->connector().Get(k));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes expected, Serialize(big));
  EXPECT_EQ(raw->view(), expected.view());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto back, store->Get<std::string>(k));
  EXPECT_EQ(*back, big);

  const int puts = c->puts;
  const std::string small(Store::kPutPartsMinSize - 1, 's');
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key ks, store->Put(small));
  EXPECT_EQ(c->put_parts, 1);
  EXPECT_EQ(c->puts, puts + 1);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto small_back, store->Get<std::string>(ks));
  EXPECT_EQ(*small_back, small);

  // A per-call serializer always gets the whole object.
  StorePutOptions<std::string> custom;
  custom.serializer = [](const std::string& s) -> absl::StatusOr<SharedBytes> {
    return Serialize(s);
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key kc, store->Put(big, custom));
  EXPECT_EQ(c->put_parts, 1);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto custom_back,
                                  store->Get<std::string>(kc));
  EXPECT_EQ(*custom_back, big);

  // Compressed objects are serialized into a new buffer.
  StoreOptions o;
  o.compress = true;
  auto [lz_store, lz] = MakeCounted(o);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key kz, lz_store->Put(big));
  EXPECT_EQ(lz->put_parts, 0);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto lz_raw, lz_store->connector().Get(kz));
  EXPECT_LT(lz_raw->size(), big.size() / 10);
}

TEST(Store, CompressionIsTransparent) {
  StoreOptions o;
  o.compress = true;
  o.compress_threshold = 64;
  auto [store, c] = MakeCounted(o);
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "compressible text ";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(text));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto raw, store->connector().Get(k));
  ASSERT_TRUE(raw.has_value());
  EXPECT_LT(raw->size(), text.size() / 4);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto back, store->Get<std::string>(k));
  EXPECT_EQ(*back, text);
}

TEST(Store, PythonFormatWritesProxyStoreBytes) {
  StoreOptions o;
  o.python_format = true;
  auto [store, c] = MakeCounted(o);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("abc")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto raw, store->connector().Get(k));
  EXPECT_EQ(raw->view(), "US\nabc");
  // Non-string types keep the native format.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key ki, store->Put(int64_t{1}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto back, store->Get<int64_t>(ki));
  EXPECT_EQ(*back, 1);
}

// --- Named serializers ----------------------------------------------------

struct Point {
  int x, y;
};

TEST(NamedSerializers, StoreWideSerializerAndDeserializerByName) {
  ASSERT_THAT(RegisterSerializer<Point>(
                  "point-text",
                  [](const Point& p) -> absl::StatusOr<SharedBytes> {
                    return SharedBytes::Copy(absl::StrCat(p.x, ",", p.y));
                  }),
              IsOk());
  ASSERT_THAT(RegisterDeserializer<Point>(
                  "point-text",
                  [](const SharedBytes& b) -> absl::StatusOr<Point> {
                    std::string s = b.ToString();
                    size_t comma = s.find(',');
                    Point p;
                    if (comma == std::string::npos ||
                        !absl::SimpleAtoi(s.substr(0, comma), &p.x) ||
                        !absl::SimpleAtoi(s.substr(comma + 1), &p.y)) {
                      return absl::DataLossError("not \"x,y\"");
                    }
                    return p;
                  }),
              IsOk());
  EXPECT_THAT(RegisterSerializer<Point>(
                  "point-text",
                  [](const Point&) -> absl::StatusOr<SharedBytes> {
                    return SharedBytes();
                  }),
              StatusIs(absl::StatusCode::kAlreadyExists));
  StoreOptions o;
  o.serializer = "point-text";
  o.deserializer = "point-text";
  auto [store, c] = MakeCounted(o);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(Point{3, 4}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto raw, store->connector().Get(k));
  EXPECT_EQ(raw->view(), "3,4");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto p, store->Get<Point>(k));
  EXPECT_EQ(p->x, 3);
  EXPECT_EQ(p->y, 4);
  // A type without a registration under that name is a clear error.
  EXPECT_THAT(store->Put(std::string("s")),
              StatusIs(absl::StatusCode::kFailedPrecondition, "point-text"));
}

// --- Conveniences ----------------------------------------------------------

TEST(StoreBatches, AcceptVectorsAsWellAsSpans) {
  auto [store, c] = MakeCounted();
  std::vector<std::string> objs = {"a", "bb", "ccc"};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys, store->PutBatch(objs));
  ASSERT_EQ(keys.size(), 3u);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, store->GetBatch<std::string>(keys));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(*got[2], "ccc");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto proxies, store->ProxyBatch(objs));
  ASSERT_EQ(proxies.size(), 3u);
  EXPECT_EQ(*proxies[1], "bb");
}

TEST(StoreCache, CacheInfoCountsHitsAndMisses) {
  StoreOptions o;
  o.cache_size = 2;
  auto [store, c] = MakeCounted(o);
  EXPECT_EQ(store->cache_info(), (CacheInfo{.capacity = 2}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("x")));
  ASSERT_THAT(store->Get<std::string>(k).status(), IsOk());  // miss
  ASSERT_THAT(store->Get<std::string>(k).status(), IsOk());  // hit
  ASSERT_THAT(store->Exists(k).status(), IsOk());            // not counted
  EXPECT_EQ(store->cache_info(),
            (CacheInfo{.capacity = 2, .size = 1, .hits = 1, .misses = 1}));
  EXPECT_EQ(::testing::PrintToString(store->cache_info()),
            "CacheInfo{capacity=2, size=1, hits=1, misses=1}");
}

TEST(NamedSerializers, FindDeserializerServesAGetAsItServesAProxy) {
  ASSERT_THAT(RegisterDeserializer<std::string>(
                  "upper-find",
                  [](const SharedBytes& b) -> absl::StatusOr<std::string> {
                    PROXYSTORE_ASSIGN_OR_RETURN(std::string s,
                                                Deserialize<std::string>(b));
                    return absl::AsciiStrToUpper(s);
                  }),
              IsOk());
  auto [store, c] = MakeCounted();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("abc")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(DeserializerFn<std::string> upper,
                                  FindDeserializer<std::string>("upper-find"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto got, store->Get<std::string>(k, {.deserializer = upper}));
  EXPECT_EQ(*got, "ABC");
  EXPECT_THAT(FindDeserializer<int>("upper-find").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "upper-find"));
  EXPECT_THAT(FindSerializer<std::string>("no-such-name").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "no-such-name"));
}

TEST(StoreMetrics, GetMetricsOfAProxy) {
  StoreOptions o;
  o.metrics = true;
  auto [store, c] = MakeCounted(o);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto p, store->Proxy(std::string("m")));
  EXPECT_EQ(*p, "m");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<Metrics> m, GetMetrics(p));
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(m->times.contains("store.put")) << m->times.size();

  auto [plain, c2] = MakeCounted();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto q, plain->Proxy(std::string("n")));
  EXPECT_THAT(
      GetMetrics(q).status(),
      StatusIs(absl::StatusCode::kFailedPrecondition, "metrics disabled"));
}

TEST(StoreRegistry, ARegistrationCanBeMoveAssigned) {
  auto [a, ca] = MakeCounted({}, "assign-a");
  auto [b, cb] = MakeCounted({}, "assign-b");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(StoreRegistration reg,
                                  StoreRegistration::Create({a}));
  EXPECT_EQ(GetStore("assign-a"), a);
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(StoreRegistration other,
                                    StoreRegistration::Create({b}));
    reg = std::move(other);  // Unregisters a; now holds b.
    EXPECT_EQ(GetStore("assign-a"), nullptr);
    EXPECT_EQ(GetStore("assign-b"), b);
  }  // The moved-from registration unregisters nothing.
  EXPECT_EQ(GetStore("assign-b"), b);
  reg = StoreRegistration(std::move(reg));
  EXPECT_EQ(GetStore("assign-b"), b);
}

// --- Metrics and logging --------------------------------------------------

TEST(StoreMetrics, RecordsProxyStoresMetricNames) {
  StoreOptions o;
  o.metrics = true;
  auto [store, c] = MakeCounted(o);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("12345")));
  ASSERT_THAT(store->Get<std::string>(k).status(), IsOk());
  ASSERT_THAT(store->Get<std::string>(k).status(), IsOk());
  ASSERT_THAT(store->Exists(k).status(), IsOk());
  ASSERT_THAT(store->Evict(k), IsOk());
  std::optional<Metrics> m = store->metrics()->GetMetrics(k);
  ASSERT_TRUE(m.has_value());
  for (const char* t :
       {"store.put", "store.put.serialize", "store.put.connector", "store.get",
        "store.get.connector", "store.get.deserialize", "store.exists",
        "store.evict", "store.evict.connector"}) {
    EXPECT_TRUE(m->times.count(t)) << t;
  }
  EXPECT_EQ(m->times.at("store.get").count, 2);
  EXPECT_EQ(m->counters.at("store.get.cache_hits"), 1);
  EXPECT_EQ(m->counters.at("store.get.cache_misses"), 1);
  EXPECT_TRUE(m->attributes.count("store.put.object_size"));
  EXPECT_TRUE(m->attributes.count("store.get.object_size"));
  // Exists answered from the cache: no connector time.
  EXPECT_FALSE(m->times.count("store.exists.connector"));

  std::vector<std::string> objs = {"a", "b"};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys,
                                  store->PutBatch<std::string>(objs));
  std::optional<Metrics> batch =
      store->metrics()->GetMetrics(absl::Span<const Key>(keys));
  ASSERT_TRUE(batch.has_value());
  EXPECT_TRUE(batch->times.count("store.put_batch"));
  EXPECT_TRUE(batch->attributes.count("store.put_batch.object_sizes"));
}

TEST(StoreLogging, DebugLinesAreWrittenWhenEnabled) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  std::shared_ptr<spdlog::logger> logger = spdlog::get("proxystore");
  if (logger == nullptr) {
    // The store creates it on first use; make a store to get it.
    auto [s, c] = MakeCounted();
    logger = spdlog::get("proxystore");
  }
  ASSERT_NE(logger, nullptr);
  logger->sinks().push_back(sink);
  logger->set_level(spdlog::level::debug);
  auto [store, c] = MakeCounted();  // Timing is decided at creation.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("v")));
  logger->set_level(spdlog::level::warn);
  logger->sinks().pop_back();
  EXPECT_THAT(out.str(), HasSubstr(absl::StrCat("Store(name=\"", store->name(),
                                                "\"): PUT ", k.id(), " in ")));
  EXPECT_THAT(out.str(), HasSubstr(" ms"));
}

// --- Config ----------------------------------------------------------------

TEST(StoreConfig, RoundTripsThroughBytesAndReachesTheSameData) {
  StoreOptions o;
  o.cache_size = 3;
  o.metrics = true;
  o.compress = true;
  auto [store, c] = MakeCounted(o, "config-store");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("shared")));
  StoreConfig config = store->Config();
  EXPECT_EQ(config.name, "config-store");
  EXPECT_EQ(config.cache_size, 3);
  EXPECT_TRUE(config.metrics);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(StoreConfig parsed,
                                  StoreConfig::Parse(config.Serialize()));
  EXPECT_EQ(parsed, config);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto again, Store::FromConfig(parsed));
  EXPECT_EQ(again->Config(), config);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto v, again->Get<std::string>(k));
  EXPECT_EQ(*v, "shared");
}

TEST(StoreConfig, BadBytesAreDataLossAndBadValuesInvalid) {
  EXPECT_THAT(StoreConfig::Parse("not a flatbuffer"),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(StoreConfig::Parse(""), StatusIs(absl::StatusCode::kDataLoss));
  StoreConfig bad;
  bad.name = "x";
  bad.connector.kind = "local";
  bad.cache_size = -5;
  EXPECT_THAT(StoreConfig::Parse(bad.Serialize()),
              StatusIs(absl::StatusCode::kInvalidArgument, "-5"));
  StoreConfig unknown_kind;
  unknown_kind.name = "y";
  unknown_kind.connector.kind = "no-such-kind";
  EXPECT_THAT(Store::FromConfig(unknown_kind),
              StatusIs(absl::StatusCode::kInvalidArgument, "no-such-kind"));
}

// --- Registry --------------------------------------------------------------

TEST(StoreRegistry, RegisterGetUnregister) {
  auto [store, c] = MakeCounted({}, "registry-a");
  EXPECT_EQ(GetStore("registry-a"), nullptr);
  ASSERT_THAT(RegisterStore(store), IsOk());
  EXPECT_EQ(GetStore("registry-a"), store);
  auto [other, c2] = MakeCounted({}, "registry-a");
  EXPECT_THAT(RegisterStore(other),
              StatusIs(absl::StatusCode::kAlreadyExists, "registry-a"));
  EXPECT_THAT(RegisterStore(other, /*exist_ok=*/true), IsOk());
  EXPECT_EQ(GetStore("registry-a"), other);
  UnregisterStore("registry-a");
  EXPECT_EQ(GetStore("registry-a"), nullptr);
  UnregisterStore("registry-a");  // No-op.
}

TEST(StoreRegistry, ScopedRegistration) {
  auto [a, ca] = MakeCounted({}, "scoped-a");
  auto [b, cb] = MakeCounted({}, "scoped-b");
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(StoreRegistration reg,
                                    StoreRegistration::Create({a, b}));
    EXPECT_EQ(GetStore("scoped-a"), a);
    EXPECT_EQ(GetStore("scoped-b"), b);
    // A clash registers nothing of the new batch.
    auto [a2, ca2] = MakeCounted({}, "scoped-c");
    EXPECT_THAT(StoreRegistration::Create({a2, a}).status(),
                StatusIs(absl::StatusCode::kAlreadyExists));
    EXPECT_EQ(GetStore("scoped-c"), nullptr);
  }
  EXPECT_EQ(GetStore("scoped-a"), nullptr);
  EXPECT_EQ(GetStore("scoped-b"), nullptr);
}

TEST(StoreRegistry, AutoRegisterAndCloseUnregisters) {
  StoreOptions o;
  o.auto_register = true;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto store,
                                  Store::Create("auto", Local(), o));
  EXPECT_EQ(GetStore("auto"), store);
  EXPECT_THAT(Store::Create("auto", Local(), o),
              StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_THAT(store->Close(), IsOk());
  EXPECT_EQ(GetStore("auto"), nullptr);
}

TEST(StoreRegistry, GetOrCreateIsRaceFree) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto seed,
                                  Store::Create("race-seed", Local()));
  StoreConfig config = seed->Config();
  config.name = "race";
  std::vector<std::shared_ptr<Store>> got(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::shared_ptr<Store>> s = GetOrCreateStore(config);
      if (s.ok()) got[i] = *s;
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_NE(got[0], nullptr);
  for (const auto& s : got) EXPECT_EQ(s, got[0]);
  EXPECT_EQ(GetStore("race"), got[0]);
  UnregisterStore("race");
}

TEST(StoreRegistry, GetOrCreateWithAnAutoRegisterConfigDoesNotDeadlock) {
  StoreOptions o;
  o.auto_register = true;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto seed,
                                  Store::Create("auto-seed", Local(), o));
  StoreConfig config = seed->Config();
  config.name = "auto-created";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto made, GetOrCreateStore(config));
  EXPECT_EQ(GetStore("auto-created"), made);
  EXPECT_TRUE(made->Config().auto_register);
  UnregisterStore("auto-created");
  ASSERT_THAT(seed->Close(), IsOk());

  config.name = "not-registered";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto unregistered, GetOrCreateStore(config, /*register_store=*/false));
  EXPECT_NE(unregistered, nullptr);
  EXPECT_EQ(GetStore("not-registered"), nullptr);
}

TEST(StoreRegistry, CloseUnregistersOnlyItself) {
  StoreOptions o;
  o.auto_register = true;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto first,
                                  Store::Create("replaced", Local(), o));
  auto [second, c] = MakeCounted({}, "replaced");
  ASSERT_THAT(RegisterStore(second, /*exist_ok=*/true), IsOk());
  ASSERT_THAT(first->Close(), IsOk());
  EXPECT_EQ(GetStore("replaced"), second);
  UnregisterStore("replaced");
}

TEST(StoreConfig, AConsumerNeedsOnlyTheDeserializer) {
  ASSERT_THAT(
      RegisterSerializer<int>("producer-only",
                              [](const int& v) -> absl::StatusOr<SharedBytes> {
                                return SharedBytes::Copy(absl::StrCat(v));
                              }),
      IsOk());
  StoreOptions o;
  o.serializer = "producer-only";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto producer,
                                  Store::Create("prod", Local(), o));
  StoreConfig config = producer->Config();
  config.serializer = "registered-only-in-the-producer-process";
  // Re-creating the store from a config (what a consumer does) works...
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto consumer, Store::FromConfig(config));
  // ...and a Put that needs the missing serializer fails, naming it.
  EXPECT_THAT(consumer->Put(1),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "registered-only-in-the-producer-process"));
  // Store::Create by hand still rejects unknown names at once.
  StoreOptions unknown;
  unknown.deserializer = "nobody";
  EXPECT_THAT(Store::Create("x", Local(), unknown),
              StatusIs(absl::StatusCode::kInvalidArgument, "nobody"));
}

TEST(Store, AGetRacingAnEvictDoesNotReCacheTheEvictedObject) {
  auto [store, c] = MakeCounted();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, store->Put(std::string("v")));
  // The evict lands after the get read the bytes, before it caches them.
  Store* raw = store.get();
  c->after_get = [raw](const Key& key) {
    EXPECT_THAT(raw->Evict(key), IsOk());
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto v, store->Get<std::string>(k));
  EXPECT_EQ(*v, "v");  // The get itself read the object before the evict...
  c->after_get = nullptr;
  EXPECT_FALSE(store->IsCached(k));  // ...but it must not stay cached.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(bool exists, store->Exists(k));
  EXPECT_FALSE(exists);
}

// --- Thread safety ----------------------------------------------------------

TEST(Store, ManyThreadsPutGetEvictOnOneStore) {
  StoreOptions o;
  o.metrics = true;
  o.cache_size = 8;
  auto [store, c] = MakeCounted(o);
  constexpr int kThreads = 8;
  constexpr int kOps = 200;
  std::atomic<int> verified{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        std::string value = absl::StrCat("t", t, "-", i);
        absl::StatusOr<Key> k = store->Put(value);
        if (!k.ok()) continue;
        auto v = store->Get<std::string>(*k);
        if (v.ok() && *v != nullptr && **v == value) ++verified;
        if (i % 3 == 0) (void)store->Evict(*k);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(verified.load(), kThreads * kOps);
  EXPECT_EQ(c->puts.load(), kThreads * kOps);
  EXPECT_EQ(store->metrics()->AggregateTimes().at("store.put").count,
            kThreads * kOps);
}

}  // namespace
}  // namespace proxystore
