#include "proxystore/base/timer.h"

#include <chrono>
#include <cstdint>
#include <type_traits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::StatusIs;
using Clock = std::chrono::steady_clock;

int64_t NsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

// Returns once the monotonic clock has moved past its value at the call, so
// an interval containing this call is at least one clock tick long. Not a
// sleep: it waits for the clock itself, which steady_clock guarantees.
void WaitForClockTick() {
  const Clock::time_point start = Clock::now();
  while (Clock::now() == start) {
  }
}

TEST(TimerTest, NeverStartedReadsZero) {
  Timer timer;
  EXPECT_FALSE(timer.running());
  EXPECT_EQ(timer.ElapsedNs().value(), 0);
  EXPECT_EQ(timer.ElapsedMs().value(), 0.0);
  EXPECT_EQ(timer.ElapsedS().value(), 0.0);
}

TEST(TimerTest, StopWithoutStartIsANoOp) {
  Timer timer;
  EXPECT_EQ(timer.Stop(), 0);
  EXPECT_FALSE(timer.running());
  EXPECT_EQ(timer.ElapsedNs().value(), 0);
}

TEST(TimerTest, ReadingARunningTimerIsAnError) {
  Timer timer;
  timer.Start();
  EXPECT_TRUE(timer.running());
  EXPECT_THAT(timer.ElapsedNs(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                          "Timer is still running"));
  EXPECT_THAT(timer.ElapsedMs(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                          "Timer is still running"));
  EXPECT_THAT(timer.ElapsedS(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                         "Timer is still running"));
  timer.Stop();
  EXPECT_FALSE(timer.running());
  EXPECT_THAT(timer.ElapsedNs(), testing::IsOk());
}

TEST(TimerTest, MeasuresTheIntervalBetweenStartAndStop) {
  Timer timer;
  const Clock::time_point outer_start = Clock::now();
  timer.Start();
  WaitForClockTick();
  const int64_t stopped = timer.Stop();
  const Clock::time_point outer_end = Clock::now();

  // The interval contains a clock tick and lies inside [outer_start,
  // outer_end]: a lower and an upper bound that hold on any machine.
  EXPECT_GT(stopped, 0);
  EXPECT_LE(stopped, NsBetween(outer_start, outer_end));
  EXPECT_EQ(timer.ElapsedNs().value(), stopped);
}

TEST(TimerTest, UnitsAreConversionsOfTheSameNanoseconds) {
  Timer timer;
  timer.Start();
  WaitForClockTick();
  const int64_t ns = timer.Stop();
  EXPECT_EQ(timer.ElapsedMs().value(), static_cast<double>(ns) / 1e6);
  EXPECT_EQ(timer.ElapsedS().value(), static_cast<double>(ns) / 1e9);
}

TEST(TimerTest, SecondStopKeepsTheFirstReading) {
  Timer timer;
  timer.Start();
  WaitForClockTick();
  const int64_t first = timer.Stop();
  WaitForClockTick();
  EXPECT_EQ(timer.Stop(), first);
  EXPECT_EQ(timer.ElapsedNs().value(), first);
}

TEST(TimerTest, RestartMeasuresOnlyTheNewInterval) {
  Timer timer;
  timer.Start();
  WaitForClockTick();
  timer.Stop();

  // Everything before the restart is excluded from the new reading.
  const Clock::time_point outer_start = Clock::now();
  timer.Start();
  const int64_t second = timer.Stop();
  const Clock::time_point outer_end = Clock::now();
  EXPECT_GE(second, 0);
  EXPECT_LE(second, NsBetween(outer_start, outer_end));
}

TEST(TimerTest, StartWhileRunningRestarts) {
  Timer timer;
  timer.Start();
  WaitForClockTick();
  const Clock::time_point outer_start = Clock::now();
  timer.Start();
  const int64_t ns = timer.Stop();
  const Clock::time_point outer_end = Clock::now();
  EXPECT_LE(ns, NsBetween(outer_start, outer_end));
}

TEST(TimerTest, StartReturnsTheTimerForChaining) {
  Timer timer;
  Timer& same = timer.Start();
  EXPECT_EQ(&same, &timer);
  EXPECT_TRUE(timer.running());
}

