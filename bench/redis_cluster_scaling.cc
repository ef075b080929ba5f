// The Redis Cluster scaling benchmark: latency and throughput of the "redis"
// connector against one redis-server and against a 3-master Redis Cluster
// without replicas (so the comparison is about sharding), with 1-8 client
// threads sharing one connector, as a user's workers share theirs.
//
// Both targets are private servers on this machine (testing/redis_server.h,
// testing/redis_cluster.h), started once and kept for the whole run. The
// operations, on 1 KB objects (1,000 bytes, each object's index in its first
// 8 bytes):
//   put        Put of one object
//   get        Get of one object of a pool of 10,000, put before the get rows
//   put_batch  PutBatch of 100 objects (one server: one MSET; the cluster:
//              one SET per object, pipelined per node, every node written
//              before any is read)
//   get_batch  GetBatch of 100 objects of the pool (MGET; the cluster: GETs
//              pipelined per node)
// A row: n threads share the target's connector. After an untimed warm-up
// (the connection pools fill), the threads start together and run the
// operation back to back for one repetition's time; the two targets'
// repetitions of a row alternate (single, cluster, single, ...), so that
// both see the same machine, busy or not. Per row:
//   ops/s       operations (batch rows: objects) per second of wall time,
//               from a repetition's start to the end of its last call: the
//               median over the repetitions (and their range)
//   p50, p99    latency of one call (batch rows: of the whole batch), over
//               every timed call of every thread
//   server CPU  over the target's nodes, the sum of used_cpu_user +
//               used_cpu_sys (INFO cpu: the whole redis-server process) after
//               each repetition minus before it, per object; also as cores
//               busy (server CPU seconds per second of wall time)
//   client CPU  this process's user + system time (getrusage), per object
//   commands    commands the nodes processed (INFO stats), per object; and
//               connections they accepted (0 once the pools are warm)
//   RTT         a raw PING round trip to the first node, median of 21, right
//               before each repetition (loopback on small VMs is bimodal:
//               ~15 or ~50 us here, depending on whether the other vCPU is
//               busy); the median over the repetitions
// Checks, none of them timed: every get compares the bytes it got with the
// bytes that were put; after a put row every acknowledged key (warm-up
// included) is read back and compared, and the nodes must hold exactly as
// many keys as were acknowledged; then every node is flushed (FLUSHALL
// SYNC). Before the rows, the idle nodes' own CPU use (cron, the cluster
// bus) is measured for a second: the rows' server CPU includes it.
// docs/redis_cluster_scaling.md derives from these figures how throughput
// would scale with masters on separate hosts.
//
//   redis_cluster_scaling [--full | --quick] [--json=FILE]
//
// Default: 1, 2, 4 and 8 threads, 3 repetitions of 0.25 s a row (32 rows,
// ~45 s with the servers' start and the checks); --full: 5 repetitions of
// 0.8 s; --quick: 1 and 4 threads, 1 repetition of 0.15 s. Each row prints
// "[n/N] row ... elapsed, ETA" as it ends, and a table closes the run; --json
// writes the figures tools/bench_report.py reports (rewritten after every
// row). Exit status 1 if a server cannot start, an operation fails or returns
// wrong bytes, or the run is interrupted (SIGINT, SIGTERM: the row under way
// ends, the JSON keeps the rows measured).
#include <hiredis/hiredis.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <latch>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/key.h"
#include "proxystore/base/status.h"
#include "proxystore/bench/bench_util.h"
#include "proxystore/bench/suite_reporter.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/testing/redis_cluster.h"
#include "proxystore/testing/redis_server.h"

