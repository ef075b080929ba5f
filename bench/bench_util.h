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
//     wall time with its setup, and for redis rows ping_us/ping_after_us).
// Every repetition of a row reports the same operation count (the first one
// picks it within the budget, the others repeat it), as Google Benchmark's
// statistics require.
//
//   void BM_X(benchmark::State& state) {
//     RunTimed(state, /*batch=*/1, [&](int64_t i) { /* untimed setup */ },
//              [&](int64_t i) { /* the operation */ });
//   }
//
// Thread-safety: single-threaded benchmarks only; Interrupted() may be read
// from any thread.
#ifndef PROXYSTORE_BENCH_BENCH_UTIL_H_
#define PROXYSTORE_BENCH_BENCH_UTIL_H_

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
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
};

// The batch count the current row's first repetition picked (0 before it).
int64_t FixedBatches();

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

// Batch size for an operation that costs about `expected_ns`: enough calls
// per sample to make the clock and counter reads (~1 us) negligible.
inline int64_t BatchFor(int64_t expected_ns) {
  if (expected_ns >= 20'000) return 1;
  return std::clamp<int64_t>(20'000 / std::max<int64_t>(expected_ns, 1), 1,
                             256);
}

}  // namespace proxystore::bench

#endif  // PROXYSTORE_BENCH_BENCH_UTIL_H_
