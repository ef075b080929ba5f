// SuiteReporter: what the benchmark suite prints and writes while it runs.
//
// Console, one line per row as soon as all its repetitions are done:
//   [ 37/342] store/get/file/10KB  p50 4.80 µs  range 4.71-4.95  p99 6.10 µs
//             heap 10.0 KB/op  faults 0.0/op | 0:42 elapsed, ETA 2:31
// (p50: median over the repetitions of each repetition's p50; range: lowest
// and highest repetition p50; redis rows add the loopback PING round trip
// measured next to them; thread rows start with their aggregate
// operations per second, "14.6M ops/s", median over the repetitions.) The ETA
// weighs the rows still to run by the cost the suite expects of them.
//
// JSON: Google Benchmark's own format (tools/bench_report.py and compare.py
// read it), rewritten (write to a temporary file + rename) after every row,
// so the file is complete and valid whenever the run ends. Row names are the
// bare row names (no "/iterations:1/repeats:5/manual_time" suffix), so runs
// made with different settings compare by name; cpu_time is the thread CPU
// time of the timed batches only (counter cpu_us_per_op); repetitions that
// were cut short by an interrupt are left out; the coefficient of variation
// of an all-zero counter is written as 0 (NaN is not JSON).
//
// Thread-safety: used by Google Benchmark's runner thread only.
#ifndef PROXYSTORE_BENCH_SUITE_REPORTER_H_
#define PROXYSTORE_BENCH_SUITE_REPORTER_H_

#include <cstdint>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"

namespace proxystore::bench {

struct PlannedRow {
  std::string name;
  double weight = 1;  // Expected cost, in any unit (only ratios matter).
};

class SuiteReporter : public benchmark::BenchmarkReporter {
 public:
  // `header` is printed before the first row; `json_path` empty: no JSON.
  SuiteReporter(std::vector<PlannedRow> plan, std::string header,
                std::string json_path);

  bool ReportContext(const Context& context) override;
  void ReportRuns(const std::vector<Run>& runs) override;
  void Finalize() override;

  // Rows measured so far, and rows with an error.
  int rows_measured() const { return measured_; }
  int rows_failed() const { return failed_; }

 private:
  void WriteJson(bool final);

  std::vector<PlannedRow> plan_;
  std::map<std::string, size_t> index_;
  std::string header_;
  std::string json_path_;
  benchmark::JSONReporter json_;
  std::ostringstream json_text_;
  std::set<std::string> done_;
  double done_weight_ = 0;
  double total_weight_ = 0;
  int64_t start_ns_ = 0;
  size_t name_width_ = 0;
  int measured_ = 0;
  int failed_ = 0;
};

// "873 ns", "1.27 µs", "12.7 µs", "127 µs", "1.27 ms", "1.27 s": three
// significant digits in the largest unit that keeps the number >= 1.
std::string HumanTime(double us);
// "873", "12.7k", "1.27M": a rate per second, three significant digits.
std::string HumanRate(double per_second);
// "100 B", "10.0 KB", "1.00 MB" (decimal units, as the row names).
std::string HumanBytes(double bytes);

}  // namespace proxystore::bench

#endif  // PROXYSTORE_BENCH_SUITE_REPORTER_H_
