#include "proxystore/testing/connector_conformance.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
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

// What a GetInto fn saw, and the bytes it had `read` write.
struct ReadInto {
  bool found = false;
  int calls = 0;  // how many times the fn ran
  uint64_t size = 0;
  std::string prefix;
  std::string tail;  // bytes [offset, size) as read(dst, offset) wrote them
  std::optional<std::string> in_memory;  // ObjectReader::in_memory, if set
};

// GetInto with a fn that reads bytes [offset, size) into a buffer of exactly
// that size. `offset` past the size is the test's own error (Internal).
absl::StatusOr<ReadInto> GetIntoAt(Connector& c, const Key& key,
                                   uint64_t offset) {
  ReadInto out;
  auto fn = [&](const ObjectReader& reader) -> absl::StatusOr<bool> {
    ++out.calls;
    out.size = reader.size;
    out.prefix = std::string(reader.prefix);
    if (reader.in_memory.has_value()) out.in_memory.emplace(*reader.in_memory);
    if (offset > reader.size) {
      return absl::InternalError("the test's offset is past the object");
    }
    out.tail.resize(reader.size - offset);
    PROXYSTORE_RETURN_IF_ERROR(reader.read(out.tail.data(), offset));
    return true;
  };
  PROXYSTORE_ASSIGN_OR_RETURN(GetIntoResult result, c.GetInto(key, fn));
  if (result.whole.has_value()) {
    return absl::InternalError("GetInto returned the whole object too");
  }
  out.found = result.found;
  return out;
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

TEST_P(ConnectorConformanceTest, GetIntoMissingKeyIsNotFoundWithoutCallingFn) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key foreign, ForeignKey(GetParam().make));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key evicted, PutString(connector(), "gone"));
  PROXYSTORE_ASSERT_OK(connector().Evict(evicted));
  for (const Key& key : {foreign, evicted}) {
    int calls = 0;
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        GetIntoResult result,
        connector().GetInto(key, [&](const ObjectReader&) {
          ++calls;
          return absl::StatusOr<bool>(true);
        }));
    EXPECT_FALSE(result.found);
    EXPECT_FALSE(result.whole.has_value());
    EXPECT_EQ(calls, 0);
  }
}

// The fn sees the object's size and first bytes, and read(dst, 0) writes
// exactly what Get returns: below, at and above the prefix size.
TEST_P(ConnectorConformanceTest, GetIntoReadingEverythingMatchesGet) {
  for (const std::string& value :
       {std::string("hello"), std::string(1, '\0'), AllByteValues(),
        Pattern(kGetIntoPrefix - 1, 10), Pattern(kGetIntoPrefix, 11),
        Pattern(kGetIntoPrefix + 1, 12), Pattern(100'001, 13),
        Pattern(GetParam().large_value_size, 14)}) {
    SCOPED_TRACE(absl::StrCat(value.size(), "-byte value"));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, PutString(connector(), value));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(ReadInto got,
                                    GetIntoAt(connector(), key, 0));
    EXPECT_TRUE(got.found);
    EXPECT_EQ(got.calls, 1);
    EXPECT_EQ(got.size, value.size());
    EXPECT_TRUE(got.prefix ==
                absl::string_view(value).substr(0, kGetIntoPrefix))
        << "prefix of " << got.prefix.size() << " bytes";
    EXPECT_THAT(absl::StatusOr<std::optional<std::string>>(got.tail),
                HoldsValue(value));
    EXPECT_THAT(GetString(connector(), key), HoldsValue(got.tail));
    // A connector that offers the object in memory offers all of it.
    if (got.in_memory.has_value()) {
      EXPECT_THAT(absl::StatusOr<std::optional<std::string>>(got.in_memory),
                  HoldsValue(value));
    }
  }
}

