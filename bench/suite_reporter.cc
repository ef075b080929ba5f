#include "proxystore/bench/suite_reporter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "proxystore/bench/bench_util.h"

namespace proxystore::bench {
namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Three significant digits.
std::string Sig3(double v) {
  char buf[32];
  const char* fmt = v >= 99.95 ? "%.0f" : v >= 9.995 ? "%.1f" : "%.2f";
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

// The unit HumanTime would pick for `us`: its size in us and its name.
std::pair<double, const char*> TimeUnitFor(double us) {
  if (us < 1) return {1e-3, "ns"};
  if (us < 1e3) return {1, "µs"};
  if (us < 1e6) return {1e3, "ms"};
  return {1e6, "s"};
}

std::string Clock(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%lld:%02lld", static_cast<long long>(s / 60),
                static_cast<long long>(s % 60));
  return buf;
}

void Collect(const benchmark::BenchmarkReporter::Run& r, const char* key,
             std::vector<double>& out) {
  auto it = r.counters.find(key);
  if (it != r.counters.end()) out.push_back(it->second.value);
}

std::string Pad(std::string s, size_t width) {
  // Column widths count characters; "µ" is two bytes in UTF-8.
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  if (chars < width) s.append(width - chars, ' ');
  return s;
}

}  // namespace

std::string HumanTime(double us) {
  if (!std::isfinite(us) || us < 0) return "-";
  auto [scale, unit] = TimeUnitFor(us);
  return Sig3(us / scale) + " " + unit;
}

std::string HumanRate(double per_second) {
  if (!std::isfinite(per_second) || per_second < 0) return "-";
  if (per_second >= 1e6) return Sig3(per_second / 1e6) + "M";
  if (per_second >= 1e3) return Sig3(per_second / 1e3) + "k";
  return Sig3(per_second);
}

std::string HumanBytes(double bytes) {
  if (!std::isfinite(bytes) || bytes < 0) return "-";
  if (bytes < 1e3) {
    char buf[32];
    const bool whole = bytes >= 10 || bytes == std::floor(bytes);
    std::snprintf(buf, sizeof(buf), whole ? "%.0f B" : "%.1f B", bytes);
    return buf;
  }
  if (bytes < 1e6) return Sig3(bytes / 1e3) + " KB";
  if (bytes < 1e9) return Sig3(bytes / 1e6) + " MB";
  return Sig3(bytes / 1e9) + " GB";
}

SuiteReporter::SuiteReporter(std::vector<PlannedRow> plan, std::string header,
                             std::string json_path)
    : plan_(std::move(plan)),
      header_(std::move(header)),
      json_path_(std::move(json_path)) {
  for (size_t i = 0; i < plan_.size(); ++i) {
    index_[plan_[i].name] = i;
    total_weight_ += plan_[i].weight;
    name_width_ = std::max(name_width_, plan_[i].name.size());
    // Rows take turns in plan order: the last row of a block with at least
    // r repetitions ends its round r.
    for (int r = 1; r <= plan_[i].reps; ++r) {
      round_end_[{plan_[i].block, r}] = plan_[i].name;
    }
    int& rounds = block_rounds_[plan_[i].block];
    rounds = std::max(rounds, plan_[i].reps);
  }
  json_.SetOutputStream(&json_text_);
  json_.SetErrorStream(&std::cerr);
}

bool SuiteReporter::ReportContext(const Context& context) {
  start_ns_ = NowNs();
  json_.ReportContext(context);
  WriteJson(false);
  std::ostream& out = GetOutputStream();
  out << header_;
  const auto& cpu = context.cpu_info;
  out << "Machine: " << cpu.num_cpus << " CPUs at "
      << static_cast<int64_t>(cpu.cycles_per_second / 1e6) << " MHz";
  if (!cpu.load_avg.empty()) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), ", load average %.2f", cpu.load_avg[0]);
    out << buf << " at start";
    if (cpu.load_avg[0] >= 0.5) {
      out << " (other work on these CPUs slows rows and widens their ranges)";
    }
  }
  out << ".\n";
  if (cpu.scaling == benchmark::CPUInfo::ENABLED) {
    out << "CPU frequency scaling is on: times vary with the clock speed.\n";
  }
  if (json_text_.str().find("\"library_build_type\": \"debug\"") !=
      std::string::npos) {
    out << "Google Benchmark calls itself a DEBUG build: Debian compiles "
           "libbenchmark without NDEBUG,\nwhich only adds the library's own "
           "checks between rows. Every time below comes from this\nsuite's "
           "own clock reads around the operations.\n";
  }
