#include "proxystore/metrics/metrics.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace proxystore {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

// TimeStats with the given durations, recorded at timestamps 1, 2, 3, ...
// starting at `first_timestamp`.
TimeStats Stats(std::vector<int64_t> durations, int64_t first_timestamp = 1) {
  TimeStats s;
  for (int64_t d : durations) s.AddTime(d, first_timestamp++);
  return s;
}

// ---- TimeStats ----------------------------------------------------------

TEST(TimeStatsTest, EmptyIsAllZero) {
  TimeStats s;
  EXPECT_EQ(s.count, 0);
  EXPECT_EQ(s.total_ns, 0);
  EXPECT_EQ(s.min_ns, 0);
  EXPECT_EQ(s.max_ns, 0);
  EXPECT_EQ(s.last_ns, 0);
  EXPECT_EQ(s.last_timestamp_unix_ns, 0);
  EXPECT_EQ(s.avg_ns(), 0.0);
}

TEST(TimeStatsTest, AddTimeTracksCountTotalMinMaxLast) {
  TimeStats s;
  s.AddTime(30, 100);
  s.AddTime(10, 200);
  s.AddTime(20, 300);
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.total_ns, 60);
  EXPECT_EQ(s.avg_ns(), 20.0);
  EXPECT_EQ(s.min_ns, 10);
  EXPECT_EQ(s.max_ns, 30);
  EXPECT_EQ(s.last_ns, 20);
  EXPECT_EQ(s.last_timestamp_unix_ns, 300);
}

TEST(TimeStatsTest, FirstRecordSetsMinEvenIfLargerThanZero) {
  TimeStats s;
  s.AddTime(500, 1);
  EXPECT_EQ(s.min_ns, 500);
  EXPECT_EQ(s.max_ns, 500);
}

// ProxyStore's Python `TimeStats() + TimeStats()` divides by zero.
TEST(TimeStatsTest, EmptyPlusEmptyIsEmpty) {
  const TimeStats sum = TimeStats() + TimeStats();
  EXPECT_EQ(sum, TimeStats());
  EXPECT_EQ(sum.avg_ns(), 0.0);
}

TEST(TimeStatsTest, EmptyIsTheIdentityOnBothSides) {
  const TimeStats x = Stats({5, 7, 9}, 40);
  EXPECT_EQ(TimeStats() + x, x);
  EXPECT_EQ(x + TimeStats(), x);
}

TEST(TimeStatsTest, MergeWeightsTheAverageByCount) {
  const TimeStats a = Stats({10});
  const TimeStats b = Stats({20, 30, 40});  // avg 30
  const TimeStats sum = a + b;
  EXPECT_EQ(sum.count, 4);
  EXPECT_EQ(sum.total_ns, 100);
  EXPECT_EQ(sum.avg_ns(), 25.0);  // Not (10 + 30) / 2.
  EXPECT_EQ(sum.min_ns, 10);
  EXPECT_EQ(sum.max_ns, 40);
}

TEST(TimeStatsTest, MergeTakesLastFromTheLaterTimestamp) {
  TimeStats later;
  later.AddTime(7, 200);
  TimeStats earlier;
  earlier.AddTime(9, 100);

  for (const TimeStats& sum : {later + earlier, earlier + later}) {
    EXPECT_EQ(sum.last_ns, 7);
    EXPECT_EQ(sum.last_timestamp_unix_ns, 200);
  }
}

TEST(TimeStatsTest, MergeTieOnTimestampTakesTheRightHandSide) {
  TimeStats a;
  a.AddTime(1, 100);
  TimeStats b;
  b.AddTime(2, 100);
  EXPECT_EQ((a + b).last_ns, 2);
  EXPECT_EQ((b + a).last_ns, 1);
}

TEST(TimeStatsTest, PlusEqualsMatchesPlus) {
  TimeStats a = Stats({1, 2});
  const TimeStats b = Stats({3}, 10);
  const TimeStats expected = a + b;
  a += b;
  EXPECT_EQ(a, expected);
}

// ---- StoreMetrics -------------------------------------------------------

// A StoreMetrics whose clock returns 1000, 2000, 3000, ... on successive
// AddTime() calls.
class StoreMetricsTest : public ::testing::Test {
 protected:
  StoreMetricsTest()
      : metrics_([this] { return 1000 * ++ticks_; }),
        a_("a"),
        b_("b"),
        c_("c") {}

  std::atomic<int64_t> ticks_{0};
  StoreMetrics metrics_;
  const Key a_, b_, c_;
};

