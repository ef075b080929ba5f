// The task-pipelining benchmark: how much proxy futures shorten a chain of
// tasks (ProxyStore's TPDS'24 "Object Proxy Patterns" pipelining experiment,
// in miniature on one machine).
//
// A chain of N = 8 tasks; task i needs task i-1's result. Every task is a
// real child process (fork) that:
//   1. starts: a fixed cost (a sleep, default 60 ms) standing for the
//      interpreter or container start of a real workflow task;
//   2. gets its input, task i-1's 10 MB result (task 0 makes its own);
//   3. computes: checks the input, then hashes it in a serial dependency
//      chain for a number of passes calibrated once, at the start of the run,
//      to take about --compute_ms (default 60 ms);
//   4. hands on its 10 MB result (carrying the hash, so the chain is a real
//      data dependency); the driver (this process) reads task N-1's result.
// Variants:
//   sequential          task i+1 starts when task i has ended; the result
//                       travels by value through pipes and the driver (a
//                       workflow engine moving the data)
//   sequential_proxies  as sequential, but the task puts its result in the
//                       store and only the serialized proxy travels
//   pipelined           the driver makes N futures, then starts every task
//                       at once; task i gets the serialized proxies of future
//                       i-1 (its input) and of future i (its output), so its
//                       start overlaps the earlier tasks' work; it resolves
//                       its input (woken when it is set), computes and sets its
//                       result
// The store is a ShmConnector (POSIX shared memory, i.e. RAM): the tasks are
// processes on one host, which is what it is for, and a hand-over then costs
// what the store does (copy into a segment, map it, decode), not what a disk
// file system does. A FileConnector in TMPDIR measured the file system
// instead: on an ext4 /tmp, writing a new 10 MB file while the earlier ones
// exist took ~25-30 ms against ~7 ms in /dev/shm (block allocation and
// writeback), and the result would depend on where TMPDIR lives. Like a
// file, a segment is published by renameat2 once written whole, so a
// polling consumer never reads half an object, and the connector holds no
// descriptor between calls, so forked tasks may use it. The store has no
// cache (every hand-over reads the segment) and metrics on, which records
// the polls of each future's wait. The run clears its namespace at the end,
// also when interrupted (SIGINT, SIGTERM); only a killed run leaves segments
// (ls /dev/shm/proxystore.*).
//
// The pipes of the sequential variant are enlarged to 1 MiB (the default
// limit for unprivileged processes), so that the baseline moves its data as
// fast as a pipe can, not 64 KiB per context switch.
//
// Makespan: from the first fork to the driver holding the last result. The
// floor is what a perfect pipeline takes: the first task's start, then per
// task its compute and one hand-over through the store:
//   floor = startup + N x (compute + hand-over)
// with startup as configured and the other two measured in fresh forked
// processes, as the tasks pay them (a fresh process faults in every page of
// its result, which the warm driver would not): compute = one task's work
// (check, hash passes, making the result); hand-over = Store::Set of the
// result to a key the driver minted (what Future::SetResult does) plus, in
// another fresh process, resolving a proxy of it parsed from its wire form.
// Each is the fastest of 5 (a lower bound, and the timing least disturbed
// by whatever else the machine runs). The floor leaves out the forks, task
// 0 making its input (a 10 MB fill) and polling delay.
//
//   task_pipelining [--full | --quick] [--json=FILE] [--startup_ms=MS]
//                   [--compute_ms=MS] [--repetitions=N] [--poll_us=US]
//
// Defaults: 3 repetitions (--full: 10; --quick: 1 repetition of 1 MB objects
// with 10 ms starts and computes), the variants interleaved within each
// repetition. Prints a table; --json writes the figures tools/bench_report.py
// reports and plots. Exit status 1 if a task fails (a wrong input, a store
// error) or a variant cannot run.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proxystore/base/key.h"
#include "proxystore/base/status.h"
#include "proxystore/bench/bench_util.h"
#include "proxystore/bench/suite_reporter.h"
#include "proxystore/connectors/shm/shm_connector.h"
#include "proxystore/store/future.h"
#include "proxystore/store/polling.h"
#include "proxystore/store/store.h"

namespace proxystore::bench {
namespace {

constexpr int64_t kMB = 1'000'000;
// What the paper reports for proxy futures against no proxies.
constexpr double kPaperReductionPct = 29;
constexpr int kProbeRounds = 5;
constexpr int kComputeRounds = 3;
constexpr int kPipeBytes = 1 << 20;

enum class Variant { kSequential, kSequentialProxies, kPipelined };
constexpr std::array<Variant, 3> kVariants = {
    Variant::kSequential, Variant::kSequentialProxies, Variant::kPipelined};

const char* Name(Variant v) {
  switch (v) {
    case Variant::kSequential:
      return "sequential";
    case Variant::kSequentialProxies:
      return "sequential_proxies";
    case Variant::kPipelined:
      return "pipelined";
  }
  return "?";
}

const char* Label(Variant v) {
  switch (v) {
    case Variant::kSequential:
      return "sequential, no proxies";
    case Variant::kSequentialProxies:
      return "sequential, proxies";
    case Variant::kPipelined:
      return "pipelined, proxy futures";
  }
  return "?";
}

struct Params {
  std::string form = "default";
  int tasks = 8;
  int64_t object_bytes = 10 * kMB;
  double startup_ms = 60;
  double compute_target_ms = 60;
  int repetitions = 3;
  // Steady 1 ms naps: a hand-over is seen at most ~1 ms late (sooner where
  // the connector's WaitFor ends a nap at the Set), and the waiting tasks (a
  // missing segment costs one failed open) use ~1% of a core each. The
  // default doubling up to 100 ms would let a late task oversleep a
  // hand-over by up to 100 ms.
  int64_t poll_us = 1000;
  // A task that lost its producer gives up after this instead of waiting
  // forever.
  absl::Duration poll_timeout = absl::Seconds(30);
  // Calibrated: hash passes over the input that take compute_target_ms.
  int64_t passes = 1;