TEST(ScopedTimerTest, RunsTheTimerForTheScope) {
  Timer timer;
  const Clock::time_point outer_start = Clock::now();
  {
    ScopedTimer scoped(timer);
    static_assert(std::is_same_v<decltype(scoped), ScopedTimer<Timer&>>);
    EXPECT_TRUE(timer.running());
    EXPECT_THAT(timer.ElapsedNs(),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    WaitForClockTick();
  }
  const Clock::time_point outer_end = Clock::now();
  EXPECT_FALSE(timer.running());
  const int64_t ns = timer.ElapsedNs().value();
  EXPECT_GT(ns, 0);
  EXPECT_LE(ns, NsBetween(outer_start, outer_end));
}

TEST(ScopedTimerTest, ReportsElapsedToACallbackExactlyOnce) {
  int calls = 0;
  int64_t reported = -1;
  const Clock::time_point outer_start = Clock::now();
  {
    ScopedTimer scoped([&](int64_t ns) {
      ++calls;
      reported = ns;
    });
    EXPECT_EQ(calls, 0);
    WaitForClockTick();
  }
  const Clock::time_point outer_end = Clock::now();
  EXPECT_EQ(calls, 1);
  EXPECT_GT(reported, 0);
  EXPECT_LE(reported, NsBetween(outer_start, outer_end));
}

TEST(ScopedTimerTest, CallbackMayBeAFunctionObject) {
  struct Sink {
    int64_t* out;
    void operator()(int64_t ns) const { *out = ns; }
  };
  int64_t out = -1;
  { ScopedTimer scoped(Sink{&out}); }
  EXPECT_GE(out, 0);
}

TEST(OperationTimerTest, DisabledReadsZeroEverywhere) {
  OperationTimer op(/*enabled=*/false);
  EXPECT_FALSE(op.enabled());
  WaitForClockTick();
  EXPECT_EQ(op.Lap(), 0);
  op.StartLap();
  WaitForClockTick();
  EXPECT_EQ(op.Lap(), 0);
  EXPECT_EQ(op.ElapsedNs(), 0);
  EXPECT_EQ(op.Stop(), 0);
}

TEST(OperationTimerTest, ReadsZeroBeforeAnyLap) {
  OperationTimer op(/*enabled=*/true);
  EXPECT_TRUE(op.enabled());
  WaitForClockTick();
  EXPECT_EQ(op.ElapsedNs(), 0);
}

TEST(OperationTimerTest, ConsecutiveLapsAddUpToTheElapsedTime) {
  const Clock::time_point outer_start = Clock::now();
  OperationTimer op(/*enabled=*/true);
  WaitForClockTick();
  const int64_t first = op.Lap();
  WaitForClockTick();
  const int64_t second = op.Lap();
  const Clock::time_point outer_end = Clock::now();

  EXPECT_GT(first, 0);
  EXPECT_GT(second, 0);
  // The laps share their boundary: together they are the whole operation.
  EXPECT_EQ(op.ElapsedNs(), first + second);
  EXPECT_LE(op.ElapsedNs(), NsBetween(outer_start, outer_end));
}

TEST(OperationTimerTest, StartLapExcludesWhatCameBefore) {
  OperationTimer op(/*enabled=*/true);
  WaitForClockTick();
  const Clock::time_point outer_start = Clock::now();
  op.StartLap();
  WaitForClockTick();
  const int64_t lap = op.Lap();
  const Clock::time_point outer_end = Clock::now();

  EXPECT_GT(lap, 0);
  EXPECT_LE(lap, NsBetween(outer_start, outer_end));
  // The operation still counts from its start.
  EXPECT_GT(op.ElapsedNs(), lap);
}

TEST(OperationTimerTest, StopEndsALapAndReturnsTheElapsedTime) {
  const Clock::time_point outer_start = Clock::now();
  OperationTimer op(/*enabled=*/true);
  WaitForClockTick();
  const int64_t first = op.Lap();
  WaitForClockTick();
  const int64_t total = op.Stop();
  const Clock::time_point outer_end = Clock::now();

  EXPECT_GT(total, first);
  EXPECT_EQ(op.ElapsedNs(), total);
  EXPECT_LE(total, NsBetween(outer_start, outer_end));
}

}  // namespace
}  // namespace proxystore
