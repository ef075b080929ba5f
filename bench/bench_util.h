// Measurement helpers for the benchmark suite.
//
// A row measures one operation. Google Benchmark runs each row once per
// repetition (the row is registered with Iterations(1)); inside that one
// call the row runs its own loop of timed batches, bounded by the run's
// Budget, and reports what it measured with ReportRow:
//   - iterations = operations timed, real time = timed seconds (manual time),
//     so the JSON's real_time is the mean per operation and compare.py
//     compares per-op times;
//   - counters: p50_us, p99_us (per-op percentiles; fast operations are timed
//     in batches, so their samples are batch averages and p99 understates a
//     single op's tail), us_per_op, cpu_us_per_op (thread CPU time of the
//     timed batches), faults_per_op (minor+major page faults; a fresh 4 KiB
//     page costs ~10 us on our machines), alloc_bytes_per_op and
//     allocs_per_op (the malloc interposer in alloc_counter.cc), batch,
//     batches, bytes_per_second (the suite adds wall_s, the repetition's
//     wall time with its setup, and for redis rows ping_us/ping_after_us);
//     thread rows (RunThreaded) add ops_per_s (all threads' operations per
//     second of wall time), threads and rounds.
// Every repetition of a row reports the same operation count (the first one
// picks it within the budget, the others repeat it), as Google Benchmark's
// statistics require.
//
//   void BM_X(benchmark::State& state) {
//     RunTimed(state, /*batch=*/1, [&](int64_t i) { /* untimed setup */ },
//              [&](int64_t i) { /* the operation */ });
//   }
//
// Thread rows (RunThreaded) run one operation on several threads at once
// against shared state and report aggregate throughput:
//
//   void BM_Y(benchmark::State& state) {
//     RunThreaded(
//         state, {.threads = 4, .round_s = 0.01, .guess = 1000},
//         [&](int t, int64_t ops) { /* untimed, on thread t, per round */ },
//         [&](int t, int64_t i) { /* the operation, on thread t */ },
//         [&] { /* untimed, on the calling thread, after a round */ });
//   }
//
// Thread-safety: RunTimed is for single-threaded rows; RunThreaded calls its
// callbacks from its worker threads as described there. Interrupted() and
// FirstError may be used from any thread.
#ifndef PROXYSTORE_BENCH_BENCH_UTIL_H_
#define PROXYSTORE_BENCH_BENCH_UTIL_H_

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"

namespace proxystore::bench {

// Heap counters maintained by alloc_counter.cc (zero if it is not linked or
// under a sanitizer, which owns malloc).
struct AllocCounts {
  int64_t bytes = 0;
  int64_t count = 0;
};
AllocCounts CurrentAllocs();
bool AllocCountingEnabled();

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline int64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline int64_t PageFaults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt + u.ru_majflt;
}

// n bytes of incompressible data (xorshift), or of word-like text that lz4
// compresses about 2-3x. The Shared* forms build each (n, seed) once per
// process and return the same string afterwards (rows at 100 MB would
// otherwise spend more time making inputs than measuring).
std::string RandomBytes(size_t n, uint64_t seed = 1);
std::string TextBytes(size_t n, uint64_t seed = 1);
const std::string& SharedRandomBytes(size_t n);
const std::string& SharedTextBytes(size_t n);

// Percentile (0..100) of `samples` (sorted in place): nearest-rank, except
// p50, which is the median (the mean of the middle two of an even count).
double Percentile(std::vector<double>& samples, double p);

// How long one repetition of a row measures. A repetition runs batches until
// it has min_batches batches and min_timed_s of timed work, or max_batches;
// or, for slow rows (and rows whose untimed setup is costly), until
// max_wall_s of wall time (timed work plus setup) have passed and it has
// min_slow_batches batches.
struct Budget {
  double min_timed_s = 0.02;
  int64_t min_batches = 3;
  int64_t max_batches = 1'000'000;
  double max_wall_s = 0.3;
  int64_t min_slow_batches = 2;
};
Budget& TheBudget();

