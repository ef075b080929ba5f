// The proxystore-cpp benchmark suite.
//
// Rows are named  <group>/<operation>/<connector>/<size>  (bench_util.h says
// what each row reports). Groups:
//   floor/...  the physical floors, measured in the same run in turns with
//              the rows they are compared with (RegisterBlock; the third
//              part names the connector block they belong to): a bare
//              absl::flat_hash_map, memcpy, the same map behind a lock handing
//              out shared objects (shared_map_*: the local rows' contract
//              floors), raw file write/read, raw shm write and mmap, raw
//              hiredis SET/GET and pipelined batches (over TCP, or the Unix
//              socket for redis_unix), FlatBuffers factory build/verify.
//   store/...  the same operations through Store and Proxy.
//   threads/<op>/<connector>/<n>t
//              n = 1, 2, 4, 8 threads sharing ONE store (or one floor
//              structure) on 1 KB objects: get_hit, get, put and
//              proxy_resolve, and before them, with the same threads, their
//              floors (map_lookup, map_get, map_put for local; shm_read,
//              shm_write for shm; redis_get, redis_set for redis; see
//              "Thread rows" below). Rows report aggregate ops_per_s.
//              Connectors local, shm and redis only.
// Rows run connector by connector; within a connector, size by size, each
// size's floors first, then the thread rows (thread count by thread count,
// each count's floors first). tools/bench_report.py turns the JSON into the
// report (ratios to the floors, target verdicts, pictures); tools/bench.sh runs
// everything.
//
// Flags (before Google Benchmark's own; the selection flags also read
// $PROXYSTORE_BENCH_CONNECTORS and $PROXYSTORE_BENCH_SIZES):
//   --connectors=local,file,shm,redis,redis_unix,multi
//   --sizes=100,10000,1000000,100000000
//   --filter=REGEX     only rows whose name matches (-REGEX: all others);
//                      --benchmark_filter is read the same way
//   (default)          3 repetitions per row, 7 for rows with a speed target
//                      and their floors (3 at 100 MB); a repetition times
//                      >= 3 batches and >= 20 ms of work, or ends after
//                      ~0.3 s of wall time (setup included) once it has 2
//   --full             5 and 9 repetitions (at every size) of >= 10 batches
//                      and >= 0.25 s of work (>= 3 batches after 10 s)
//   --quick            1 repetition, ~1 ms each (CI's smoke test)
//   (thread rows)      the form's repetitions (no thread row has a speed
//                      target) of rounds of ~8 ms of wall time (quick:
//                      0.5 ms, full: 20 ms), sized by untimed warm-up
//                      rounds; a repetition times >= 3 rounds and >= 30 ms
//                      (quick: 2 rounds, 2 ms; full: 10 rounds, 250 ms);
//                      --min_time leaves them as they are
//   --repetitions=N, --min_time=SECONDS  override the form's values
//                      (--benchmark_repetitions/--benchmark_min_time too)
//   --json=PATH        the JSON (also --benchmark_out=PATH), rewritten after
//                      every row
//   --tmp_dir=DIR      where temporary files go (default $TMPDIR or /tmp)
// The suite starts its own private redis-server on a free loopback port (and
// a Unix socket) when a redis connector is selected, and removes every
// temporary file, segment and key it made. Redis rows and floors also
// measure a raw PING round trip before and after they run (counters ping_us,
// ping_after_us): loopback round trips on small VMs are bimodal, and a ratio
// between a row and a floor measured in different modes means nothing.
// SIGINT/SIGTERM end the row under way and skip the rest; the JSON then
// holds every row finished so far.
#include <fcntl.h>
#include <malloc.h>
#include <regex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "benchmark/benchmark.h"
#include "hiredis/hiredis.h"
#include "proxystore/bench/bench_util.h"
#include "proxystore/bench/blob_generated.h"
#include "proxystore/bench/suite_reporter.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/multi/multi_connector.h"
#include "proxystore/serializer/serializer.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/redis_server.h"

namespace proxystore::bench {
namespace {

using Blob = proxystore::bench::fb::Blob;

// --- Suite environment ------------------------------------------------------

// How long and how often rows are measured.
struct Form {
  const char* name;
  int reps_info;     // Repetitions of a row without a speed target.
  int reps_verdict;  // ... of a row with one, and of its floor.
  int reps_large;    // ... of any row at >= 10 MB (0: as above).
  Budget budget;
  // Resolves per repetition of the *_remote rows, by object size.
  int64_t resolves_small, resolves_1mb, resolves_100mb;
  // Thread rows: the wall time one round aims at, and how many rounds a
  // repetition times (bench_util.h RunThreaded; a round counts as a batch).
  double thread_round_s;
  Budget thread_budget;
};

constexpr Form kQuick = {"quick", 1, 1, 0,      {0.001, 2, 1'000'000, 0.05, 2},
                         10,      5, 2, 0.0005, {0.002, 2, 1'000'000, 0.02, 1}};
constexpr Form kDefault = {
    "default", 3,  7, 3,     {0.02, 3, 1'000'000, 0.3, 2},
    100,       20, 2, 0.008, {0.03, 3, 1'000'000, 0.25, 2}};
constexpr Form kFull = {"full", 5,   9, 0,    {0.25, 10, 1'000'000, 10.0, 3},
                        200,    100, 8, 0.02, {0.25, 10, 1'000'000, 2.0, 3}};

struct Hiredis;

// --filter: a POSIX extended regex searched in row names ("-REGEX": rows
// that do not match).
class Filter {
 public:
  // Null (and `error` set) if `spec` is not a valid regex.
  static std::unique_ptr<Filter> Parse(const std::string& spec,
                                       std::string* error) {
    auto f = std::make_unique<Filter>();
    f->negated_ = !spec.empty() && spec[0] == '-';
    const std::string re = f->negated_ ? spec.substr(1) : spec;
    const int rc = regcomp(&f->re_, re.c_str(), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char buf[256];
      regerror(rc, &f->re_, buf, sizeof(buf));
      *error = buf;
      return nullptr;
    }
    f->compiled_ = true;
    return f;
  }
  Filter() = default;
  Filter(const Filter&) = delete;
  Filter& operator=(const Filter&) = delete;
  ~Filter() {
    if (compiled_) regfree(&re_);
  }
  bool Matches(const std::string& name) const {
    return (regexec(&re_, name.c_str(), 0, nullptr, 0) == 0) != negated_;
  }

