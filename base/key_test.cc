#include "proxystore/base/key.h"

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/hash/hash_testing.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(Key, ParseAcceptsIdsUpToTheLimit) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, Key::Parse("abc"));
  EXPECT_EQ(k.id(), "abc");
  EXPECT_EQ(k.Serialize(), "abc");
  EXPECT_FALSE(k.empty());

  std::string longest(Key::kMaxIdSize, 'k');
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key big, Key::Parse(longest));
  EXPECT_EQ(big.id(), longest);

  // Binary ids (NULs included) survive the round trip.
  std::string binary("a\0b\xff", 4);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key bin, Key::Parse(binary));
  EXPECT_EQ(bin.Serialize(), binary);
}

TEST(Key, ParseRejectsEmptyAndOversizedIds) {
  EXPECT_THAT(Key::Parse(""),
              StatusIs(absl::StatusCode::kInvalidArgument, "empty key"));
  std::string too_long(Key::kMaxIdSize + 1, 'k');
  EXPECT_THAT(Key::Parse(too_long),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat(Key::kMaxIdSize + 1, " bytes")));
}

TEST(Key, SerializeParseRoundTrip) {
  Key k("0123456789abcdef0123456789abcdef");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key back, Key::Parse(k.Serialize()));
  EXPECT_EQ(back, k);
}

TEST(Key, DefaultIsEmpty) {
  Key k;
  EXPECT_TRUE(k.empty());
  EXPECT_EQ(k.id(), "");
  EXPECT_EQ(k, Key(""));
}

TEST(Key, OrderingFollowsTheId) {
  Key a("a"), b("b"), ab("ab");
  EXPECT_LT(a, b);
  EXPECT_LT(a, ab);
  EXPECT_LT(ab, b);
  EXPECT_GT(b, a);
  EXPECT_LE(a, Key("a"));
  EXPECT_EQ(a, Key("a"));
  EXPECT_NE(a, b);
  std::vector<Key> keys = {Key("c"), Key("a"), Key("b")};
  std::sort(keys.begin(), keys.end());
  EXPECT_THAT(keys, ElementsAre(Key("a"), Key("b"), Key("c")));
}

TEST(Key, HashesConsistentlyWithEquality) {
  EXPECT_TRUE(absl::VerifyTypeImplementsAbslHashCorrectly(
      {Key(), Key("a"), Key("b"), Key("ab"), Key(std::string("a\0b", 3)),
       Key("0123456789abcdef0123456789abcdef"),
       Key(std::string(Key::kMaxIdSize, 'z'))}));
  EXPECT_EQ(absl::Hash<Key>()(Key("same")), absl::Hash<Key>()(Key("same")));

  absl::flat_hash_set<Key> set;
  set.insert(Key("x"));
  set.insert(Key("x"));
  set.insert(Key("y"));
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(set.contains(Key("y")));
  EXPECT_FALSE(set.contains(Key("z")));
}

TEST(Key, KeepsTheHashOfItsIdThroughCopiesAndMoves) {
  const Key a("0123456789abcdef0123456789abcdef");
  EXPECT_EQ(a.hash(), Key(a.id()).hash());
  EXPECT_EQ(a.hash(), absl::HashOf(absl::string_view(a.id())));
  EXPECT_NE(a.hash(), Key("another id").hash());

  Key copy = a;
  EXPECT_EQ(copy.hash(), a.hash());
  Key moved = std::move(copy);
  EXPECT_EQ(moved, a);
  EXPECT_EQ(moved.hash(), a.hash());
  // The moved-from key is the empty key, hash included, so it still behaves
  // as a key in sets and comparisons.
  EXPECT_TRUE(copy.empty());             // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(copy, Key());                // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(copy.hash(), Key().hash());  // NOLINT(bugprone-use-after-move)

  Key assigned("x");
  assigned = std::move(moved);
  EXPECT_EQ(assigned, a);
  EXPECT_EQ(moved, Key());  // NOLINT(bugprone-use-after-move)
  assigned = Key("y");
  EXPECT_EQ(assigned.hash(), Key("y").hash());
}

TEST(Key, PrintsItsId) {
  std::ostringstream os;
  os << Key("abc123");
  EXPECT_EQ(os.str(), "Key(\"abc123\")");
  EXPECT_EQ(::testing::PrintToString(Key("q")), "Key(\"q\")");
}

}  // namespace
}  // namespace proxystore