TEST_F(StoreMetricsTest, UnknownKeyHasNoMetrics) {
  EXPECT_EQ(metrics_.GetMetrics(a_), std::nullopt);
  const std::vector<Key> batch = {a_, b_};
  EXPECT_EQ(metrics_.GetMetrics(absl::MakeConstSpan(batch)), std::nullopt);
}

TEST_F(StoreMetricsTest, CountersAreSummed) {
  metrics_.AddCounter("store.get.cache_hits", a_, 1);
  metrics_.AddCounter("store.get.cache_hits", a_, 2);
  metrics_.AddCounter("store.get.cache_misses", a_, -4);
  metrics_.AddCounter("store.get.cache_hits", b_, 10);
  EXPECT_THAT(metrics_.GetMetrics(a_)->counters,
              ElementsAre(Pair("store.get.cache_hits", 3),
                          Pair("store.get.cache_misses", -4)));
  EXPECT_THAT(metrics_.GetMetrics(b_)->counters,
              ElementsAre(Pair("store.get.cache_hits", 10)));
}

TEST_F(StoreMetricsTest, AttributesLastValueWins) {
  metrics_.AddAttribute("size", a_, int64_t{1});
  metrics_.AddAttribute("size", a_, int64_t{2});
  metrics_.AddAttribute("name", a_, std::string("x"));
  metrics_.AddAttribute("name", a_, 2.5);  // Even with another type.
  metrics_.AddAttribute("sizes", a_, std::vector<int64_t>{1, 2});
  const Metrics m = *metrics_.GetMetrics(a_);
  EXPECT_EQ(m.attributes.at("size"), MetricAttribute(int64_t{2}));
  EXPECT_EQ(m.attributes.at("name"), MetricAttribute(2.5));
  EXPECT_EQ(m.attributes.at("sizes"),
            MetricAttribute(std::vector<int64_t>{1, 2}));
}

TEST_F(StoreMetricsTest, TimesAccumulateWithClockTimestamps) {
  metrics_.AddTime("store.get", a_, 30);
  metrics_.AddTime("store.get", a_, 10);
  const TimeStats s = metrics_.GetMetrics(a_)->times.at("store.get");
  EXPECT_EQ(s.count, 2);
  EXPECT_EQ(s.total_ns, 40);
  EXPECT_EQ(s.min_ns, 10);
  EXPECT_EQ(s.max_ns, 30);
  EXPECT_EQ(s.last_ns, 10);
  EXPECT_EQ(s.last_timestamp_unix_ns, 2000);
}

TEST_F(StoreMetricsTest, GetMetricsReturnsACopy) {
  metrics_.AddCounter("n", a_, 1);
  const Metrics before = *metrics_.GetMetrics(a_);
  metrics_.AddCounter("n", a_, 1);
  EXPECT_EQ(before.counters.at("n"), 1);
  EXPECT_EQ(metrics_.GetMetrics(a_)->counters.at("n"), 2);
}

TEST_F(StoreMetricsTest, NamesOutliveTheCallersStrings) {
  {
    std::string name = "a.name.long.enough.to.be.on.the.heap";
    metrics_.AddCounter(name, a_, 1);
    metrics_.AddTime(name, a_, 5);
    metrics_.AddAttribute(name, a_, int64_t{7});
    name.assign(name.size(), 'z');
  }
  const Metrics m = *metrics_.GetMetrics(a_);
  EXPECT_THAT(m.counters,
              ElementsAre(Pair("a.name.long.enough.to.be.on.the.heap", 1)));
  EXPECT_THAT(
      m.times,
      ElementsAre(::testing::Key("a.name.long.enough.to.be.on.the.heap")));
  EXPECT_THAT(
      m.attributes,
      ElementsAre(::testing::Key("a.name.long.enough.to.be.on.the.heap")));
}

