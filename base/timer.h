// Timer: measures an interval on the monotonic clock, in nanoseconds.
//
// ProxyStore's `Timer` in C++. A Timer is started and stopped explicitly, or
// by a ScopedTimer for the length of a scope. The clock is
// std::chrono::steady_clock (never jumps with wall-clock changes); elapsed
// time is read as integer nanoseconds or as double milliseconds / seconds.
// Reading a timer that is still running is a FailedPrecondition error rather
// than a meaningless number; a timer that was never started reads 0.
//
//   Timer timer;
//   timer.Start();
//   Work();
//   int64_t ns = timer.Stop();                 // hot path: no checked read
//   absl::StatusOr<double> ms = timer.ElapsedMs();
//
//   {
//     ScopedTimer scoped(timer);               // Start() now, Stop() at '}'
//     Work();
//   }
//   {
//     ScopedTimer scoped([&](int64_t ns) { metrics.AddTime("x", key, ns); });
//     Work();
//   }
//
// Everything is inline: a Start()/Stop() pair costs two clock reads.
//
// Thread-safety: a Timer is a plain value. Const methods may be called from
// several threads at once; Start()/Stop() need external synchronization.
#ifndef PROXYSTORE_BASE_TIMER_H_
#define PROXYSTORE_BASE_TIMER_H_

#include <chrono>
#include <cstdint>
#include <ratio>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace proxystore {

class Timer {
 public:
  using Clock = std::chrono::steady_clock;
  static_assert(Clock::is_steady, "Timer needs a monotonic clock");
  static_assert(std::ratio_less_equal_v<Clock::period, std::nano>,
                "Timer needs a clock with nanosecond resolution or finer");

  Timer() = default;

  // Starts the timer, or restarts it (discarding the running interval) if it
  // is already running. Returns *this for chaining: `timer.Start()`.
  Timer& Start() {
    running_ = true;
    start_ = Clock::now();
    return *this;
  }

  // Stops the timer and returns the nanoseconds since the last Start(); that
  // value is what ElapsedNs() reports from now on. On a timer that is not
  // running, changes nothing and returns the last elapsed time (0 if it was
  // never started).
  int64_t Stop() {
    if (running_) {
      const Clock::time_point end = Clock::now();
      elapsed_ns_ =
          std::chrono::duration_cast<std::chrono::nanoseconds>(end - start_)
              .count();
      running_ = false;
    }
    return elapsed_ns_;
  }

  // True between Start() and Stop().
  bool running() const { return running_; }

  // The last completed interval. FailedPrecondition("Timer is still
  // running") between Start() and Stop(); 0 if the timer was never started.
  absl::StatusOr<int64_t> ElapsedNs() const {
    if (running_) return RunningError();
    return elapsed_ns_;
  }
  absl::StatusOr<double> ElapsedMs() const {
    if (running_) return RunningError();
    return static_cast<double>(elapsed_ns_) / 1e6;
  }
  absl::StatusOr<double> ElapsedS() const {
    if (running_) return RunningError();
    return static_cast<double>(elapsed_ns_) / 1e9;
  }

 private:
  static absl::Status RunningError() {
    return absl::FailedPreconditionError("Timer is still running");
  }

  Clock::time_point start_;
  int64_t elapsed_ns_ = 0;
  bool running_ = false;
};

// Times the scope it lives in. Two forms, picked by the constructor argument
// (class template argument deduction does it; no template arguments needed):
//
//   ScopedTimer s(timer);       // ScopedTimer<Timer&>: timer.Start() now,
//                               // timer.Stop() on destruction.
//   ScopedTimer s(on_stop);     // ScopedTimer<F>: calls on_stop(elapsed_ns)
//                               // exactly once, on destruction.
//
// `timer` must outlive the ScopedTimer. Not copyable or movable: it measures
// exactly one scope.
template <typename OnStop>
class ScopedTimer {
 public:
  static_assert(std::is_invocable_v<OnStop&, int64_t>,
                "ScopedTimer needs a Timer& or a callable taking int64_t ns");

  explicit ScopedTimer(OnStop on_stop) : on_stop_(std::move(on_stop)) {
    timer_.Start();
  }
  ~ScopedTimer() { on_stop_(timer_.Stop()); }

  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  Timer timer_;
  OnStop on_stop_;
};

template <>
class ScopedTimer<Timer&> {
 public:
  explicit ScopedTimer(Timer& timer) : timer_(timer) { timer_.Start(); }
  ~ScopedTimer() { timer_.Stop(); }

  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  Timer& timer_;
};

ScopedTimer(Timer&)->ScopedTimer<Timer&>;
template <typename OnStop>
ScopedTimer(OnStop) -> ScopedTimer<OnStop>;

}  // namespace proxystore

#endif  // PROXYSTORE_BASE_TIMER_H_