// read(dst, offset) writes bytes [offset, size): from inside the prefix (the
// part of the prefix after offset, then the rest), from its end, and from
// past it (nothing of the prefix), up to offset == size (nothing at all).
TEST_P(ConnectorConformanceTest, GetIntoReadsTheTailFromAnyOffset) {
  const std::string big = Pattern(size_t{1} << 20, 15);
  const std::string small = Pattern(100, 16);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key big_key, PutString(connector(), big));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key small_key, PutString(connector(), small));
  struct Case {
    const Key& key;
    const std::string& value;
    uint64_t offset;
  };
  for (const Case& tc :
       {Case{big_key, big, 1}, Case{big_key, big, 40},
        Case{big_key, big, kGetIntoPrefix - 1},
        Case{big_key, big, kGetIntoPrefix},
        Case{big_key, big, kGetIntoPrefix + 1},
        Case{big_key, big, 3 * kGetIntoPrefix + 17},
        Case{big_key, big, big.size() - 1}, Case{big_key, big, big.size()},
        Case{small_key, small, 1}, Case{small_key, small, 40},
        Case{small_key, small, small.size() - 1},
        Case{small_key, small, small.size()}}) {
    SCOPED_TRACE(absl::StrCat("offset ", tc.offset, " of ", tc.value.size()));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(ReadInto got,
                                    GetIntoAt(connector(), tc.key, tc.offset));
    EXPECT_TRUE(got.found);
    EXPECT_EQ(got.calls, 1);
    EXPECT_EQ(got.size, tc.value.size());
    EXPECT_TRUE(got.prefix ==
                absl::string_view(tc.value).substr(0, kGetIntoPrefix));
    EXPECT_THAT(absl::StatusOr<std::optional<std::string>>(got.tail),
                HoldsValue(tc.value.substr(tc.offset)));
  }
}

TEST_P(ConnectorConformanceTest, GetIntoFnReturningFalseGetsTheWholeObject) {
  for (const std::string& value :
       {std::string("small"), std::string(), Pattern(kGetIntoPrefix + 1, 17),
        Pattern(GetParam().large_value_size, 18)}) {
    SCOPED_TRACE(absl::StrCat(value.size(), "-byte value"));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, PutString(connector(), value));
    int calls = 0;
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        GetIntoResult result,
        connector().GetInto(key, [&](const ObjectReader& reader) {
          ++calls;
          EXPECT_EQ(reader.size, value.size());
          return absl::StatusOr<bool>(false);
        }));
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(result.found);
    ASSERT_TRUE(result.whole.has_value());
    EXPECT_THAT(
        absl::StatusOr<std::optional<std::string>>(result.whole->ToString()),
        HoldsValue(value));
    EXPECT_THAT(GetString(connector(), key), HoldsValue(value));
  }
}

// The fn's error is GetInto's, code and message, whether or not it read.
TEST_P(ConnectorConformanceTest, GetIntoReturnsTheFnsErrorUnchanged) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key key, PutString(connector(), Pattern(2 * kGetIntoPrefix, 19)));
  const absl::Status expected =
      absl::FailedPreconditionError("the fn's own error");
  for (const bool read_first : {false, true}) {
    SCOPED_TRACE(read_first ? "after read" : "without reading");
    std::string buffer;
    absl::StatusOr<GetIntoResult> result = connector().GetInto(
        key, [&](const ObjectReader& reader) -> absl::StatusOr<bool> {
          if (read_first) {
            buffer.resize(reader.size);
            PROXYSTORE_RETURN_IF_ERROR(reader.read(buffer.data(), 0));
          }
          return expected;
        });
    EXPECT_EQ(result.status(), expected);
  }
  // The object is untouched.
  EXPECT_THAT(GetString(connector(), key),
              HoldsValue(Pattern(2 * kGetIntoPrefix, 19)));
}

TEST_P(ConnectorConformanceTest, GetIntoOfAnEmptyObject) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, connector().Put(SharedBytes()));
  int calls = 0;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      GetIntoResult result,
      connector().GetInto(
          key, [&](const ObjectReader& reader) -> absl::StatusOr<bool> {
            ++calls;
            EXPECT_EQ(reader.size, 0u);
            EXPECT_TRUE(reader.prefix.empty());
            // Nothing to write: no room is needed.
            PROXYSTORE_RETURN_IF_ERROR(reader.read(nullptr, 0));
            return true;
          }));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(result.found);
  EXPECT_FALSE(result.whole.has_value());
}

