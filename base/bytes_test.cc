#include "proxystore/base/bytes.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::StatusIs;

TEST(SharedBytes, FromStringDoesNotCopyTheHeapBuffer) {
  std::string big(1 << 20, 'x');
  const char* original = big.data();
  SharedBytes b = SharedBytes::FromString(std::move(big));
  EXPECT_EQ(b.data(), original);
  EXPECT_EQ(b.size(), size_t{1} << 20);
}

TEST(SharedBytes, FromVectorDoesNotCopy) {
  std::vector<uint8_t> v(4096, 7);
  const uint8_t* original = v.data();
  SharedBytes b = SharedBytes::FromVector(std::move(v));
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(b.data()), original);
  EXPECT_EQ(b.span()[4095], 7);
}

TEST(SharedBytes, CopiesShareTheBufferAndOutliveTheOriginal) {
  SharedBytes copy;
  {
    SharedBytes b = SharedBytes::Copy("hello world");
    copy = b;
    EXPECT_EQ(copy.data(), b.data());
    EXPECT_EQ(b.owner().use_count(), 2);
  }
  EXPECT_EQ(copy.view(), "hello world");
  EXPECT_EQ(copy.owner().use_count(), 1);
}

TEST(SharedBytes, SliceSharesOwnerAndChecksBounds) {
  SharedBytes b = SharedBytes::Copy("0123456789");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes mid, b.Slice(2, 3));
  EXPECT_EQ(mid.view(), "234");
  EXPECT_EQ(mid.data(), b.data() + 2);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes empty_end, b.Slice(10, 0));
  EXPECT_TRUE(empty_end.empty());
  EXPECT_THAT(b.Slice(8, 3), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(b.Slice(11, 0), StatusIs(absl::StatusCode::kOutOfRange));
  // offset + length overflowing size_t must not wrap around.
  EXPECT_THAT(b.Slice(5, ~size_t{0}), StatusIs(absl::StatusCode::kOutOfRange));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes tail, b.Suffix(7));
  EXPECT_EQ(tail.view(), "789");
  EXPECT_THAT(b.Suffix(11), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(SharedBytes, FromOwnerRunsTheDeleterWhenTheLastCopyDies) {
  static char storage[] = "mapped";
  bool released = false;
  {
    std::shared_ptr<const void> owner(
        storage, [&released](const void*) { released = true; });
    SharedBytes b = SharedBytes::FromOwner(std::move(owner), "mapped");
    SharedBytes c = b;
    EXPECT_FALSE(released);
  }
  EXPECT_TRUE(released);
}

TEST(SharedBytes, EqualityComparesContent) {
  EXPECT_EQ(SharedBytes::Copy("abc"), SharedBytes::Copy("abc"));
  EXPECT_FALSE(SharedBytes::Copy("abc") == SharedBytes::Copy("abd"));
  EXPECT_EQ(SharedBytes(), SharedBytes::Copy(""));
}

TEST(SharedBytes, CopyTakesByteDataAsWellAsText) {
  const std::vector<uint8_t> v = {0x00, 0xff, 0x41};
  SharedBytes b = SharedBytes::Copy(v);
  EXPECT_EQ(b.view(), absl::string_view("\x00\xff"
                                        "A",
                                        3));
  EXPECT_NE(static_cast<const void*>(b.data()),
            static_cast<const void*>(v.data()));
  const uint8_t raw[] = {1, 2};
  EXPECT_EQ(SharedBytes::Copy(absl::MakeConstSpan(raw)).size(), 2u);
}

}  // namespace
}  // namespace proxystore
