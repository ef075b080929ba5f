#include "proxystore/stream/event.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;
using Fields = std::vector<std::pair<std::string, std::string>>;

TEST(StreamEvent, FieldsRoundTrip) {
  for (StreamEvent::Kind kind :
       {StreamEvent::Kind::kObject, StreamEvent::Kind::kProxy,
        StreamEvent::Kind::kEnd}) {
    StreamEvent e{kind,
                  kind == StreamEvent::Kind::kEnd ? std::string()
                                                  : std::string("pay\0load", 8),
                  {{"step", "7"}, {"", "empty name"}, {"m:x", "colon"}}};
    absl::StatusOr<StreamEvent> back = ParseStreamEntry(StreamEntryFields(e));
    ASSERT_THAT(back, IsOk());
    EXPECT_EQ(back->kind, kind);
    EXPECT_EQ(back->payload, e.payload);
    EXPECT_EQ(back->metadata, e.metadata);
  }
}

TEST(StreamEvent, NonceIsIgnored) {
  absl::StatusOr<StreamEvent> e =
      ParseStreamEntry(Fields{{"k", "o"}, {"d", "x"}, {"n", "abc"}});
  ASSERT_THAT(e, IsOk());
  EXPECT_EQ(e->payload, "x");
}

TEST(StreamEvent, MalformedEntriesAreDataLossNamingTheProblem) {
  const std::vector<std::pair<Fields, std::string>> cases = {
      {{}, "no kind"},
      {{{"k", "z"}}, "unknown kind"},
      {{{"k", "o"}, {"k", "o"}, {"d", ""}}, "two kinds"},
      {{{"k", "o"}}, "no payload"},
      {{{"k", "p"}, {"d", "a"}, {"d", "b"}}, "two payloads"},
      {{{"k", "o"}, {"d", "a"}, {"x", "?"}}, "unknown field"},
      {{{"k", "o"}, {"d", "a"}, {"m:a", "1"}, {"m:a", "2"}}, "twice"},
  };
  for (const auto& [fields, why] : cases) {
    EXPECT_THAT(ParseStreamEntry(fields),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr(why)))
        << why;
  }
}

TEST(StreamEvent, LimitsAreCheckedBeforeCopying) {
  StreamEventLimits limits;
  limits.max_payload = 4;
  limits.max_metadata_entries = 2;
  limits.max_metadata_bytes = 16;
  EXPECT_THAT(ParseStreamEntry(Fields{{"k", "o"}, {"d", "12345"}}, limits),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("max_payload")));
  EXPECT_THAT(
      ParseStreamEntry(
          Fields{
              {"k", "o"}, {"d", "1"}, {"m:a", "1"}, {"m:b", "2"}, {"m:c", "3"}},
          limits),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("metadata")));
  EXPECT_THAT(ParseStreamEntry(
                  Fields{{"k", "o"}, {"d", "1"}, {"m:a", std::string(20, 'x')}},
                  limits),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("metadata")));
}

}  // namespace
}  // namespace proxystore