// A batch is identified by its ordered list of keys. It shares nothing with
// the records of its member keys, nor with a batch of the same keys in
// another order, nor with a one-key batch.
TEST_F(StoreMetricsTest, BatchIsItsOwnOrderSensitiveSuperKey) {
  const std::vector<Key> ab = {a_, b_};
  const std::vector<Key> ba = {b_, a_};
  const std::vector<Key> just_a = {a_};
  metrics_.AddTime("store.put_batch", absl::MakeConstSpan(ab), 100);
  metrics_.AddCounter("n", absl::MakeConstSpan(ab), 2);
  metrics_.AddAttribute("store.put_batch.object_sizes", absl::MakeConstSpan(ab),
                        std::vector<int64_t>{3, 4});
  metrics_.AddCounter("n", a_, 1);

  const std::optional<Metrics> batch =
      metrics_.GetMetrics(absl::MakeConstSpan(ab));
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->times.at("store.put_batch").count, 1);
  EXPECT_EQ(batch->counters.at("n"), 2);
  EXPECT_EQ(batch->attributes.at("store.put_batch.object_sizes"),
            MetricAttribute(std::vector<int64_t>{3, 4}));

  EXPECT_EQ(metrics_.GetMetrics(absl::MakeConstSpan(ba)), std::nullopt);
  EXPECT_EQ(metrics_.GetMetrics(absl::MakeConstSpan(just_a)), std::nullopt);
  EXPECT_EQ(metrics_.GetMetrics(b_), std::nullopt);
  EXPECT_EQ(metrics_.GetMetrics(a_)->counters.at("n"), 1);
  EXPECT_TRUE(metrics_.GetMetrics(a_)->times.empty());
}

TEST_F(StoreMetricsTest, BatchIsFoundByAnyEqualListOfKeys) {
  const std::vector<Key> first = {a_, b_, c_};
  metrics_.AddCounter("n", absl::MakeConstSpan(first), 1);
  const std::vector<Key> again = {Key("a"), Key("b"), Key("c")};
  metrics_.AddCounter("n", absl::MakeConstSpan(again), 1);
  EXPECT_EQ(metrics_.GetMetrics(absl::MakeConstSpan(first))->counters.at("n"),
            2);
}

TEST_F(StoreMetricsTest, AggregateTimesMergesOverKeysAndBatches) {
  const std::vector<Key> ab = {a_, b_};
  metrics_.AddTime("store.get", a_, 10);                       // ts 1000
  metrics_.AddTime("store.get", b_, 30);                       // ts 2000
  metrics_.AddTime("store.get", b_, 20);                       // ts 3000
  metrics_.AddTime("store.put", a_, 5);                        // ts 4000
  metrics_.AddTime("store.get", absl::MakeConstSpan(ab), 40);  // ts 5000

  const std::map<std::string, TimeStats> all = metrics_.AggregateTimes();
  ASSERT_THAT(all, ElementsAre(::testing::Key("store.get"),
                               ::testing::Key("store.put")));
  const TimeStats& get = all.at("store.get");
  EXPECT_EQ(get.count, 4);
  EXPECT_EQ(get.total_ns, 100);
  EXPECT_EQ(get.avg_ns(), 25.0);
  EXPECT_EQ(get.min_ns, 10);
  EXPECT_EQ(get.max_ns, 40);
  EXPECT_EQ(get.last_ns, 40);
  EXPECT_EQ(get.last_timestamp_unix_ns, 5000);
  EXPECT_EQ(all.at("store.put").count, 1);
}

TEST_F(StoreMetricsTest, AggregateOfNothingIsEmpty) {
  EXPECT_TRUE(metrics_.AggregateTimes().empty());
}

TEST_F(StoreMetricsTest, ClearDropsEverything) {
  const std::vector<Key> ab = {a_, b_};
  metrics_.AddCounter("n", a_, 1);
  metrics_.AddCounter("n", absl::MakeConstSpan(ab), 1);
  metrics_.Clear();
  EXPECT_EQ(metrics_.GetMetrics(a_), std::nullopt);
  EXPECT_EQ(metrics_.GetMetrics(absl::MakeConstSpan(ab)), std::nullopt);
  EXPECT_EQ(metrics_.ToJson(), R"({"keys":{},"batches":[]})");
}

TEST_F(StoreMetricsTest, JsonOfASmallCase) {
  const std::vector<Key> ba = {b_, a_};
  metrics_.AddTime("store.get", b_, 30);  // ts 1000
  metrics_.AddTime("store.get", b_, 15);  // ts 2000
  metrics_.AddCounter("store.get.cache_hits", b_, 2);
  metrics_.AddAttribute("store.get.object_size", b_, int64_t{12});
  metrics_.AddAttribute("label", a_, std::string("x"));
  metrics_.AddAttribute("ratio", a_, 0.5);
  metrics_.AddAttribute("store.put_batch.object_sizes", absl::MakeConstSpan(ba),
                        std::vector<int64_t>{1, 2});

  EXPECT_EQ(
      metrics_.ToJson(),
      R"({"keys":{)"
      R"("a":{"attributes":{"label":"x","ratio":0.5},"counters":{},"times":{}},)"
      R"("b":{"attributes":{"store.get.object_size":12},)"
      R"("counters":{"store.get.cache_hits":2},)"
      R"("times":{"store.get":{"count":2,"avg_ns":22.5,"total_ns":45,)"
      R"("min_ns":15,"max_ns":30,"last_ns":15,"last_timestamp_unix_ns":2000}}})"
      R"(},"batches":[{"keys":["b","a"],"metrics":{)"
      R"("attributes":{"store.put_batch.object_sizes":[1,2]},)"
      R"("counters":{},"times":{}}}]})");
}