  PollingOptions Polling() const {
    PollingOptions p;
    p.interval = absl::Microseconds(poll_us);
    p.backoff_factor = 1.0;
    p.interval_limit = p.interval;
    p.timeout = poll_timeout;
    return p;
  }
};

// --- The tasks' data and work -----------------------------------------------

// Objects are the producer's 8-byte hash of its input, then the producer's
// fill byte: a consumer can check that it got the right object whole, and the
// last result's hash depends on every task having run on the right input.
// Producer -1 is task 0's input.
char FillOf(int producer) { return static_cast<char>('A' + (producer + 1)); }

std::string MakeObject(int producer, uint64_t hash, int64_t size) {
  std::string s(static_cast<size_t>(size), FillOf(producer));
  std::memcpy(s.data(), &hash, sizeof hash);
  return s;
}

uint64_t HashOf(absl::string_view object) {
  uint64_t h = 0;
  if (object.size() >= sizeof h) std::memcpy(&h, object.data(), sizeof h);
  return h;
}

absl::Status CheckObject(absl::string_view got, int producer, int64_t size) {
  const char fill = FillOf(producer);
  bool ok = static_cast<int64_t>(got.size()) == size && size >= 8;
  if (ok) {
    // Word compares without an early exit, so the compiler vectorizes them.
    uint64_t pattern;
    std::memset(&pattern, fill, sizeof pattern);
    uint64_t diff = 0;
    size_t i = 8;
    for (; i + 8 <= got.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, got.data() + i, sizeof w);
      diff |= w ^ pattern;
    }
    for (; i < got.size(); ++i) diff |= static_cast<uint64_t>(got[i] ^ fill);
    ok = diff == 0;
  }
  if (!ok) {
    return absl::DataLossError(absl::StrCat(
        "task input: ", got.size(), " bytes, not ", size, " bytes of task ",
        producer, "'s result ('", std::string(1, fill), "')"));
  }
  return absl::OkStatus();
}

// The busy work: a multiply-xorshift hash over the input's 64-bit words,
// `passes` times. Each step depends on the last, so it runs at the
// multiplier's latency, not at memory speed: CPU-bound and steady.
uint64_t Hash(absl::string_view data, int64_t passes) {
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  for (int64_t pass = 0; pass < passes; ++pass) {
    for (size_t i = 0; i + 8 <= data.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, data.data() + i, sizeof w);
      h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
      h ^= h >> 29;
    }
  }
  return h;
}

// What task `task` does with its input between getting it and handing its
// result on.
absl::StatusOr<std::string> Work(absl::string_view input, int task,
                                 const Params& p) {
  PROXYSTORE_RETURN_IF_ERROR(CheckObject(input, task - 1, p.object_bytes));
  return MakeObject(task, Hash(input, p.passes), p.object_bytes);
}

// --- Pipes -------------------------------------------------------------------

std::atomic<bool> g_interrupt{false};

void OnInterrupt(int) { g_interrupt.store(true, std::memory_order_relaxed); }

// SIGINT, SIGTERM and SIGHUP set a flag, without SA_RESTART: a blocked pipe
// read or write then fails with EINTR, and the run ends its tasks and clears
// its segments instead of dying with them in place.
void InstallInterruptHandler() {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

bool InterruptRequested() {
  return g_interrupt.load(std::memory_order_relaxed);
}

// In a task: a Ctrl-C (sent to the whole process group) ends it at once;
// the driver then sees its pipe close.
void DefaultSignalsInTask() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) signal(sig, SIG_DFL);
}

