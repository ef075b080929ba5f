// SuiteReporter: what the benchmark suite prints and writes while it runs.
//
// Rows run in blocks (a connector's rows of one object size, its rows
// without a size, its thread rows), and a block's rows take turns: every
// row's first repetition, then every row's second, and so on, so that a row
// and its floor are measured over the same stretch of time and a slow phase
// of the machine falls on both alike.
// Google Benchmark sees each repetition as a benchmark of its own (one
// repetition); this reporter puts them back together by name.
//
// Console, a line when a block has finished a round of repetitions
//   [local 10KB] round 3 of 7 | 0:12 elapsed, ETA 2:31
// and one line per row as soon as all its repetitions are done:
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
  int reps = 1;       // Repetitions (each reported as a run of its own).
  std::string block;  // The rows that take turns with this one.
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
  // The console line of row `name`, from all its runs.
  void PrintRow(const std::string& name, const std::vector<Run>& runs);
  // A progress line if `name`'s `round`-th repetition ends a round of its
  // block (and more rounds follow).
  void MaybePrintRound(const std::string& name, int round);

  std::vector<PlannedRow> plan_;
  std::map<std::string, size_t> index_;
  std::string header_;
  std::string json_path_;
  benchmark::JSONReporter json_;
  std::ostringstream json_text_;
  std::set<std::string> done_;
  // Runs of rows whose repetitions are not all done yet, by name.
  std::map<std::string, std::vector<Run>> partial_;
  // (block, round) -> the last row of the block with that many repetitions
  // or more, and the block's number of rounds.
  std::map<std::pair<std::string, int>, std::string> round_end_;
  std::map<std::string, int> block_rounds_;
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