 private:
  regex_t re_{};
  bool compiled_ = false;
  bool negated_ = false;
};

struct Suite {
  std::vector<std::string> connectors;
  std::vector<int64_t> sizes;
  Form form = kDefault;
  std::unique_ptr<Filter> filter;
  std::string tmp_root;
  std::unique_ptr<testing::RedisServer> redis;
  std::unique_ptr<Hiredis> ping_tcp;
  std::unique_ptr<Hiredis> ping_unix;
  std::vector<PlannedRow> plan;
  // Rows of the block being added (RegisterBlock registers them), and the
  // block's name.
  struct PendingRow {
    std::string name;
    int reps;
    std::function<void(benchmark::State&)> fn;
  };
  std::vector<PendingRow> pending;
  std::string block;
};

Suite& TheSuite() {
  static Suite suite;
  return suite;
}

void RemoveTmpRoot() {
  Suite& s = TheSuite();
  if (s.tmp_root.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(s.tmp_root, ec);
  s.tmp_root.clear();
}

// A failed step ends the run (a row that cannot do its setup measures
// nothing). After an interrupt a failure is expected (a terminal's Ctrl-C
// also reaches redis-server): end quietly, as interrupted.
[[noreturn]] void Die(const std::string& what) {
  RemoveTmpRoot();
  if (Interrupted()) std::exit(130);
  std::fprintf(stderr, "proxystore_bench: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T Check(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Die(absl::StrCat(what, ": ", v.status().ToString()));
  return *std::move(v);
}
void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) Die(absl::StrCat(what, ": ", s.ToString()));
}

std::string SizeName(int64_t n) {
  if (n >= 1'000'000 && n % 1'000'000 == 0)
    return absl::StrCat(n / 1'000'000, "MB");
  if (n >= 1'000 && n % 1'000 == 0) return absl::StrCat(n / 1'000, "KB");
  return absl::StrCat(n, "B");
}

// A fresh connector config of the named kind: its own directory, namespace
// or key prefix, so rows never see each other's data.
ConnectorConfig ConnectorFor(const std::string& name) {
  Suite& s = TheSuite();
  const std::string id = NewObjectId().substr(0, 12);
  if (name == "local") return {"local", {}};
  if (name == "file") {
    return {"file", {{"directory", absl::StrCat(s.tmp_root, "/file-", id)}}};
  }
  if (name == "shm") return {"shm", {{"namespace", id}}};
  if (name == "redis") {
    return {"redis",
            {{"host", "127.0.0.1"},
             {"port", absl::StrCat(s.redis->port())},
             {"prefix", absl::StrCat("bench:", id, ":")}}};
  }
  if (name == "redis_unix") {
    return {"redis",
            {{"unix_socket", s.redis->unix_socket()},
             {"prefix", absl::StrCat("bench:", id, ":")}}};
  }
  if (name == "multi") {
    // Small objects (<= 1 MB) to shared memory, larger ones to files; both
    // cross processes.
    std::vector<MultiConnector::Entry> entries;
    Policy small;
    small.max_size_bytes = 1'000'000;
    Policy large;
    large.min_size_bytes = 1'000'001;
    entries.push_back(
        {"small", Check(MakeConnector(ConnectorFor("shm")), "shm"), small});
    entries.push_back(
        {"large", Check(MakeConnector(ConnectorFor("file")), "file"), large});
    auto multi = Check(MultiConnector::Create(std::move(entries)), "multi");
    return multi->Config();
  }
  Die(absl::StrCat("unknown connector ", name));
}

std::shared_ptr<Store> MakeStore(const std::string& connector,
                                 StoreOptions options = {}) {
  auto c = Check(MakeConnector(ConnectorFor(connector)), "MakeConnector");
  return Check(
      Store::Create(absl::StrCat("bench-", connector, "-", NewObjectId()),
                    std::move(c), std::move(options)),
      "Store::Create");
}

StoreOptions NoCache() {
  StoreOptions o;
  o.cache_size = 0;
  return o;
}

// Closes with clear so the row leaves nothing behind.
struct StoreCloser {
  std::shared_ptr<Store> store;
  ~StoreCloser() {
    if (store) (void)store->Close({.clear = true});
  }
};

// Expected cost of one small operation, for batching (bench_util.h
// BatchFor).
int64_t ExpectedNs(const std::string& connector, int64_t size) {
  int64_t base = connector == "local"  ? 100
                 : connector == "shm"  ? 15'000
                 : connector == "file" ? 10'000
                                       : 30'000;
  return base + size / 10;  // ~10 GB/s copies.
}

// Expected seconds of one operation of any size, for the ETA only.
double ExpectedSeconds(const std::string& connector, int64_t size) {
  const bool redis = connector.rfind("redis", 0) == 0;
  const double base_us = connector == "local" ? 0.2 : redis ? 40 : 10;
  // Page faults on fresh buffers make large objects cost more than copies.
  const double ns_per_byte = redis ? 5 : 2;
  return base_us * 1e-6 + static_cast<double>(size) * ns_per_byte * 1e-9;
}

// --- Floors -------------------------------------------------------------

void FloorMemcpy(benchmark::State& state, int64_t size) {
  const std::string& src = SharedRandomBytes(size);
  std::string dst(size, '\0');
  RunTimed(
      state, BatchFor(20 + size / 10),
      [&](int64_t) {
        std::memcpy(dst.data(), src.data(), src.size());
        benchmark::ClobberMemory();
      },
      size);
}

// A put into a bare map under a freshly minted key (any store has to mint
// one, and hand it to the caller while the map keeps its own): NewObjectId()
// + copy-in, and the id kept by the caller, as the store rows keep their
// keys. The previous batch is erased untimed, key by key (see
// FloorSharedMapPut).
void FloorMapPut(benchmark::State& state, int64_t size) {
  const std::string& src = SharedRandomBytes(size);
  absl::flat_hash_map<std::string, std::string> map;
  std::vector<std::string> ids;
  const int64_t batch = BatchFor(60 + size / 10);
  RunTimed(
      state, batch,
      [&](int64_t i) {
        if (i % batch == 0) {
          for (const std::string& id : ids) map.erase(id);
          ids.clear();
        }
      },
      [&](int64_t) {
        std::string id = NewObjectId();
        ids.push_back(id);
        map.emplace(std::move(id), src);
      },
      size);
}

void FloorMapGet(benchmark::State& state, int64_t size) {
  absl::flat_hash_map<std::string, std::string> map;
  std::string key = NewObjectId();
  map.emplace(key, SharedRandomBytes(size));
  RunTimed(
      state, BatchFor(50 + size / 10),
      [&](int64_t) {
        std::string out = map.find(key)->second;
        benchmark::DoNotOptimize(out.data());
      },
      size);
}

void FloorMapLookup(benchmark::State& state) {
  absl::flat_hash_map<std::string, std::shared_ptr<const std::string>> map;
  std::string key = NewObjectId();
  map.emplace(key, std::make_shared<const std::string>(RandomBytes(100)));
  RunTimed(state, BatchFor(25), [&](int64_t) {
    std::shared_ptr<const std::string> v = map.find(key)->second;
    benchmark::DoNotOptimize(v.get());
  });
}

// The contract floors of the local rows: what any map shared by threads
// must do at least to give what Store::Get and Store::Put promise, with
// nothing else of the store's (no envelope, no key object, no metrics).
// A get hands out an object the caller may keep while other threads put
// and evict (a reader lock around the lookup, the copy in a freshly
// allocated shared object); a put publishes under the writer lock a
// buffer that readers may go on holding after it is evicted (a shared
// buffer), and hands the caller a copy of the key; a cache hit takes one lock
// around the lookup (the LruCache locks only the slot of the CPU it runs on).
// The bare floors above are the same operations without the lock and without
// the shared result; the report shows the ratios to both.
void FloorSharedMapPut(benchmark::State& state, int64_t size) {
  const std::string& src = SharedRandomBytes(size);
  std::shared_mutex mu;
  // The shared buffer in one allocation with its reference count, as the
  // store's serializer makes it.
  struct Buffer {
    std::shared_ptr<char[]> data;
    size_t size;
  };
  absl::flat_hash_map<std::string, Buffer> map;
  std::vector<std::string> ids;
  const int64_t batch = BatchFor(60 + size / 10);
  RunTimed(
      state, batch,
      // Erased one by one, untimed, as the store rows evict theirs: the map
      // keeps its capacity and the marks that erased slots leave, as the
      // local connector's maps do (clear() would hand the next batch a
      // fresh table).
      [&](int64_t i) {
        if (i % batch == 0) {
          for (const std::string& id : ids) map.erase(id);
          ids.clear();
        }
      },
      [&](int64_t) {
        Buffer value{std::make_shared_for_overwrite<char[]>(src.size()),
                     src.size()};
        std::memcpy(value.data.get(), src.data(), src.size());
        std::string id = NewObjectId();
        ids.push_back(id);
        std::unique_lock lock(mu);
        map.emplace(std::move(id), std::move(value));
      },
      size);
}

void FloorSharedMapGet(benchmark::State& state, int64_t size) {
  std::shared_mutex mu;
  absl::flat_hash_map<std::string, std::string> map;
  std::string key = NewObjectId();
  map.emplace(key, SharedRandomBytes(size));
  RunTimed(
      state, BatchFor(60 + size / 10),
      [&](int64_t) {
        std::shared_ptr<const std::string> out;
        {
          std::shared_lock lock(mu);
          out = std::make_shared<const std::string>(map.find(key)->second);
        }
        benchmark::DoNotOptimize(out->data());
      },
      size);
}

void FloorSharedMapLookup(benchmark::State& state) {
  std::mutex mu;
  absl::flat_hash_map<std::string, std::shared_ptr<const std::string>> map;
  std::string key = NewObjectId();
  map.emplace(key, std::make_shared<const std::string>(RandomBytes(100)));
  RunTimed(state, BatchFor(30), [&](int64_t) {
    std::shared_ptr<const std::string> v;
    {
      std::lock_guard lock(mu);
      v = map.find(key)->second;
    }
    benchmark::DoNotOptimize(v.get());
  });
}

void WriteAllOrDie(int fd, const std::string& src, const char* what) {
  size_t off = 0;
  while (off < src.size()) {
    ssize_t n = write(fd, src.data() + off, src.size() - off);
    if (n <= 0) Die(what);
    off += static_cast<size_t>(n);
  }
}

// open(O_CREAT|O_EXCL) + write + close of a new file: what publishing an
// object costs at least (files from the previous op are unlinked untimed).
void FloorFileWrite(benchmark::State& state, int64_t size) {
  std::string dir =
      absl::StrCat(TheSuite().tmp_root, "/floor-file-", NewObjectId());
  std::filesystem::create_directories(dir);
  const std::string& src = SharedRandomBytes(size);
  std::string path;
  RunTimed(
      state, 1,
      [&](int64_t i) {
        if (!path.empty()) unlink(path.c_str());
        path = absl::StrCat(dir, "/", i);
      },
      [&](int64_t) {
        int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) Die("floor open");
        WriteAllOrDie(fd, src, "floor write");
        close(fd);
      },
      size);
  std::filesystem::remove_all(dir);
}

// open(O_CREAT|O_EXCL) of a temporary + write + close + rename(2) to the
// object's name: what publishing an object so that no reader ever sees it
// partly written costs at least (the file connector's put, without the
// flock that marks its temporary as live for sweepers, the checks that no
// sweeper took it, and the close-error check before publishing). The
// verdict floor for file puts; file_write (no rename) is shown beside it.
void FloorFilePublish(benchmark::State& state, int64_t size) {
  std::string dir =
      absl::StrCat(TheSuite().tmp_root, "/floor-file-", NewObjectId());
  std::filesystem::create_directories(dir);
  const std::string& src = SharedRandomBytes(size);
  std::string path;
  std::string temp;
  RunTimed(
      state, 1,
      [&](int64_t i) {
        if (!path.empty()) unlink(path.c_str());
        path = absl::StrCat(dir, "/", i);
        temp = absl::StrCat(dir, "/.", i, ".tmp");
      },
      [&](int64_t) {
        int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) Die("floor open");
        WriteAllOrDie(fd, src, "floor write");
        close(fd);
        if (rename(temp.c_str(), path.c_str()) != 0) Die("floor rename");
      },
      size);
  std::filesystem::remove_all(dir);
}

void FloorFileRead(benchmark::State& state, int64_t size) {
  std::string dir =
      absl::StrCat(TheSuite().tmp_root, "/floor-file-", NewObjectId());
  std::filesystem::create_directories(dir);
  std::string path = dir + "/obj";
  { std::ofstream(path, std::ios::binary) << SharedRandomBytes(size); }
  RunTimed(
      state, 1,
      [&](int64_t) {
        int fd = open(path.c_str(), O_RDONLY);
        if (fd < 0) Die("floor open");
        struct stat st;
        fstat(fd, &st);
        std::string buf(static_cast<size_t>(st.st_size), '\0');
        size_t off = 0;
        while (off < buf.size()) {
          ssize_t n = read(fd, buf.data() + off, buf.size() - off);
          if (n <= 0) Die("floor read");
          off += static_cast<size_t>(n);
        }
        close(fd);
        benchmark::DoNotOptimize(buf.data());
      },
      size);
  std::filesystem::remove_all(dir);
}

// shm_open(O_CREAT|O_EXCL) + write + close of a new segment (the previous
// one is unlinked untimed): what publishing an object in shared memory costs
// at least.
void FloorShmWrite(benchmark::State& state, int64_t size) {
  const std::string base = absl::StrCat("/proxystore-floor-", NewObjectId());
  const std::string& src = SharedRandomBytes(size);
  std::string name;
  RunTimed(
      state, 1,
      [&](int64_t i) {
        if (!name.empty()) shm_unlink(name.c_str());
        name = absl::StrCat(base, "-", i);
      },
      [&](int64_t) {
        int fd = shm_open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) Die("floor shm_open");
        WriteAllOrDie(fd, src, "floor shm write");
        close(fd);
      },
      size);
  if (!name.empty()) shm_unlink(name.c_str());
}

