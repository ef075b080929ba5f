#include "proxystore/testing/connector_conformance.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::testing {
namespace {

using ::testing::IsEmpty;
using ::testing::SizeIs;

// Deterministic, non-repeating bytes (every byte value occurs), so that a
// shifted, truncated or reordered read never compares equal by accident.
std::string Pattern(size_t n, uint64_t seed) {
  std::string out(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&out[i], &x, 8);
  }
  for (; i < n; ++i) out[i] = static_cast<char>(x >> (8 * (i % 8)));
  return out;
}

std::string AllByteValues() {
  std::string out;
  for (int i = 0; i < 256; ++i) out.push_back(static_cast<char>(i));
  out.append(std::string("\0\0\0", 3));
  return out;
}

// Puts `value` and returns its key (as a StatusOr for ASSERT_OK_AND_ASSIGN).
absl::StatusOr<Key> PutString(Connector& c, const std::string& value) {
  return c.Put(SharedBytes::Copy(value));
}

// Get() as an optional<std::string>, for compact assertions.
absl::StatusOr<std::optional<std::string>> GetString(Connector& c,
                                                     const Key& key) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<SharedBytes> got, c.Get(key));
  if (!got.has_value()) return std::optional<std::string>();
  return std::optional<std::string>(got->ToString());
}

MATCHER_P(HoldsValue, expected, "holds the expected bytes") {
  if (!arg.ok()) {
    *result_listener << "which is " << arg.status();
    return false;
  }
  if (!arg->has_value()) {
    *result_listener << "which is std::nullopt";
    return false;
  }
  const std::string& got = **arg;
  if (got.size() != expected.size()) {
    *result_listener << "which has " << got.size() << " bytes instead of "
                     << expected.size();
    return false;
  }
  if (got != expected) {
    size_t i = 0;
    while (got[i] == expected[i]) ++i;
    *result_listener << "which first differs at byte " << i;
    return false;
  }
  return true;
}

MATCHER(HoldsNothing, "is OK and std::nullopt") {
  if (!arg.ok()) {
    *result_listener << "which is " << arg.status();
    return false;
  }
  return !arg->has_value();
}

// A key that `c` has never stored: minted by another connector of the same
// kind (its own storage), then evicted there.
absl::StatusOr<Key> ForeignKey(
    const std::function<absl::StatusOr<std::unique_ptr<Connector>>()>& make) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<Connector> other, make());
  PROXYSTORE_ASSIGN_OR_RETURN(Key key, other->Put(SharedBytes::Copy("x")));
  PROXYSTORE_RETURN_IF_ERROR(other->Evict(key));
  PROXYSTORE_RETURN_IF_ERROR(other->Close(CloseOptions{.clear = true}));
  return key;
}

}  // namespace

void ConnectorConformanceTest::SetUp() {
  ASSERT_TRUE(GetParam().make != nullptr) << "ConnectorTestParams.make unset";
  absl::StatusOr<std::unique_ptr<Connector>> made = GetParam().make();
  ASSERT_THAT(made, IsOk());
  ASSERT_NE(*made, nullptr);
  connector_ = *std::move(made);
}

void ConnectorConformanceTest::TearDown() {
  if (connector_ != nullptr) {
    EXPECT_THAT(connector_->Close(CloseOptions{.clear = true}), IsOk());
  }
}

// Every TEST_P below is instantiated by each connector's test.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ConnectorConformanceTest);

TEST_P(ConnectorConformanceTest, KindIsRegistered) {
  EXPECT_FALSE(connector().kind().empty());
  EXPECT_THAT(RegisteredConnectorKinds(),
              ::testing::Contains(std::string(connector().kind())));
  EXPECT_FALSE(connector().Config().kind.empty());
}

