// Store and proxy latency on the embedded default (the "local" connector),
// with the floors measured in the same run so every row reads as a ratio:
//   BM_Floor_*  memcpy into a reused buffer, allocate+copy, a bare
//               absl::flat_hash_map put/get, FlatBuffers factory build.
//   BM_Local_*  the same operations through Store / Proxy.
// Sizes: 100 B, 10 KB, 1 MB, 100 MB (decimal).
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "benchmark/benchmark.h"
#include "connectors/connector.h"
#include "store/factory.h"
#include "store/store.h"

namespace proxystore {
namespace {

std::string Payload(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 2654435761u >> 13);
  return s;
}

void Sizes(benchmark::internal::Benchmark* b) {
  b->Arg(100)->Arg(10'000)->Arg(1'000'000);
  b->Arg(100'000'000)->Iterations(5);
}
void SmallSizes(benchmark::internal::Benchmark* b) {
  b->Arg(100)->Arg(10'000)->Arg(1'000'000);
}

void SetBytes(benchmark::State& state) {
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

std::shared_ptr<Store> LocalStore(int64_t cache_size) {
  StoreOptions o;
  o.cache_size = cache_size;
  auto c = MakeConnector(ConnectorConfig{"local", {}});
  auto s = Store::Create(absl::StrCat("bench-", NewObjectId()), *std::move(c), o);
  return *s;
}

// --- Floors ---------------------------------------------------------------

void BM_Floor_Memcpy(benchmark::State& state) {
  std::string src = Payload(state.range(0));
  std::string dst(src.size(), '\0');
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  SetBytes(state);
}
BENCHMARK(BM_Floor_Memcpy)->Apply(Sizes);

void BM_Floor_AllocCopy(benchmark::State& state) {
  std::string src = Payload(state.range(0));
  for (auto _ : state) {
    std::string copy(src.data(), src.size());
    benchmark::DoNotOptimize(copy.data());
  }
  SetBytes(state);
}
BENCHMARK(BM_Floor_AllocCopy)->Apply(Sizes);

void BM_Floor_MapPutCopyIn(benchmark::State& state) {
  std::string src = Payload(state.range(0));
  absl::flat_hash_map<std::string, std::string> map;
  for (auto _ : state) {
    std::string key = NewObjectId();
    map.emplace(key, src);
    state.PauseTiming();
    map.erase(key);
    state.ResumeTiming();
  }
  SetBytes(state);
}
BENCHMARK(BM_Floor_MapPutCopyIn)->Apply(SmallSizes);

void BM_Floor_MapGetCopyOut(benchmark::State& state) {
  absl::flat_hash_map<std::string, std::string> map;
  std::string key = NewObjectId();
  map.emplace(key, Payload(state.range(0)));
  for (auto _ : state) {
    auto it = map.find(key);
    std::string out = it->second;
    benchmark::DoNotOptimize(out.data());
  }
  SetBytes(state);
}
BENCHMARK(BM_Floor_MapGetCopyOut)->Apply(Sizes);

void BM_Floor_MapLookup(benchmark::State& state) {
  absl::flat_hash_map<std::string, std::shared_ptr<const std::string>> map;
  std::string key = NewObjectId();
  map.emplace(key, std::make_shared<const std::string>(Payload(state.range(0))));
  for (auto _ : state) {
    auto it = map.find(key);
    std::shared_ptr<const std::string> v = it->second;
    benchmark::DoNotOptimize(v.get());
  }
}
BENCHMARK(BM_Floor_MapLookup)->Arg(100);

void BM_Floor_FactoryBuild(benchmark::State& state) {
  auto store = LocalStore(16);
  FactoryData data{Key(NewObjectId()), store->Config(), false, "", "std::string"};
  for (auto _ : state) {
    std::string wire = data.Serialize();
    benchmark::DoNotOptimize(wire.data());
  }
}
BENCHMARK(BM_Floor_FactoryBuild);

// --- Store on the local connector -------------------------------------------

void BM_Local_Put(benchmark::State& state) {
  auto store = LocalStore(16);
  std::string obj = Payload(state.range(0));
  for (auto _ : state) {
    Key k = *store->Put(obj);
    state.PauseTiming();
    (void)store->Evict(k);
    state.ResumeTiming();
  }
  SetBytes(state);
}
BENCHMARK(BM_Local_Put)->Apply(Sizes);

void BM_Local_GetUncached(benchmark::State& state) {
  auto store = LocalStore(0);
  Key k = *store->Put(Payload(state.range(0)));
  for (auto _ : state) {
    auto v = store->Get<std::string>(k);
    benchmark::DoNotOptimize(v->get());
  }
  SetBytes(state);
}
BENCHMARK(BM_Local_GetUncached)->Apply(Sizes);

void BM_Local_GetCached(benchmark::State& state) {
  auto store = LocalStore(16);
  Key k = *store->Put(Payload(state.range(0)));
  (void)store->Get<std::string>(k);
  for (auto _ : state) {
    auto v = store->Get<std::string>(k);
    benchmark::DoNotOptimize(v->get());
  }
}
BENCHMARK(BM_Local_GetCached)->Apply(Sizes);

void BM_Local_ProxyCreate(benchmark::State& state) {
  auto store = LocalStore(16);
  std::string obj = Payload(state.range(0));
  for (auto _ : state) {
    auto p = store->Proxy(obj);
    benchmark::DoNotOptimize(&p);
  }
}
BENCHMARK(BM_Local_ProxyCreate)->Arg(100);

void BM_Local_ProxySerializeDeserialize(benchmark::State& state) {
  auto store = LocalStore(16);
  auto p = *store->Proxy(Payload(100));
  for (auto _ : state) {
    std::string wire = *p.Serialize();
    auto q = ParseProxy<std::string>(wire);
    benchmark::DoNotOptimize(&q);
  }
  state.counters["wire_bytes"] = static_cast<double>(p.Serialize()->size());
}
BENCHMARK(BM_Local_ProxySerializeDeserialize);

void BM_Local_ProxyResolve(benchmark::State& state) {
  auto store = LocalStore(0);
  auto p = *store->Proxy(Payload(state.range(0)));
  std::string wire = *p.Serialize();
  for (auto _ : state) {
    state.PauseTiming();
    auto q = *ParseProxy<std::string>(wire);
    state.ResumeTiming();
    benchmark::DoNotOptimize((*q).size());
  }
  SetBytes(state);
}
BENCHMARK(BM_Local_ProxyResolve)->Apply(Sizes);

}  // namespace
}  // namespace proxystore

BENCHMARK_MAIN();
