#include "bench/bench_util.h"

#include <algorithm>
#include <cmath>
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

double Percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const double rank =
      std::ceil(p / 100.0 * static_cast<double>(samples.size()));
  size_t idx = rank <= 1 ? 0 : static_cast<size_t>(rank) - 1;
  return samples[std::min(idx, samples.size() - 1)];
}

}  // namespace proxystore::bench
