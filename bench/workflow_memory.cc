// The workflow-memory benchmark: how much a workflow leaves in the store with
// plain proxies, with hand-written eviction, with owned proxies and with
// context lifetimes (ProxyStore's TPDS'24 ownership experiment, scaled to one
// machine).
//
// The workflow is a fan-in tree of tasks, 32 -> 16 -> 8 -> 4 -> 2 -> 1: each
// first-stage task makes an object, each later task resolves the proxies of
// its two inputs, checks them and makes its own object, and the driver
// resolves the last one. Object sizes cycle through the run's sizes (default
// 1, 2, 5 and 10 MB; --full: 1, 10 and 100 MB). Tasks run one at a time, stage
// by stage, so the four variants are compared on the same schedule:
//   plain     Store::Proxy; nothing is ever evicted (ProxyStore's default)
//   evicted   Store::Proxy; each consumer evicts its inputs by hand once it
//             has used them, and the driver evicts the result
//   owned     OwnedProxyOf; each output's owner moves to its consumer, which
//             drops it after use (the owner evicts)
//   lifetime  each consumer has a ContextLifetime; its producers put their
//             outputs with it and it closes when the consumer is done
// The store is a local connector (the objects are in this process's memory)
// without a cache, wrapped so that it counts the bytes it holds. Each variant
// runs in a fresh process (fork), so its RSS peak (VmHWM) is its own.
//
//   workflow_memory [--full | --quick] [--json=FILE]
//
// Prints a table; --json writes the figures tools/bench_report.py reports and
// plots: per variant the peak and final store bytes, the start, peak and
// final RSS, the seconds taken and the store bytes after every task.
// Exit status 1 if a variant fails (an input with the wrong bytes, a store
// error) or cannot run.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "proxystore/base/key.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/status.h"
#include "proxystore/bench/bench_util.h"
#include "proxystore/bench/suite_reporter.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/local/local_connector.h"
#include "proxystore/store/lifetimes.h"
#include "proxystore/store/ref.h"
#include "proxystore/store/store.h"

namespace proxystore::bench {
namespace {

constexpr int kFirstStage = 32;
constexpr int64_t kMB = 1'000'000;

// Forwards to a connector and counts the bytes it holds (what was put and
// not yet evicted), and the most it ever held.
class CountingConnector final : public Connector {
 public:
  explicit CountingConnector(std::unique_ptr<Connector> inner)
      : inner_(std::move(inner)) {}

  absl::string_view kind() const override { return inner_->kind(); }
  ConnectorConfig Config() const override { return inner_->Config(); }

  int64_t held() const {
    MutexLock lock(mu_);
    return held_;
  }
  int64_t peak() const {
    MutexLock lock(mu_);
    return peak_;
  }

 protected:
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override {
    const int64_t n = static_cast<int64_t>(data.size());
    PROXYSTORE_ASSIGN_OR_RETURN(Key key, inner_->Put(std::move(data), options));
    Add(key, n);
    return key;
  }
  absl::StatusOr<Key> DoPutParts(absl::Span<const absl::string_view> parts,
                                 const PutOptions& options) override {
    int64_t n = 0;
    for (absl::string_view p : parts) n += static_cast<int64_t>(p.size());
    PROXYSTORE_ASSIGN_OR_RETURN(Key key, inner_->PutParts(parts, options));
    Add(key, n);
    return key;
  }
  absl::StatusOr<std::vector<Key>> DoPutBatch(
      absl::Span<const SharedBytes> data, const PutOptions& options) override {
    PROXYSTORE_ASSIGN_OR_RETURN(std::vector<Key> keys,
                                inner_->PutBatch(data, options));
    for (size_t i = 0; i < keys.size(); ++i) {
      Add(keys[i], static_cast<int64_t>(data[i].size()));
    }
    return keys;
  }
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override {
    return inner_->Get(key);
  }
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> DoGetBatch(
      absl::Span<const Key> keys) override {
    return inner_->GetBatch(keys);
  }
  absl::StatusOr<bool> DoExists(const Key& key) override {
    return inner_->Exists(key);
  }
  absl::Status DoEvict(const Key& key) override {
    PROXYSTORE_RETURN_IF_ERROR(inner_->Evict(key));
    MutexLock lock(mu_);
    auto it = sizes_.find(key.id());
    if (it != sizes_.end()) {
      held_ -= it->second;
      sizes_.erase(it);
    }
    return absl::OkStatus();
  }
  absl::Status DoClose(const CloseOptions& options) override {
    return inner_->Close(options);
  }