namespace proxystore::bench {
namespace {

constexpr int64_t kObjectBytes = 1'000;
constexpr int kBatch = 100;
// The objects every row draws from: the get rows' pool (10 MB per target),
// and the values the put rows write.
constexpr int kPoolObjects = 10'000;
constexpr int kPoolBatches = kPoolObjects / kBatch;
constexpr int kMasters = 3;
// Keys per GetBatch when put rows read their keys back.
constexpr size_t kReadBackChunk = 1'000;

enum class Op { kPut, kGet, kPutBatch, kGetBatch };
// The order of the report's table; the rows run puts first (see Main).
constexpr std::array<Op, 4> kOps = {Op::kPut, Op::kGet, Op::kPutBatch,
                                    Op::kGetBatch};

const char* Name(Op op) {
  switch (op) {
    case Op::kPut:
      return "put";
    case Op::kGet:
      return "get";
    case Op::kPutBatch:
      return "put_batch";
    case Op::kGetBatch:
      return "get_batch";
  }
  return "?";
}

bool IsBatch(Op op) { return op == Op::kPutBatch || op == Op::kGetBatch; }
bool IsPut(Op op) { return op == Op::kPut || op == Op::kPutBatch; }
int ObjectsPerCall(Op op) { return IsBatch(op) ? kBatch : 1; }

struct Form {
  std::string name = "default";
  std::vector<int> threads = {1, 2, 4, 8};
  // Timed repetitions of each row, the two targets' alternating, and how
  // long each lasts.
  int reps = 3;
  double rep_s = 0.25;
  double warmup_s = 0.1;
  // How long the idle servers' own CPU use (cron, cluster bus) is measured.
  double idle_s = 1;
};

// --- Raw access to one node, behind the connector's back ---------------------

// One hiredis connection to a node, for INFO, DBSIZE, FLUSHALL and PING.
class Node {
 public:
  static absl::StatusOr<std::unique_ptr<Node>> Connect(const std::string& host,
                                                       int port) {
    std::unique_ptr<redisContext, decltype(&redisFree)> c(
        redisConnectWithTimeout(host.c_str(), port, timeval{10, 0}),
        &redisFree);
    const std::string where = absl::StrCat(host, ":", port);
    if (c == nullptr || c->err != 0) {
      return absl::UnavailableError(
          absl::StrCat("connecting to ", where, ": ",
                       c == nullptr ? "no context" : c->errstr));
    }
    if (redisSetTimeout(c.get(), timeval{30, 0}) != REDIS_OK) {
      return absl::InternalError(
          absl::StrCat("setting a timeout on the connection to ", where));
    }
    return std::make_unique<Node>(where, std::move(c));
  }

  Node(std::string where, std::unique_ptr<redisContext, decltype(&redisFree)> c)
      : where_(std::move(where)), c_(std::move(c)) {}

  const std::string& where() const { return where_; }

  // One command; its reply as text (a status, string or integer).
  absl::StatusOr<std::string> Command(const std::vector<std::string>& words) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& w : words) {
      argv.push_back(w.data());
      lens.push_back(w.size());
    }
    std::unique_ptr<redisReply, decltype(&freeReplyObject)> r(
        static_cast<redisReply*>(redisCommandArgv(
            c_.get(), static_cast<int>(argv.size()), argv.data(), lens.data())),
        &freeReplyObject);
    const std::string what =
        absl::StrCat(words.empty() ? "" : words[0], " to ", where_);
    if (r == nullptr) {
      return absl::UnavailableError(absl::StrCat(what, ": ", c_->errstr));
    }
    switch (r->type) {
      case REDIS_REPLY_STATUS:
      case REDIS_REPLY_STRING:
        return std::string(r->str, r->len);
      case REDIS_REPLY_INTEGER:
        return absl::StrCat(r->integer);
      case REDIS_REPLY_ERROR:
        return absl::InternalError(
            absl::StrCat(what, ": ", absl::string_view(r->str, r->len)));
    }
    return absl::InternalError(
        absl::StrCat(what, ": a reply of type ", r->type));
  }

 private:
  std::string where_;
  std::unique_ptr<redisContext, decltype(&redisFree)> c_;
};

// The value of `field` in an INFO reply ("field:value" lines).
absl::StatusOr<std::string> InfoField(absl::string_view info,
                                      absl::string_view field) {
  for (absl::string_view line : absl::StrSplit(info, '\n')) {
    absl::ConsumeSuffix(&line, "\r");
    if (absl::ConsumePrefix(&line, field) && absl::ConsumePrefix(&line, ":")) {
      return std::string(line);
    }
  }
  return absl::InternalError(absl::StrCat("INFO has no field ", field));
}

absl::StatusOr<double> InfoDouble(absl::string_view info,
                                  absl::string_view field) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::string v, InfoField(info, field));
  double d = 0;
  if (!absl::SimpleAtod(v, &d)) {
    return absl::InternalError(
        absl::StrCat("INFO field ", field, " is '", v, "', not a number"));
  }
  return d;
}

// What the nodes of a target have done so far, summed over the nodes.
struct ServerCounters {
  double cpu_s = 0;  // used_cpu_user + used_cpu_sys
  double commands = 0;
  double connections = 0;  // total_connections_received
};

// --- Targets -----------------------------------------------------------------

struct Target {
  std::string name;  // "single" or "cluster"
  std::unique_ptr<testing::RedisServer> server;
  std::unique_ptr<testing::RedisCluster> cluster;
  std::vector<std::unique_ptr<Node>> nodes;
  std::unique_ptr<Connector> connector;
  // The get rows' objects: pool[i] holds values[i].
  std::vector<Key> pool;

