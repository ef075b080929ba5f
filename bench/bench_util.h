// Measurement helpers for the benchmark suite.
//
// Every row of the suite reports, besides Google Benchmark's mean time:
//   p50_us, p99_us     per-operation latency percentiles. Fast operations are
//                      timed in batches; their samples are batch averages, so
//                      p99 understates a single op's tail (said in the report).
//   faults_per_op      minor+major page faults per operation (getrusage); on
//                      our machines a fresh 4 KiB page costs ~10 us.
//   alloc_bytes_per_op heap bytes requested per operation and allocs_per_op,
//                      counted by the malloc interposer in alloc_counter.cc.
//
//   void BM_X(benchmark::State& state) {
//     RunTimed(state, /*batch=*/1, [&](int64_t i) { /* untimed setup */ },
//              [&](int64_t i) { /* the operation */ });
//   }
//
// Thread-safety: single-threaded benchmarks only.
#ifndef PROXYSTORE_BENCH_BENCH_UTIL_H_
#define PROXYSTORE_BENCH_BENCH_UTIL_H_

#include <sys/resource.h>

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

inline int64_t PageFaults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt + u.ru_majflt;
}

// n bytes of incompressible data (xorshift), or of word-like text that lz4
// compresses about 2-3x.
std::string RandomBytes(size_t n, uint64_t seed = 1);
std::string TextBytes(size_t n, uint64_t seed = 1);

// Percentile (0..100) of `samples` (sorted in place), nearest-rank.
double Percentile(std::vector<double>& samples, double p);

// Times `op` in batches of `batch` calls; `setup` runs untimed before each
// batch for each index of the batch. One benchmark iteration is one batch
// (its manual time is the batch's time, so Google Benchmark's run-time
// budget is spent on timed work); per-op figures are counters: us_per_op
// (mean), p50_us/p99_us (from batch averages), faults and allocations per
// op, and bytes/s for `bytes_per_op`.
template <typename Setup, typename Op>
void RunTimed(benchmark::State& state, int64_t batch, Setup setup, Op op,
              int64_t bytes_per_op = 0) {
  std::vector<double> samples;
  samples.reserve(1024);
  int64_t index = 0;
  int64_t faults = 0;
  AllocCounts allocs;
  int64_t ops = 0;
  double total_s = 0;
  for (auto _ : state) {
    for (int64_t j = 0; j < batch; ++j) setup(index + j);
    const int64_t f0 = PageFaults();
    const AllocCounts a0 = CurrentAllocs();
    const int64_t t0 = NowNs();
    for (int64_t j = 0; j < batch; ++j) op(index + j);
    const int64_t t1 = NowNs();
    const AllocCounts a1 = CurrentAllocs();
    faults += PageFaults() - f0;
    allocs.bytes += a1.bytes - a0.bytes;
    allocs.count += a1.count - a0.count;
    index += batch;
    ops += batch;
    const double batch_s = static_cast<double>(t1 - t0) / 1e9;
    state.SetIterationTime(batch_s);
    total_s += batch_s;
    samples.push_back(batch_s / static_cast<double>(batch) * 1e6);
  }
  if (ops == 0) return;
  state.counters["us_per_op"] = total_s / static_cast<double>(ops) * 1e6;
  state.counters["p50_us"] = Percentile(samples, 50);
  state.counters["p99_us"] = Percentile(samples, 99);
  state.counters["faults_per_op"] = static_cast<double>(faults) / ops;
  if (AllocCountingEnabled()) {
    state.counters["alloc_bytes_per_op"] =
        static_cast<double>(allocs.bytes) / ops;
    state.counters["allocs_per_op"] = static_cast<double>(allocs.count) / ops;
  }
  state.counters["batch"] = static_cast<double>(batch);
  if (bytes_per_op > 0) state.SetBytesProcessed(ops * bytes_per_op);
}

// Without untimed setup.
template <typename Op>
void RunTimed(benchmark::State& state, int64_t batch, Op op,
              int64_t bytes_per_op = 0) {
  RunTimed(
      state, batch, [](int64_t) {}, op, bytes_per_op);
}

// Batch size for an operation on `size` bytes that costs about `floor_ns`:
// enough calls per sample to make the two clock reads (~50 ns) negligible.
inline int64_t BatchFor(int64_t expected_ns) {
  if (expected_ns >= 20'000) return 1;
  return std::clamp<int64_t>(20'000 / std::max<int64_t>(expected_ns, 1), 1,
                             256);
}

}  // namespace proxystore::bench

#endif  // PROXYSTORE_BENCH_BENCH_UTIL_H_
