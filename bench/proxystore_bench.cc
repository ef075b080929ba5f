// The proxystore-cpp benchmark suite.
//
// Rows are named  <group>/<operation>/<connector>/<size>  and report the
// per-operation time plus p50_us, p99_us, faults_per_op, alloc_bytes_per_op
// (bench/bench_util.h). Groups:
//   floor/...  the physical floors, measured in the same run: memcpy into a
//              reused buffer, allocate+copy, a bare absl::flat_hash_map,
//              raw file write/read, raw shm mmap, raw hiredis SET/GET and a
//              pipelined batch, FlatBuffers factory build/verify.
//   store/...  the same operations through Store and Proxy, per connector.
// tools/bench_report.py turns the JSON into a report with ratios and the
// target verdicts; tools/bench.sh runs everything.
//
// Selection (flags before Google Benchmark's own, or environment):
//   --connectors=local,file,shm,redis,redis_unix,multi
//   ($PROXYSTORE_BENCH_CONNECTORS)
//   --sizes=100,10000,1000000,100000000 ($PROXYSTORE_BENCH_SIZES)
//   --quick   fewer iterations for the large sizes (CI smoke)
// The suite starts its own private redis-server on a free loopback port (and
// a Unix socket) when a redis connector is selected, and removes every
// temporary file, segment and key it made.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "bench/blob_generated.h"
#include "benchmark/benchmark.h"
#include "connectors/connector.h"
#include "connectors/multi/multi_connector.h"
#include "hiredis/hiredis.h"
#include "store/factory.h"
#include "store/serializer.h"
#include "store/store.h"
#include "testing/child_process.h"
#include "testing/redis_server.h"