// Zero-copy shm read: shm_open + fstat + mmap + a read of the first byte
// (+ munmap): what reading an object in place must at least cost. (A
// mapping alone reads nothing; the first read of a fresh mapping pays the
// page fault that any reader of the object, a header check or a FlatBuffers
// root, pays.)
void FloorShmMmap(benchmark::State& state, int64_t size) {
  std::string name = absl::StrCat("/proxystore-floor-", NewObjectId());
  int fd = shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
  if (fd < 0) Die("floor shm_open");
  WriteAllOrDie(fd, SharedRandomBytes(size), "floor shm write");
  close(fd);
  RunTimed(
      state, 1,
      [&](int64_t) {
        int f = shm_open(name.c_str(), O_RDONLY, 0);
        struct stat st;
        fstat(f, &st);
        void* p = mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, f, 0);
        close(f);
        if (p == MAP_FAILED) Die("floor mmap");
        const char first = *static_cast<const volatile char*>(p);
        benchmark::DoNotOptimize(first);
        munmap(p, st.st_size);
      },
      size);
  shm_unlink(name.c_str());
}

// A raw hiredis client of the suite's server, over TCP or the Unix socket.
struct Hiredis {
  std::unique_ptr<redisContext, decltype(&redisFree)> c{nullptr, redisFree};
  explicit Hiredis(bool unix_socket) {
    const testing::RedisServer& r = *TheSuite().redis;
    c.reset(unix_socket ? redisConnectUnix(r.unix_socket().c_str())
                        : redisConnect("127.0.0.1", r.port()));
    if (c == nullptr || c->err) Die("hiredis connect");
  }
  // One command from its arguments (redisAppendCommandArgv builds the
  // request in one exact-size buffer: the cheapest way hiredis sends binary
  // values).
  void Cmd(std::initializer_list<absl::string_view> args) {
    Append(args);
    Reply();
  }
  void Append(std::initializer_list<absl::string_view> args) {
    if (args.size() > 3) Die("hiredis: too many arguments");
    const char* argv[3];
    size_t len[3];
    int n = 0;
    for (absl::string_view a : args) {
      argv[n] = a.data();
      len[n++] = a.size();
    }
    if (redisAppendCommandArgv(c.get(), n, argv, len) != REDIS_OK) {
      Die("hiredis append");
    }
  }
  void Reply() {
    void* r = nullptr;
    if (redisGetReply(c.get(), &r) != REDIS_OK || r == nullptr) {
      Die("hiredis reply");
    }
    benchmark::DoNotOptimize(static_cast<redisReply*>(r)->str);
    freeReplyObject(r);
  }
  void Ping() { Cmd({"PING"}); }
  // One command; false (and nothing else done) on any error. For worker
  // threads, which must not end the process.
  bool TryCmd(std::initializer_list<absl::string_view> args) {
    const char* argv[3];
    size_t len[3];
    int n = 0;
    for (absl::string_view a : args) {
      if (n == 3) return false;
      argv[n] = a.data();
      len[n++] = a.size();
    }
    void* r = redisCommandArgv(c.get(), n, argv, len);
    if (r == nullptr) return false;
    const bool ok = static_cast<redisReply*>(r)->type != REDIS_REPLY_ERROR;
    benchmark::DoNotOptimize(static_cast<redisReply*>(r)->str);
    freeReplyObject(r);
    return ok;
  }
};

// Median of 21 raw PING round trips, in microseconds.
double PingUs(bool unix_socket) {
  Suite& s = TheSuite();
  std::unique_ptr<Hiredis>& h = unix_socket ? s.ping_unix : s.ping_tcp;
  if (h == nullptr) h = std::make_unique<Hiredis>(unix_socket);
  std::vector<double> us;
  for (int i = 0; i < 21; ++i) {
    const int64_t t0 = NowNs();
    h->Ping();
    us.push_back(static_cast<double>(NowNs() - t0) / 1e3);
  }
  return Percentile(us, 50);
}

void FloorRedisSet(benchmark::State& state, int64_t size, bool unix_socket) {
  Hiredis h(unix_socket);
  const std::string& v = SharedRandomBytes(size);
  std::string key = "floor:" + NewObjectId();
  RunTimed(
      state, 1,
      [&](int64_t) {
        h.Cmd({"SET", key, v});
      },
      size);
  h.Cmd({"DEL", key});
}

void FloorRedisGet(benchmark::State& state, int64_t size, bool unix_socket) {
  Hiredis h(unix_socket);
  const std::string& v = SharedRandomBytes(size);
  std::string key = "floor:" + NewObjectId();
  h.Cmd({"SET", key, v});
  RunTimed(
      state, 1,
      [&](int64_t) {
        h.Cmd({"GET", key});
      },
      size);
  h.Cmd({"DEL", key});
}

constexpr int kBatch = 100;
constexpr int64_t kBatchItem = 10'000;

void FloorRedisPipeline(benchmark::State& state, bool set, bool unix_socket) {
  Hiredis h(unix_socket);
  const std::string& v = SharedRandomBytes(kBatchItem);
  std::vector<std::string> keys;
  for (int i = 0; i < kBatch; ++i) keys.push_back("floor:" + NewObjectId());
  auto pipeline = [&](bool do_set) {
    for (const auto& k : keys) {
      if (do_set) {
        h.Append({"SET", k, v});
      } else {
        h.Append({"GET", k});
      }
    }
    for (int i = 0; i < kBatch; ++i) h.Reply();
  };
  pipeline(true);
  RunTimed(
      state, 1, [&](int64_t) { pipeline(set); }, kBatch * kBatchItem);
  for (const auto& k : keys) h.Cmd({"DEL", k});
}

FactoryData SampleFactory() {
  auto store = MakeStore("local");
  return FactoryData{Key(NewObjectId()), store->Config(), false, "",
                     std::string(TypeName<std::string>())};
}

void FloorFactoryBuild(benchmark::State& state) {
  FactoryData data = SampleFactory();
  RunTimed(state, BatchFor(300), [&](int64_t) {
    std::string wire = data.Serialize();
    benchmark::DoNotOptimize(wire.data());
  });
}

void FloorFactoryVerify(benchmark::State& state) {
  std::string wire = SampleFactory().Serialize();
  RunTimed(state, BatchFor(300), [&](int64_t) {
    auto parsed = FactoryData::Parse(wire);
    benchmark::DoNotOptimize(&parsed);
  });
}

// --- Store rows -----------------------------------------------------------