TEST_P(ConnectorConformanceTest, PutGetRoundTrip) {
  for (const std::string& value :
       {std::string("hello"), std::string(), AllByteValues(),
        std::string(1, '\0'), Pattern(4096, 1), Pattern(100'001, 2)}) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, PutString(connector(), value));
    EXPECT_FALSE(key.empty());
    EXPECT_THAT(connector().Exists(key), IsOkAndHolds(true));
    EXPECT_THAT(GetString(connector(), key), HoldsValue(value))
        << value.size() << "-byte value";
    // A second read sees the same bytes.
    EXPECT_THAT(GetString(connector(), key), HoldsValue(value));
  }
}

// PutParts stores exactly the concatenation, whatever the split: empty
// parts, one part, many, small and large (the gathered write paths).
TEST_P(ConnectorConformanceTest, PutPartsStoresTheConcatenation) {
  const std::string big = Pattern(GetParam().large_value_size, 6);
  const std::string header = Pattern(40, 7);
  const std::vector<std::vector<absl::string_view>> splits = {
      {},
      {""},
      {"a"},
      {header, big},
      {"", header, "", big, ""},
      {"x", "y", "z", header, "tail"},
      {absl::string_view(big).substr(0, 5), absl::string_view(big).substr(5)},
  };
  for (const std::vector<absl::string_view>& parts : splits) {
    std::string joined;
    for (absl::string_view p : parts) joined.append(p.data(), p.size());
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, connector().PutParts(parts));
    EXPECT_THAT(connector().Exists(key), IsOkAndHolds(true));
    EXPECT_THAT(GetString(connector(), key), HoldsValue(joined))
        << parts.size() << " parts, " << joined.size() << " bytes";
  }
}

TEST_P(ConnectorConformanceTest, EmptyValueIsPresentNotMissing) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, connector().Put(SharedBytes()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  connector().Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->empty());
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(true));
}

TEST_P(ConnectorConformanceTest, LargeValueRoundTrip) {
  const std::string value = Pattern(GetParam().large_value_size, 3);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, PutString(connector(), value));
  EXPECT_THAT(GetString(connector(), key), HoldsValue(value));
}

TEST_P(ConnectorConformanceTest, KeysAreDistinct) {
  constexpr int kPuts = 20;
  std::vector<Key> keys;
  absl::flat_hash_set<Key> unique;
  for (int i = 0; i < kPuts; ++i) {
    // The same bytes every time: keys are not content hashes.
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, PutString(connector(), "same"));
    keys.push_back(key);
    unique.insert(key);
  }
  EXPECT_EQ(unique.size(), size_t{kPuts});
  PROXYSTORE_ASSERT_OK(connector().Evict(keys[0]));
  for (int i = 1; i < kPuts; ++i) {
    EXPECT_THAT(GetString(connector(), keys[i]),
                HoldsValue(std::string("same")));
  }
}

TEST_P(ConnectorConformanceTest, KeysSurviveSerializeParse) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, PutString(connector(), "v"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key parsed, Key::Parse(key.Serialize()));
  EXPECT_EQ(parsed, key);
  EXPECT_THAT(GetString(connector(), parsed), HoldsValue(std::string("v")));
}

TEST_P(ConnectorConformanceTest, MissingKeyIsNulloptNotAnError) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key foreign, ForeignKey(GetParam().make));
  EXPECT_THAT(GetString(connector(), foreign), HoldsNothing());
  EXPECT_THAT(connector().Exists(foreign), IsOkAndHolds(false));
}

TEST_P(ConnectorConformanceTest, EvictThenGetIsNullopt) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, PutString(connector(), "bye"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key other, PutString(connector(), "stay"));
  PROXYSTORE_ASSERT_OK(connector().Evict(key));
  EXPECT_THAT(GetString(connector(), key), HoldsNothing());
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(false));
  // Only that object went away.
  EXPECT_THAT(GetString(connector(), other), HoldsValue(std::string("stay")));
}

TEST_P(ConnectorConformanceTest, EvictMissingAndEvictTwiceAreOk) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key foreign, ForeignKey(GetParam().make));
  EXPECT_THAT(connector().Evict(foreign), IsOk());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, PutString(connector(), "x"));
  EXPECT_THAT(connector().Evict(key), IsOk());
  EXPECT_THAT(connector().Evict(key), IsOk());
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(false));
}

TEST_P(ConnectorConformanceTest, BatchesKeepOrder) {
  std::vector<std::string> values = {"zero", "", AllByteValues(), "three",
                                     Pattern(70'000, 4)};
  std::vector<SharedBytes> items;
  for (const std::string& v : values) items.push_back(SharedBytes::Copy(v));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys,
                                  connector().PutBatch(items));
  ASSERT_THAT(keys, SizeIs(values.size()));
  EXPECT_EQ(absl::flat_hash_set<Key>(keys.begin(), keys.end()).size(),
            keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_THAT(GetString(connector(), keys[i]), HoldsValue(values[i]))
        << "item " << i;
  }

  // Reverse order, with repeats.
  std::vector<Key> reversed(keys.rbegin(), keys.rend());
  reversed.push_back(keys[0]);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::optional<SharedBytes>> got,
                                  connector().GetBatch(reversed));
  ASSERT_THAT(got, SizeIs(reversed.size()));
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(got[i].has_value()) << i;
    EXPECT_EQ(got[i]->view(), values[keys.size() - 1 - i]) << i;
  }
  ASSERT_TRUE(got.back().has_value());
  EXPECT_EQ(got.back()->view(), values[0]);

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> none,
                                  connector().PutBatch({}));
  EXPECT_THAT(none, IsEmpty());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto no_values, connector().GetBatch({}));
  EXPECT_THAT(no_values, IsEmpty());
}