absl::Status WriteAll(int fd, absl::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR && !InterruptRequested()) continue;
    if (n <= 0) {
      if (InterruptRequested()) return absl::CancelledError("interrupted");
      return absl::InternalError(
          absl::StrCat("write to a task pipe: ", std::strerror(errno)));
    }
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ReadAll(int fd, char* data, size_t size) {
  size_t off = 0;
  while (off < size) {
    const ssize_t n = read(fd, data + off, size - off);
    if (n < 0 && errno == EINTR && !InterruptRequested()) continue;
    if (n < 0) {
      if (InterruptRequested()) return absl::CancelledError("interrupted");
      return absl::InternalError(
          absl::StrCat("read from a task pipe: ", std::strerror(errno)));
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrCat("a task pipe closed after ", off,
                                              " of ", size, " bytes"));
    }
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// A frame is its 8-byte length, then its bytes.
absl::Status WriteFrame(int fd, absl::string_view data) {
  const uint64_t n = data.size();
  PROXYSTORE_RETURN_IF_ERROR(WriteAll(
      fd, absl::string_view(reinterpret_cast<const char*>(&n), sizeof n)));
  return WriteAll(fd, data);
}

absl::StatusOr<std::string> ReadFrame(int fd) {
  uint64_t n = 0;
  PROXYSTORE_RETURN_IF_ERROR(
      ReadAll(fd, reinterpret_cast<char*>(&n), sizeof n));
  if (n > (uint64_t{1} << 34)) {
    return absl::DataLossError(absl::StrCat("a task frame of ", n, " bytes"));
  }
  std::string data(static_cast<size_t>(n), '\0');
  PROXYSTORE_RETURN_IF_ERROR(ReadAll(fd, data.data(), data.size()));
  return data;
}

// --- One task (in its child process) -----------------------------------------

// When a task reached each point (steady clock, which all processes share),
// and how many reads its input's resolve took.
struct TaskTimes {
  int64_t start_ns = 0;     // the child runs
  int64_t ready_ns = 0;     // started up
  int64_t input_ns = 0;     // holds its input
  int64_t computed_ns = 0;  // holds its result
  int64_t done_ns = 0;      // has handed its result on
  int64_t polls = 0;        // reads of a future's key (pipelined)
};

std::string TimesLine(const TaskTimes& t) {
  return absl::StrCat(t.start_ns, " ", t.ready_ns, " ", t.input_ns, " ",
                      t.computed_ns, " ", t.done_ns, " ", t.polls);
}

absl::StatusOr<TaskTimes> ParseTimes(absl::string_view line, int task) {
  std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
  TaskTimes t;
  if (f.size() != 6 || !absl::SimpleAtoi(f[0], &t.start_ns) ||
      !absl::SimpleAtoi(f[1], &t.ready_ns) ||
      !absl::SimpleAtoi(f[2], &t.input_ns) ||
      !absl::SimpleAtoi(f[3], &t.computed_ns) ||
      !absl::SimpleAtoi(f[4], &t.done_ns) ||
      !absl::SimpleAtoi(f[5], &t.polls)) {
    return absl::InternalError(
        absl::StrCat("task ", task, ": bad times line: ", line));
  }
  return t;
}

// The task's work in its process. Reads its arguments from `in_fd` (after
// its start, as a started interpreter would unpack them) and writes "OK",
// its payload and its times to `out_fd` (the child writes its error instead
// when this fails).
//   sequential:         in: input bytes (empty for task 0); out: result bytes
//   sequential_proxies: in: store config, input proxy (empty for task 0);
//                       out: result proxy
//   pipelined:          in: input proxy (empty for task 0), output proxy;
//                       out: nothing (the result goes to the future)
absl::Status RunTask(Variant v, int task, const Params& p, int in_fd,
                     int out_fd) {
  TaskTimes t;
  t.start_ns = NowNs();
  absl::SleepFor(absl::Milliseconds(p.startup_ms));
  t.ready_ns = NowNs();

  std::string input_bytes;                   // sequential
  std::shared_ptr<const std::string> input;  // proxies
  std::shared_ptr<Store> out_store;          // proxies
  Key out_key;                               // pipelined
  switch (v) {
    case Variant::kSequential: {
      PROXYSTORE_ASSIGN_OR_RETURN(input_bytes, ReadFrame(in_fd));
      break;
    }
    case Variant::kSequentialProxies: {
      PROXYSTORE_ASSIGN_OR_RETURN(std::string config_wire, ReadFrame(in_fd));
      PROXYSTORE_ASSIGN_OR_RETURN(std::string input_wire, ReadFrame(in_fd));
      PROXYSTORE_ASSIGN_OR_RETURN(StoreConfig config,
                                  StoreConfig::Parse(config_wire));
      PROXYSTORE_ASSIGN_OR_RETURN(out_store, Store::FromConfig(config));
      if (task > 0) {
        PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> in,
                                    ParseProxy<std::string>(input_wire));
        PROXYSTORE_ASSIGN_OR_RETURN(input, in.Get());
      }
      break;
    }
    case Variant::kPipelined: {
      PROXYSTORE_ASSIGN_OR_RETURN(std::string input_wire, ReadFrame(in_fd));
      PROXYSTORE_ASSIGN_OR_RETURN(std::string output_wire, ReadFrame(in_fd));
      PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> out,
                                  ParseProxy<std::string>(output_wire));
      PROXYSTORE_ASSIGN_OR_RETURN(out_store, GetStore(out));
      PROXYSTORE_ASSIGN_OR_RETURN(out_key, GetKey(out));
      if (task > 0) {
        PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> in,
                                    ParseProxy<std::string>(input_wire));
        // Waits (polls) until task - 1 has set its result.
        PROXYSTORE_ASSIGN_OR_RETURN(input, in.Get());
        // The store records the reads only when the first one missed.
        t.polls = 1;
        PROXYSTORE_ASSIGN_OR_RETURN(std::optional<Metrics> m, GetMetrics(in));
        if (m.has_value()) {
          auto it = m->attributes.find("factory.polls");
          if (it != m->attributes.end() &&
              std::holds_alternative<int64_t>(it->second)) {
            t.polls = std::get<int64_t>(it->second);
          }
        }
      }
      break;
    }
  }
  if (input == nullptr && input_bytes.empty()) {
    if (task > 0) {
      return absl::InternalError(absl::StrCat("task ", task, ": no input"));
    }
    // Task 0 reads its input from nowhere: it makes it.
    input_bytes = MakeObject(-1, 0, p.object_bytes);
  }
  t.input_ns = NowNs();

  PROXYSTORE_ASSIGN_OR_RETURN(
      std::string result,
      Work(input != nullptr ? absl::string_view(*input) : input_bytes, task,
           p));
  input.reset();
  input_bytes.clear();
  t.computed_ns = NowNs();

  std::string payload;
  switch (v) {
    case Variant::kSequential:
      payload = std::move(result);
      break;
    case Variant::kSequentialProxies: {
      PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> proxy,
                                  out_store->Proxy(std::move(result)));
      PROXYSTORE_ASSIGN_OR_RETURN(payload, proxy.Serialize());
      break;
    }
    case Variant::kPipelined:
      PROXYSTORE_RETURN_IF_ERROR(out_store->Set(out_key, result));
      break;
  }
  PROXYSTORE_RETURN_IF_ERROR(WriteFrame(out_fd, "OK"));
  // The pipe holds 1 MiB: a larger result is handed on once the driver has
  // read all but its last MiB.
  PROXYSTORE_RETURN_IF_ERROR(WriteFrame(out_fd, payload));
  t.done_ns = NowNs();
  return WriteFrame(out_fd, TimesLine(t));
}