// Set by SIGINT/SIGTERM/SIGHUP/SIGPIPE once InstallInterruptHandlers() ran: the
// row under way ends at its next batch and every later row is skipped, so the
// suite ends promptly through its normal clean-up.
void InstallInterruptHandlers();
bool Interrupted();

// The row being run (set by the suite before it calls a row function): keys
// the operation count that all repetitions of the row report.
void SetCurrentRow(const std::string& name);

// What one repetition measured.
struct Measured {
  std::vector<double> samples_us;  // Per-op time of each batch.
  int64_t batch = 1;
  int64_t ops = 0;
  int64_t timed_ns = 0;
  int64_t cpu_ns = 0;
  int64_t faults = 0;
  AllocCounts allocs;
  // Thread rows: timed rounds (what later repetitions repeat, instead of the
  // batch count), the thread count, and the sum of the rounds' wall times
  // is timed_ns.
  int64_t rounds = 0;
  int threads = 0;
};

// The batch count (thread rows: round count) the current row's first
// repetition picked, and the operation count it reported (0 before it).
int64_t FixedBatches();
int64_t FixedOps();

// Reports `m` to Google Benchmark (see the file comment). With a non-empty
// `error`, or when the suite was interrupted, the repetition is reported as
// skipped with that message ("interrupted").
void ReportRow(benchmark::State& state, Measured& m, int64_t bytes_per_op,
               const std::string& error = "");

// Times `op` in batches of `batch` calls; `setup` runs untimed before each
// batch for each index of the batch. How many batches: see Budget.
template <typename Setup, typename Op>
void RunTimed(benchmark::State& state, int64_t batch, Setup setup, Op op,
              int64_t bytes_per_op = 0) {
  Measured m;
  m.batch = batch;
  m.samples_us.reserve(1024);
  const Budget& budget = TheBudget();
  const int64_t fixed = FixedBatches();
  const int64_t start = NowNs();
  int64_t index = 0;
  while (!Interrupted()) {
    for (int64_t j = 0; j < batch; ++j) setup(index + j);
    const int64_t f0 = PageFaults();
    const AllocCounts a0 = CurrentAllocs();
    const int64_t c0 = ThreadCpuNs();
    const int64_t t0 = NowNs();
    for (int64_t j = 0; j < batch; ++j) op(index + j);
    const int64_t t1 = NowNs();
    const int64_t c1 = ThreadCpuNs();
    const AllocCounts a1 = CurrentAllocs();
    m.faults += PageFaults() - f0;
    m.allocs.bytes += a1.bytes - a0.bytes;
    m.allocs.count += a1.count - a0.count;
    m.timed_ns += t1 - t0;
    m.cpu_ns += c1 - c0;
    m.ops += batch;
    index += batch;
    m.samples_us.push_back(static_cast<double>(t1 - t0) / 1e3 /
                           static_cast<double>(batch));
    const int64_t n = static_cast<int64_t>(m.samples_us.size());
    if (fixed > 0) {
      if (n >= fixed) break;
      continue;
    }
    if (n >= budget.max_batches) break;
    if (n >= budget.min_batches &&
        static_cast<double>(m.timed_ns) >= budget.min_timed_s * 1e9) {
      break;
    }
    if (n >= budget.min_slow_batches &&
        static_cast<double>(NowNs() - start) >= budget.max_wall_s * 1e9) {
      break;
    }
  }
  ReportRow(state, m, bytes_per_op);
}

// Without untimed setup.
template <typename Op>
void RunTimed(benchmark::State& state, int64_t batch, Op op,
              int64_t bytes_per_op = 0) {
  RunTimed(
      state, batch, [](int64_t) {}, op, bytes_per_op);
}

// The first error of a thread row's workers (the row reports it; workers
// keep going, and their later operations are not checked).
class FirstError {
 public:
  void Set(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!set_.load(std::memory_order_relaxed)) message_ = what;
    set_.store(true, std::memory_order_release);
  }
  bool has() const { return set_.load(std::memory_order_acquire); }
  std::string message() const {
    std::lock_guard<std::mutex> lock(mu_);
    return message_;
  }

 private:
  mutable std::mutex mu_;
  std::string message_;
  std::atomic<bool> set_{false};
};