// read at most once, and not past the end: InvalidArgument, nothing written.
TEST_P(ConnectorConformanceTest, GetIntoMisusedReadIsInvalidArgument) {
  const std::string value = Pattern(kGetIntoPrefix + 100, 20);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, PutString(connector(), value));
  absl::Status past_end;
  absl::Status second;
  std::string buffer(value.size(), '\0');
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      GetIntoResult result,
      connector().GetInto(
          key, [&](const ObjectReader& reader) -> absl::StatusOr<bool> {
            past_end = reader.read(buffer.data(), reader.size + 1);
            PROXYSTORE_RETURN_IF_ERROR(reader.read(buffer.data(), 0));
            second = reader.read(buffer.data(), 0);
            return true;
          }));
  EXPECT_TRUE(result.found);
  EXPECT_THAT(past_end, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(buffer == value);
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

// --- Deferred writes (NewKey / Set) ---------------------------------------

namespace proxystore::testing {
namespace {

TEST_P(ConnectorConformanceTest, NewKeyReadsMissingUntilSet) {
  Connector& c = connector();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c.NewKey());
  EXPECT_FALSE(key.empty());
  EXPECT_THAT(c.Exists(key), IsOkAndHolds(false));
  EXPECT_THAT(GetString(c, key), HoldsNothing());
  absl::StatusOr<GetIntoResult> into =
      c.GetInto(key, [](const ObjectReader&) -> absl::StatusOr<bool> {
        ADD_FAILURE() << "fn called for a key not yet set";
        return true;
      });
  ASSERT_THAT(into, IsOk());
  EXPECT_FALSE(into->found);
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> batch =
      c.GetBatch({key});
  ASSERT_THAT(batch, IsOk());
  EXPECT_FALSE((*batch)[0].has_value());

  const std::string value = Pattern(3000, 7);
  ASSERT_THAT(c.Set(key, SharedBytes::Copy(value)), IsOk());
  EXPECT_THAT(c.Exists(key), IsOkAndHolds(true));
  EXPECT_THAT(GetString(c, key), HoldsValue(value));
  EXPECT_THAT(c.Evict(key), IsOk());
  EXPECT_THAT(GetString(c, key), HoldsNothing());
}

TEST_P(ConnectorConformanceTest, NewKeysAreDistinctFromEachOtherAndFromPuts) {
  Connector& c = connector();
  absl::flat_hash_set<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key deferred, c.NewKey());
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key put, c.Put(SharedBytes::Copy("p")));
    EXPECT_TRUE(ids.insert(deferred.Serialize()).second);
    EXPECT_TRUE(ids.insert(put.Serialize()).second);
    EXPECT_THAT(c.Evict(put), IsOk());
  }
}