// --- The driver --------------------------------------------------------------

struct Child {
  pid_t pid = -1;
  int to = -1;    // the task's arguments
  int from = -1;  // its times and payload
};

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Forks task `task`. The child closes the driver's ends of the pipes of
// the tasks in `others` (those still open), so that no task holds another's.
absl::StatusOr<Child> StartTask(Variant v, int task, const Params& p,
                                const std::vector<Child>& others) {
  int to[2];
  int from[2];
  if (pipe(to) != 0) return absl::InternalError("pipe failed");
  if (pipe(from) != 0) {
    close(to[0]);
    close(to[1]);
    return absl::InternalError("pipe failed");
  }
  // Best effort: with the default 64 KiB a 10 MB result crosses in 160
  // context switches.
  for (int fd : {to[1], from[1]}) fcntl(fd, F_SETPIPE_SZ, kPipeBytes);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {to[0], to[1], from[0], from[1]}) close(fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // A task whose driver is gone (killed mid-run) ends too, instead of
    // polling for a result nobody will set.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(4);
    DefaultSignalsInTask();
    for (const Child& c : others) {
      if (c.to >= 0) close(c.to);
      if (c.from >= 0) close(c.from);
    }
    close(to[1]);
    close(from[0]);
    absl::Status s = RunTask(v, task, p, to[0], from[1]);
    if (!s.ok()) {
      (void)WriteFrame(from[1], absl::StrCat("ERROR ", s.ToString()));
    }
    // _exit: nothing of the driver's copied into this process (its store,
    // the store registry, stdio buffers) is destroyed or flushed here.
    _exit(s.ok() ? 0 : 1);
  }
  close(to[0]);
  close(from[1]);
  return Child{pid, to[1], from[0]};
}

// Reads what task `task` handed back (its payload) and its times; its error
// if it failed.
absl::StatusOr<std::string> ReadResult(const Child& c, int task,
                                       TaskTimes& times) {
  absl::StatusOr<std::string> status = ReadFrame(c.from);
  if (!status.ok()) {
    return Annotate(status.status(),
                    absl::StrCat("task ", task, " ended without a result"));
  }
  if (*status != "OK") {
    return absl::InternalError(absl::StrCat("task ", task, ": ", *status));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(std::string payload, ReadFrame(c.from));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string line, ReadFrame(c.from));
  PROXYSTORE_ASSIGN_OR_RETURN(times, ParseTimes(line, task));
  return payload;
}

absl::Status Reap(Child& c, int task) {
  CloseFd(c.to);
  CloseFd(c.from);
  if (c.pid < 0) return absl::OkStatus();
  int status = 0;
  while (waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
  }
  c.pid = -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("task ", task, " ended with wait status ", status));
  }
  return absl::OkStatus();
}

struct Run {
  double makespan_ms = 0;
  std::vector<TaskTimes> tasks;  // relative to the run's start
  uint64_t final_hash = 0;
};

// Runs the chain once as variant `v`.
absl::StatusOr<Run> RunVariant(Variant v, const Params& p, Store& store) {
  const int n = p.tasks;
  std::vector<Child> children(static_cast<size_t>(n));
  std::vector<Key> keys;
  // On any error: end the tasks still running and free what they stored.
  absl::Cleanup cleanup = [&] {
    for (Child& c : children) {
      if (c.pid > 0) kill(c.pid, SIGKILL);
      (void)Reap(c, 0);
    }
    for (const Key& k : keys) (void)store.Evict(k);
  };
  Run run;
  run.tasks.resize(static_cast<size_t>(n));
  std::shared_ptr<const std::string> final_object;
  std::string final_bytes;

  const int64_t t0 = NowNs();
  if (v == Variant::kPipelined) {
    FutureOptions<std::string> options;
    options.polling = p.Polling();
    std::vector<Future<std::string>> futures;
    std::vector<std::string> wires;
    for (int i = 0; i < n; ++i) {
      PROXYSTORE_ASSIGN_OR_RETURN(Future<std::string> f,
                                  store.Future<std::string>(options));
      keys.push_back(f.key());
      PROXYSTORE_ASSIGN_OR_RETURN(std::string wire, f.Proxy().Serialize());
      futures.push_back(std::move(f));
      wires.push_back(std::move(wire));
    }
    for (int i = 0; i < n; ++i) {
      PROXYSTORE_ASSIGN_OR_RETURN(children[i], StartTask(v, i, p, children));
      PROXYSTORE_RETURN_IF_ERROR(
          WriteFrame(children[i].to, i > 0 ? wires[i - 1] : ""));
      PROXYSTORE_RETURN_IF_ERROR(WriteFrame(children[i].to, wires[i]));
    }
    // Each task reports when it is done (as a workflow engine hears of it),
    // so that a failed task ends the run at once instead of leaving the
    // next ones to their polling timeout.
    for (int i = 0; i < n; ++i) {
      PROXYSTORE_RETURN_IF_ERROR(
          ReadResult(children[i], i, run.tasks[i]).status());
    }
    PROXYSTORE_ASSIGN_OR_RETURN(final_object, futures.back().Result());
  } else {
    const bool proxies = v == Variant::kSequentialProxies;
    const std::string config_wire = store.Config().Serialize();
    std::string carry;  // the last result (sequential) or its proxy
    for (int i = 0; i < n; ++i) {
      PROXYSTORE_ASSIGN_OR_RETURN(children[i], StartTask(v, i, p, children));
      if (proxies) {
        PROXYSTORE_RETURN_IF_ERROR(WriteFrame(children[i].to, config_wire));
      }
      PROXYSTORE_RETURN_IF_ERROR(WriteFrame(children[i].to, carry));
      PROXYSTORE_ASSIGN_OR_RETURN(carry,
                                  ReadResult(children[i], i, run.tasks[i]));
      PROXYSTORE_RETURN_IF_ERROR(Reap(children[i], i));
      if (proxies) {
        PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> out,
                                    ParseProxy<std::string>(carry));
        PROXYSTORE_ASSIGN_OR_RETURN(Key key, GetKey(out));
        keys.push_back(std::move(key));
      }
    }
    if (proxies) {
      PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> out,
                                  ParseProxy<std::string>(carry));
      PROXYSTORE_ASSIGN_OR_RETURN(final_object, out.Get());
    } else {
      final_bytes = std::move(carry);
    }
  }
  const int64_t t_end = NowNs();

  run.makespan_ms = static_cast<double>(t_end - t0) / 1e6;
  for (TaskTimes& t : run.tasks) {
    for (int64_t* x :
         {&t.start_ns, &t.ready_ns, &t.input_ns, &t.computed_ns, &t.done_ns}) {
      *x -= t0;
    }
  }
  const absl::string_view final_view = final_object != nullptr
                                           ? absl::string_view(*final_object)
                                           : absl::string_view(final_bytes);
  PROXYSTORE_RETURN_IF_ERROR(
      Annotate(CheckObject(final_view, n - 1, p.object_bytes), "last result"));
  run.final_hash = HashOf(final_view);
  for (int i = 0; i < n; ++i) {
    PROXYSTORE_RETURN_IF_ERROR(Reap(children[i], i));
  }
  for (const Key& k : keys) PROXYSTORE_RETURN_IF_ERROR(store.Evict(k));
  keys.clear();
  std::move(cleanup).Cancel();
  return run;
}