// The shape of a thread row: `threads` workers; rounds of about `round_s`
// of wall time; `guess`: operations per thread for the first warm-up round
// (a guess from the operation's expected cost); `budget`: how many rounds a
// repetition times (null: TheBudget()).
struct ThreadShape {
  int threads = 1;
  double round_s = 0.01;
  int64_t guess = 1;
  const Budget* budget = nullptr;
};

// Runs `op` on shape.threads threads at once, in rounds. A round:
//   1. every worker t runs prepare(t, ops) (untimed: e.g. parsing the
//      proxies it resolves next, or evicting what it put in the round
//      before), `ops` being how many operations it runs next;
//   2. all workers wait at a barrier, then each runs op(t, i) for
//      i in [0, ops), reading the clock every few operations (a batch:
//      ~20 us of work);
//   3. once all are done, cleanup() runs on the calling thread (untimed).
// A round's time is its wall time: from the earliest worker's start to the
// latest worker's end. Untimed warm-up rounds come first (connection pools
// fill, caches warm); in a row's first repetition they also size the rounds
// (operations per thread for ~round_s of wall time, starting from
// shape.guess), and later repetitions use that size. Rounds repeat under the
// budget, as RunTimed's batches do, and later repetitions run the first
// one's round count. Reported: iterations = all threads' operations, manual
// time = the rounds' summed wall time (so us_per_op is wall time per
// operation and ops_per_s the aggregate throughput), p50_us/p99_us over the
// workers' batch samples (the time one worker waits for one operation,
// preemption included), cpu_us_per_op (all workers' thread CPU time),
// threads, rounds. `error`, if set by a worker, ends the repetition with
// that message.
template <typename Prepare, typename Op, typename Cleanup>
void RunThreaded(benchmark::State& state, const ThreadShape& shape,
                 Prepare prepare, Op op, Cleanup cleanup,
                 const FirstError* error = nullptr, int64_t bytes_per_op = 0) {
  constexpr int64_t kMaxPerThread = 1 << 20;
  constexpr int kMaxWarmups = 6;
  const int n = std::max(shape.threads, 1);
  // One cache line per worker: no false sharing between their records.
  struct alignas(64) Worker {
    std::vector<double> samples_us;
    int64_t start_ns = 0;
    int64_t end_ns = 0;
    int64_t cpu_ns = 0;
  };
  std::vector<Worker> workers(n);
  // Read by the workers after the barrier that starts a round.
  int64_t per_thread = std::clamp<int64_t>(shape.guess, 1, kMaxPerThread);
  int64_t batch = 1;
  // Phases of a round, all n workers and this thread: kGo (the round
  // begins or, with `quit`, the workers leave), kPrepared (prepare done;
  // this thread reads the counters), kStart (the timed operations start),
  // kDone (all finished).
  std::barrier sync(n + 1);
  std::atomic<bool> quit{false};
  std::vector<std::thread> pool;
  pool.reserve(n);
  for (int t = 0; t < n; ++t) {
    pool.emplace_back([&, t] {
      Worker& w = workers[t];
      for (;;) {
        sync.arrive_and_wait();  // kGo
        if (quit.load(std::memory_order_acquire)) return;
        const int64_t ops = per_thread;
        const int64_t step = batch;
        prepare(t, ops);
        sync.arrive_and_wait();  // kPrepared
        sync.arrive_and_wait();  // kStart
        const int64_t c0 = ThreadCpuNs();
        int64_t t0 = NowNs();
        w.start_ns = t0;
        for (int64_t i = 0; i < ops; i += step) {
          const int64_t end = std::min(i + step, ops);
          for (int64_t j = i; j < end; ++j) op(t, j);
          const int64_t t1 = NowNs();
          w.samples_us.push_back(static_cast<double>(t1 - t0) / 1e3 /
                                 static_cast<double>(end - i));
          t0 = t1;
        }
        w.end_ns = t0;
        w.cpu_ns = ThreadCpuNs() - c0;
        sync.arrive_and_wait();  // kDone
      }
    });
  }
  Measured m;
  m.threads = n;
  const Budget& budget = shape.budget != nullptr ? *shape.budget : TheBudget();
  const int64_t fixed = FixedBatches();
  if (fixed > 0) per_thread = std::max<int64_t>(FixedOps() / fixed / n, 1);
  const int64_t start = NowNs();
  std::string failed;
  int warmups = 0;
  for (;;) {
    if (Interrupted()) break;
    sync.arrive_and_wait();  // kGo
    sync.arrive_and_wait();  // kPrepared
    const int64_t f0 = PageFaults();
    const AllocCounts a0 = CurrentAllocs();
    sync.arrive_and_wait();  // kStart
    sync.arrive_and_wait();  // kDone
    const AllocCounts a1 = CurrentAllocs();
    const int64_t f1 = PageFaults();
    cleanup();
    if (error != nullptr && error->has()) {
      failed = error->message();
      break;
    }
    int64_t first = workers[0].start_ns;
    int64_t last = workers[0].end_ns;
    for (const Worker& w : workers) {
      first = std::min(first, w.start_ns);
      last = std::max(last, w.end_ns);
    }
    const double wall_ns =
        static_cast<double>(std::max<int64_t>(last - first, 1));
    if (m.rounds == 0 && warmups < kMaxWarmups) {
      // A warm-up round: the next rounds' batch (~20 us of one worker's
      // waiting) and, in the first repetition, their size.
      ++warmups;
      const double op_ns = wall_ns / static_cast<double>(per_thread);
      bool again = false;
      if (fixed == 0) {
        const double target = shape.round_s * 1e9;
        // Too short a round to trust its time: grow it and warm up again.
        again = wall_ns < target / 2 && per_thread < kMaxPerThread &&
                warmups < kMaxWarmups;
        const double scale = std::min(target / wall_ns, 16.0);
        per_thread = std::clamp<int64_t>(
            static_cast<int64_t>(static_cast<double>(per_thread) * scale), 1,
            kMaxPerThread);
      }
      batch = std::clamp<int64_t>(static_cast<int64_t>(20'000 / op_ns), 1,
                                  std::max<int64_t>(per_thread / 4, 1));
      batch = std::min<int64_t>(batch, 256);
      for (Worker& w : workers) w.samples_us.clear();
      if (again) continue;
      m.batch = batch;
      warmups = kMaxWarmups;  // Sized: the timed rounds follow.
      continue;
    }
    for (Worker& w : workers) {
      m.samples_us.insert(m.samples_us.end(), w.samples_us.begin(),
                          w.samples_us.end());
      w.samples_us.clear();
      m.cpu_ns += w.cpu_ns;
    }
    m.faults += f1 - f0;
    m.allocs.bytes += a1.bytes - a0.bytes;
    m.allocs.count += a1.count - a0.count;
    m.timed_ns += last - first;
    m.ops += per_thread * n;
    ++m.rounds;
    if (fixed > 0) {
      if (m.rounds >= fixed) break;
      continue;
    }
    if (m.rounds >= budget.max_batches) break;
    if (m.rounds >= budget.min_batches &&
        static_cast<double>(m.timed_ns) >= budget.min_timed_s * 1e9) {
      break;
    }
    if (m.rounds >= budget.min_slow_batches &&
        static_cast<double>(NowNs() - start) >= budget.max_wall_s * 1e9) {
      break;
    }
  }
  quit.store(true, std::memory_order_release);
  sync.arrive_and_wait();  // kGo: the workers leave.
  for (std::thread& th : pool) th.join();
  ReportRow(state, m, bytes_per_op, failed);
}

// Batch size for an operation that costs about `expected_ns`: enough calls
// per sample to make the clock and counter reads (~1 us) negligible.
inline int64_t BatchFor(int64_t expected_ns) {
  if (expected_ns >= 20'000) return 1;
  return std::clamp<int64_t>(20'000 / std::max<int64_t>(expected_ns, 1), 1,
                             256);
}

}  // namespace proxystore::bench

#endif  // PROXYSTORE_BENCH_BENCH_UTIL_H_
