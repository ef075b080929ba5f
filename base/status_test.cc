#include "proxystore/base/status.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

absl::Status FailIf(bool fail) {
  if (fail) return absl::InvalidArgumentError("bad input");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<int>> MakeInt(bool fail, int value) {
  if (fail) return absl::NotFoundError("no int");
  return std::make_unique<int>(value);
}

absl::Status UsesReturnIfError(bool fail, int* calls) {
  PROXYSTORE_RETURN_IF_ERROR(FailIf(fail));
  ++*calls;
  return absl::OkStatus();
}

absl::StatusOr<int> UsesAssignOrReturn(bool fail) {
  // Move-only value: the macro must move, not copy.
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<int> p, MakeInt(fail, 7));
  PROXYSTORE_ASSIGN_OR_RETURN(auto q, MakeInt(false, 3));
  return *p + *q;
}

absl::Status ReturnIfErrorOnStatusOr(bool fail) {
  PROXYSTORE_RETURN_IF_ERROR(MakeInt(fail, 1));
  return absl::OkStatus();
}

int evaluations = 0;
absl::Status CountedFailure() {
  ++evaluations;
  return absl::InternalError("counted");
}
absl::Status EvaluatesOnce() {
  PROXYSTORE_RETURN_IF_ERROR(CountedFailure());
  return absl::OkStatus();
}

TEST(StatusMacros, ReturnIfErrorPassesOkThrough) {
  int calls = 0;
  EXPECT_THAT(UsesReturnIfError(false, &calls), IsOk());
  EXPECT_EQ(calls, 1);
}

TEST(StatusMacros, ReturnIfErrorReturnsEarly) {
  int calls = 0;
  EXPECT_THAT(UsesReturnIfError(true, &calls),
              StatusIs(absl::StatusCode::kInvalidArgument, "bad input"));
  EXPECT_EQ(calls, 0);
}

TEST(StatusMacros, ReturnIfErrorAcceptsStatusOr) {
  EXPECT_THAT(ReturnIfErrorOnStatusOr(false), IsOk());
  EXPECT_THAT(ReturnIfErrorOnStatusOr(true),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(StatusMacros, ReturnIfErrorEvaluatesOnce) {
  evaluations = 0;
  EXPECT_THAT(EvaluatesOnce(), StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(evaluations, 1);
}

TEST(StatusMacros, AssignOrReturnMovesValues) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(int v, UsesAssignOrReturn(false));
  EXPECT_EQ(v, 10);
  EXPECT_THAT(UsesAssignOrReturn(true),
              StatusIs(absl::StatusCode::kNotFound, "no int"));
}

TEST(Annotate, PrependsContextAndKeepsCodeAndPayload) {
  absl::Status s = absl::DataLossError("truncated");
  s.SetPayload("type.proxystore/key", absl::Cord("k1"));
  absl::Status a = Annotate(s, "Get(k1)");
  EXPECT_THAT(a, StatusIs(absl::StatusCode::kDataLoss, "Get(k1): truncated"));
  EXPECT_EQ(a.GetPayload("type.proxystore/key"), absl::Cord("k1"));
  EXPECT_THAT(Annotate(absl::OkStatus(), "ctx"), IsOk());
}

TEST(QuoteForMessage, EscapesAndTruncates) {
  EXPECT_EQ(QuoteForMessage("node-1"), "\"node-1\"");
  EXPECT_EQ(QuoteForMessage(std::string("a\0\"\n", 4)), "\"a\\x00\\\"\\n\"");
  EXPECT_EQ(QuoteForMessage(""), "\"\"");
  EXPECT_EQ(QuoteForMessage("abcdef", 3), "\"abc\"... (6 bytes)");
  EXPECT_EQ(QuoteForMessage("abc", 3), "\"abc\"");
}

TEST(Matchers, StatusIsChecksSubstringAndCode) {
  absl::StatusOr<int> err = absl::UnavailableError("server down at :6379");
  EXPECT_THAT(err, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(err, StatusIs(absl::StatusCode::kUnavailable, "server down"));
  EXPECT_THAT(err, ::testing::Not(StatusIs(absl::StatusCode::kInternal)));
  EXPECT_THAT(err, ::testing::Not(StatusIs(absl::StatusCode::kUnavailable,
                                           "not in message")));
  EXPECT_THAT(err, ::testing::Not(IsOk()));
  EXPECT_THAT(absl::StatusOr<int>(3), IsOk());
  EXPECT_THAT(absl::Status(absl::StatusCode::kAborted, "x"),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("x")));
}

}  // namespace
}  // namespace proxystore