// --- Calibration -------------------------------------------------------------

double Median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  const size_t m = xs.size() / 2;
  return xs.size() % 2 == 1 ? xs[m] : (xs[m - 1] + xs[m]) / 2;
}

double NsToMs(int64_t ns) { return static_cast<double>(ns) / 1e6; }

// The 1-minute load average (-1 if unknown): the run shares the machine
// with whatever else it runs, which the report should say.
double LoadAverage() {
  std::ifstream f("/proc/loadavg");
  double load = -1;
  if (!(f >> load)) return -1;
  return load;
}

double MsSince(int64_t t) { return static_cast<double>(NowNs() - t) / 1e6; }

// Picks p.passes so that one task's work (check, hash passes, new result)
// takes p.compute_target_ms in this process, and returns what it then takes
// here. Each figure is the fastest of several timings: the least disturbed
// by whatever else the machine runs.
absl::StatusOr<double> CalibrateCompute(Params& p) {
  const std::string input = MakeObject(-1, 0, p.object_bytes);
  const auto fastest_ms = [&](int rounds, auto&& fn) -> absl::StatusOr<double> {
    double best = 1e300;
    for (int i = 0; i < rounds; ++i) {
      const int64_t t = NowNs();
      PROXYSTORE_RETURN_IF_ERROR(fn());
      best = std::min(best, MsSince(t));
    }
    return best;
  };
  volatile uint64_t sink = 0;  // keeps the hashes from being optimized out
  PROXYSTORE_ASSIGN_OR_RETURN(const double per_pass,
                              fastest_ms(7, [&]() -> absl::Status {
                                sink = sink + Hash(input, 1);
                                return absl::OkStatus();
                              }));
  // The work without hashing: the input check and the new result.
  p.passes = 0;
  const auto work = [&]() -> absl::Status {
    PROXYSTORE_ASSIGN_OR_RETURN(std::string out, Work(input, 0, p));
    sink = sink + HashOf(out);
    return absl::OkStatus();
  };
  PROXYSTORE_ASSIGN_OR_RETURN(const double fixed, fastest_ms(3, work));
  p.passes = std::max<int64_t>(1, std::llround((p.compute_target_ms - fixed) /
                                               std::max(per_pass, 1e-3)));
  return fastest_ms(kComputeRounds, work);
}

// Runs `body` in a forked process, a fresh task as the chain's are (its
// result's memory is new to it, so it pays the page faults they pay), and
// returns the line `body` returned.
absl::StatusOr<std::string> InChild(
    const std::function<absl::StatusOr<std::string>()>& body) {
  int fds[2];
  if (pipe(fds) != 0) return absl::InternalError("pipe failed");
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(4);
    DefaultSignalsInTask();
    close(fds[0]);
    absl::StatusOr<std::string> r = body();
    (void)WriteFrame(fds[1],
                     r.ok() ? absl::StrCat("OK ", *r)
                            : absl::StrCat("ERROR ", r.status().ToString()));
    _exit(r.ok() ? 0 : 1);  // as a task: nothing of the driver's is destroyed
  }
  close(fds[1]);
  absl::StatusOr<std::string> line = ReadFrame(fds[0]);
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!line.ok()) return Annotate(line.status(), "a probe process");
  if (!absl::StartsWith(*line, "OK ")) {
    return absl::InternalError(absl::StrCat("a probe process: ", *line));
  }
  return line->substr(3);
}