#if !defined(NDEBUG) || !defined(__OPTIMIZE__)
  out << "This suite binary is NOT an optimized build (tools/bench.sh builds "
         "it with --config=opt):\nits times are not representative.\n";
#endif
  out << "\n";
  out.flush();
  return true;
}

void SuiteReporter::ReportRuns(const std::vector<Run>& runs) {
  if (runs.empty()) return;
  const std::string name = runs.front().run_name.function_name;
  std::vector<Run> kept;
  for (const Run& r : runs) {
    if (r.error_occurred && r.error_message == "interrupted") continue;
    Run c = r;
    c.run_name = benchmark::BenchmarkName();
    c.run_name.function_name = name;
    auto cpu = r.counters.find("cpu_us_per_op");
    if (!r.error_occurred && cpu != r.counters.end()) {
      const bool percent = r.run_type == Run::RT_Aggregate &&
                           r.aggregate_unit == benchmark::kPercentage;
      c.cpu_accumulated_time = percent ? cpu->second.value
                                       : cpu->second.value * 1e-6 *
                                             static_cast<double>(r.iterations);
    }
    // The cv of a counter that is 0 in every repetition is 0/0: write 0
    // (no variation), since NaN is not JSON.
    for (auto& [key, counter] : c.counters) {
      if (!std::isfinite(counter.value)) counter.value = 0;
    }
    kept.push_back(std::move(c));
  }
  if (!kept.empty()) {
    json_.ReportRuns(kept);
    WriteJson(false);
  }
  // Aggregates (only when Google Benchmark repeats a row itself) add no
  // console line.
  std::vector<Run>& all = partial_[name];
  int added = 0;
  for (const Run& r : runs) {
    if (r.run_type == Run::RT_Aggregate) continue;
    all.push_back(r);
    ++added;
  }
  if (added == 0) {
    if (all.empty()) partial_.erase(name);
    return;
  }
  auto it = index_.find(name);
  const int planned = it == index_.end() ? 1 : plan_[it->second].reps;
  if (it != index_.end()) {
    done_weight_ += plan_[it->second].weight * added / std::max(planned, 1);
  }
  const int seen = static_cast<int>(all.size());
  if (seen < planned) {
    MaybePrintRound(name, seen);
    return;
  }
  std::vector<Run> complete = std::move(all);
  partial_.erase(name);
  PrintRow(name, complete);
}

void SuiteReporter::MaybePrintRound(const std::string& name, int round) {
  auto it = index_.find(name);
  if (it == index_.end()) return;
  const std::string& block = plan_[it->second].block;
  auto end = round_end_.find({block, round});
  if (end == round_end_.end() || end->second != name) return;
  const double elapsed = static_cast<double>(NowNs() - start_ns_) / 1e9;
  const double remaining = total_weight_ - done_weight_;
  std::string line = "[" + block + "] round " + std::to_string(round) + " of " +
                     std::to_string(block_rounds_[block]) + " | " +
                     Clock(elapsed) + " elapsed";
  if (done_weight_ > 0 && remaining > 0 && !Interrupted()) {
    line += ", ETA " + Clock(elapsed * remaining / done_weight_);
  }
  std::ostream& out = GetOutputStream();
  out << line << "\n";
  out.flush();
}