  absl::StatusOr<ServerCounters> Counters() {
    ServerCounters sum;
    for (const std::unique_ptr<Node>& n : nodes) {
      PROXYSTORE_ASSIGN_OR_RETURN(std::string cpu, n->Command({"INFO", "cpu"}));
      PROXYSTORE_ASSIGN_OR_RETURN(double user,
                                  InfoDouble(cpu, "used_cpu_user"));
      PROXYSTORE_ASSIGN_OR_RETURN(double sys, InfoDouble(cpu, "used_cpu_sys"));
      PROXYSTORE_ASSIGN_OR_RETURN(std::string stats,
                                  n->Command({"INFO", "stats"}));
      PROXYSTORE_ASSIGN_OR_RETURN(
          double commands, InfoDouble(stats, "total_commands_processed"));
      PROXYSTORE_ASSIGN_OR_RETURN(
          double connections, InfoDouble(stats, "total_connections_received"));
      sum.cpu_s += user + sys;
      sum.commands += commands;
      sum.connections += connections;
    }
    return sum;
  }

  absl::StatusOr<int64_t> Keys() {
    int64_t sum = 0;
    for (const std::unique_ptr<Node>& n : nodes) {
      PROXYSTORE_ASSIGN_OR_RETURN(std::string v, n->Command({"DBSIZE"}));
      int64_t k = 0;
      if (!absl::SimpleAtoi(v, &k)) {
        return absl::InternalError(
            absl::StrCat("DBSIZE of ", n->where(), " is '", v, "'"));
      }
      sum += k;
    }
    return sum;
  }

  absl::Status Flush() {
    for (const std::unique_ptr<Node>& n : nodes) {
      PROXYSTORE_RETURN_IF_ERROR(n->Command({"FLUSHALL", "SYNC"}).status());
    }
    return absl::OkStatus();
  }

  // Median of 21 raw PING round trips to the first node, in microseconds.
  absl::StatusOr<double> PingUs() {
    std::vector<double> us;
    for (int i = 0; i < 21; ++i) {
      const int64_t t0 = NowNs();
      PROXYSTORE_RETURN_IF_ERROR(nodes[0]->Command({"PING"}).status());
      us.push_back(static_cast<double>(NowNs() - t0) / 1e3);
    }
    return Percentile(us, 50);
  }
};

absl::StatusOr<Target> StartSingle() {
  Target t;
  t.name = "single";
  PROXYSTORE_ASSIGN_OR_RETURN(t.server, testing::RedisServer::Start());
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::unique_ptr<Node> n,
      Node::Connect(t.server->host(), t.server->port()));
  t.nodes.push_back(std::move(n));
  PROXYSTORE_ASSIGN_OR_RETURN(t.connector,
                              MakeConnector(ConnectorConfig{
                                  "redis",
                                  {{"host", t.server->host()},
                                   {"port", absl::StrCat(t.server->port())}}}));
  return t;
}

absl::StatusOr<Target> StartCluster() {
  Target t;
  t.name = "cluster";
  PROXYSTORE_ASSIGN_OR_RETURN(
      t.cluster, testing::RedisCluster::Start(
                     {.masters = kMasters, .replicas_per_master = 0}));
  for (int i = 0; i < t.cluster->size(); ++i) {
    PROXYSTORE_ASSIGN_OR_RETURN(
        std::unique_ptr<Node> n,
        Node::Connect(t.cluster->node(i).host(), t.cluster->node(i).port()));
    t.nodes.push_back(std::move(n));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      t.connector, MakeConnector(ConnectorConfig{
                       "redis", {{"cluster", t.cluster->addresses()}}}));
  return t;
}

// --- The objects -------------------------------------------------------------

// values[i]: object i, its index in the first 8 bytes, then a pattern that
// depends on it.
std::vector<SharedBytes> MakeValues() {
  std::vector<SharedBytes> values;
  values.reserve(kPoolObjects);
  for (int64_t i = 0; i < kPoolObjects; ++i) {
    std::string s(static_cast<size_t>(kObjectBytes), '\0');
    std::memcpy(s.data(), &i, sizeof i);
    for (size_t j = sizeof i; j < s.size(); ++j) {
      s[j] = static_cast<char>('a' + (i + static_cast<int64_t>(j)) % 26);
    }
    values.push_back(SharedBytes::FromString(std::move(s)));
  }
  return values;
}

absl::Status Populate(Target& t, const std::vector<SharedBytes>& values) {
  t.pool.clear();
  t.pool.reserve(values.size());
  for (int b = 0; b < kPoolBatches; ++b) {
    PROXYSTORE_ASSIGN_OR_RETURN(
        std::vector<Key> keys,
        t.connector->PutBatch(
            absl::MakeConstSpan(values).subspan(b * kBatch, kBatch)));
    t.pool.insert(t.pool.end(), keys.begin(), keys.end());
  }
  return absl::OkStatus();
}

// --- One row -----------------------------------------------------------------

// One thread's part of a phase, one cache line apart from the others'.
struct alignas(64) ThreadPart {
  std::vector<int64_t> latency_ns;  // one per call
  int64_t calls = 0;
  int64_t objects = 0;
  int64_t end_ns = 0;
  // Put rows: each acknowledged key and the index of the value put.
  std::vector<std::pair<Key, int>> put;
};