namespace proxystore::bench {
namespace {

using Blob = proxystore::bench::fb::Blob;

// --- Suite environment ------------------------------------------------------

struct Suite {
  std::vector<std::string> connectors;
  std::vector<int64_t> sizes;
  bool quick = false;
  std::string tmp_root;
  std::unique_ptr<testing::RedisServer> redis;
};

Suite& TheSuite() {
  static Suite suite;
  return suite;
}

void Die(const std::string& what) {
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
  return {};
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

// Expected cost, for batching (bench_util.h BatchFor).
int64_t ExpectedNs(const std::string& connector, int64_t size) {
  int64_t base = connector == "local"  ? 100
                 : connector == "shm"  ? 15'000
                 : connector == "file" ? 10'000
                                       : 30'000;
  return base + size / 10;  // ~10 GB/s copies.
}

// --- Floors
// -------------------------------------------------------------------

void FloorMemcpy(benchmark::State& state, int64_t size) {
  std::string src = RandomBytes(size);
  std::string dst(size, '\0');
  RunTimed(
      state, BatchFor(20 + size / 10),
      [&](int64_t) {
        std::memcpy(dst.data(), src.data(), src.size());
        benchmark::ClobberMemory();
      },
      size);
}

void FloorAllocCopy(benchmark::State& state, int64_t size) {
  std::string src = RandomBytes(size);
  RunTimed(
      state, BatchFor(20 + size / 10),
      [&](int64_t) {
        std::string copy(src.data(), src.size());
        benchmark::DoNotOptimize(copy.data());
      },
      size);
}

// A put into a bare map under a freshly minted key (any store has to mint
// one): NewObjectId() + copy-in. The previous batch is erased untimed.
void FloorMapPut(benchmark::State& state, int64_t size) {
  std::string src = RandomBytes(size);
  absl::flat_hash_map<std::string, std::string> map;
  const int64_t batch = BatchFor(60 + size / 10);
  RunTimed(
      state, batch,
      [&](int64_t i) {
        if (i % batch == 0) map.clear();
      },
      [&](int64_t) { map.emplace(NewObjectId(), src); }, size);
}

void FloorMapGet(benchmark::State& state, int64_t size) {
  absl::flat_hash_map<std::string, std::string> map;
  std::string key = NewObjectId();
  map.emplace(key, RandomBytes(size));
  RunTimed(
      state, BatchFor(50 + size / 10),
      [&](int64_t) {
        std::string out = map.find(key)->second;
        benchmark::DoNotOptimize(out.data());
      },
      size);
}

void FloorMapLookup(benchmark::State& state, int64_t size) {
  absl::flat_hash_map<std::string, std::shared_ptr<const std::string>> map;
  std::string key = NewObjectId();
  map.emplace(key, std::make_shared<const std::string>(RandomBytes(size)));
  RunTimed(state, BatchFor(25), [&](int64_t) {
    std::shared_ptr<const std::string> v = map.find(key)->second;
    benchmark::DoNotOptimize(v.get());
  });
}

// open(O_CREAT|O_EXCL) + write + close of a new file: what publishing an
// object costs at least (files from the previous op are unlinked untimed).
void FloorFileWrite(benchmark::State& state, int64_t size) {
  std::string dir =
      absl::StrCat(TheSuite().tmp_root, "/floor-file-", NewObjectId());
  std::filesystem::create_directories(dir);
  std::string src = RandomBytes(size);
  std::string path;
  RunTimed(
      state, 1,
      [&](int64_t i) {
        if (!path.empty()) unlink(path.c_str());
        path = absl::StrCat(dir, "/", i);
      },
      [&](int64_t) {
        int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
        size_t off = 0;
        while (off < src.size()) {
          ssize_t n = write(fd, src.data() + off, src.size() - off);
          if (n <= 0) Die("floor write");
          off += static_cast<size_t>(n);
        }
        close(fd);
      },
      size);
  std::filesystem::remove_all(dir);
}

void FloorFileRead(benchmark::State& state, int64_t size) {
  std::string dir =
      absl::StrCat(TheSuite().tmp_root, "/floor-file-", NewObjectId());
  std::filesystem::create_directories(dir);
  std::string path = dir + "/obj";
  { std::ofstream(path, std::ios::binary) << RandomBytes(size); }
  RunTimed(
      state, 1,
      [&](int64_t) {
        int fd = open(path.c_str(), O_RDONLY);
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

// Zero-copy shm read: shm_open + fstat + mmap (+ munmap): what reading an
// object in place must at least cost.
void FloorShmMmap(benchmark::State& state, int64_t size) {
  std::string name = absl::StrCat("/proxystore-floor-", NewObjectId());
  int fd = shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
  std::string src = RandomBytes(size);
  if (write(fd, src.data(), src.size()) != static_cast<ssize_t>(src.size())) {
    Die("floor shm write");
  }
  close(fd);
  RunTimed(
      state, 1,
      [&](int64_t) {
        int f = shm_open(name.c_str(), O_RDONLY, 0);
        struct stat st;
        fstat(f, &st);
        void* p = mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, f, 0);
        close(f);
        benchmark::DoNotOptimize(p);
        munmap(p, st.st_size);
      },
      size);
  shm_unlink(name.c_str());
}

struct Hiredis {
  redisContext* c = nullptr;
  Hiredis() {
    c = redisConnect("127.0.0.1", TheSuite().redis->port());
    if (c == nullptr || c->err) Die("hiredis connect");
  }
  ~Hiredis() { redisFree(c); }
  void Cmd(const char* fmt, const char* k, size_t kl, const char* v = nullptr,
           size_t vl = 0) {
    redisReply* r = static_cast<redisReply*>(
        v ? redisCommand(c, fmt, k, kl, v, vl) : redisCommand(c, fmt, k, kl));
    if (r == nullptr) Die("hiredis command");
    benchmark::DoNotOptimize(r->str);
    freeReplyObject(r);
  }
};

void FloorRedisSet(benchmark::State& state, int64_t size) {
  Hiredis h;
  std::string v = RandomBytes(size);
  std::string key = "floor:" + NewObjectId();
  RunTimed(
      state, 1,
      [&](int64_t) {
        h.Cmd("SET %b %b", key.data(), key.size(), v.data(), v.size());
      },
      size);
  h.Cmd("DEL %b", key.data(), key.size());
}

void FloorRedisGet(benchmark::State& state, int64_t size) {
  Hiredis h;
  std::string v = RandomBytes(size);
  std::string key = "floor:" + NewObjectId();
  h.Cmd("SET %b %b", key.data(), key.size(), v.data(), v.size());
  RunTimed(
      state, 1, [&](int64_t) { h.Cmd("GET %b", key.data(), key.size()); },
      size);
  h.Cmd("DEL %b", key.data(), key.size());
}

constexpr int kBatch = 100;
constexpr int64_t kBatchItem = 10'000;

void FloorRedisPipeline(benchmark::State& state, bool set) {
  Hiredis h;
  std::string v = RandomBytes(kBatchItem);
  std::vector<std::string> keys;
  for (int i = 0; i < kBatch; ++i) keys.push_back("floor:" + NewObjectId());
  auto pipeline = [&](bool do_set) {
    for (const auto& k : keys) {
      if (do_set) {
        redisAppendCommand(h.c, "SET %b %b", k.data(), k.size(), v.data(),
                           v.size());
      } else {
        redisAppendCommand(h.c, "GET %b", k.data(), k.size());
      }
    }
    for (int i = 0; i < kBatch; ++i) {
      void* r = nullptr;
      if (redisGetReply(h.c, &r) != REDIS_OK) Die("pipeline");
      freeReplyObject(r);
    }
  };
  pipeline(true);
  RunTimed(
      state, 1, [&](int64_t) { pipeline(set); }, kBatch * kBatchItem);
  for (const auto& k : keys) h.Cmd("DEL %b", k.data(), k.size());
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

// --- Store rows
// ---------------------------------------------------------------

void StorePut(benchmark::State& state, std::string connector, int64_t size) {
  StoreCloser s{MakeStore(connector)};
  std::string obj = RandomBytes(size);
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
void StorePutMoved(benchmark::State& state, std::string connector,
                   int64_t size) {
  StoreCloser s{MakeStore(connector)};
  std::string content = RandomBytes(size);
  // The op copies nothing, but every buffer of a batch is filled first:
  // keep a batch's buffers under 64 MB.
  const int64_t batch = std::max<int64_t>(
      1, std::min<int64_t>(BatchFor(ExpectedNs(connector, 0)),
                           (64 << 20) / std::max<int64_t>(size, 1)));
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
  Key key = Check(s.store->Put(RandomBytes(size)), "put");
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
  Key key = Check(s.store->Put(RandomBytes(100)), "put");
  RunTimed(state, BatchFor(ExpectedNs(connector, 0)),
           [&](int64_t) { benchmark::DoNotOptimize(s.store->Exists(key)); });
}

void StoreEvict(benchmark::State& state, std::string connector) {
  StoreCloser s{MakeStore(connector, NoCache())};
  const int64_t batch = BatchFor(ExpectedNs(connector, 0));
  std::vector<Key> keys(batch);
  std::string obj = RandomBytes(100);
  RunTimed(
      state, batch,
      [&](int64_t i) { keys[i % batch] = Check(s.store->Put(obj), "put"); },
      [&](int64_t i) { Check(s.store->Evict(keys[i % batch]), "evict"); });
}

void StoreProxyCreate(benchmark::State& state, std::string connector,
                      int64_t size) {
  StoreCloser s{MakeStore(connector)};
  std::string obj = RandomBytes(size);
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
  state.counters["wire_bytes"] = static_cast<double>(p.Serialize()->size());
}

template <typename T>
void StoreProxyResolve(benchmark::State& state, std::string connector,
                       int64_t size) {
  StoreCloser s{MakeStore(connector, NoCache())};
  auto p = Check(s.store->Proxy(RandomBytes(size)), "proxy");
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

// Resolves proxies in a child process; the per-resolve times come from the
// child (bench/resolve_child.cc) and become this row's iterations.
void StoreProxyResolveRemote(benchmark::State& state, std::string connector,
                             int64_t size, std::string type) {
  StoreCloser s{MakeStore(connector, NoCache())};
  const int64_t n = state.max_iterations;
  std::string manifest;
  std::string obj = RandomBytes(size);
  const SharedBytes view = SharedBytes::FromString(std::string(obj));
  for (int64_t i = 0; i < n; ++i) {
    absl::StatusOr<std::string> wire =
        type == "view" ? Check(s.store->Proxy(view), "proxy").Serialize()
                       : Check(s.store->Proxy(obj), "proxy").Serialize();
    manifest +=
        absl::BytesToHexString(Check(std::move(wire), "serialize")) + "\n";
  }
  const std::string path =
      absl::StrCat(TheSuite().tmp_root, "/manifest-", NewObjectId());
  { std::ofstream(path) << manifest; }
  auto r = Check(testing::RunChild(ResolveChildPath(), {path, type}),
                 "resolve_child");
  std::filesystem::remove(path);
  std::vector<double> samples;
  double faults = 0;
  for (absl::string_view line : absl::StrSplit(r.output, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    double v = 0;
    if (f.size() >= 2 && f[0] == "ns" && absl::SimpleAtod(f[1], &v)) {
      samples.push_back(v / 1e9);
    } else if (f.size() == 2 && f[0] == "faults") {
      (void)absl::SimpleAtod(f[1], &faults);
    }
  }
  if (r.exit_code != 0 || static_cast<int64_t>(samples.size()) != n) {
    state.SkipWithError(
        absl::StrCat("resolve_child failed: ", r.output).c_str());
    for (auto _ : state) {
    }
    return;
  }
  size_t i = 0;
  for (auto _ : state) state.SetIterationTime(samples[i++ % samples.size()]);
  state.counters["us_per_op"] =
      std::accumulate(samples.begin(), samples.end(), 0.0) * 1e6 /
      static_cast<double>(samples.size());
  std::vector<double> us;
  for (double x : samples) us.push_back(x * 1e6);
  state.counters["p50_us"] = Percentile(us, 50);
  state.counters["p99_us"] = Percentile(us, 99);
  state.counters["faults_per_op"] = faults / static_cast<double>(n);
  state.SetBytesProcessed(state.iterations() * size);
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
  std::string content = RandomBytes(size);
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
  std::string obj = text ? TextBytes(size) : RandomBytes(size);
  if (get) {
    Key key = Check(s.store->Put(obj), "put");
    auto stored = Check(s.store->connector().Get(key), "raw get");
    state.counters["stored_ratio"] =
        static_cast<double>(stored->size()) / static_cast<double>(size);
    RunTimed(
        state, BatchFor(ExpectedNs(connector, size)),
        [&](int64_t) {
          auto v = s.store->Get<std::string>(key);
          benchmark::DoNotOptimize(v->get());
        },
        size);
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

// --- Registration
// --------------------------------------------------------------

using Fn = std::function<void(benchmark::State&)>;

void Add(const std::string& name, Fn fn, int64_t size) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), fn);
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
  if (size >= 100'000'000) {
    b->Iterations(TheSuite().quick ? 2 : 8);
  } else if (TheSuite().quick) {
    b->MinTime(0.005);
  }
}

void RegisterAll() {
  Suite& s = TheSuite();
  auto has = [&](const std::string& c) {
    return std::find(s.connectors.begin(), s.connectors.end(), c) !=
           s.connectors.end();
  };
  const bool any_redis = has("redis") || has("redis_unix");
  for (int64_t n : s.sizes) {
    const std::string z = SizeName(n);
    Add(
        "floor/memcpy/-/" + z, [n](auto& st) { FloorMemcpy(st, n); }, n);
    Add(
        "floor/alloc_copy/-/" + z, [n](auto& st) { FloorAllocCopy(st, n); }, n);
    Add(
        "floor/map_put/-/" + z, [n](auto& st) { FloorMapPut(st, n); }, n);
    Add(
        "floor/map_get/-/" + z, [n](auto& st) { FloorMapGet(st, n); }, n);
    Add(
        "floor/map_lookup/-/" + z, [n](auto& st) { FloorMapLookup(st, n); }, n);
    if (has("file") || has("multi")) {
      Add(
          "floor/file_write/-/" + z, [n](auto& st) { FloorFileWrite(st, n); },
          n);
      Add(
          "floor/file_read/-/" + z, [n](auto& st) { FloorFileRead(st, n); }, n);
    }
    if (has("shm") || has("multi")) {
      Add(
          "floor/shm_mmap/-/" + z, [n](auto& st) { FloorShmMmap(st, n); }, n);
    }
    if (any_redis) {
      Add(
          "floor/redis_set/-/" + z, [n](auto& st) { FloorRedisSet(st, n); }, n);
      Add(
          "floor/redis_get/-/" + z, [n](auto& st) { FloorRedisGet(st, n); }, n);
    }
  }
  Add(
      "floor/factory_build/-/-", [](auto& st) { FloorFactoryBuild(st); }, 0);
  Add(
      "floor/factory_verify/-/-", [](auto& st) { FloorFactoryVerify(st); }, 0);
  if (any_redis) {
    Add(
        "floor/redis_pipeline_set/-/100x10KB",
        [](auto& st) { FloorRedisPipeline(st, true); }, 0);
    Add(
        "floor/redis_pipeline_get/-/100x10KB",
        [](auto& st) { FloorRedisPipeline(st, false); }, 0);
  }

  for (const std::string& c : s.connectors) {
    for (int64_t n : s.sizes) {
      const std::string z = "/" + c + "/" + SizeName(n);
      Add(
          "store/put" + z, [c, n](auto& st) { StorePut(st, c, n); }, n);
      Add(
          "store/put_moved" + z, [c, n](auto& st) { StorePutMoved(st, c, n); },
          n);
      Add(
          "store/get" + z,
          [c, n](auto& st) { StoreGet<std::string>(st, c, n, false); }, n);
      Add(
          "store/get_view" + z,
          [c, n](auto& st) { StoreGet<SharedBytes>(st, c, n, false); }, n);
      Add(
          "store/get_hit" + z,
          [c, n](auto& st) { StoreGet<std::string>(st, c, n, true); }, n);
      Add(
          "store/proxy_resolve" + z,
          [c, n](auto& st) { StoreProxyResolve<std::string>(st, c, n); }, n);
      Add(
          "store/flatbuffer_read" + z,
          [c, n](auto& st) { StoreFlatBufferRead(st, c, n); }, n);
      if (c != "local") {
        const int64_t resolves =
            n >= 100'000'000 ? (s.quick ? 2 : 8) : (s.quick ? 20 : 200);
        auto* b = benchmark::RegisterBenchmark(
            ("store/proxy_resolve_remote" + z).c_str(),
            [c, n](auto& st) { StoreProxyResolveRemote(st, c, n, "string"); });
        b->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(resolves);
        auto* v = benchmark::RegisterBenchmark(
            ("store/proxy_resolve_remote_view" + z).c_str(),
            [c, n](auto& st) { StoreProxyResolveRemote(st, c, n, "view"); });
        v->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(resolves);
      }
      if (c == "local" || c == "file" || c == "redis") {
        Add(
            "store/lz4_put_text" + z,
            [c, n](auto& st) { StoreLz4(st, c, n, true, false); }, n);
        Add(
            "store/lz4_get_text" + z,
            [c, n](auto& st) { StoreLz4(st, c, n, true, true); }, n);
        Add(
            "store/lz4_put_random" + z,
            [c, n](auto& st) { StoreLz4(st, c, n, false, false); }, n);
        Add(
            "store/lz4_get_random" + z,
            [c, n](auto& st) { StoreLz4(st, c, n, false, true); }, n);
      }
    }
    const std::string z = "/" + c + "/100B";
    Add(
        "store/exists" + z, [c](auto& st) { StoreExists(st, c); }, 0);
    Add(
        "store/evict" + z, [c](auto& st) { StoreEvict(st, c); }, 0);
    Add(
        "store/proxy_create" + z,
        [c](auto& st) { StoreProxyCreate(st, c, 100); }, 0);
    Add(
        "store/proxy_serde" + z, [c](auto& st) { StoreProxySerde(st, c); }, 0);
    Add(
        "store/put_batch/" + c + "/100x10KB",
        [c](auto& st) { StorePutBatch(st, c); }, 0);
    Add(
        "store/get_batch/" + c + "/100x10KB",
        [c](auto& st) { StoreGetBatch(st, c); }, 0);
  }
}

std::vector<std::string> SplitList(const std::string& v) {
  return absl::StrSplit(v, ',', absl::SkipEmpty());
}

}  // namespace
}  // namespace proxystore::bench

int main(int argc, char** argv) {
  using namespace proxystore::bench;
  Suite& s = TheSuite();
  std::string connectors = "local,file,shm,redis,redis_unix,multi";
  std::string sizes = "100,10000,1000000,100000000";
  if (const char* e = std::getenv("PROXYSTORE_BENCH_CONNECTORS"))
    connectors = e;
  if (const char* e = std::getenv("PROXYSTORE_BENCH_SIZES")) sizes = e;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--connectors=", 0) == 0) {
      connectors = a.substr(13);
    } else if (a.rfind("--sizes=", 0) == 0) {
      sizes = a.substr(8);
    } else if (a == "--quick") {
      s.quick = true;
    } else {
      rest.push_back(argv[i]);
    }
  }
  s.connectors = SplitList(connectors);
  for (const std::string& z : SplitList(sizes)) {
    int64_t n;
    if (!absl::SimpleAtoi(z, &n) || n <= 0) Die("bad --sizes entry " + z);
    s.sizes.push_back(n);
  }
  char tmpl[] = "/tmp/proxystore-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Die("mkdtemp");
  s.tmp_root = tmpl;
  for (const std::string& c : s.connectors) {
    if ((c == "redis" || c == "redis_unix") && s.redis == nullptr) {
      proxystore::testing::RedisServerOptions o;
      o.unix_socket = true;
      s.redis =
          Check(proxystore::testing::RedisServer::Start(o), "redis-server");
    }
  }
  RegisterAll();
  int rargc = static_cast<int>(rest.size());
  benchmark::Initialize(&rargc, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  s.redis.reset();
  std::filesystem::remove_all(s.tmp_root);
  return 0;
}