void SuiteReporter::PrintRow(const std::string& name,
                             const std::vector<Run>& runs) {
  std::vector<double> p50, p99, faults, heap, ping, ops_per_s;
  std::string error;
  bool interrupted = false;
  int reps = 0;
  for (const Run& r : runs) {
    if (r.error_occurred && r.error_message == "interrupted") {
      interrupted = true;
      continue;
    }
    if (r.error_occurred) {
      error = r.error_message;
      continue;
    }
    if (r.run_type != Run::RT_Iteration) continue;
    ++reps;
    Collect(r, "p50_us", p50);
    Collect(r, "p99_us", p99);
    Collect(r, "faults_per_op", faults);
    Collect(r, "alloc_bytes_per_op", heap);
    Collect(r, "ping_us", ping);
    Collect(r, "ping_after_us", ping);
    Collect(r, "ops_per_s", ops_per_s);
  }
  if (p50.empty() && error.empty() && interrupted) return;  // Skipped.
  if (error.empty() && !p50.empty()) ++measured_;
  done_.insert(name);
  auto it = index_.find(name);
  const size_t n = it == index_.end() ? done_.size() : it->second + 1;
  char prefix[32];
  const int digits = static_cast<int>(std::to_string(plan_.size()).size());
  std::snprintf(prefix, sizeof(prefix), "[%*zu/%zu] ", digits, n, plan_.size());
  std::string line = std::string(prefix) + Pad(name, name_width_) + "  ";
  if (!error.empty()) {
    ++failed_;
    line += "ERROR: " + error;
  } else if (p50.empty()) {
    line += interrupted ? "interrupted, not measured" : "no result";
  } else {
    const double mid = Median(p50);
    const auto [lo, hi] = std::minmax_element(p50.begin(), p50.end());
    auto [scale, unit] = TimeUnitFor(mid);
    if (!ops_per_s.empty()) {
      line += Pad(HumanRate(Median(ops_per_s)) + " ops/s", 13);
    }
    line += "p50 " + Pad(HumanTime(mid), 9);
    line += Pad(reps > 1 ? "range " + Sig3(*lo / scale) + "-" +
                               Sig3(*hi / scale) + " " + unit
                         : std::string("(1 rep)"),
                22);
    line += "p99 " + Pad(HumanTime(Median(p99)), 9) + " ";
    if (!heap.empty()) line += Pad("heap " + HumanBytes(Median(heap)), 13);
    char buf[48];
    std::snprintf(buf, sizeof(buf), "faults %.1f", Median(faults));
    line += Pad(buf, 12);
    if (!ping.empty()) {
      const auto [plo, phi] = std::minmax_element(ping.begin(), ping.end());
      line += " RTT " + HumanTime(Median(ping));
      if (*phi > 2 * *plo) {
        line += " (mixed: " + HumanTime(*plo) + "-" + HumanTime(*phi) + ")";
      }
    }
    if (interrupted) line += " (some repetitions interrupted)";
  }
  const double elapsed = static_cast<double>(NowNs() - start_ns_) / 1e9;
  const double remaining = total_weight_ - done_weight_;
  line += " | " + Clock(elapsed) + " elapsed";
  if (done_weight_ > 0 && remaining > 0 && !Interrupted()) {
    line += ", ETA " + Clock(elapsed * remaining / done_weight_);
  }
  std::ostream& out = GetOutputStream();
  out << line << "\n";
  out.flush();
}

void SuiteReporter::Finalize() {
  // Rows whose repetitions did not all report (a run cut short): what they
  // measured, in plan order.
  for (const PlannedRow& row : plan_) {
    auto it = partial_.find(row.name);
    if (it == partial_.end()) continue;
    std::vector<Run> runs = std::move(it->second);
    partial_.erase(it);
    PrintRow(row.name, runs);
  }
  json_.Finalize();
  WriteJson(true);
  const double elapsed = static_cast<double>(NowNs() - start_ns_) / 1e9;
  std::ostream& out = GetOutputStream();
  out << "\n"
      << measured_ << " of " << plan_.size() << " rows measured in "
      << Clock(elapsed);
  if (failed_ > 0) out << ", " << failed_ << " with errors";
  if (Interrupted()) out << " (interrupted)";
  out << ".\n";
  out.flush();
}

void SuiteReporter::WriteJson(bool final) {
  if (json_path_.empty()) return;
  const std::string tmp = json_path_ + ".partial";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << json_text_.str();
    if (!final) f << "\n  ]\n}\n";
    if (!f) {
      std::cerr << "proxystore_bench: cannot write " << tmp << "\n";
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, json_path_, ec);
  if (ec) {
    std::cerr << "proxystore_bench: cannot rename " << tmp << " to "
              << json_path_ << ": " << ec.message() << "\n";
  }
}

}  // namespace proxystore::bench