struct Phase {
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  std::vector<ThreadPart> parts;
};

absl::Status CheckGot(const std::optional<SharedBytes>& got, const Key& key,
                      const SharedBytes& want) {
  if (!got.has_value()) {
    return absl::DataLossError(absl::StrCat("key ", key.id(), " is missing"));
  }
  if (got->view() != want.view()) {
    return absl::DataLossError(absl::StrCat("key ", key.id(), ": got ",
                                            got->size(), " bytes, not the ",
                                            want.size(), " bytes put"));
  }
  return absl::OkStatus();
}

// One call of `op` by thread `t` (its i-th); adds to `part`.
absl::Status Call(Target& target, Op op, int threads, int t, int64_t i,
                  const std::vector<SharedBytes>& values, ThreadPart& part) {
  Connector& c = *target.connector;
  switch (op) {
    case Op::kPut: {
      const int v = static_cast<int>((t * 1009 + i) % kPoolObjects);
      PROXYSTORE_ASSIGN_OR_RETURN(Key key, c.Put(values[v]));
      part.put.emplace_back(std::move(key), v);
      return absl::OkStatus();
    }
    case Op::kGet: {
      const int v = static_cast<int>((t * (kPoolObjects / threads) + i * 7) %
                                     kPoolObjects);
      PROXYSTORE_ASSIGN_OR_RETURN(std::optional<SharedBytes> got,
                                  c.Get(target.pool[v]));
      return CheckGot(got, target.pool[v], values[v]);
    }
    case Op::kPutBatch: {
      const int b = static_cast<int>((t * 7 + i) % kPoolBatches);
      PROXYSTORE_ASSIGN_OR_RETURN(
          std::vector<Key> keys,
          c.PutBatch(absl::MakeConstSpan(values).subspan(b * kBatch, kBatch)));
      if (keys.size() != kBatch) {
        return absl::InternalError(absl::StrCat("PutBatch of ", kBatch,
                                                " objects returned ",
                                                keys.size(), " keys"));
      }
      for (int j = 0; j < kBatch; ++j) {
        part.put.emplace_back(std::move(keys[j]), b * kBatch + j);
      }
      return absl::OkStatus();
    }
    case Op::kGetBatch: {
      const int b = static_cast<int>((t * (kPoolBatches / threads) + i * 3) %
                                     kPoolBatches);
      const absl::Span<const Key> keys =
          absl::MakeConstSpan(target.pool).subspan(b * kBatch, kBatch);
      PROXYSTORE_ASSIGN_OR_RETURN(std::vector<std::optional<SharedBytes>> got,
                                  c.GetBatch(keys));
      if (got.size() != kBatch) {
        return absl::InternalError(absl::StrCat(
            "GetBatch of ", kBatch, " keys returned ", got.size(), " results"));
      }
      for (int j = 0; j < kBatch; ++j) {
        PROXYSTORE_RETURN_IF_ERROR(
            CheckGot(got[j], keys[j], values[b * kBatch + j]));
      }
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown operation");
}

// `threads` threads run `op` back to back for `seconds`, started together.
absl::StatusOr<Phase> RunPhase(Target& target, Op op, int threads,
                               double seconds,
                               const std::vector<SharedBytes>& values) {
  Phase phase;
  phase.parts.resize(static_cast<size_t>(threads));
  for (ThreadPart& p : phase.parts) p.latency_ns.reserve(1 << 14);
  FirstError error;
  std::latch start(1);
  int64_t deadline = 0;  // Written before `start` opens.
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ThreadPart& part = phase.parts[static_cast<size_t>(t)];
      start.wait();
      int64_t now = NowNs();
      for (int64_t i = 0; now < deadline; ++i) {
        if (error.has() || Interrupted()) break;
        const int64_t t0 = now;
        absl::Status s = Call(target, op, threads, t, i, values, part);
        now = NowNs();
        if (!s.ok()) {
          error.Set(
              absl::StrCat(target.name, " ", Name(op), ": ", s.ToString()));
          break;
        }
        part.latency_ns.push_back(now - t0);
        ++part.calls;
        part.objects += ObjectsPerCall(op);
      }
      part.end_ns = now;
    });
  }
  phase.start_ns = NowNs();
  deadline = phase.start_ns + static_cast<int64_t>(seconds * 1e9);
  start.count_down();
  for (std::thread& th : pool) th.join();
  phase.end_ns = phase.start_ns;
  for (const ThreadPart& p : phase.parts) {
    phase.end_ns = std::max(phase.end_ns, p.end_ns);
  }
  if (error.has()) return absl::InternalError(error.message());
  if (Interrupted()) return absl::CancelledError("interrupted");
  return phase;
}

