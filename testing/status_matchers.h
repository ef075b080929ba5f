// gMock matchers and assertion macros for absl::Status / absl::StatusOr.
//
//   EXPECT_THAT(store.Get<int>(key), IsOk());
//   EXPECT_THAT(connector.Put(...), StatusIs(absl::StatusCode::kDataLoss,
//                                            "truncated"));
//   PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto key, connector.Put(bytes));
//
// StatusIs(code, m) takes a message matcher, or a string that the message must
// contain.
#ifndef PROXYSTORE_TESTING_STATUS_MATCHERS_H_
#define PROXYSTORE_TESTING_STATUS_MATCHERS_H_

#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/status.h"

namespace proxystore::testing {
namespace internal {

inline const absl::Status& ToStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& ToStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

class IsOkMatcher {
 public:
  using is_gtest_matcher = void;
  template <typename T>
  bool MatchAndExplain(const T& value, std::ostream* os) const {
    const absl::Status& s = ToStatus(value);
    if (os != nullptr && !s.ok()) *os << "which is " << s;
    return s.ok();
  }
  void DescribeTo(std::ostream* os) const { *os << "is OK"; }
  void DescribeNegationTo(std::ostream* os) const { *os << "is not OK"; }
};

class StatusIsMatcher {
 public:
  using is_gtest_matcher = void;
  StatusIsMatcher(absl::StatusCode code,
                  ::testing::Matcher<const std::string&> message)
      : code_(code), message_(std::move(message)) {}

  template <typename T>
  bool MatchAndExplain(const T& value, std::ostream* os) const {
    const absl::Status& s = ToStatus(value);
    if (os != nullptr) *os << "which is " << s;
    return s.code() == code_ && message_.Matches(std::string(s.message()));
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has code " << absl::StatusCodeToString(code_)
        << " and a message that ";
    message_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "does not have code " << absl::StatusCodeToString(code_)
        << " or has a message that ";
    message_.DescribeNegationTo(os);
  }

 private:
  absl::StatusCode code_;
  ::testing::Matcher<const std::string&> message_;
};

}  // namespace internal

// Matches an OK absl::Status or an absl::StatusOr<T> holding a value.
inline internal::IsOkMatcher IsOk() { return {}; }

// Matches an OK absl::StatusOr<T> whose value matches `matcher`:
//   EXPECT_THAT(c->Exists(key), IsOkAndHolds(true));
MATCHER_P(IsOkAndHolds, matcher, "") {
  if (!arg.ok()) {
    *result_listener << "which is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

// Matches a status with `code` and any message.
inline internal::StatusIsMatcher StatusIs(absl::StatusCode code) {
  return {code, ::testing::_};
}
// Matches a status with `code` whose message contains `substring`.
inline internal::StatusIsMatcher StatusIs(absl::StatusCode code,
                                          const char* substring) {
  return {code, ::testing::HasSubstr(substring)};
}
inline internal::StatusIsMatcher StatusIs(absl::StatusCode code,
                                          const std::string& substring) {
  return {code, ::testing::HasSubstr(substring)};
}
// Matches a status with `code` whose message matches `message`.
inline internal::StatusIsMatcher StatusIs(
    absl::StatusCode code, ::testing::Matcher<const std::string&> message) {
  return {code, std::move(message)};
}

}  // namespace proxystore::testing

#define PROXYSTORE_EXPECT_OK(expr) \
  EXPECT_THAT((expr), ::proxystore::testing::IsOk())
#define PROXYSTORE_ASSERT_OK(expr) \
  ASSERT_THAT((expr), ::proxystore::testing::IsOk())

// Asserts that `rexpr` (an absl::StatusOr<T>) holds a value and moves it into
// `lhs`, which may be a declaration.
#define PROXYSTORE_ASSERT_OK_AND_ASSIGN(lhs, rexpr)                        \
  PROXYSTORE_ASSERT_OK_AND_ASSIGN_IMPL_(                                   \
      PROXYSTORE_STATUS_CONCAT_(proxystore_test_statusor_, __LINE__), lhs, \
      rexpr)
#define PROXYSTORE_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                          \
  ASSERT_THAT(statusor.status(), ::proxystore::testing::IsOk());    \
  lhs = std::move(statusor).value()

#endif  // PROXYSTORE_TESTING_STATUS_MATCHERS_H_
