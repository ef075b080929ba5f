// Timer: measures an interval on the monotonic clock, in nanoseconds.
//
// ProxyStore's `Timer` in C++. A Timer is started and stopped explicitly, or
// by a ScopedTimer for the length of a scope; an OperationTimer times one
// operation and its phases, or nothing at all when timing is off. The clock is
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
//   OperationTimer op(/*enabled=*/timing);     // started now, if enabled
//   Serialize();
//   int64_t serialize_ns = op.Lap();           // start -> now
//   op.StartLap();                             // a phase that starts later
//   Send();
//   int64_t send_ns = op.Lap();                // StartLap() -> now
//   int64_t total_ns = op.ElapsedNs();         // start -> the last reading
//
// Everything is inline: a Start()/Stop() pair costs two clock reads.
//
// Thread-safety: Timer and OperationTimer are plain values. Const methods may
// be called from several threads at once; the others need external
// synchronization.
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
      elapsed_ns_ = NsBetween(start_, end);
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
  friend class OperationTimer;

  static absl::Status RunningError() {
    return absl::FailedPreconditionError("Timer is still running");
  }
  static int64_t NsBetween(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(to - from)
        .count();
  }

  Clock::time_point start_;
  int64_t elapsed_ns_ = 0;
  bool running_ = false;
};

// Times one operation from its start, and phases ("laps") of it, on Timer's
// clock. It is started when constructed; there is no running state to check,
// so every reading is a plain number.
//
// A disabled OperationTimer never reads the clock and every reading is 0, so
// code that times an operation only when asked (metrics on, debug logging
// on) has one path whose whole cost with timing off is a branch per call:
// no allocation, no virtual call, no clock read. An enabled one reads the
// clock once in the constructor and once per StartLap(), Lap() and Stop();
// ElapsedNs() reads none.
//
// A lap runs from the timer's last clock reading (the start, the last
// StartLap() or the last Lap()) to the Lap() that ends it, so consecutive
// laps share their boundary and cost one reading each.
class OperationTimer {
 public:
  using Clock = Timer::Clock;

  explicit OperationTimer(bool enabled) : enabled_(enabled) {
    if (enabled_) start_ = last_ = Clock::now();
  }

  OperationTimer(const OperationTimer&) = delete;
  OperationTimer& operator=(const OperationTimer&) = delete;

  bool enabled() const { return enabled_; }

  // Starts a lap now, for a phase that does not begin where the last one
  // ended.
  void StartLap() {
    if (enabled_) last_ = Clock::now();
  }

  // Ends the current lap now and returns its length in nanoseconds; the next
  // lap starts at the same instant.
  int64_t Lap() {
    if (!enabled_) return 0;
    const Clock::time_point now = Clock::now();
    const int64_t ns = Timer::NsBetween(last_, now);
    last_ = now;
    return ns;
  }

  // Ends the current lap now and returns the operation's length so far: the
  // nanoseconds since the start.
  int64_t Stop() {
    Lap();
    return ElapsedNs();
  }

  // The nanoseconds from the start to the last clock reading (the last
  // StartLap(), Lap() or Stop()); 0 before any. Reads no clock: after a
  // Lap() that ends an operation's last phase, this is the operation's
  // length measured at the same instant.
  int64_t ElapsedNs() const {
    return enabled_ ? Timer::NsBetween(start_, last_) : 0;
  }

 private:
  Clock::time_point start_;
  Clock::time_point last_;
  bool enabled_;
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