// After a put row: every acknowledged key reads back as the bytes put, and
// the nodes hold exactly those keys. Then the nodes are emptied.
absl::Status CheckPutsAndFlush(Target& target,
                               const std::vector<const Phase*>& phases,
                               const std::vector<SharedBytes>& values) {
  std::vector<const std::pair<Key, int>*> put;
  for (const Phase* phase : phases) {
    for (const ThreadPart& p : phase->parts) {
      for (const std::pair<Key, int>& kv : p.put) put.push_back(&kv);
    }
  }
  std::vector<Key> keys;
  for (size_t i = 0; i < put.size(); i += kReadBackChunk) {
    const size_t n = std::min(kReadBackChunk, put.size() - i);
    keys.clear();
    for (size_t j = 0; j < n; ++j) keys.push_back(put[i + j]->first);
    PROXYSTORE_ASSIGN_OR_RETURN(std::vector<std::optional<SharedBytes>> got,
                                target.connector->GetBatch(keys));
    if (got.size() != n) {
      return absl::InternalError(absl::StrCat("read-back GetBatch of ", n,
                                              " keys returned ", got.size()));
    }
    for (size_t j = 0; j < n; ++j) {
      PROXYSTORE_RETURN_IF_ERROR(
          Annotate(CheckGot(got[j], keys[j], values[put[i + j]->second]),
                   "reading back a put"));
    }
  }
  PROXYSTORE_ASSIGN_OR_RETURN(int64_t held, target.Keys());
  if (held != static_cast<int64_t>(put.size())) {
    return absl::DataLossError(absl::StrCat(target.name, " holds ", held,
                                            " keys after ", put.size(),
                                            " acknowledged puts"));
  }
  return target.Flush();
}

struct Row {
  std::string target;
  Op op = Op::kPut;
  int threads = 0;
  int reps = 0;
  int64_t calls = 0;
  int64_t objects = 0;
  double seconds = 0;  // the timed repetitions' wall time, summed
  // Objects per second: the median over the repetitions, and their range.
  double rate = 0;
  double rate_min = 0;
  double rate_max = 0;
  double p50_us = 0;
  double p99_us = 0;
  double server_cpu_s = 0;
  double client_cpu_s = 0;
  double commands = 0;
  double connections = 0;  // connections the nodes accepted
  double rtt_us = 0;       // median over the repetitions

  double server_us_per_object() const { return server_cpu_s * 1e6 / objects; }
  double client_us_per_object() const { return client_cpu_s * 1e6 / objects; }
};

double ProcessCpuS() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// One target's part of a row while it runs: its phases (the warm-up first),
// and what the timed ones measured.
struct RowRun {
  Target* target = nullptr;
  std::vector<Phase> phases;
  std::vector<double> us;     // every timed call's latency
  std::vector<double> rates;  // objects/s of each timed repetition
  std::vector<double> rtts;
  Row row;
};

absl::Status WarmUp(RowRun& run, Op op, int threads, const Form& form,
                    const std::vector<SharedBytes>& values) {
  run.row.target = run.target->name;
  run.row.op = op;
  run.row.threads = threads;
  PROXYSTORE_ASSIGN_OR_RETURN(
      Phase warmup, RunPhase(*run.target, op, threads, form.warmup_s, values));
  run.phases.push_back(std::move(warmup));
  return absl::OkStatus();
}

// One timed repetition, between reads of the servers' and this process's
// CPU time.
absl::Status TimeOnce(RowRun& run, Op op, int threads, const Form& form,
                      const std::vector<SharedBytes>& values) {
  Target& target = *run.target;
  Row& row = run.row;
  PROXYSTORE_ASSIGN_OR_RETURN(double rtt, target.PingUs());
  PROXYSTORE_ASSIGN_OR_RETURN(ServerCounters s0, target.Counters());
  const double c0 = ProcessCpuS();
  PROXYSTORE_ASSIGN_OR_RETURN(
      Phase timed, RunPhase(target, op, threads, form.rep_s, values));
  const double c1 = ProcessCpuS();
  PROXYSTORE_ASSIGN_OR_RETURN(ServerCounters s1, target.Counters());
  int64_t objects = 0;
  for (const ThreadPart& p : timed.parts) {
    row.calls += p.calls;
    objects += p.objects;
    for (int64_t ns : p.latency_ns) {
      run.us.push_back(static_cast<double>(ns) / 1e3);
    }
  }
  const double seconds =
      static_cast<double>(timed.end_ns - timed.start_ns) / 1e9;
  run.rtts.push_back(rtt);
  run.rates.push_back(static_cast<double>(objects) / seconds);
  ++row.reps;
  row.objects += objects;
  row.seconds += seconds;
  row.server_cpu_s += s1.cpu_s - s0.cpu_s;
  row.client_cpu_s += c1 - c0;
  row.commands += s1.commands - s0.commands;
  row.connections += s1.connections - s0.connections;
  run.phases.push_back(std::move(timed));
  return absl::OkStatus();
}