TEST_P(ConnectorConformanceTest, GetBatchWithMissingKeysInTheMiddle) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key a, PutString(connector(), "A"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key b, PutString(connector(), "B"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key evicted, PutString(connector(), "E"));
  PROXYSTORE_ASSERT_OK(connector().Evict(evicted));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key foreign, ForeignKey(GetParam().make));

  std::vector<Key> keys = {a, evicted, b, foreign, a};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::optional<SharedBytes>> got,
                                  connector().GetBatch(keys));
  ASSERT_THAT(got, SizeIs(5));
  ASSERT_TRUE(got[0].has_value());
  EXPECT_EQ(got[0]->view(), "A");
  EXPECT_FALSE(got[1].has_value());
  ASSERT_TRUE(got[2].has_value());
  EXPECT_EQ(got[2]->view(), "B");
  EXPECT_FALSE(got[3].has_value());
  ASSERT_TRUE(got[4].has_value());
  EXPECT_EQ(got[4]->view(), "A");
}

TEST_P(ConnectorConformanceTest, ConfigRoundTripThroughRegistryReachesData) {
  const ConnectorConfig config = connector().Config();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  MakeConnector(config));
  ASSERT_NE(clone, nullptr);
  EXPECT_EQ(clone->kind(), connector().kind());
  EXPECT_EQ(clone->Config(), config)
      << clone->Config().DebugString() << " vs " << config.DebugString();

  // Put via one, get via the other, both ways.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key from_original,
                                  PutString(connector(), "from original"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key from_clone,
                                  PutString(*clone, "from clone"));
  EXPECT_THAT(GetString(*clone, from_original),
              HoldsValue(std::string("from original")));
  EXPECT_THAT(GetString(connector(), from_clone),
              HoldsValue(std::string("from clone")));
  EXPECT_THAT(clone->Exists(from_original), IsOkAndHolds(true));

  // An eviction through one is seen by the other.
  PROXYSTORE_ASSERT_OK(clone->Evict(from_original));
  EXPECT_THAT(connector().Exists(from_original), IsOkAndHolds(false));

  // Closing the clone without clear leaves the shared data in place.
  PROXYSTORE_ASSERT_OK(clone->Close(CloseOptions{.clear = false}));
  clone.reset();
  EXPECT_THAT(GetString(connector(), from_clone),
              HoldsValue(std::string("from clone")));
}

TEST_P(ConnectorConformanceTest, SerializedConfigRoundTripReachesData) {
  const ConnectorConfig config = connector().Config();
  const std::string wire = config.Serialize();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig parsed,
                                  ConnectorConfig::Parse(wire));
  EXPECT_EQ(parsed, config);

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, PutString(connector(), "payload"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  MakeConnector(parsed));
  EXPECT_EQ(clone->Config(), config);
  EXPECT_THAT(GetString(*clone, key), HoldsValue(std::string("payload")));
  PROXYSTORE_ASSERT_OK(clone->Close(CloseOptions{.clear = false}));
}

TEST_P(ConnectorConformanceTest, CloseIsIdempotent) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c, MakeAnother());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, PutString(*c, "x"));
  (void)key;
  EXPECT_THAT(c->Close(), IsOk());
  EXPECT_THAT(c->Close(), IsOk());
  EXPECT_THAT(c->Close(CloseOptions{.clear = true}), IsOk());
  EXPECT_THAT(c->Close(CloseOptions{.clear = true}), IsOk());
  EXPECT_THAT(c->Close(CloseOptions{.clear = false}), IsOk());
  // Destroying a closed connector is fine too.
  c.reset();

  // The fixture's connector: closed here and again by TearDown.
  EXPECT_THAT(connector().Close(CloseOptions{.clear = true}), IsOk());
}