TEST_P(ConnectorConformanceTest, SetTwiceIsAlreadyExistsAndKeepsTheFirst) {
  Connector& c = connector();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c.NewKey());
  ASSERT_THAT(c.Set(key, SharedBytes::Copy("first")), IsOk());
  EXPECT_THAT(c.Set(key, SharedBytes::Copy("second, longer")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(GetString(c, key), HoldsValue(std::string("first")));
  // A key that Put wrote is taken too.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key put, c.Put(SharedBytes::Copy("put")));
  EXPECT_THAT(c.Set(put, SharedBytes::Copy("other")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(GetString(c, put), HoldsValue(std::string("put")));
  // Once evicted, the key is free again.
  ASSERT_THAT(c.Evict(key), IsOk());
  ASSERT_THAT(c.Set(key, SharedBytes::Copy("again")), IsOk());
  EXPECT_THAT(GetString(c, key), HoldsValue(std::string("again")));
}

TEST_P(ConnectorConformanceTest, SetPartsWritesTheConcatenationOnce) {
  Connector& c = connector();
  const std::string tail = Pattern(300'000, 11);
  const absl::string_view parts[] = {"head:", "", tail};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c.NewKey());
  ASSERT_THAT(c.SetParts(key, parts), IsOk());
  EXPECT_THAT(GetString(c, key), HoldsValue(absl::StrCat("head:", tail)));
  const absl::string_view other[] = {"x", "y"};
  EXPECT_THAT(c.SetParts(key, other),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(GetString(c, key), HoldsValue(absl::StrCat("head:", tail)));
}

TEST_P(ConnectorConformanceTest, SetOfEmptyAndLargeObjects) {
  Connector& c = connector();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key empty, c.NewKey());
  ASSERT_THAT(c.Set(empty, SharedBytes()), IsOk());
  EXPECT_THAT(c.Exists(empty), IsOkAndHolds(true));
  EXPECT_THAT(GetString(c, empty), HoldsValue(std::string()));
  const std::string large = Pattern(GetParam().large_value_size, 3);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key big, c.NewKey(NewKeyOptions{.size_hint = large.size()}));
  ASSERT_THAT(c.Set(big, SharedBytes::Copy(large)), IsOk());
  EXPECT_THAT(GetString(c, big), HoldsValue(large));
}

// The consumer side of a future: a connector re-created from Config() (as a
// receiving process does) sees what the producer sets, and the other way.
TEST_P(ConnectorConformanceTest, SetThroughAConnectorMadeFromConfig) {
  Connector& c = connector();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  MakeConnector(c.Config()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c.NewKey());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key parsed, Key::Parse(key.Serialize()));
  EXPECT_THAT(GetString(*clone, parsed), HoldsNothing());
  ASSERT_THAT(clone->Set(parsed, SharedBytes::Copy("from the clone")), IsOk());
  EXPECT_THAT(GetString(c, key), HoldsValue(std::string("from the clone")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key other, clone->NewKey());
  ASSERT_THAT(c.Set(other, SharedBytes::Copy("from the original")), IsOk());
  EXPECT_THAT(GetString(*clone, other),
              HoldsValue(std::string("from the original")));
  EXPECT_THAT(clone->Close(CloseOptions{.clear = false}), IsOk());
}

// Racing producers: exactly one Set wins; readers see nothing or the whole
// winning object, never a mix.
TEST_P(ConnectorConformanceTest, ConcurrentSetsOfOneKeyHaveOneWinner) {
  constexpr int kWriters = 6;
  constexpr int kRounds = 5;
  Connector& c = connector();
  for (int round = 0; round < kRounds; ++round) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c.NewKey());
    std::vector<std::string> values;
    for (int w = 0; w < kWriters; ++w) {
      values.push_back(Pattern(20'000 + w * 1000, round * 100 + w));
    }
    std::vector<absl::Status> results(kWriters);
    std::atomic<bool> writers_done{false};
    std::vector<std::string> torn;
    std::thread reader([&] {
      while (!writers_done.load()) {
        absl::StatusOr<std::optional<std::string>> got = GetString(c, key);
        if (!got.ok()) {
          torn.push_back(got.status().ToString());
        } else if (got->has_value() && std::find(values.begin(), values.end(),
                                                 **got) == values.end()) {
          torn.push_back(absl::StrCat((*got)->size(), " bytes"));
        }
      }
    });
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back(
          [&, w] { results[w] = c.Set(key, SharedBytes::Copy(values[w])); });
    }
    for (std::thread& t : writers) t.join();
    writers_done.store(true);
    reader.join();
    EXPECT_THAT(torn, IsEmpty());
    int winner = -1;
    for (int w = 0; w < kWriters; ++w) {
      if (results[w].ok()) {
        EXPECT_EQ(winner, -1) << "two Sets of one key succeeded";
        winner = w;
      } else {
        EXPECT_THAT(results[w], StatusIs(absl::StatusCode::kAlreadyExists));
      }
    }
    ASSERT_NE(winner, -1);
    EXPECT_THAT(GetString(c, key), HoldsValue(values[winner]));
  }
}

// WaitFor wakes a waiter when another connector of the same storage (as in
// another process) sets the key; kinds that cannot wait say Unimplemented.
TEST_P(ConnectorConformanceTest, WaitForWakesWhenTheKeyIsSet) {
  Connector& c = connector();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c.NewKey());
  absl::StatusOr<bool> early = c.WaitFor(key, absl::Milliseconds(5));
  if (absl::IsUnimplemented(early.status())) {
    GTEST_SKIP() << c.kind()
                 << " cannot wait (its callers poll): " << early.status();
  }
  EXPECT_THAT(early, IsOkAndHolds(false));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  MakeConnector(c.Config()));
  for (Connector* setter : {&c, clone.get()}) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, c.NewKey());
    absl::StatusOr<bool> woke;
    // A timeout far past the test's: only a wake-up ends the wait in time.
    std::thread waiter([&] { woke = c.WaitFor(k, absl::Hours(1)); });
    ASSERT_THAT(setter->Set(k, SharedBytes::Copy("set")), IsOk());
    waiter.join();
    EXPECT_THAT(woke, IsOkAndHolds(true));
    // Already set: at once, whatever the timeout.
    EXPECT_THAT(c.WaitFor(k, absl::ZeroDuration()), IsOkAndHolds(true));
  }
  EXPECT_THAT(clone->Close(CloseOptions{.clear = false}), IsOk());
}