// After the last repetition: the put checks (and flush), the statistics.
absl::StatusOr<Row> Finish(RowRun& run,
                           const std::vector<SharedBytes>& values) {
  Row& row = run.row;
  if (IsPut(row.op)) {
    std::vector<const Phase*> phases;
    for (const Phase& p : run.phases) phases.push_back(&p);
    PROXYSTORE_RETURN_IF_ERROR(CheckPutsAndFlush(*run.target, phases, values));
  }
  if (row.calls == 0) {
    return absl::InternalError("no call ended within the row");
  }
  row.p50_us = Percentile(run.us, 50);
  row.p99_us = Percentile(run.us, 99);
  row.rtt_us = Percentile(run.rtts, 50);
  row.rate_min = *std::min_element(run.rates.begin(), run.rates.end());
  row.rate_max = *std::max_element(run.rates.begin(), run.rates.end());
  row.rate = Percentile(run.rates, 50);
  return row;
}

// --- Output ------------------------------------------------------------------

std::string Clock(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60),
                static_cast<long long>(s % 60));
  return buf;
}

std::string Label(Op op) {
  return IsBatch(op) ? absl::StrCat(Name(op), " ", kBatch, "x",
                                    HumanBytes(kObjectBytes))
                     : absl::StrCat(Name(op), " ", HumanBytes(kObjectBytes));
}

std::string Fixed(double x, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

std::string CpuModel() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (absl::StartsWith(line, "model name")) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
  }
  return "?";
}

double LoadAverage() {
  std::ifstream f("/proc/loadavg");
  double load = -1;
  if (!(f >> load)) return -1;
  return load;
}

struct RunInfo {
  std::string form;
  int reps = 0;
  double rep_s = 0;
  double warmup_s = 0;
  std::string date;
  std::string cpu_model;
  int cpus = 0;
  std::string redis_version;
  double load_avg_start = -1;
  double load_avg_end = -1;
  double cluster_start_s = 0;
  // Cores the idle nodes of each target use (summed over the nodes).
  double single_idle_cores = 0;
  double cluster_idle_cores = 0;
  bool complete = false;
};

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