void StorePut(benchmark::State& state, std::string connector, int64_t size) {
  StoreCloser s{MakeStore(connector)};
  const std::string& obj = SharedRandomBytes(size);
  const int64_t batch = BatchFor(ExpectedNs(connector, size));
  std::vector<Key> keys;
  RunTimed(
      state, batch,
      [&](int64_t i) {
        if (i % batch == 0) {
          for (const Key& k : keys) (void)s.store->Evict(k);
          keys.clear();
        }
      },
      [&](int64_t) { keys.push_back(Check(s.store->Put(obj), "put")); }, size);
}

// Put of a caller-built byte buffer moved into the store (no copy of the
// payload: the envelope header goes into room reserved in front of it).
// Every op consumes a freshly filled buffer, which costs far more (untimed)
// than the op itself (~0.5 us) at 1 MB and up: the run's wall-time budget
// bounds that setup, and a batch holds at most 16 MB of buffers.
void StorePutMoved(benchmark::State& state, std::string connector,
                   int64_t size) {
  StoreCloser s{MakeStore(connector)};
  const std::string& content = SharedRandomBytes(size);
  const int64_t batch = std::max<int64_t>(
      1, std::min<int64_t>(BatchFor(ExpectedNs(connector, 0)),
                           (16 << 20) / std::max<int64_t>(size, 1)));
  std::vector<Key> keys;
  std::vector<PayloadBuffer> buffers;
  RunTimed(
      state, batch,
      [&](int64_t i) {
        if (i % batch == 0) {
          for (const Key& k : keys) (void)s.store->Evict(k);
          keys.clear();
          buffers.clear();
        }
        PayloadBuffer b = PayloadBuffer::Allocate(size);
        std::memcpy(b.data(), content.data(), size);
        buffers.push_back(std::move(b));
      },
      [&](int64_t i) {
        keys.push_back(
            Check(s.store->PutBuffer(std::move(buffers[i % batch])), "put"));
      },
      size);
}

template <typename T>
void StoreGet(benchmark::State& state, std::string connector, int64_t size,
              bool cached) {
  StoreCloser s{MakeStore(connector, cached ? StoreOptions{} : NoCache())};
  Key key = Check(s.store->Put(SharedRandomBytes(size)), "put");
  if (cached) (void)Check(s.store->Get<T>(key), "warm");
  const int64_t batch =
      cached ? BatchFor(40) : BatchFor(ExpectedNs(connector, size));
  RunTimed(
      state, batch,
      [&](int64_t) {
        auto v = s.store->Get<T>(key);
        benchmark::DoNotOptimize(v->get());
      },
      size);
}

void StoreExists(benchmark::State& state, std::string connector) {
  StoreCloser s{MakeStore(connector, NoCache())};
  Key key = Check(s.store->Put(SharedRandomBytes(100)), "put");
  RunTimed(state, BatchFor(ExpectedNs(connector, 0)),
           [&](int64_t) { benchmark::DoNotOptimize(s.store->Exists(key)); });
}

void StoreEvict(benchmark::State& state, std::string connector) {
  StoreCloser s{MakeStore(connector, NoCache())};
  const int64_t batch = BatchFor(ExpectedNs(connector, 0));
  std::vector<Key> keys(batch);
  const std::string& obj = SharedRandomBytes(100);
  RunTimed(
      state, batch,
      [&](int64_t i) { keys[i % batch] = Check(s.store->Put(obj), "put"); },
      [&](int64_t i) { Check(s.store->Evict(keys[i % batch]), "evict"); });
}

void StoreProxyCreate(benchmark::State& state, std::string connector,
                      int64_t size) {
  StoreCloser s{MakeStore(connector)};
  const std::string& obj = SharedRandomBytes(size);
  const int64_t batch = BatchFor(ExpectedNs(connector, size) + 200);
  std::vector<Key> keys;
  RunTimed(
      state, batch,
      [&](int64_t i) {
        if (i % batch == 0) {
          for (const Key& k : keys) (void)s.store->Evict(k);
          keys.clear();
        }
      },
      [&](int64_t) {
        auto p = Check(s.store->Proxy(obj), "proxy");
        keys.push_back(*GetKey(p));
      });
}

void StoreProxySerde(benchmark::State& state, std::string connector) {
  StoreCloser s{MakeStore(connector)};
  auto p = Check(s.store->Proxy(RandomBytes(100)), "proxy");
  RunTimed(state, BatchFor(500), [&](int64_t) {
    std::string wire = *p.Serialize();
    auto q = ParseProxy<std::string>(wire);
    benchmark::DoNotOptimize(&q);
  });
  if (!state.error_occurred()) {
    state.counters["wire_bytes"] = static_cast<double>(p.Serialize()->size());
  }
}

template <typename T>
void StoreProxyResolve(benchmark::State& state, std::string connector,
                       int64_t size) {
  StoreCloser s{MakeStore(connector, NoCache())};
  auto p = Check(s.store->Proxy(SharedRandomBytes(size)), "proxy");
  const std::string wire = *p.Serialize();
  const int64_t batch = BatchFor(ExpectedNs(connector, size));
  std::vector<Proxy<T>> fresh;
  RunTimed(
      state, batch,
      [&](int64_t i) {
        if (i % batch == 0) fresh.clear();
        fresh.push_back(Check(ParseProxy<T>(wire), "parse"));
      },
      [&](int64_t i) { benchmark::DoNotOptimize((*fresh[i % batch]).size()); },
      size);
}

// bench/resolve_child sits next to this binary (bazel-bin/bench/ and the
// runfiles tree both resolve /proc/self/exe to the same output directory).
std::string ResolveChildPath() {
  std::error_code ec;
  std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return testing::RunfilePath("bench/resolve_child");
  return (self.parent_path() / "resolve_child").string();
}