// What one link of the chain costs task processes when nothing waits: the
// work, setting the result to a key the driver minted (Store::Set, as
// Future::SetResult does) and, in another fresh process, resolving a proxy
// of that key parsed from its wire form. Each the fastest of kProbeRounds:
// the floor is a lower bound, and the fastest is the least disturbed by
// whatever else the machine runs.
struct LinkCosts {
  double compute_ms = 0;
  double set_ms = 0;
  double resolve_ms = 0;
  double handover_ms = 0;  // the fastest set + resolve
};

absl::StatusOr<LinkCosts> MeasureLink(Store& store, const Params& p) {
  std::vector<double> compute, set, resolve, handover;
  for (int round = -1; round < kProbeRounds; ++round) {  // -1: warm-up
    PROXYSTORE_ASSIGN_OR_RETURN(Key key, store.NewKey());
    absl::Cleanup evict = [&] { (void)store.Evict(key); };
    PROXYSTORE_ASSIGN_OR_RETURN(
        std::string wire, store.ProxyFromKey<std::string>(key).Serialize());
    PROXYSTORE_ASSIGN_OR_RETURN(
        std::string produced, InChild([&]() -> absl::StatusOr<std::string> {
          // As a task: its store (from the proxy) and its input come first.
          PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> out,
                                      ParseProxy<std::string>(wire));
          PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<Store> s, GetStore(out));
          const std::string input = MakeObject(-1, 0, p.object_bytes);
          const int64_t t0 = NowNs();
          PROXYSTORE_ASSIGN_OR_RETURN(std::string result, Work(input, 0, p));
          const int64_t t1 = NowNs();
          PROXYSTORE_RETURN_IF_ERROR(s->Set(key, result));
          const int64_t t2 = NowNs();
          return absl::StrCat(t1 - t0, " ", t2 - t1);
        }));
    PROXYSTORE_ASSIGN_OR_RETURN(
        std::string consumed, InChild([&]() -> absl::StatusOr<std::string> {
          PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> in,
                                      ParseProxy<std::string>(wire));
          PROXYSTORE_RETURN_IF_ERROR(GetStore(in).status());
          const int64_t t0 = NowNs();
          PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> got,
                                      in.Get());
          const int64_t t1 = NowNs();
          PROXYSTORE_RETURN_IF_ERROR(CheckObject(*got, 0, p.object_bytes));
          return absl::StrCat(t1 - t0);
        }));
    int64_t work_ns = 0, set_ns = 0, resolve_ns = 0;
    std::vector<absl::string_view> f = absl::StrSplit(produced, ' ');
    if (f.size() != 2 || !absl::SimpleAtoi(f[0], &work_ns) ||
        !absl::SimpleAtoi(f[1], &set_ns) ||
        !absl::SimpleAtoi(consumed, &resolve_ns)) {
      return absl::InternalError(
          absl::StrCat("probe lines: ", produced, " / ", consumed));
    }
    if (round < 0) continue;
    compute.push_back(NsToMs(work_ns));
    set.push_back(NsToMs(set_ns));
    resolve.push_back(NsToMs(resolve_ns));
    handover.push_back(NsToMs(set_ns + resolve_ns));
  }
  const auto fastest = [](const std::vector<double>& xs) {
    return *std::min_element(xs.begin(), xs.end());
  };
  return LinkCosts{fastest(compute), fastest(set), fastest(resolve),
                   fastest(handover)};
}

// --- Main --------------------------------------------------------------------

struct VariantResult {
  Variant variant;
  std::vector<Run> runs;
  std::vector<double> makespans() const {
    std::vector<double> m;
    for (const Run& r : runs) m.push_back(r.makespan_ms);
    return m;
  }
  // The repetition whose makespan is the median (the lower middle one).
  const Run& median_run() const {
    std::vector<size_t> order(runs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return runs[a].makespan_ms < runs[b].makespan_ms;
    });
    return runs[order[(order.size() - 1) / 2]];
  }
};

// Where a run's time goes inside its tasks: medians over tasks 1..N-1 (task
// 0 makes its input).
struct Phases {
  // From the moment the task could use its input (it has started and the
  // producer has handed the input on) to holding it: the pipe or store
  // read, and for futures the polling delay.
  double get_input_ms = 0;
  double compute_ms = 0;
  // Writing the result to the pipe (until the driver has read all but the
  // last MiB), putting it and serializing its proxy, or setting the future.
  double hand_on_ms = 0;
  // From the producer's end to the consumer process running (sequential
  // variants: the driver reads the result and forks); negative when they
  // overlap.
  double driver_gap_ms = 0;
};

Phases PhasesOf(const Run& r) {
  std::vector<double> get, compute, hand, gap;
  for (size_t i = 1; i < r.tasks.size(); ++i) {
    const TaskTimes& t = r.tasks[i];
    const TaskTimes& prev = r.tasks[i - 1];
    get.push_back(NsToMs(t.input_ns - std::max(t.ready_ns, prev.done_ns)));
    compute.push_back(NsToMs(t.computed_ns - t.input_ns));
    hand.push_back(NsToMs(t.done_ns - t.computed_ns));
    gap.push_back(NsToMs(t.start_ns - prev.done_ns));
  }
  if (get.empty()) return {};
  return {Median(get), Median(compute), Median(hand), Median(gap)};
}

std::string Ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", ms);
  return buf;
}

std::string TasksJson(const Run& r) {
  std::vector<std::string> items;
  for (const TaskTimes& t : r.tasks) {
    items.push_back(absl::StrCat(
        "{\"start_ms\": ", Ms(NsToMs(t.start_ns)), ", \"ready_ms\": ",
        Ms(NsToMs(t.ready_ns)), ", \"input_ms\": ", Ms(NsToMs(t.input_ns)),
        ", \"computed_ms\": ", Ms(NsToMs(t.computed_ns)), ", \"done_ms\": ",
        Ms(NsToMs(t.done_ns)), ", \"polls\": ", t.polls, "}"));
  }
  return absl::StrCat("[", absl::StrJoin(items, ",\n         "), "]");
}