// Written to FILE.tmp, then renamed: the file is whole whenever the run ends.
absl::Status WriteJson(const std::string& path, const RunInfo& info,
                       const std::vector<Row>& rows) {
  std::ostringstream o;
  o << "{\n  \"form\": " << JsonString(info.form)
    << ",\n  \"complete\": " << (info.complete ? "true" : "false")
    << ",\n  \"date\": " << JsonString(info.date)
    << ",\n  \"cpu_model\": " << JsonString(info.cpu_model)
    << ",\n  \"cpus\": " << info.cpus
    << ",\n  \"redis_version\": " << JsonString(info.redis_version)
    << ",\n  \"load_avg_start\": " << info.load_avg_start
    << ",\n  \"load_avg_end\": " << info.load_avg_end
    << ",\n  \"object_bytes\": " << kObjectBytes << ",\n  \"batch\": " << kBatch
    << ",\n  \"pool_objects\": " << kPoolObjects
    << ",\n  \"reps\": " << info.reps << ",\n  \"rep_s\": " << info.rep_s
    << ",\n  \"warmup_s\": " << info.warmup_s
    << ",\n  \"targets\": {\"single\": {\"nodes\": 1, \"idle_cores\": "
    << info.single_idle_cores << "}, \"cluster\": {\"nodes\": " << kMasters
    << ", \"masters\": " << kMasters
    << ", \"idle_cores\": " << info.cluster_idle_cores
    << ", \"replicas_per_master\": 0, \"start_s\": " << info.cluster_start_s
    << "}},\n  \"rows\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    o << (i ? "," : "") << "\n    {\"target\": \"" << r.target
      << "\", \"op\": \"" << Name(r.op) << "\", \"threads\": " << r.threads
      << ", \"calls\": " << r.calls << ", \"objects\": " << r.objects
      << ", \"reps\": " << r.reps << ", \"seconds\": " << r.seconds
      << ", \"objects_per_s\": " << r.rate
      << ", \"objects_per_s_min\": " << r.rate_min
      << ", \"objects_per_s_max\": " << r.rate_max
      << ",\n     \"p50_us\": " << r.p50_us << ", \"p99_us\": " << r.p99_us
      << ",\n     \"server_cpu_s\": " << r.server_cpu_s
      << ", \"client_cpu_s\": " << r.client_cpu_s
      << ", \"server_commands\": " << r.commands
      << ", \"server_connections\": " << r.connections
      << ", \"rtt_us\": " << r.rtt_us << "}";
  }
  o << "\n  ]\n}\n";
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << o.str();
    f.flush();
    if (!f.good())
      return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

const Row* Find(const std::vector<Row>& rows, const std::string& target, Op op,
                int threads) {
  for (const Row& r : rows) {
    if (r.target == target && r.op == op && r.threads == threads) return &r;
  }
  return nullptr;
}

void PrintTable(const std::vector<Row>& rows, const Form& form) {
  std::printf("\n%-19s %7s %12s %12s %6s %17s %17s %16s %16s\n", "op",
              "threads", "single /s", "cluster /s", "ratio", "single p50/p99",
              "cluster p50/p99", "server CPU/obj", "client CPU/obj");
  for (Op op : kOps) {
    for (int n : form.threads) {
      const Row* s = Find(rows, "single", op, n);
      const Row* c = Find(rows, "cluster", op, n);
      if (s == nullptr || c == nullptr) continue;
      std::printf(
          "%-19s %7d %12s %12s %6s %17s %17s %16s %16s\n", Label(op).c_str(), n,
          HumanRate(s->rate).c_str(), HumanRate(c->rate).c_str(),
          Fixed(c->rate / s->rate, 2).c_str(),
          absl::StrCat(HumanTime(s->p50_us), "/", HumanTime(s->p99_us)).c_str(),
          absl::StrCat(HumanTime(c->p50_us), "/", HumanTime(c->p99_us)).c_str(),
          absl::StrCat(Fixed(s->server_us_per_object(), 1), " | ",
                       Fixed(c->server_us_per_object(), 1), " us")
              .c_str(),
          absl::StrCat(Fixed(s->client_us_per_object(), 1), " | ",
                       Fixed(c->client_us_per_object(), 1), " us")
              .c_str());
    }
  }
  std::printf(
      "(/s: operations per second, objects for batches; p50/p99: one call; "
      "CPU per object: single | cluster, server summed over its nodes)\n");
}

int Main(int argc, char** argv) {
  Form form;
  std::string json;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--full") {
      form.name = "full";
      form.reps = 5;
      form.rep_s = 0.8;
      form.warmup_s = 0.25;
    } else if (arg == "--quick") {
      form.name = "quick";
      form.threads = {1, 4};
      form.reps = 1;
      form.rep_s = 0.15;
      form.warmup_s = 0.05;
      form.idle_s = 0.2;
    } else if (absl::StartsWith(arg, "--json=")) {
      json = std::string(arg.substr(7));
    } else {
      std::fprintf(
          stderr,
          "usage: redis_cluster_scaling [--full | --quick] [--json=FILE]\n");
      return 2;
    }
  }
  InstallInterruptHandlers();
  const auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "redis_cluster_scaling: %s\n", s.ToString().c_str());
    return 1;
  };

  RunInfo info;
  info.form = form.name;
  info.reps = form.reps;
  info.rep_s = form.rep_s;
  info.warmup_s = form.warmup_s;
  info.date = absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", absl::Now(),
                               absl::LocalTimeZone());
  info.cpu_model = CpuModel();
  info.cpus = static_cast<int>(std::thread::hardware_concurrency());
  info.load_avg_start = LoadAverage();

  absl::StatusOr<Target> single = StartSingle();
  if (!single.ok()) return fail(Annotate(single.status(), "one server"));
  const int64_t t0 = NowNs();
  absl::StatusOr<Target> cluster = StartCluster();
  if (!cluster.ok()) return fail(Annotate(cluster.status(), "the cluster"));
  info.cluster_start_s = static_cast<double>(NowNs() - t0) / 1e9;
  absl::StatusOr<std::string> server_info =
      single->nodes[0]->Command({"INFO", "server"});
  if (!server_info.ok()) return fail(server_info.status());
  info.redis_version =
      InfoField(*server_info, "redis_version").value_or(std::string("?"));
  const std::vector<SharedBytes> values = MakeValues();
  std::array<Target*, 2> targets = {&*single, &*cluster};
  {
    // What the servers use doing nothing, for comparison with the rows'
    // figures (which include it).
    absl::StatusOr<ServerCounters> s0 = single->Counters();
    absl::StatusOr<ServerCounters> c0 = cluster->Counters();
    const int64_t i0 = NowNs();
    absl::SleepFor(absl::Seconds(form.idle_s));
    absl::StatusOr<ServerCounters> s1 = single->Counters();
    absl::StatusOr<ServerCounters> c1 = cluster->Counters();
    const double idle = static_cast<double>(NowNs() - i0) / 1e9;
    for (const auto* c : {&s0, &c0, &s1, &c1}) {
      if (!c->ok()) return fail(Annotate(c->status(), "idle CPU"));
    }
    info.single_idle_cores = (s1->cpu_s - s0->cpu_s) / idle;
    info.cluster_idle_cores = (c1->cpu_s - c0->cpu_s) / idle;
  }

  std::printf(
      "redis cluster scaling: the redis connector against one redis-server "
      "vs a %d-master Redis Cluster (no replicas; started in %.1f s), all "
      "on this machine (%d CPUs, %s; redis %s); %s objects, batches of %d; "
      "threads share one connector; a row: %.2f s of warm-up, then %d x "
      "%.2f s, alternating with the other target's; "
      "idle servers use %.4f (single) and %.4f (cluster) cores\n",
      kMasters, info.cluster_start_s, info.cpus, info.cpu_model.c_str(),
      info.redis_version.c_str(), HumanBytes(kObjectBytes).c_str(), kBatch,
      form.warmup_s, form.reps, form.rep_s, info.single_idle_cores,
      info.cluster_idle_cores);
  std::fflush(stdout);

  // Puts first (each put row's keys are flushed after it is checked), then
  // the pool the get rows read.
  const std::array<Op, 4> run_order = {Op::kPut, Op::kPutBatch, Op::kGet,
                                       Op::kGetBatch};
  const int planned =
      static_cast<int>(run_order.size() * form.threads.size() * targets.size());
  const int digits = static_cast<int>(std::to_string(planned).size());
  std::vector<Row> rows;
  const int64_t rows_start = NowNs();
  for (Op op : run_order) {
    if (op == Op::kGet) {
      for (Target* t : targets) {
        if (absl::Status s = Populate(*t, values); !s.ok()) {
          return fail(Annotate(s, absl::StrCat(t->name, ": the get pool")));
        }
      }
    }
    for (int n : form.threads) {
      // Both targets warm up, then their timed repetitions alternate.
      std::array<RowRun, 2> runs;
      absl::Status status;
      const auto where = [&](const RowRun& run) {
        return absl::StrCat(run.target->name, " ", Label(op), " ", n, "t");
      };
      for (size_t k = 0; k < runs.size() && status.ok(); ++k) {
        runs[k].target = targets[k];
        status = Annotate(WarmUp(runs[k], op, n, form, values), where(runs[k]));
      }
      for (int rep = 0; rep < form.reps && status.ok(); ++rep) {
        for (size_t k = 0; k < runs.size() && status.ok(); ++k) {
          status =
              Annotate(TimeOnce(runs[k], op, n, form, values), where(runs[k]));
        }
      }
      for (RowRun& run : runs) {
        absl::StatusOr<Row> r =
            status.ok() ? Finish(run, values) : absl::StatusOr<Row>(status);
        if (!r.ok()) {
          info.load_avg_end = LoadAverage();
          if (!json.empty()) (void)WriteJson(json, info, rows);
          return fail(status.ok() ? Annotate(r.status(), where(run))
                                  : r.status());
        }
        rows.push_back(*std::move(r));
        const Row& row = rows.back();
        const double elapsed = static_cast<double>(NowNs() - rows_start) / 1e9;
        const int done = static_cast<int>(rows.size());
        std::string line = absl::StrCat(
            "[", std::string(digits - std::to_string(done).size(), ' '), done,
            "/", planned, "] ", where(run));
        line.resize(std::max<size_t>(line.size(), 44), ' ');
        const std::string eta =
            done < planned
                ? absl::StrCat(", ETA ",
                               Clock(elapsed / done * (planned - done)))
                : "";
        const std::string range =
            row.reps > 1 ? absl::StrCat(" (", HumanRate(row.rate_min), "-",
                                        HumanRate(row.rate_max), ")")
                         : "";
        std::printf(
            "%s %8s %s/s%s  p50 %-8s p99 %-8s server %5.1f us/obj (%.2f "
            "cores)  client %5.1f us/obj  %4.2f cmd/obj  RTT %s | %s "
            "elapsed%s\n",
            line.c_str(), HumanRate(row.rate).c_str(),
            IsBatch(op) ? "obj" : "ops", range.c_str(),
            HumanTime(row.p50_us).c_str(), HumanTime(row.p99_us).c_str(),
            row.server_us_per_object(), row.server_cpu_s / row.seconds,
            row.client_us_per_object(),
            row.commands / static_cast<double>(row.objects),
            HumanTime(row.rtt_us).c_str(), Clock(elapsed).c_str(), eta.c_str());
        std::fflush(stdout);
        if (!json.empty()) {
          if (absl::Status s = WriteJson(json, info, rows); !s.ok()) {
            return fail(s);
          }
        }
      }
    }
  }
  PrintTable(rows, form);
  for (Target* t : targets) {
    if (absl::Status s = t->connector->Close(); !s.ok()) return fail(s);
  }
  info.complete = true;
  info.load_avg_end = LoadAverage();
  if (!json.empty()) {
    if (absl::Status s = WriteJson(json, info, rows); !s.ok()) return fail(s);
  }
  return 0;
}

}  // namespace
}  // namespace proxystore::bench

int main(int argc, char** argv) { return proxystore::bench::Main(argc, argv); }