 private:
  void Add(const Key& key, int64_t n) {
    MutexLock lock(mu_);
    sizes_[key.id()] = n;
    held_ += n;
    if (held_ > peak_) peak_ = held_;
  }

  std::unique_ptr<Connector> inner_;
  mutable Mutex mu_;
  std::map<std::string, int64_t> sizes_ ABSL_GUARDED_BY(mu_);
  int64_t held_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t peak_ ABSL_GUARDED_BY(mu_) = 0;
};

// Resident set size now and at its peak (VmRSS, VmHWM), in bytes.
struct Rss {
  int64_t now = 0;
  int64_t peak = 0;
};
Rss ReadRss() {
  Rss rss;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    int64_t kb = 0;
    const auto value = [&](absl::string_view field) {
      return absl::SimpleAtoi(
          absl::StripAsciiWhitespace(absl::StripSuffix(
              absl::StripPrefix(absl::string_view(line), field), "kB")),
          &kb);
    };
    if (absl::StartsWith(line, "VmRSS:") && value("VmRSS:")) {
      rss.now = kb * 1024;
    } else if (absl::StartsWith(line, "VmHWM:") && value("VmHWM:")) {
      rss.peak = kb * 1024;
    }
  }
  return rss;
}

struct Result {
  std::string variant;
  int64_t peak_store = 0;
  int64_t final_store = 0;
  int64_t start_rss = 0;
  int64_t peak_rss = 0;
  int64_t final_rss = 0;
  double seconds = 0;
  int64_t tasks = 0;
  int64_t made = 0;               // bytes of all objects the tasks made
  std::vector<int64_t> timeline;  // store bytes after each task
};

// What task (stage, index) makes: `size` bytes of one value, so a consumer
// can check it got the right object whole.
struct Spec {
  int64_t size;
  char fill;
};
Spec SpecOf(const std::vector<int64_t>& sizes, int stage, int index) {
  const int serial = (kFirstStage * 2 - (kFirstStage >> (stage - 1)) * 2) +
                     index;  // tasks before this one, counted in stage order
  return {sizes[serial % sizes.size()],
          static_cast<char>('a' + (stage * 7 + index) % 26)};
}

absl::Status Check(const std::string& got, const Spec& want,
                   absl::string_view what) {
  if (static_cast<int64_t>(got.size()) != want.size ||
      got.find_first_not_of(want.fill) != std::string::npos) {
    return absl::DataLossError(
        absl::StrCat(what, ": ", got.size(), " bytes, not ", want.size,
                     " bytes of '", std::string(1, want.fill), "'"));
  }
  return absl::OkStatus();
}

// A handle to one task's output, as each variant passes it on.
struct Output {
  std::optional<Proxy<std::string>> proxy;       // plain, evicted, lifetime
  std::optional<OwnedProxy<std::string>> owner;  // owned
};

absl::StatusOr<Result> RunVariant(const std::string& variant,
                                  const std::vector<int64_t>& sizes) {
  Result result;
  result.variant = variant;
  result.start_rss = ReadRss().now;
  const int64_t t0 = NowNs();

  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<LocalConnector> local,
                              LocalConnector::Create());
  auto counting = std::make_unique<CountingConnector>(std::move(local));
  CountingConnector* counter = counting.get();
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::shared_ptr<Store> store,
      Store::Create(absl::StrCat("workflow-", variant), std::move(counting),
                    {.cache_size = 0}));

  const bool owned = variant == "owned";
  const bool lifetimes = variant == "lifetime";
  const bool by_hand = variant == "evicted";

  // Makes task (stage, index)'s object and hands it on; `consumer` is the
  // lifetime of the task that will use it (lifetime variant only).
  const auto make = [&](int stage, int index,
                        ContextLifetime* consumer) -> absl::StatusOr<Output> {
    const Spec spec = SpecOf(sizes, stage, index);
    std::string object(static_cast<size_t>(spec.size), spec.fill);
    result.made += spec.size;
    Output out;
    if (owned) {
      PROXYSTORE_ASSIGN_OR_RETURN(OwnedProxy<std::string> owner,
                                  OwnedProxyOf(*store, std::move(object)));
      out.owner.emplace(std::move(owner));
    } else {
      ProxyOptions<std::string> options;
      options.lifetime = consumer;
      PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> proxy,
                                  store->Proxy(std::move(object), options));
      out.proxy.emplace(std::move(proxy));
    }
    return out;
  };
  // Resolves and checks one input, then lets go of it as the variant does.
  const auto consume = [&](Output input, const Spec& want,
                           absl::string_view what) -> absl::Status {
    if (owned) {
      PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> got,
                                  input.owner->Get());
      PROXYSTORE_RETURN_IF_ERROR(Check(*got, want, what));
      input.owner.reset();  // the owner evicts
      return absl::OkStatus();
    }
    PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> got,
                                input.proxy->Get());
    PROXYSTORE_RETURN_IF_ERROR(Check(*got, want, what));
    if (by_hand) {
      PROXYSTORE_ASSIGN_OR_RETURN(Key key, GetKey(*input.proxy));
      PROXYSTORE_RETURN_IF_ERROR(store->Evict(key));
    }
    return absl::OkStatus();
  };
  const auto sample = [&] {
    result.timeline.push_back(counter->held());
    ++result.tasks;
  };

  // Stage 1: kFirstStage producers. consumers[j] is the lifetime of the
  // next stage's task j (lifetime variant).
  std::vector<std::unique_ptr<ContextLifetime>> consumers;
  const auto new_consumers = [&](int n) {
    consumers.clear();
    if (!lifetimes) return;
    for (int j = 0; j < n; ++j) {
      consumers.push_back(std::make_unique<ContextLifetime>(store));
    }
  };
  new_consumers(kFirstStage / 2);
  std::vector<Output> outputs;
  for (int i = 0; i < kFirstStage; ++i) {
    PROXYSTORE_ASSIGN_OR_RETURN(
        Output out, make(1, i, lifetimes ? consumers[i / 2].get() : nullptr));
    outputs.push_back(std::move(out));
    sample();
  }
  int stage = 1;
  while (outputs.size() > 1) {
    ++stage;
    const int n = static_cast<int>(outputs.size() / 2);
    std::vector<std::unique_ptr<ContextLifetime>> mine = std::move(consumers);
    // This stage's outputs go to the next stage's tasks, or (for the last
    // one) to the driver.
    new_consumers(n > 1 ? n / 2 : 1);
    std::vector<Output> next;
    for (int j = 0; j < n; ++j) {
      for (int k = 0; k < 2; ++k) {
        PROXYSTORE_RETURN_IF_ERROR(consume(
            std::move(outputs[2 * j + k]), SpecOf(sizes, stage - 1, 2 * j + k),
            absl::StrCat("stage ", stage, " task ", j, " input ", k)));
      }
      PROXYSTORE_ASSIGN_OR_RETURN(
          Output out,
          make(stage, j, lifetimes ? consumers[j / 2].get() : nullptr));
      if (lifetimes) PROXYSTORE_RETURN_IF_ERROR(mine[j]->Close());
      next.push_back(std::move(out));
      sample();
    }
    outputs = std::move(next);
  }
  // The driver uses the result.
  PROXYSTORE_RETURN_IF_ERROR(
      consume(std::move(outputs[0]), SpecOf(sizes, stage, 0), "result"));
  if (lifetimes) PROXYSTORE_RETURN_IF_ERROR(consumers[0]->Close());
  outputs.clear();
  consumers.clear();
  result.timeline.push_back(counter->held());

  result.seconds = static_cast<double>(NowNs() - t0) / 1e9;
  result.peak_store = counter->peak();
  result.final_store = counter->held();
  const Rss rss = ReadRss();
  result.final_rss = rss.now;
  result.peak_rss = rss.peak;
  // Close without clearing: whatever is left is what the variant left.
  PROXYSTORE_RETURN_IF_ERROR(store->Close(CloseOptions{.clear = false}));
  return result;
}