TEST_F(StoreMetricsTest, JsonEscapesStrings) {
  metrics_.AddAttribute("s", Key("q\"b\\n\nt\t\x01"),
                        std::string("caf\xc3\xa9 \xff"));
  EXPECT_EQ(metrics_.ToJson(),
            R"({"keys":{"q\"b\\n\nt\t\u0001":{"attributes":{"s":)"
            "\"caf\xc3\xa9 \\ufffd\""
            R"(},"counters":{},"times":{}}},"batches":[]})");
}

TEST(MetricsJsonTest, NonFiniteDoublesBecomeNull) {
  Metrics m;
  m.attributes["inf"] = std::numeric_limits<double>::infinity();
  m.attributes["nan"] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(
      m.ToJson(),
      R"({"attributes":{"inf":null,"nan":null},"counters":{},"times":{}})");
}

TEST(MetricsJsonTest, EmptyMetrics) {
  Metrics m;
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.ToJson(), R"({"attributes":{},"counters":{},"times":{}})");
}

TEST(StoreMetricsClockTest, DefaultClockIsUnixTime) {
  StoreMetrics metrics;
  const auto now = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const int64_t before = now();
  metrics.AddTime("t", Key("k"), 1);
  const int64_t after = now();
  const int64_t ts =
      metrics.GetMetrics(Key("k"))->times.at("t").last_timestamp_unix_ns;
  EXPECT_GE(ts, before);
  EXPECT_LE(ts, after);
}

TEST_F(StoreMetricsTest, ConcurrentRecordingSumsCorrectly) {
  constexpr int kThreads = 4;
  constexpr int kRecords = 1000;
  const std::vector<Key> batch = {a_, b_};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &batch] {
      const Key own("thread" + std::to_string(t));
      for (int i = 0; i < kRecords; ++i) {
        metrics_.AddCounter("shared", a_, 1);
        metrics_.AddTime("shared.time", a_, 2);
        metrics_.AddCounter("own", own, 1);
        metrics_.AddCounter("batch", absl::MakeConstSpan(batch), 1);
        metrics_.AddAttribute("last", a_, int64_t{t});
      }
    });
  }
  for (std::thread& th : threads) th.join();

  const Metrics shared = *metrics_.GetMetrics(a_);
  EXPECT_EQ(shared.counters.at("shared"), kThreads * kRecords);
  EXPECT_EQ(shared.times.at("shared.time").count, kThreads * kRecords);
  EXPECT_EQ(shared.times.at("shared.time").total_ns, 2 * kThreads * kRecords);
  const int64_t last = std::get<int64_t>(shared.attributes.at("last"));
  EXPECT_GE(last, 0);
  EXPECT_LT(last, kThreads);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(metrics_.GetMetrics(Key("thread" + std::to_string(t)))
                  ->counters.at("own"),
              kRecords);
  }
  EXPECT_EQ(
      metrics_.GetMetrics(absl::MakeConstSpan(batch))->counters.at("batch"),
      kThreads * kRecords);
  EXPECT_EQ(metrics_.AggregateTimes().at("shared.time").count,
            kThreads * kRecords);
}

TEST(TimeStatsTest, AddTimeWithoutATimestampUsesTheSystemClock) {
  const int64_t before = absl::ToUnixNanos(absl::Now());
  TimeStats t;
  t.AddTime(5);
  const int64_t after = absl::ToUnixNanos(absl::Now());
  EXPECT_EQ(t.count, 1);
  EXPECT_EQ(t.last_ns, 5);
  EXPECT_GE(t.last_timestamp_unix_ns, before);
  EXPECT_LE(t.last_timestamp_unix_ns, after);
}

TEST(TimeStatsTest, PrintsItsFields) {
  TimeStats t;
  t.AddTime(1, 10);
  t.AddTime(2, 20);
  EXPECT_EQ(::testing::PrintToString(t),
            "TimeStats{count=2, avg_ns=1.5, min_ns=1, max_ns=2, last_ns=2}");
}

}  // namespace
}  // namespace proxystore
