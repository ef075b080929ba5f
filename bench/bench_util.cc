#include "proxystore/bench/bench_util.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace proxystore::bench {

std::string RandomBytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::copy_n(reinterpret_cast<const char*>(&x), 8, s.data() + i);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(x >> (8 * (i % 8)));
  return s;
}

std::string TextBytes(size_t n, uint64_t seed) {
  static const char* const kWords[] = {
      "proxy", "store", "object",   "connector", "resolve", "factory",
      "cache", "key",   "bytes",    "process",   "the",     "a",
      "of",    "to",    "and",      "in",        "data",    "moves",
      "once",  "from",  "producer", "consumer",  "while",   "only"};
  constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);
  std::string s;
  s.reserve(n + 16);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 7;
  while (s.size() < n) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s += kWords[x % kNumWords];
    s += (x >> 32) % 11 == 0 ? ".\n" : " ";
  }
  s.resize(n);
  return s;
}

namespace {

// Inputs live for the whole run (at most a few per size): handing out
// references is safe because map nodes never move.
const std::string& Shared(std::map<size_t, std::unique_ptr<std::string>>& m,
                          size_t n, std::string (*make)(size_t, uint64_t)) {
  auto& slot = m[n];
  if (slot == nullptr) slot = std::make_unique<std::string>(make(n, 1));
  return *slot;
}

}  // namespace

const std::string& SharedRandomBytes(size_t n) {
  static std::map<size_t, std::unique_ptr<std::string>> m;
  return Shared(m, n, RandomBytes);
}

const std::string& SharedTextBytes(size_t n) {
  static std::map<size_t, std::unique_ptr<std::string>> m;
  return Shared(m, n, TextBytes);
}

double Percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  if (p == 50) {
    return n % 2 == 1 ? samples[n / 2]
                      : (samples[n / 2 - 1] + samples[n / 2]) / 2;
  }
  const double rank =
      std::ceil(p / 100.0 * static_cast<double>(samples.size()));
  size_t idx = rank <= 1 ? 0 : static_cast<size_t>(rank) - 1;
  return samples[std::min(idx, samples.size() - 1)];
}

Budget& TheBudget() {
  static Budget budget;
  return budget;
}

namespace {

std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void OnSignal(int) {
  // Only async-signal-safe calls here.
  if (!g_interrupted.exchange(true)) {
    static const char kMsg[] =
        "\nproxystore_bench: interrupted; ending the current row and writing "
        "what was measured\n";
    (void)!write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
  }
}

struct RowState {
  int64_t ops = 0;      // Reported by every repetition (0: none yet).
  int64_t batches = 0;  // Picked by the first repetition.
};

std::string& CurrentRowName() {
  static std::string name;
  return name;
}

RowState& CurrentRowState() {
  static std::map<std::string, RowState> rows;
  return rows[CurrentRowName()];
}

}  // namespace

void InstallInterruptHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE})
    sigaction(sig, &sa, nullptr);
}

bool Interrupted() { return g_interrupted.load(std::memory_order_relaxed); }

void SetCurrentRow(const std::string& name) { CurrentRowName() = name; }

int64_t FixedBatches() { return CurrentRowState().batches; }

int64_t FixedOps() { return CurrentRowState().ops; }

void ReportRow(benchmark::State& state, Measured& m, int64_t bytes_per_op,
               const std::string& error) {
  RowState& row = CurrentRowState();
  std::string err = error;
  if (err.empty() && Interrupted()) err = "interrupted";
  if (err.empty() && row.ops != 0 && m.ops != row.ops) {
    err = "measured " + std::to_string(m.ops) + " operations, not the " +
          std::to_string(row.ops) + " of the first repetition";
  }
  if (row.ops == 0) {
    row.ops = std::max<int64_t>(m.ops, 1);
    row.batches =
        m.rounds > 0 ? m.rounds : static_cast<int64_t>(m.samples_us.size());
  }
  // One pass of the loop: iterations() becomes row.ops (see the file
  // comment); the manual time is this repetition's timed work.
  while (state.KeepRunningBatch(row.ops)) {
    if (!err.empty()) {
      state.SkipWithError(err.c_str());
    } else {
      state.SetIterationTime(static_cast<double>(m.timed_ns) / 1e9);
    }
  }
  if (!err.empty()) return;
  const double ops = static_cast<double>(m.ops);
  const double timed_s = static_cast<double>(m.timed_ns) / 1e9;
  const size_t batches = m.samples_us.size();
  state.counters["us_per_op"] = timed_s * 1e6 / ops;
  state.counters["cpu_us_per_op"] = static_cast<double>(m.cpu_ns) / 1e3 / ops;
  state.counters["p50_us"] = Percentile(m.samples_us, 50);
  state.counters["p99_us"] = Percentile(m.samples_us, 99);
  state.counters["faults_per_op"] = static_cast<double>(m.faults) / ops;
  if (AllocCountingEnabled()) {
    state.counters["alloc_bytes_per_op"] =
        static_cast<double>(m.allocs.bytes) / ops;
    state.counters["allocs_per_op"] = static_cast<double>(m.allocs.count) / ops;
  }
  state.counters["batch"] = static_cast<double>(m.batch);
  state.counters["batches"] = static_cast<double>(batches);
  if (m.threads > 0) {
    state.counters["threads"] = m.threads;
    state.counters["rounds"] = static_cast<double>(m.rounds);
    if (timed_s > 0) state.counters["ops_per_s"] = ops / timed_s;
  }
  if (bytes_per_op > 0 && timed_s > 0) {
    state.counters["bytes_per_second"] =
        static_cast<double>(bytes_per_op) * ops / timed_s;
  }
}

}  // namespace proxystore::bench