// Producers in separate processes, each with its own connector made from
// Config(), Set one key at once: the storage picks exactly one; the others
// see AlreadyExists, and the key holds the winner's bytes. The children
// block on a pipe until the parent closes its end, so they start together.
TEST_P(ConnectorConformanceTest, RacingSetsFromProcessesHaveOneWinner) {
  if (!GetParam().shared_across_processes) {
    GTEST_SKIP() << "storage private to its process";
  }
  constexpr int kChildren = 6;
  Connector& c = connector();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c.NewKey());
  const ConnectorConfig config = c.Config();
  std::vector<std::string> values;
  for (int i = 0; i < kChildren; ++i) {
    values.push_back(absl::StrCat(i, ":", Pattern(50'000 + i * 999, i)));
  }
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::fflush(nullptr);
  std::vector<pid_t> children;
  for (int i = 0; i < kChildren; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(go[1]);
      char byte;
      while (::read(go[0], &byte, 1) < 0 && errno == EINTR) {
      }
      absl::StatusOr<std::unique_ptr<Connector>> mine = MakeConnector(config);
      if (!mine.ok()) ::_exit(10);
      const absl::Status set = (*mine)->Set(key, SharedBytes::Copy(values[i]));
      if (set.ok()) ::_exit(0);
      ::_exit(set.code() == absl::StatusCode::kAlreadyExists ? 1 : 11);
    }
    ASSERT_GT(pid, 0);
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(go[1]);
  int winner = -1;
  for (int i = 0; i < kChildren; ++i) {
    int wstatus = 0;
    ASSERT_EQ(::waitpid(children[i], &wstatus, 0), children[i]);
    ASSERT_TRUE(WIFEXITED(wstatus)) << "child " << i;
    const int code = WEXITSTATUS(wstatus);
    if (code == 0) {
      EXPECT_EQ(winner, -1) << "children " << winner << " and " << i;
      winner = i;
    } else {
      EXPECT_EQ(code, 1) << "child " << i;
    }
  }
  ASSERT_NE(winner, -1);
  EXPECT_THAT(GetString(c, key), HoldsValue(values[winner]));
}

TEST_P(ConnectorConformanceTest, SetRefusesKeysThisKindDoesNotMint) {
  Connector& c = connector();
  for (const char* id : {"../escape", "a/b", ".hidden", "x y"}) {
    EXPECT_THAT(c.Set(Key(id), SharedBytes::Copy("v")),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << id;
  }
}

}  // namespace
}  // namespace proxystore::testing