std::string ToLine(const Result& r) {
  return absl::StrCat(r.variant, " ", r.peak_store, " ", r.final_store, " ",
                      r.start_rss, " ", r.peak_rss, " ", r.final_rss, " ",
                      r.seconds, " ", r.tasks, " ", r.made, " ",
                      absl::StrJoin(r.timeline, ","));
}

absl::StatusOr<Result> FromLine(absl::string_view line) {
  std::vector<std::string> f = absl::StrSplit(line, ' ');
  Result r;
  if (f.size() != 10 || !absl::SimpleAtoi(f[1], &r.peak_store) ||
      !absl::SimpleAtoi(f[2], &r.final_store) ||
      !absl::SimpleAtoi(f[3], &r.start_rss) ||
      !absl::SimpleAtoi(f[4], &r.peak_rss) ||
      !absl::SimpleAtoi(f[5], &r.final_rss) ||
      !absl::SimpleAtod(f[6], &r.seconds) ||
      !absl::SimpleAtoi(f[7], &r.tasks) || !absl::SimpleAtoi(f[8], &r.made)) {
    return absl::InternalError(absl::StrCat("bad result line: ", line));
  }
  r.variant = f[0];
  for (absl::string_view v : absl::StrSplit(f[9], ',')) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(v, &n)) {
      return absl::InternalError(absl::StrCat("bad timeline: ", f[9]));
    }
    r.timeline.push_back(n);
  }
  return r;
}