bool ParseDoubleFlag(absl::string_view arg, absl::string_view name,
                     double* out) {
  if (!absl::ConsumePrefix(&arg, name)) return false;
  return absl::SimpleAtod(arg, out) && *out >= 0;
}

int Usage() {
  std::fprintf(stderr,
               "usage: task_pipelining [--full | --quick] [--json=FILE] "
               "[--startup_ms=MS]\n"
               "                       [--compute_ms=MS] [--repetitions=N] "
               "[--poll_us=US]\n");
  return 2;
}

int Main(int argc, char** argv) {
  Params p;
  std::string json;
  std::optional<double> startup, compute;
  std::optional<int> repetitions;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    double x = 0;
    if (arg == "--full") {
      p.form = "full";
      p.repetitions = 10;
    } else if (arg == "--quick") {
      p.form = "quick";
      p.repetitions = 1;
      p.object_bytes = 1 * kMB;
      p.startup_ms = 10;
      p.compute_target_ms = 10;
    } else if (absl::StartsWith(arg, "--json=")) {
      json = std::string(arg.substr(7));
    } else if (ParseDoubleFlag(arg, "--startup_ms=", &x)) {
      startup = x;
    } else if (ParseDoubleFlag(arg, "--compute_ms=", &x) && x > 0) {
      compute = x;
    } else if (ParseDoubleFlag(arg, "--repetitions=", &x) && x >= 1 &&
               x <= 1000) {
      repetitions = static_cast<int>(x);
    } else if (ParseDoubleFlag(arg, "--poll_us=", &x) && x >= 1 && x <= 1e6) {
      p.poll_us = static_cast<int64_t>(x);
    } else {
      return Usage();
    }
  }
  // Explicit values win over the form's, whatever their order.
  if (startup) p.startup_ms = *startup;
  if (compute) p.compute_target_ms = *compute;
  if (repetitions) p.repetitions = *repetitions;
  if (absl::Status s = p.Polling().Validate(); !s.ok()) {
    std::fprintf(stderr, "task_pipelining: %s\n", s.ToString().c_str());
    return 2;
  }
  InstallInterruptHandler();
  // A task that dies makes writes to its pipe fail (EPIPE), not this
  // process.
  signal(SIGPIPE, SIG_IGN);
  const auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "task_pipelining: %s\n", s.ToString().c_str());
    return 1;
  };

  // Stores that tasks re-create from proxies: no cache (every hand-over
  // reads the segment), metrics (the polls of a future's wait).
  if (absl::Status s =
          SetReceiverStoreOptions({.cache_size = 0, .metrics = true});
      !s.ok()) {
    return fail(s);
  }
  absl::StatusOr<std::unique_ptr<ShmConnector>> connector =
      ShmConnector::Create({"shm", {}});
  if (!connector.ok()) return fail(connector.status());
  StoreOptions store_options;
  store_options.cache_size = 0;
  store_options.metrics = true;
  absl::StatusOr<std::shared_ptr<Store>> store =
      Store::Create("task-pipelining", *std::move(connector), store_options);
  if (!store.ok()) return fail(store.status());
  // The segments go, whatever happens from here on.
  absl::Cleanup close_store = [&store] {
    (void)(*store)->Close(CloseOptions{.clear = true});
  };

  const double load_start = LoadAverage();
  absl::StatusOr<double> driver_compute_ms = CalibrateCompute(p);
  if (!driver_compute_ms.ok()) return fail(driver_compute_ms.status());
  absl::StatusOr<LinkCosts> link = MeasureLink(**store, p);
  if (!link.ok()) return fail(link.status());
  const double floor_ms =
      p.startup_ms + p.tasks * (link->compute_ms + link->handover_ms);

  std::printf(
      "task pipelining: a chain of %d tasks (one process each), %s results, "
      "start %.0f ms, compute %" PRId64
      " hash passes (%.1f ms in this process, target %.0f ms); shm "
      "connector, polls every %" PRId64 " us; %d repetitions\n",
      p.tasks, HumanBytes(p.object_bytes).c_str(), p.startup_ms, p.passes,
      *driver_compute_ms, p.compute_target_ms, p.poll_us, p.repetitions);
  std::printf(
      "one link in fresh task processes (fastest of %d): compute %.1f ms, "
      "hand-over %.1f ms (Set %.1f + resolve %.1f); load average %.2f\n",
      kProbeRounds, link->compute_ms, link->handover_ms, link->set_ms,
      link->resolve_ms, load_start);
  std::fflush(stdout);

  std::vector<VariantResult> results;
  for (Variant v : kVariants) results.push_back({v, {}});
  std::optional<uint64_t> final_hash;
  for (int rep = 0; rep < p.repetitions; ++rep) {
    for (VariantResult& vr : results) {
      if (InterruptRequested())
        return fail(absl::CancelledError("interrupted"));
      absl::StatusOr<Run> r = RunVariant(vr.variant, p, **store);
      if (!r.ok()) {
        return fail(Annotate(r.status(), Name(vr.variant)));
      }
      // Every run computes the same chain: the same last hash.
      if (final_hash.has_value() && *final_hash != r->final_hash) {
        return fail(absl::DataLossError(
            absl::StrCat(Name(vr.variant),
                         ": the last result's hash differs from the "
                         "earlier runs'")));
      }
      final_hash = r->final_hash;
      vr.runs.push_back(*std::move(r));
    }
  }

  const double load_end = LoadAverage();
  const double base = Median(results[0].makespans());
  const double piped = Median(results[2].makespans());
  const double reduction = base > 0 ? (1 - piped / base) * 100 : 0;
  std::printf("%-26s %11s %17s %13s %9s\n", "variant", "median ms", "range ms",
              "vs sequential", "/ floor");
  for (const VariantResult& vr : results) {
    const std::vector<double> m = vr.makespans();
    const double med = Median(m);
    std::printf("%-26s %11.1f %17s %12.1f%% %9.2f\n", Label(vr.variant), med,
                absl::StrCat(Ms(*std::min_element(m.begin(), m.end())), "-",
                             Ms(*std::max_element(m.begin(), m.end())))
                    .c_str(),
                (med / base - 1) * 100, med / floor_ms);
  }
  std::printf(
      "floor = start + %d x (compute + hand-over) = %.0f + %d x (%.1f + %.2f) "
      "= %.1f ms\n",
      p.tasks, p.startup_ms, p.tasks, link->compute_ms, link->handover_ms,
      floor_ms);
  std::printf(
      "pipelined vs sequential without proxies: %.1f%% shorter (the paper: "
      "~%.0f%%)\n",
      reduction, kPaperReductionPct);
  const Run& mp = results[2].median_run();
  std::vector<std::string> waits;
  for (size_t i = 1; i < mp.tasks.size(); ++i) {
    const TaskTimes& t = mp.tasks[i];
    waits.push_back(absl::StrCat(i, ": ", Ms(NsToMs(t.input_ns - t.ready_ns)),
                                 " ms/", t.polls));
  }
  std::printf("pipelined input waits (ms/polls, median run): %s\n",
              absl::StrJoin(waits, ", ").c_str());
  std::printf(
      "in the tasks (ms; median over tasks 1-%d of each variant's median "
      "run):\n%-26s %9s %8s %8s %10s\n",
      p.tasks - 1, "variant", "get input", "compute", "hand on", "driver gap");
  for (const VariantResult& vr : results) {
    const Phases ph = PhasesOf(vr.median_run());
    std::printf(
        "%-26s %9.1f %8.1f %8.1f %10s\n", Label(vr.variant), ph.get_input_ms,
        ph.compute_ms, ph.hand_on_ms,
        ph.driver_gap_ms >= 0 ? Ms(ph.driver_gap_ms).c_str() : "overlap");
  }

  if (!json.empty()) {
    std::ostringstream o;
    o << "{\n  \"form\": \"" << p.form << "\",\n  \"tasks\": " << p.tasks
      << ",\n  \"object_bytes\": " << p.object_bytes
      << ",\n  \"repetitions\": " << p.repetitions
      << ",\n  \"connector\": \"shm\",\n  \"startup_ms\": " << p.startup_ms
      << ",\n  \"compute_target_ms\": " << p.compute_target_ms
      << ",\n  \"compute_passes\": " << p.passes
      << ",\n  \"compute_driver_ms\": " << *driver_compute_ms
      << ",\n  \"compute_ms\": " << link->compute_ms
      << ",\n  \"handover_ms\": " << link->handover_ms
      << ",\n  \"handover_set_ms\": " << link->set_ms
      << ",\n  \"handover_resolve_ms\": " << link->resolve_ms
      << ",\n  \"probe_rounds\": " << kProbeRounds
      << ",\n  \"load_avg_start\": " << load_start
      << ",\n  \"load_avg_end\": " << load_end
      << ",\n  \"polling\": {\"interval_us\": " << p.poll_us
      << ", \"backoff_factor\": 1, \"timeout_s\": "
      << absl::ToInt64Seconds(p.poll_timeout) << "}"
      << ",\n  \"floor_ms\": " << floor_ms
      << ",\n  \"floor_formula\": \"startup_ms + tasks x (compute_ms + "
         "handover_ms)\""
      << ",\n  \"reduction_pct\": " << reduction
      << ",\n  \"paper_reduction_pct\": " << kPaperReductionPct
      << ",\n  \"variants\": [\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const VariantResult& vr = results[i];
      const std::vector<double> m = vr.makespans();
      const Phases ph = PhasesOf(vr.median_run());
      std::vector<std::string> ms;
      for (double x : m) ms.push_back(Ms(x));
      o << "    {\"variant\": \"" << Name(vr.variant) << "\", \"label\": \""
        << Label(vr.variant) << "\", \"makespan_ms\": ["
        << absl::StrJoin(ms, ", ") << "], \"median_ms\": " << Median(m)
        << ", \"min_ms\": " << *std::min_element(m.begin(), m.end())
        << ", \"max_ms\": " << *std::max_element(m.begin(), m.end())
        << ",\n       \"median_run_phases_ms\": {\"get_input\": "
        << Ms(ph.get_input_ms) << ", \"compute\": " << Ms(ph.compute_ms)
        << ", \"hand_on\": " << Ms(ph.hand_on_ms)
        << ", \"driver_gap\": " << Ms(ph.driver_gap_ms) << "}"
        << ",\n       \"median_run_tasks\": " << TasksJson(vr.median_run())
        << "}" << (i + 1 < results.size() ? "," : "") << "\n";
    }
    o << "  ]\n}\n";
    std::ofstream f(json);
    f << o.str();
    if (!f.good()) {
      std::fprintf(stderr, "task_pipelining: cannot write %s\n", json.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace proxystore::bench

int main(int argc, char** argv) { return proxystore::bench::Main(argc, argv); }