TEST_P(ConnectorConformanceTest, ClearingCloseOfAnotherConnectorIsolated) {
  // Connectors made by `make` have their own storage: clearing one does not
  // touch another's data.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key mine, PutString(connector(), "mine"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> other,
                                  MakeAnother());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key theirs, PutString(*other, "theirs"));
  (void)theirs;
  PROXYSTORE_ASSERT_OK(other->Close(CloseOptions{.clear = true}));
  EXPECT_THAT(GetString(connector(), mine), HoldsValue(std::string("mine")));
}

TEST_P(ConnectorConformanceTest, ConcurrentUseFromManyThreads) {
  constexpr int kThreads = 8;
  constexpr int kIterations = 24;
  Connector& c = connector();
  std::vector<std::vector<std::pair<Key, std::string>>> kept(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&c, &kept, t] {
      for (int i = 0; i < kIterations; ++i) {
        std::string value =
            absl::StrCat("thread ", t, " item ", i, " ",
                         Pattern(static_cast<size_t>(i) * 997, t * 1000 + i));
        absl::StatusOr<Key> key = c.Put(SharedBytes::Copy(value));
        ASSERT_THAT(key, IsOk());
        EXPECT_THAT(c.Exists(*key), IsOkAndHolds(true));
        EXPECT_THAT(GetString(c, *key), HoldsValue(value));
        if (i % 3 == 0) {
          EXPECT_THAT(c.Evict(*key), IsOk());
          EXPECT_THAT(c.Exists(*key), IsOkAndHolds(false));
          EXPECT_THAT(GetString(c, *key), HoldsNothing());
        } else if (i % 3 == 1) {
          kept[t].emplace_back(*key, std::move(value));
        } else {
          // A small batch too.
          std::vector<SharedBytes> batch = {SharedBytes::Copy(value),
                                            SharedBytes::Copy("b")};
          absl::StatusOr<std::vector<Key>> keys = c.PutBatch(batch);
          ASSERT_THAT(keys, IsOk());
          ASSERT_THAT(*keys, SizeIs(2));
          absl::StatusOr<std::vector<std::optional<SharedBytes>>> got =
              c.GetBatch({(*keys)[1], *key, (*keys)[0]});
          ASSERT_THAT(got, IsOk());
          ASSERT_THAT(*got, SizeIs(3));
          ASSERT_TRUE((*got)[0].has_value() && (*got)[1].has_value() &&
                      (*got)[2].has_value());
          EXPECT_EQ((*got)[0]->view(), "b");
          EXPECT_EQ((*got)[1]->view(), value);
          EXPECT_EQ((*got)[2]->view(), value);
          for (const Key& k : *keys) EXPECT_THAT(c.Evict(k), IsOk());
          EXPECT_THAT(c.Evict(*key), IsOk());
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();

  // Everything kept is still there and intact, nothing else is.
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_THAT(kept[t], SizeIs(kIterations / 3));
    for (const auto& [key, value] : kept[t]) {
      EXPECT_THAT(GetString(c, key), HoldsValue(value));
    }
  }
}

TEST_P(ConnectorConformanceTest, ReturnedBytesOutliveEvictionAndConnector) {
  const std::string small = "small value";
  const std::string big = Pattern(3'000'000, 5);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c, MakeAnother());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key small_key, PutString(*c, small));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key big_key, PutString(*c, big));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key kept_key, PutString(*c, big));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> small_got,
                                  c->Get(small_key));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> big_got,
                                  c->Get(big_key));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> kept_got,
                                  c->Get(kept_key));
  ASSERT_TRUE(small_got.has_value() && big_got.has_value() &&
              kept_got.has_value());

  PROXYSTORE_ASSERT_OK(c->Evict(small_key));
  PROXYSTORE_ASSERT_OK(c->Evict(big_key));
  EXPECT_EQ(small_got->view(), small);
  EXPECT_EQ(big_got->view(), big);

  PROXYSTORE_ASSERT_OK(c->Close(CloseOptions{.clear = true}));
  EXPECT_EQ(kept_got->view(), big);
  c.reset();
  EXPECT_EQ(small_got->view(), small);
  EXPECT_EQ(big_got->view(), big);
  EXPECT_EQ(kept_got->view(), big);
  // Slices share the owner and stay valid too.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes tail, kept_got->Suffix(1000));
  kept_got.reset();
  EXPECT_EQ(tail.view(), absl::string_view(big).substr(1000));
}

}  // namespace proxystore::testing