// Resolves `n` proxies (distinct objects, so no cache can answer) in a child
// process; the per-resolve times come from the child (bench/resolve_child.cc)
// and are this row's samples.
void StoreProxyResolveRemote(benchmark::State& state, std::string connector,
                             int64_t size, std::string type, int64_t n) {
  StoreCloser s{MakeStore(connector, NoCache())};
  std::string manifest;
  const std::string& obj = SharedRandomBytes(size);
  const SharedBytes view = SharedBytes::FromString(std::string(obj));
  for (int64_t i = 0; i < n && !Interrupted(); ++i) {
    absl::StatusOr<std::string> wire =
        type == "view" ? Check(s.store->Proxy(view), "proxy").Serialize()
                       : Check(s.store->Proxy(obj), "proxy").Serialize();
    manifest +=
        absl::BytesToHexString(Check(std::move(wire), "serialize")) + "\n";
  }
  Measured m;
  if (Interrupted()) {
    ReportRow(state, m, size);
    return;
  }
  const std::string path =
      absl::StrCat(TheSuite().tmp_root, "/manifest-", NewObjectId());
  { std::ofstream(path) << manifest; }
  auto r = Check(testing::RunChild(ResolveChildPath(), {path, type}),
                 "resolve_child");
  std::filesystem::remove(path);
  for (absl::string_view line : absl::StrSplit(r.output, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    double v = 0;
    if (f.size() >= 2 && f[0] == "ns" && absl::SimpleAtod(f[1], &v)) {
      m.samples_us.push_back(v / 1e3);
      m.timed_ns += static_cast<int64_t>(v);
    } else if (f.size() == 2 && f[0] == "faults") {
      (void)absl::SimpleAtod(f[1], &v);
      m.faults = static_cast<int64_t>(v);
    } else if (f.size() == 2 && f[0] == "cpu_ns") {
      (void)absl::SimpleAtod(f[1], &v);
      m.cpu_ns = static_cast<int64_t>(v);
    }
  }
  m.ops = n;
  std::string error;
  if (r.exit_code != 0 || static_cast<int64_t>(m.samples_us.size()) != n) {
    error = absl::StrCat("resolve_child failed: ", r.output);
  }
  ReportRow(state, m, size, error);
}

void StorePutBatch(benchmark::State& state, std::string connector) {
  StoreCloser s{MakeStore(connector)};
  std::vector<std::string> objs;
  for (int i = 0; i < kBatch; ++i) objs.push_back(RandomBytes(kBatchItem, i));
  std::vector<Key> last;
  RunTimed(
      state, 1,
      [&](int64_t) {
        for (const Key& k : last) (void)s.store->Evict(k);
      },
      [&](int64_t) {
        last = Check(s.store->PutBatch<std::string>(objs), "put_batch");
      },
      kBatch * kBatchItem);
}

void StoreGetBatch(benchmark::State& state, std::string connector) {
  StoreCloser s{MakeStore(connector, NoCache())};
  std::vector<std::string> objs;
  for (int i = 0; i < kBatch; ++i) objs.push_back(RandomBytes(kBatchItem, i));
  std::vector<Key> keys =
      Check(s.store->PutBatch<std::string>(objs), "put_batch");
  RunTimed(
      state, 1,
      [&](int64_t) {
        auto v = s.store->GetBatch<std::string>(keys);
        benchmark::DoNotOptimize(&v);
      },
      kBatch * kBatchItem);
}

// Zero-copy read of a FlatBuffers payload: Get<FlatBuffer<Blob>> (uncached)
// verifies the buffer and reads it in place.
void StoreFlatBufferRead(benchmark::State& state, std::string connector,
                         int64_t size) {
  StoreCloser s{MakeStore(connector, NoCache())};
  flatbuffers::FlatBufferBuilder fbb(size + 1024);
  const std::string& content = SharedRandomBytes(size);
  auto vec = fbb.CreateVector(reinterpret_cast<const uint8_t*>(content.data()),
                              content.size());
  fbb.Finish(fb::CreateBlob(fbb, 7, vec));
  auto blob = FlatBuffer<Blob>::FromBuilder(std::move(fbb));
  Key key = Check(s.store->Put(blob), "put");
  RunTimed(
      state, BatchFor(ExpectedNs(connector, 0)),
      [&](int64_t) {
        auto v = Check(s.store->Get<FlatBuffer<Blob>>(key), "get");
        benchmark::DoNotOptimize((*v)->data()->size());
      },
      size);
}

void StoreLz4(benchmark::State& state, std::string connector, int64_t size,
              bool text, bool get) {
  StoreOptions o = NoCache();
  o.compress = true;
  StoreCloser s{MakeStore(connector, o)};
  const std::string& obj =
      text ? SharedTextBytes(size) : SharedRandomBytes(size);
  if (get) {
    Key key = Check(s.store->Put(obj), "put");
    auto stored = Check(s.store->connector().Get(key), "raw get");
    RunTimed(
        state, BatchFor(ExpectedNs(connector, size)),
        [&](int64_t) {
          auto v = s.store->Get<std::string>(key);
          benchmark::DoNotOptimize(v->get());
        },
        size);
    if (!state.error_occurred()) {
      state.counters["stored_ratio"] =
          static_cast<double>(stored->size()) / static_cast<double>(size);
    }
  } else {
    std::vector<Key> keys;
    RunTimed(
        state, 1,
        [&](int64_t) {
          for (const Key& k : keys) (void)s.store->Evict(k);
          keys.clear();
        },
        [&](int64_t) { keys.push_back(Check(s.store->Put(obj), "put")); },
        size);
  }
}

// --- Thread rows --------------------------------------------------------
//
// threads/<op>/<connector>/<n>t: n threads share one Store (workflow workers
// share a store) and run one operation on a 1 KB object, all started
// together at a barrier (bench_util.h RunThreaded); the row's ops_per_s is
// all threads' operations over the rounds' wall time. Each thread count's
// floors run in turns with its store rows, with the same threads:
//   map_lookup  (get_hit's floor) one shared absl::flat_hash_map holding a
//               std::shared_ptr to the object, read concurrently without a
//               lock; each op copies the shared_ptr out, as a cache hit
//               hands out a reference.
//   map_get     (get's and proxy_resolve's floor for local) the same map
//               holding the bytes, read concurrently without a lock; each op
//               copies the 1 KB out. Reads of a map nobody writes need no
//               lock: that is the least any shared map costs.
//   map_put     (put's floor for local) 16 shards, each an
//               absl::flat_hash_map behind its own std::mutex, keyed by
//               hash of a freshly minted NewObjectId(); each op copies the
//               1 KB in. A single mutex would serialize the writers and flatter
//               the store from 2 threads on; 16 shards is what a hand-written
//               concurrent map does (and what the local connector has). Each
//               thread erases its keys untimed before the next round.
//   shm_read    (get's and proxy_resolve's floor for shm) shm_open + fstat
//               + mmap + copy of the 1 KB into a std::string + munmap +
//               close, per op, of one shared segment.
//   shm_write   (put's floor for shm) shm_open(O_CREAT|O_EXCL) + write +
//               close of a new segment per op (unlinked untimed, before the
//               next round).
//   redis_get   (get's and proxy_resolve's floor for redis) raw hiredis GET
//               of one key, one connection per thread.
//   redis_set   (put's floor for redis) raw hiredis SET of the thread's own
//               key, one connection per thread.
// The store rows: get_hit (cached store, the object warm in its cache), get
// (uncached store: every op reads the connector), put (each thread's keys
// are evicted untimed before the next round), proxy_resolve (each op
// resolves a fresh Proxy<std::string> parsed untimed from one proxy's wire
// form, as store/proxy_resolve does: the suite's stores are not registered,
// so the parsed proxies find theirs through the process-wide registry, which
// makes one receiver store, cached as ReceiverStoreOptions say, for all of
// them; after the first resolve an op is a registry lookup and a cache hit).

constexpr int64_t kThreadObject = 1'000;
constexpr std::array<int, 4> kThreadCounts = {1, 2, 4, 8};

// Per-thread state of a thread row, one cache line apart.
template <typename T>
struct alignas(64) PerThread {
  T value;
};

// Rows of `n` threads on an operation of about `expected_ns` (alone): the
// first warm-up round's size (RunThreaded then sizes the rounds to the
// form's thread_round_s of wall time).
ThreadShape ThreadShapeFor(int n, int64_t expected_ns) {
  const Suite& s = TheSuite();
  const int cpus =
      std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ThreadShape shape;
  shape.threads = n;
  shape.round_s = s.form.thread_round_s;
  // A quarter of a round's work, in case the guess is low.
  shape.guess = std::max<int64_t>(
      1, static_cast<int64_t>(s.form.thread_round_s * 1e9 * std::min(n, cpus) /
                              n / static_cast<double>(expected_ns) / 4));
  shape.budget = &s.form.thread_budget;
  return shape;
}

void NoPrepare(int, int64_t) {}
void NoCleanup() {}

std::string ThreadError(const absl::Status& status, const char* what) {
  return absl::StrCat(what, ": ", status.ToString());
}

void ThreadFloorMapLookup(benchmark::State& state, int n) {
  absl::flat_hash_map<std::string, std::shared_ptr<const std::string>> map;
  const std::string key = NewObjectId();
  map.emplace(key,
              std::make_shared<const std::string>(RandomBytes(kThreadObject)));
  RunThreaded(
      state, ThreadShapeFor(n, 30), NoPrepare,
      [&](int, int64_t) {
        std::shared_ptr<const std::string> v = map.find(key)->second;
        benchmark::DoNotOptimize(v.get());
      },
      NoCleanup, nullptr, kThreadObject);
}

void ThreadFloorMapGet(benchmark::State& state, int n) {
  absl::flat_hash_map<std::string, std::string> map;
  const std::string key = NewObjectId();
  map.emplace(key, SharedRandomBytes(kThreadObject));
  RunThreaded(
      state, ThreadShapeFor(n, 100), NoPrepare,
      [&](int, int64_t) {
        std::string out = map.find(key)->second;
        benchmark::DoNotOptimize(out.data());
      },
      NoCleanup, nullptr, kThreadObject);
}

void ThreadFloorMapPut(benchmark::State& state, int n) {
  struct alignas(64) Shard {
    std::mutex mu;
    absl::flat_hash_map<std::string, std::string> map;
  };
  constexpr size_t kShards = 16;
  std::array<Shard, kShards> shards;
  auto shard_for = [&](const std::string& id) -> Shard& {
    return shards[absl::Hash<std::string>()(id) % kShards];
  };
  const std::string& src = SharedRandomBytes(kThreadObject);
  std::vector<PerThread<std::vector<std::string>>> keys(n);
  RunThreaded(
      state, ThreadShapeFor(n, 300),
      // Erased one by one, as the store rows evict theirs: the shards keep
      // their capacity, as the local connector's do.
      [&](int t, int64_t ops) {
        for (const std::string& id : keys[t].value) {
          Shard& shard = shard_for(id);
          std::lock_guard<std::mutex> lock(shard.mu);
          shard.map.erase(id);
        }
        keys[t].value.clear();
        keys[t].value.reserve(ops);
      },
      [&](int t, int64_t) {
        std::string id = NewObjectId();
        Shard& shard = shard_for(id);
        {
          std::lock_guard<std::mutex> lock(shard.mu);
          shard.map.emplace(id, src);
        }
        keys[t].value.push_back(std::move(id));
      },
      NoCleanup, nullptr, kThreadObject);
}

void ThreadFloorShmRead(benchmark::State& state, int n) {
  const std::string name = absl::StrCat("/proxystore-floor-", NewObjectId());
  int fd = shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
  if (fd < 0) Die("floor shm_open");
  WriteAllOrDie(fd, SharedRandomBytes(kThreadObject), "floor shm write");
  close(fd);
  FirstError error;
  RunThreaded(
      state, ThreadShapeFor(n, 4'000), NoPrepare,
      [&](int, int64_t) {
        int f = shm_open(name.c_str(), O_RDONLY, 0);
        if (f < 0) return error.Set("floor shm_open");
        struct stat st;
        fstat(f, &st);
        void* p = mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, f, 0);
        close(f);
        if (p == MAP_FAILED) return error.Set("floor mmap");
        std::string out(static_cast<const char*>(p),
                        static_cast<size_t>(st.st_size));
        benchmark::DoNotOptimize(out.data());
        munmap(p, st.st_size);
      },
      NoCleanup, &error, kThreadObject);
  shm_unlink(name.c_str());
}

void ThreadFloorShmWrite(benchmark::State& state, int n) {
  const std::string base = absl::StrCat("/proxystore-floor-", NewObjectId());
  const std::string& src = SharedRandomBytes(kThreadObject);
  struct Names {
    std::vector<std::string> made;
    int64_t next = 0;
  };
  std::vector<PerThread<Names>> names(n);
  const ThreadShape shape = ThreadShapeFor(n, 15'000);
  FirstError error;
  auto unlink_all = [](Names& t) {
    for (const std::string& name : t.made) shm_unlink(name.c_str());
    t.made.clear();
  };
  RunThreaded(
      state, shape,
      [&](int t, int64_t ops) {
        unlink_all(names[t].value);
        names[t].value.made.reserve(ops);
      },
      [&](int t, int64_t) {
        Names& own = names[t].value;
        std::string name = absl::StrCat(base, "-", t, "-", own.next++);
        int fd = shm_open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) return error.Set("floor shm_open");
        own.made.push_back(std::move(name));
        if (write(fd, src.data(), src.size()) !=
            static_cast<ssize_t>(src.size())) {
          error.Set("floor shm write");
        }
        close(fd);
      },
      NoCleanup, &error, kThreadObject);
  for (auto& t : names) unlink_all(t.value);
}

// One raw connection per thread to the suite's redis-server (over TCP).
std::vector<std::unique_ptr<Hiredis>> ThreadConnections(int n) {
  std::vector<std::unique_ptr<Hiredis>> out;
  for (int t = 0; t < n; ++t) out.push_back(std::make_unique<Hiredis>(false));
  return out;
}

void ThreadFloorRedisGet(benchmark::State& state, int n) {
  auto conns = ThreadConnections(n);
  const std::string key = "floor:" + NewObjectId();
  conns[0]->Cmd({"SET", key, SharedRandomBytes(kThreadObject)});
  FirstError error;
  RunThreaded(
      state, ThreadShapeFor(n, 30'000), NoPrepare,
      [&](int t, int64_t) {
        if (!conns[t]->TryCmd({"GET", key})) error.Set("hiredis GET");
      },
      NoCleanup, &error, kThreadObject);
  conns[0]->Cmd({"DEL", key});
}

void ThreadFloorRedisSet(benchmark::State& state, int n) {
  auto conns = ThreadConnections(n);
  const std::string base = "floor:" + NewObjectId();
  std::vector<std::string> keys;
  for (int t = 0; t < n; ++t) keys.push_back(absl::StrCat(base, "-", t));
  const std::string& v = SharedRandomBytes(kThreadObject);
  FirstError error;
  RunThreaded(
      state, ThreadShapeFor(n, 30'000), NoPrepare,
      [&](int t, int64_t) {
        if (!conns[t]->TryCmd({"SET", keys[t], v})) error.Set("hiredis SET");
      },
      NoCleanup, &error, kThreadObject);
  for (const std::string& k : keys) conns[0]->Cmd({"DEL", k});
}

// Expected ns of one store operation on a 1 KB object, alone.
int64_t ThreadExpectedNs(const std::string& connector, const std::string& op) {
  if (op == "get_hit") return 100;
  if (connector == "local") return op == "put" ? 1'000 : 500;
  if (connector == "shm") return op == "put" ? 25'000 : 8'000;
  return 40'000;
}

void ThreadStoreGet(benchmark::State& state, std::string connector, int n,
                    bool cached) {
  StoreCloser s{MakeStore(connector, cached ? StoreOptions{} : NoCache())};
  const Key key = Check(s.store->Put(SharedRandomBytes(kThreadObject)), "put");
  if (cached) (void)Check(s.store->Get<std::string>(key), "warm");
  FirstError error;
  RunThreaded(
      state,
      ThreadShapeFor(n,
                     ThreadExpectedNs(connector, cached ? "get_hit" : "get")),
      NoPrepare,
      [&](int, int64_t) {
        absl::StatusOr<std::shared_ptr<const std::string>> v =
            s.store->Get<std::string>(key);
        if (!v.ok()) return error.Set(ThreadError(v.status(), "get"));
        if (*v == nullptr) return error.Set("get: the object is missing");
        benchmark::DoNotOptimize(v->get());
      },
      NoCleanup, &error, kThreadObject);
}

void ThreadStorePut(benchmark::State& state, std::string connector, int n) {
  StoreCloser s{MakeStore(connector)};
  const std::string& obj = SharedRandomBytes(kThreadObject);
  const ThreadShape shape =
      ThreadShapeFor(n, ThreadExpectedNs(connector, "put"));
  std::vector<PerThread<std::vector<Key>>> keys(n);
  FirstError error;
  RunThreaded(
      state, shape,
      [&](int t, int64_t ops) {
        for (const Key& k : keys[t].value) (void)s.store->Evict(k);
        keys[t].value.clear();
        keys[t].value.reserve(ops);
      },
      [&](int t, int64_t) {
        absl::StatusOr<Key> key = s.store->Put(obj);
        if (!key.ok()) return error.Set(ThreadError(key.status(), "put"));
        keys[t].value.push_back(*std::move(key));
      },
      NoCleanup, &error, kThreadObject);
}

void ThreadStoreProxyResolve(benchmark::State& state, std::string connector,
                             int n) {
  StoreCloser s{MakeStore(connector, NoCache())};
  auto p = Check(s.store->Proxy(SharedRandomBytes(kThreadObject)), "proxy");
  const std::string wire = *p.Serialize();
  const ThreadShape shape =
      ThreadShapeFor(n, ThreadExpectedNs(connector, "proxy_resolve"));
  std::vector<PerThread<std::vector<Proxy<std::string>>>> fresh(n);
  FirstError error;
  RunThreaded(
      state, shape,
      [&](int t, int64_t ops) {
        std::vector<Proxy<std::string>>& own = fresh[t].value;
        own.clear();
        for (int64_t i = 0; i < ops; ++i) {
          absl::StatusOr<Proxy<std::string>> q = ParseProxy<std::string>(wire);
          if (!q.ok()) return error.Set(ThreadError(q.status(), "parse"));
          own.push_back(*std::move(q));
        }
      },
      [&](int t, int64_t i) {
        std::vector<Proxy<std::string>>& own = fresh[t].value;
        if (static_cast<size_t>(i) >= own.size()) return;  // Parse failed.
        benchmark::DoNotOptimize((*own[i]).size());
      },
      NoCleanup, &error, kThreadObject);
}

// --- Registration -------------------------------------------------------

using Fn = std::function<void(benchmark::State&)>;
enum class Loopback { kNone, kTcp, kUnix };

// Rows with a speed target (tools/bench_report.py, targets()) and the floors
// they are compared with: these get the form's larger repetition count.
bool HasTarget(const std::string& group, const std::string& op,
               const std::string& c, int64_t size) {
  if (group == "threads") return false;
  auto in = [&](std::initializer_list<const char*> ops) {
    return std::any_of(ops.begin(), ops.end(),
                       [&](const char* o) { return op == o; });
  };
  if (group == "floor") {
    if (c == "local") {
      return in({"map_get", "map_put", "map_lookup", "shared_map_get",
                 "shared_map_put", "shared_map_lookup", "factory_build",
                 "factory_verify"});
    }
    if (c == "redis") {
      return in({"redis_set", "redis_get", "redis_pipeline_set",
                 "redis_pipeline_get"});
    }
    if (c == "file") return in({"file_publish", "file_read"});
    if (c == "shm") return op == "shm_mmap" && size == 100'000'000;
    return false;
  }
  if (c == "local") {
    return in(
        {"get", "get_hit", "put", "put_moved", "proxy_create", "proxy_serde"});
  }
  if (c == "redis") return in({"put", "get_view", "put_batch", "get_batch"});
  if (c == "file") return in({"put", "get"});
  if (c == "shm") {
    return size == 100'000'000 &&
           in({"flatbuffer_read", "get_view", "proxy_resolve_remote_view"});
  }
  return false;
}

bool Selected(const std::string& name) {
  const Suite& s = TheSuite();
  return s.filter == nullptr || s.filter->Matches(name);
}

// One repetition of row `name`: `fn`, its whole cost (setup included: what
// the ETA and the run's length are made of) and, next to a redis row, the
// raw PING round trips before and after it.
void RunRepetition(const std::string& name, const Fn& fn, Loopback loopback,
                   benchmark::State& st) {
  SetCurrentRow(name);
  if (Interrupted()) {
    Measured none;
    ReportRow(st, none, 0);
    return;
  }
  const bool unix_socket = loopback == Loopback::kUnix;
  const double before = loopback == Loopback::kNone ? 0 : PingUs(unix_socket);
  const int64_t start = NowNs();
  fn(st);
  if (st.error_occurred()) return;
  st.counters["wall_s"] = static_cast<double>(NowNs() - start) / 1e9;
  if (loopback != Loopback::kNone) {
    st.counters["ping_us"] = before;
    st.counters["ping_after_us"] = PingUs(unix_socket);
  }
}

// Registers row group/op/c/size_name (size: bytes moved per op, for the
// repetition count and the ETA; `op_s` its expected seconds per op).
void AddRow(const std::string& group, const std::string& op,
            const std::string& c, const std::string& size_name, int64_t size,
            double op_s, Fn fn, Loopback loopback = Loopback::kNone) {
  const std::string name = absl::StrCat(group, "/", op, "/", c, "/", size_name);
  if (!Selected(name)) return;
  Suite& s = TheSuite();
  int reps =
      HasTarget(group, op, c, size) ? s.form.reps_verdict : s.form.reps_info;
  if (size >= 10'000'000 && s.form.reps_large > 0) reps = s.form.reps_large;
  const Budget& b = s.form.budget;
  // Expected seconds per repetition (for the ETA): the timed work the
  // budget asks for, or a slow row's minimum batches, plus setup.
  const double per_rep =
      std::max(
          std::min(std::max(b.min_timed_s, b.min_batches * op_s), b.max_wall_s),
          b.min_slow_batches * op_s) +
      2 * op_s + 0.01;
  s.plan.push_back({name, reps * per_rep, reps, s.block});
  s.pending.push_back({name, reps, [name, fn, loopback](benchmark::State& st) {
                         RunRepetition(name, fn, loopback, st);
                       }});
}

// Registers the rows added since the last call (one connector's rows of one
// object size, say) as one block whose rows take turns: every row's first
// repetition, then every row's second, and so on (rows with fewer repetitions
// drop out of the later rounds). A row and its floor are then measured over the
// same stretch of time, and a slow phase of the machine (a busy SMT sibling,
// another tenant) falls on both alike instead of on all the repetitions of one.
// Each repetition is a benchmark of its own to Google Benchmark; SuiteReporter
// groups them by name.
void RegisterBlock() {
  Suite& s = TheSuite();
  int rounds = 0;
  for (const Suite::PendingRow& row : s.pending) {
    rounds = std::max(rounds, row.reps);
  }
  for (int round = 0; round < rounds; ++round) {
    for (const Suite::PendingRow& row : s.pending) {
      if (row.reps <= round) continue;
      benchmark::RegisterBenchmark(row.name.c_str(), row.fn)
          ->Iterations(1)
          ->Repetitions(1)
          ->UseManualTime()
          ->Unit(benchmark::kNanosecond);
    }
  }
  s.pending.clear();
}

void AddFloors(const std::string& c, int64_t n) {
  const std::string z = SizeName(n);
  const bool redis = c == "redis" || c == "redis_unix";
  const bool unix_socket = c == "redis_unix";
  const Loopback lb = !redis        ? Loopback::kNone
                      : unix_socket ? Loopback::kUnix
                                    : Loopback::kTcp;
  const double op_s = ExpectedSeconds(c, n);
  auto add = [&](const char* op, Fn fn) {
    AddRow("floor", op, c, z, n, op_s, std::move(fn), lb);
  };
  // Where multi puts an object of this size: shm up to 1 MB, files above.
  const std::string kind = c == "multi" ? (n <= 1'000'000 ? "shm" : "file") : c;
  if (kind == "local") {
    add("memcpy", [n](auto& st) { FloorMemcpy(st, n); });
    add("map_put", [n](auto& st) { FloorMapPut(st, n); });
    add("map_get", [n](auto& st) { FloorMapGet(st, n); });
    add("shared_map_put", [n](auto& st) { FloorSharedMapPut(st, n); });
    add("shared_map_get", [n](auto& st) { FloorSharedMapGet(st, n); });
  } else if (kind == "file") {
    add("file_write", [n](auto& st) { FloorFileWrite(st, n); });
    add("file_publish", [n](auto& st) { FloorFilePublish(st, n); });
    add("file_read", [n](auto& st) { FloorFileRead(st, n); });
  } else if (kind == "shm") {
    add("shm_write", [n](auto& st) { FloorShmWrite(st, n); });
    add("shm_mmap", [n](auto& st) { FloorShmMmap(st, n); });
  } else if (redis) {
    add("redis_set",
        [n, unix_socket](auto& st) { FloorRedisSet(st, n, unix_socket); });
    add("redis_get",
        [n, unix_socket](auto& st) { FloorRedisGet(st, n, unix_socket); });
  }
}

void AddStoreRows(const std::string& c, int64_t n) {
  const Suite& s = TheSuite();
  const std::string z = SizeName(n);
  const Loopback lb = c == "redis"        ? Loopback::kTcp
                      : c == "redis_unix" ? Loopback::kUnix
                                          : Loopback::kNone;
  const double op_s = ExpectedSeconds(c, n);
  auto add = [&](const char* op, Fn fn, double cost = 0) {
    AddRow("store", op, c, z, n, cost > 0 ? cost : op_s, std::move(fn), lb);
  };
  add("put", [c, n](auto& st) { StorePut(st, c, n); });
  add("put_moved", [c, n](auto& st) { StorePutMoved(st, c, n); });
  add("get", [c, n](auto& st) { StoreGet<std::string>(st, c, n, false); });
  add("get_view", [c, n](auto& st) { StoreGet<SharedBytes>(st, c, n, false); });
  add("get_hit", [c, n](auto& st) { StoreGet<std::string>(st, c, n, true); });
  add("proxy_resolve",
      [c, n](auto& st) { StoreProxyResolve<std::string>(st, c, n); });
  add("flatbuffer_read", [c, n](auto& st) { StoreFlatBufferRead(st, c, n); });
  if (c != "local") {
    const int64_t resolves = n >= 100'000'000 ? s.form.resolves_100mb
                             : n >= 1'000'000 ? s.form.resolves_1mb
                                              : s.form.resolves_small;
    // A child process per repetition, and one put per resolve.
    const double cost =
        (0.03 + 2 * resolves * op_s) / s.form.budget.min_batches;
    add(
        "proxy_resolve_remote",
        [c, n, resolves](auto& st) {
          StoreProxyResolveRemote(st, c, n, "string", resolves);
        },
        cost);
    add(
        "proxy_resolve_remote_view",
        [c, n, resolves](auto& st) {
          StoreProxyResolveRemote(st, c, n, "view", resolves);
        },
        cost);
  }
  if (c == "local" || c == "file" || c == "redis") {
    add("lz4_put_text", [c, n](auto& st) { StoreLz4(st, c, n, true, false); });
    add("lz4_get_text", [c, n](auto& st) { StoreLz4(st, c, n, true, true); });
    add("lz4_put_random",
        [c, n](auto& st) { StoreLz4(st, c, n, false, false); });
    add("lz4_get_random",
        [c, n](auto& st) { StoreLz4(st, c, n, false, true); });
  }
}

// The rows of one connector without a size axis, with their floors first.
void AddSizelessRows(const std::string& c) {
  const bool redis = c == "redis" || c == "redis_unix";
  const bool unix_socket = c == "redis_unix";
  const Loopback lb = !redis        ? Loopback::kNone
                      : unix_socket ? Loopback::kUnix
                                    : Loopback::kTcp;
  const double op_s = ExpectedSeconds(c, 100);
  const double batch_s = ExpectedSeconds(c, kBatch * kBatchItem);
  if (c == "local") {
    AddRow("floor", "factory_build", c, "-", 0, 3e-7,
           [](auto& st) { FloorFactoryBuild(st); });
    AddRow("floor", "factory_verify", c, "-", 0, 3e-7,
           [](auto& st) { FloorFactoryVerify(st); });
  }
  if (redis) {
    AddRow(
        "floor", "redis_pipeline_set", c, "100x10KB", 0, batch_s,
        [unix_socket](auto& st) { FloorRedisPipeline(st, true, unix_socket); },
        lb);
    AddRow(
        "floor", "redis_pipeline_get", c, "100x10KB", 0, batch_s,
        [unix_socket](auto& st) { FloorRedisPipeline(st, false, unix_socket); },
        lb);
  }
  AddRow(
      "store", "exists", c, "100B", 0, op_s,
      [c](auto& st) { StoreExists(st, c); }, lb);
  AddRow(
      "store", "evict", c, "100B", 0, 2 * op_s,
      [c](auto& st) { StoreEvict(st, c); }, lb);
  AddRow(
      "store", "proxy_create", c, "100B", 0, op_s,
      [c](auto& st) { StoreProxyCreate(st, c, 100); }, lb);
  AddRow(
      "store", "proxy_serde", c, "100B", 0, 1e-6,
      [c](auto& st) { StoreProxySerde(st, c); }, lb);
  AddRow(
      "store", "put_batch", c, "100x10KB", 0, batch_s,
      [c](auto& st) { StorePutBatch(st, c); }, lb);
  AddRow(
      "store", "get_batch", c, "100x10KB", 0, batch_s,
      [c](auto& st) { StoreGetBatch(st, c); }, lb);
}

// The thread rows of one connector (local, shm and redis over TCP): per
// thread count, its floors, then the store rows.
void AddThreadRows(const std::string& c) {
  if (c != "local" && c != "shm" && c != "redis") return;
  const Loopback lb = c == "redis" ? Loopback::kTcp : Loopback::kNone;
  const double round_s = TheSuite().form.thread_round_s;
  for (int n : kThreadCounts) {
    const std::string z = absl::StrCat(n, "t");
    auto add = [&](const char* op, Fn fn) {
      AddRow("threads", op, c, z, kThreadObject, round_s, std::move(fn), lb);
    };
    add("map_lookup", [n](auto& st) { ThreadFloorMapLookup(st, n); });
    if (c == "local") {
      add("map_get", [n](auto& st) { ThreadFloorMapGet(st, n); });
      add("map_put", [n](auto& st) { ThreadFloorMapPut(st, n); });
    } else if (c == "shm") {
      add("shm_read", [n](auto& st) { ThreadFloorShmRead(st, n); });
      add("shm_write", [n](auto& st) { ThreadFloorShmWrite(st, n); });
    } else {
      add("redis_get", [n](auto& st) { ThreadFloorRedisGet(st, n); });
      add("redis_set", [n](auto& st) { ThreadFloorRedisSet(st, n); });
    }
    add("get_hit", [c, n](auto& st) { ThreadStoreGet(st, c, n, true); });
    add("get", [c, n](auto& st) { ThreadStoreGet(st, c, n, false); });
    add("put", [c, n](auto& st) { ThreadStorePut(st, c, n); });
    add("proxy_resolve",
        [c, n](auto& st) { ThreadStoreProxyResolve(st, c, n); });
  }
}

void RegisterAll() {
  Suite& s = TheSuite();
  for (const std::string& c : s.connectors) {
    // Blocks: each object size (its floors and rows take turns; sizes stay
    // apart, so that writing back 100 MB files does not fall on 100 B
    // puts), then the rows without a size, then the thread rows.
    for (int64_t n : s.sizes) {
      s.block = absl::StrCat(c, " ", SizeName(n));
      if (c == "local") {
        // The cache hit's floors do not depend on the size; they run in
        // every size's block all the same, beside that size's cache hits.
        AddRow("floor", "map_lookup", c, SizeName(n), 0, 3e-8,
               [](auto& st) { FloorMapLookup(st); });
        AddRow("floor", "shared_map_lookup", c, SizeName(n), 0, 3e-8,
               [](auto& st) { FloorSharedMapLookup(st); });
      }
      AddFloors(c, n);
      AddStoreRows(c, n);
      RegisterBlock();
    }
    s.block = c;
    AddSizelessRows(c);
    RegisterBlock();
    s.block = c + " threads";
    AddThreadRows(c);
    RegisterBlock();
  }
}

std::vector<std::string> SplitList(const std::string& v) {
  return absl::StrSplit(v, ',', absl::SkipEmpty());
}

std::string Header() {
  const Suite& s = TheSuite();
  const Form& f = s.form;
  const Budget& b = f.budget;
  std::string reps =
      absl::StrCat(f.reps_info, " repetition", f.reps_info == 1 ? "" : "s");
  if (f.reps_verdict != f.reps_info) {
    absl::StrAppend(&reps, " (", f.reps_verdict,
                    " for rows with a speed target and their floors)");
  }
  if (f.reps_large > 0)
    absl::StrAppend(&reps, ", ", f.reps_large, " at 100 MB");
  return absl::StrCat(
      "proxystore-cpp benchmark suite, ", f.name, " form: ", s.plan.size(),
      " rows (", absl::StrJoin(s.connectors, ","), "; sizes ",
      absl::StrJoin(s.sizes, ","), ").\nEach row: ", reps,
      ". A repetition times >= ", b.min_batches,
      " batches and >= ", b.min_timed_s * 1e3, " ms of work, or ends after ~",
      b.max_wall_s, " s (setup included) once it has ", b.min_slow_batches,
      ".\np50 = median of the repetitions' p50; range = lowest and highest "
      "repetition p50; RTT = raw redis PING round trip next to the row.\n");
}

}  // namespace
}  // namespace proxystore::bench

int main(int argc, char** argv) {
  using namespace proxystore::bench;
  // glibc's malloc adapts to what a process frees: until the first free of a
  // large (mmapped) block it returns freed heap memory to the system whenever
  // more than 128 KiB lie free at the top, so a row that frees its batch's
  // objects pays a page fault per 4 KiB of the next batch; afterwards it
  // serves up to 32 MiB from the heap and keeps up to 64 MiB. Which of the
  // two a row meets depended on the rows before it and on the heap's layout
  // (10 KB puts and their floor moved between ~0.2 and ~1.5 us from run to
  // run). The suite starts in the steady state instead: rows compare the
  // library with its floors, not two states of the allocator. Objects of
  // 100 MB are still mapped fresh for every op, as before.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  Suite& s = TheSuite();
  std::string connectors = "local,file,shm,redis,redis_unix,multi";
  std::string sizes = "100,10000,1000000,100000000";
  if (const char* e = std::getenv("PROXYSTORE_BENCH_CONNECTORS"))
    connectors = e;
  if (const char* e = std::getenv("PROXYSTORE_BENCH_SIZES")) sizes = e;
  std::string json_path;
  std::string tmp_dir;
  std::string filter;
  int repetitions = 0;
  double min_time = 0;
  std::vector<char*> rest;
  auto value = [](const std::string& a, const char* flag,
                  std::string* out) -> bool {
    const std::string prefix = std::string(flag) + "=";
    if (a.rfind(prefix, 0) != 0) return false;
    *out = a.substr(prefix.size());
    return true;
  };
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    std::string v;
    if (i == 0) {
      rest.push_back(argv[i]);
    } else if (value(a, "--connectors", &v)) {
      connectors = v;
    } else if (value(a, "--sizes", &v)) {
      sizes = v;
    } else if (a == "--quick") {
      s.form = kQuick;
    } else if (a == "--full") {
      s.form = kFull;
    } else if (value(a, "--filter", &v) || value(a, "--benchmark_filter", &v)) {
      filter = v;
    } else if (value(a, "--json", &v) || value(a, "--benchmark_out", &v)) {
      json_path = v;
    } else if (value(a, "--benchmark_out_format", &v)) {
      if (v != "json") Die("only --benchmark_out_format=json is supported");
    } else if (value(a, "--tmp_dir", &v)) {
      tmp_dir = v;
    } else if (value(a, "--repetitions", &v) ||
               value(a, "--benchmark_repetitions", &v)) {
      if (!absl::SimpleAtoi(v, &repetitions) || repetitions < 1) {
        Die("bad repetition count " + v);
      }
    } else if (value(a, "--min_time", &v) ||
               value(a, "--benchmark_min_time", &v)) {
      std::string num = v;  // "0.1" or "0.1s"
      if (!num.empty() && num.back() == 's') num.pop_back();
      if (!absl::SimpleAtod(num, &min_time) || min_time <= 0) {
        Die("bad minimum time " + v);
      }
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rargc = static_cast<int>(rest.size());
  benchmark::Initialize(&rargc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rargc, rest.data())) return 2;
  if (repetitions > 0) {
    s.form.reps_info = s.form.reps_verdict = repetitions;
    s.form.reps_large = 0;
  }
  if (min_time > 0) {
    s.form.budget.min_timed_s = min_time;
    s.form.budget.max_wall_s = std::max(s.form.budget.max_wall_s, 4 * min_time);
  }
  TheBudget() = s.form.budget;
  if (!filter.empty()) {
    std::string error;
    s.filter = Filter::Parse(filter, &error);
    if (s.filter == nullptr) Die("bad --filter regex " + filter + ": " + error);
  }
  s.connectors = SplitList(connectors);
  for (const std::string& z : SplitList(sizes)) {
    int64_t n;
    if (!absl::SimpleAtoi(z, &n) || n <= 0) Die("bad --sizes entry " + z);
    s.sizes.push_back(n);
  }
  if (tmp_dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    tmp_dir = t != nullptr && *t != '\0' ? t : "/tmp";
  }
  std::string tmpl = tmp_dir + "/proxystore-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp " + tmpl);
  s.tmp_root = tmpl;
  InstallInterruptHandlers();
  for (const std::string& c : s.connectors) {
    if ((c == "redis" || c == "redis_unix") && s.redis == nullptr) {
      proxystore::testing::RedisServerOptions o;
      o.unix_socket = true;
      s.redis =
          Check(proxystore::testing::RedisServer::Start(o), "redis-server");
    }
  }
  RegisterAll();
  benchmark::AddCustomContext("proxystore_form", s.form.name);
  benchmark::AddCustomContext("proxystore_rows_planned",
                              std::to_string(s.plan.size()));
  benchmark::AddCustomContext("proxystore_connectors", connectors);
  benchmark::AddCustomContext("proxystore_sizes", sizes);
#if defined(NDEBUG) && defined(__OPTIMIZE__)
  benchmark::AddCustomContext("proxystore_build", "optimized, NDEBUG");
#else
  benchmark::AddCustomContext("proxystore_build", "NOT optimized");
#endif
  SuiteReporter reporter(s.plan, Header(), json_path);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  s.ping_tcp.reset();
  s.ping_unix.reset();
  s.redis.reset();
  RemoveTmpRoot();
  if (Interrupted()) return 130;
  return reporter.rows_failed() > 0 ? 1 : 0;
}