// Runs `variant` in a forked child and reads its result line from a pipe.
absl::StatusOr<Result> RunInChild(const std::string& variant,
                                  const std::vector<int64_t>& sizes) {
  int fds[2];
  if (pipe(fds) != 0) return absl::InternalError("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    close(fds[0]);
    absl::StatusOr<Result> r = RunVariant(variant, sizes);
    const std::string line =
        r.ok() ? absl::StrCat("OK ", ToLine(*r), "\n")
               : absl::StrCat("ERROR ", r.status().ToString(), "\n");
    size_t off = 0;
    while (off < line.size()) {
      const ssize_t n = write(fds[1], line.data() + off, line.size() - off);
      if (n <= 0 && errno != EINTR) _exit(3);
      if (n > 0) off += static_cast<size_t>(n);
    }
    _exit(r.ok() ? 0 : 1);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!absl::StartsWith(out, "OK ")) {
    return absl::InternalError(absl::StrCat(
        variant, ": ", out.empty() ? "the child ended without a result" : out,
        " (wait status ", status, ")"));
  }
  return FromLine(absl::StripTrailingAsciiWhitespace(out.substr(3)));
}

std::string MB(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / kMB);
  return buf;
}

int Main(int argc, char** argv) {
  std::vector<int64_t> sizes = {1 * kMB, 2 * kMB, 5 * kMB, 10 * kMB};
  std::string form = "default";
  std::string json;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--full") {
      sizes = {1 * kMB, 10 * kMB, 100 * kMB};
      form = "full";
    } else if (arg == "--quick") {
      sizes = {10'000, 100'000};
      form = "quick";
    } else if (absl::StartsWith(arg, "--json=")) {
      json = std::string(arg.substr(7));
    } else {
      std::fprintf(stderr,
                   "usage: workflow_memory [--full | --quick] [--json=FILE]\n");
      return 2;
    }
  }
  std::vector<std::string> size_names;
  for (int64_t s : sizes) size_names.push_back(HumanBytes(s));
  std::printf(
      "workflow memory: fan-in %d -> 1, objects of %s cycled, local "
      "connector, no cache; one process per variant\n",
      kFirstStage, absl::StrJoin(size_names, ", ").c_str());
  std::fflush(stdout);

  std::vector<Result> results;
  for (const char* variant : {"plain", "evicted", "owned", "lifetime"}) {
    absl::StatusOr<Result> r = RunInChild(variant, sizes);
    if (!r.ok()) {
      std::fprintf(stderr, "workflow_memory: %s\n",
                   r.status().ToString().c_str());
      return 1;
    }
    results.push_back(*std::move(r));
  }

  std::printf("%-9s %12s %13s %12s %11s %11s %8s\n", "variant", "peak store MB",
              "final store MB", "start RSS MB", "peak RSS MB", "final RSS MB",
              "seconds");
  for (const Result& r : results) {
    std::printf("%-9s %13s %14s %12s %11s %12s %8.2f\n", r.variant.c_str(),
                MB(r.peak_store).c_str(), MB(r.final_store).c_str(),
                MB(r.start_rss).c_str(), MB(r.peak_rss).c_str(),
                MB(r.final_rss).c_str(), r.seconds);
  }
  if (!json.empty()) {
    std::ostringstream o;
    o << "{\n  \"form\": \"" << form
      << "\",\n  \"first_stage\": " << kFirstStage << ",\n  \"sizes\": ["
      << absl::StrJoin(sizes, ", ") << "],\n  \"variants\": [\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      o << "    {\"variant\": \"" << r.variant
        << "\", \"peak_store_bytes\": " << r.peak_store
        << ", \"final_store_bytes\": " << r.final_store
        << ", \"start_rss_bytes\": " << r.start_rss
        << ", \"peak_rss_bytes\": " << r.peak_rss
        << ", \"final_rss_bytes\": " << r.final_rss
        << ", \"seconds\": " << r.seconds << ", \"tasks\": " << r.tasks
        << ", \"made_bytes\": " << r.made << ", \"store_bytes_after_task\": ["
        << absl::StrJoin(r.timeline, ", ") << "]}"
        << (i + 1 < results.size() ? "," : "") << "\n";
    }
    o << "  ]\n}\n";
    std::ofstream f(json);
    f << o.str();
    if (!f.good()) {
      std::fprintf(stderr, "workflow_memory: cannot write %s\n", json.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace proxystore::bench

int main(int argc, char** argv) { return proxystore::bench::Main(argc, argv); }
