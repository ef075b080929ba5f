#include "proxystore/testing/stress.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/status.h"
#include "proxystore/store/factory.h"

namespace proxystore::testing {

uint64_t Fnv1a64(absl::string_view data) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string RandomBytes(uint64_t seed, size_t size) {
  std::string out(size, '\0');
  uint64_t x = seed;
  size_t i = 0;
  while (i < size) {
    // splitmix64
    x += 0x9e3779b97f4a7c15ULL;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    for (int b = 0; b < 8 && i < size; ++b, ++i) {
      out[i] = static_cast<char>(z >> (8 * b));
    }
  }
  return out;
}

namespace {

using Value = std::string;

// An object's life as the harness sees it. kEvicting is set before the
// eviction starts, kEvicted after it returned: a read that comes back empty
// while the object is still kLive has lost it.
constexpr int kLive = 0;
constexpr int kEvicting = 1;
constexpr int kEvicted = 2;

constexpr size_t kMaxFailures = 20;

// One acknowledged put.
struct Entry {
  Entry(Key k, uint64_t c, size_t s)
      : key(std::move(k)), checksum(c), size(s) {}
  const Key key;
  const uint64_t checksum;
  const size_t size;
  std::atomic<int> state{kLive};
};
using EntryPtr = std::shared_ptr<Entry>;

// Every acknowledged put, in order; entries are never removed.
class Ledger {
 public:
  EntryPtr Add(Key key, const Value& value) {
    auto e =
        std::make_shared<Entry>(std::move(key), Fnv1a64(value), value.size());
    MutexLock lock(mu_);
    entries_.push_back(e);
    return e;
  }
  // An entry chosen by `r`; nullptr while the ledger is empty.
  EntryPtr Pick(uint64_t r) const {
    ReaderMutexLock lock(mu_);
    if (entries_.empty()) return nullptr;
    return entries_[r % entries_.size()];
  }
  std::vector<EntryPtr> All() const {
    ReaderMutexLock lock(mu_);
    return entries_;
  }

 private:
  mutable Mutex mu_;
  std::vector<EntryPtr> entries_ ABSL_GUARDED_BY(mu_);
};

// A reusable barrier for a fixed number of threads.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t generation = generation_;
    if (++waiting_ == n_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != generation; });
  }

 private:
  const int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;         // Guarded by mu_.
  int64_t generation_ = 0;  // Guarded by mu_.
};

// Per-thread tallies, summed after the threads joined.
struct Counters {
  int64_t ops = 0;
  int64_t objects_put = 0;
  int64_t put_calls = 0;  // Store::Put + Store::Proxy: what store.put counts
  int64_t put_batches = 0;
  int64_t gets = 0;
  int64_t get_batches = 0;
  int64_t exists = 0;
  int64_t evict_calls = 0;
  int64_t evict_proxy_resolves = 0;
  int64_t proxies_created = 0;
  int64_t proxies_resolved = 0;
  int64_t shared_resolves = 0;
  int64_t serialized_resolves = 0;
  int64_t async_resolves = 0;
  // Resolves that ran the factory (each makes exactly one Store::Get), and
  // those of them that found the object evicted (NotFound).
  int64_t factory_attempts = 0;
  int64_t failed_resolves = 0;
  int64_t lost = 0;
  int64_t corrupt = 0;
  int64_t errors = 0;
  int64_t stale_reads = 0;
  std::vector<std::string> failures;

  void Fail(int64_t* counter, std::string message) {
    ++*counter;
    if (failures.size() < kMaxFailures) failures.push_back(std::move(message));
  }

  void Add(const Counters& o) {
    ops += o.ops;
    objects_put += o.objects_put;
    put_calls += o.put_calls;
    put_batches += o.put_batches;
    gets += o.gets;
    get_batches += o.get_batches;
    exists += o.exists;
    evict_calls += o.evict_calls;
    evict_proxy_resolves += o.evict_proxy_resolves;
    proxies_created += o.proxies_created;
    proxies_resolved += o.proxies_resolved;
    shared_resolves += o.shared_resolves;
    serialized_resolves += o.serialized_resolves;
    async_resolves += o.async_resolves;
    factory_attempts += o.factory_attempts;
    failed_resolves += o.failed_resolves;
    lost += o.lost;
    corrupt += o.corrupt;
    errors += o.errors;
    stale_reads += o.stale_reads;
    for (const std::string& f : o.failures) {
      if (failures.size() < kMaxFailures) failures.push_back(f);
    }
  }
};

struct ProxyOf {
  Proxy<Value> proxy;
  EntryPtr entry;
  // The entry's state when ResolveAsync was called (-1: never): the read
  // began then.
  int state_at_async = -1;
};

// What the workers share. Only the ledger, the barrier and each thread's own
// slot of round_targets are written during the run.
struct Shared {
  Shared(std::shared_ptr<Store> s, const StressOptions& o)
      : store(std::move(s)), options(o), barrier(o.threads) {}

  const std::shared_ptr<Store> store;
  const StressOptions& options;
  Ledger ledger;
  std::vector<ProxyOf> pool;
  std::vector<ProxyOf> rounds;
  // [round][thread]: the target each thread got from the round's proxy.
  std::vector<std::vector<const Value*>> round_targets;
  Barrier barrier;
};

std::string KeyName(const Key& key) {
  return absl::StrCat("\"", key.id(), "\"");
}

// A value of log-uniform size in [min, max] from `rng`.
Value MakeValue(std::mt19937_64& rng, const StressOptions& o) {
  const double lo =
      std::log(static_cast<double>(std::max<size_t>(1, o.min_value_size)));
  const double hi = std::log(static_cast<double>(
      std::max(o.max_value_size, std::max<size_t>(1, o.min_value_size))));
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  size_t size = static_cast<size_t>(std::llround(std::exp(lo + u * (hi - lo))));
  size = std::clamp(size, o.min_value_size,
                    std::max(o.min_value_size, o.max_value_size));
  return RandomBytes(rng(), size);
}

class Worker {
 public:
  Worker(Shared& shared, int index)
      : shared_(shared),
        store_(*shared.store),
        options_(shared.options),
        index_(index),
        rng_(shared.options.seed * 0x9e3779b97f4a7c15ULL +
             static_cast<uint64_t>(index) * 0xda942042e4dd58b5ULL + 1) {}

  Counters& counters() { return c_; }

  void Run() {
    const int ops = options_.ops_per_thread;
    const int rounds = static_cast<int>(shared_.rounds.size());
    int next_round = 0;
    for (int i = 0; i < ops; ++i) {
      // Rounds are spread evenly over the run; every thread reaches each at
      // the same operation index, so the barrier always fills.
      while (next_round < rounds &&
             i >= static_cast<int64_t>(next_round + 1) * ops / (rounds + 1)) {
        Rendezvous(next_round++);
      }
      OneOp();
      ++c_.ops;
    }
    while (next_round < rounds) Rendezvous(next_round++);
    // Leftovers: every ResolveAsync gets its resolve, and every proxy made
    // here is resolved once.
    for (ProxyOf& p : async_) {
      if (ResolveAndCheck(p, "async proxy", true)) ++c_.async_resolves;
    }
    async_.clear();
    for (ProxyOf& p : private_) ResolveAndCheck(p, "proxy", true);
    private_.clear();
  }

 private:
  uint64_t Rand() { return rng_(); }
  size_t Below(size_t n) { return static_cast<size_t>(rng_() % n); }

  absl::StatusOr<Key> PutOne(const Value& v) {
    StorePutOptions<Value> o;
    o.connector = options_.put_options;
    return store_.Put<Value>(v, o);
  }

  void OneOp() {
    const size_t r = Below(100);
    if (r < 14) return DoPut();
    if (r < 18) return DoPutBatch();
    if (r < 34) return DoGet();
    if (r < 39) return DoGetBatch();
    if (r < 47) return DoExists();
    if (r < 54) return DoEvict();
    if (r < 64) return DoProxy();
    if (r < 72) return DoResolvePrivate();
    if (r < 80) return DoSerializedResolve();
    if (r < 86) return DoResolveAsync();
    if (r < 90) return DoFinishAsync();
    if (r < 94) return DoEvictProxy();
    return DoSharedResolve();
  }

  // Checks a read of `e` that returned `got` (null: missing). `before` is
  // e's state read before the read began.
  void CheckRead(const Entry& e, const Value* got, int before,
                 absl::string_view what) {
    if (got == nullptr) {
      // The state is read after the read: an eviction that made it miss had
      // already marked the entry.
      if (e.state.load() == kLive) {
        c_.Fail(&c_.lost, absl::StrCat(what, ": live object ", KeyName(e.key),
                                       " (", e.size, " B) is missing"));
      }
      return;
    }
    if (got->size() != e.size || Fnv1a64(*got) != e.checksum) {
      c_.Fail(&c_.corrupt,
              absl::StrCat(what, ": object ", KeyName(e.key), " read back ",
                           got->size(), " B with another checksum (put ",
                           e.size, " B)"));
      return;
    }
    if (before == kEvicted) ++c_.stale_reads;
  }

  // Resolves `p` and checks the value; true if a value came back. A resolve
  // that runs the factory is counted in factory_attempts when `count`.
  bool ResolveAndCheck(const ProxyOf& p, absl::string_view what, bool count) {
    const bool was_resolved = p.proxy.IsResolved();
    // A resolved proxy keeps its target whatever happens to the key.
    const int before = was_resolved            ? kLive
                       : p.state_at_async >= 0 ? p.state_at_async
                                               : p.entry->state.load();
    absl::StatusOr<std::shared_ptr<const Value>> got = p.proxy.Get();
    if (count && !was_resolved) ++c_.factory_attempts;
    if (!got.ok()) {
      if (absl::IsNotFound(got.status())) {
        if (!was_resolved) ++c_.failed_resolves;
        if (p.entry->state.load() == kLive) {
          c_.Fail(&c_.lost, absl::StrCat(what, ": resolving live object ",
                                         KeyName(p.entry->key), ": ",
                                         got.status().ToString()));
        }
        return false;
      }
      c_.Fail(&c_.errors,
              absl::StrCat(what, ": resolve: ", got.status().ToString()));
      return false;
    }
    ++c_.proxies_resolved;
    CheckRead(*p.entry, got->get(), before, what);
    return true;
  }

  void DoPut() {
    Value v = MakeValue(rng_, options_);
    absl::StatusOr<Key> key = PutOne(v);
    if (!key.ok()) {
      c_.Fail(&c_.errors, absl::StrCat("Put: ", key.status().ToString()));
      return;
    }
    ++c_.put_calls;
    ++c_.objects_put;
    own_.push_back(shared_.ledger.Add(*key, v));
  }

  void DoPutBatch() {
    std::vector<Value> values(2 + Below(3));
    for (Value& v : values) v = MakeValue(rng_, options_);
    StorePutOptions<Value> o;
    o.connector = options_.put_options;
    absl::StatusOr<std::vector<Key>> keys =
        store_.PutBatch<Value>(absl::MakeConstSpan(values), o);
    if (!keys.ok()) {
      c_.Fail(&c_.errors, absl::StrCat("PutBatch: ", keys.status().ToString()));
      return;
    }
    ++c_.put_batches;
    for (size_t i = 0; i < values.size(); ++i) {
      ++c_.objects_put;
      own_.push_back(shared_.ledger.Add((*keys)[i], values[i]));
    }
  }

  // Half the time an object of this thread (never evicted by others, so it
  // must be there), else anyone's.
  EntryPtr PickEntry() {
    if (!own_.empty() && Below(2) == 0) return own_[Below(own_.size())];
    return shared_.ledger.Pick(Rand());
  }

  void DoGet() {
    EntryPtr e = PickEntry();
    if (e == nullptr) return DoPut();
    const int before = e->state.load();
    absl::StatusOr<std::shared_ptr<const Value>> got =
        store_.Get<Value>(e->key);
    ++c_.gets;
    if (!got.ok()) {
      c_.Fail(&c_.errors, absl::StrCat("Get(", KeyName(e->key),
                                       "): ", got.status().ToString()));
      return;
    }
    CheckRead(*e, got->get(), before, "Get");
  }

  void DoGetBatch() {
    std::vector<EntryPtr> entries;
    for (size_t n = 2 + Below(5); n > 0; --n) {
      if (EntryPtr e = PickEntry()) entries.push_back(std::move(e));
    }
    if (entries.empty()) return DoPut();
    std::vector<Key> keys;
    std::vector<int> before;
    for (const EntryPtr& e : entries) {
      keys.push_back(e->key);
      before.push_back(e->state.load());
    }
    absl::StatusOr<std::vector<std::shared_ptr<const Value>>> got =
        store_.GetBatch<Value>(absl::MakeConstSpan(keys));
    ++c_.get_batches;
    if (!got.ok()) {
      c_.Fail(&c_.errors, absl::StrCat("GetBatch(", keys.size(),
                                       " keys): ", got.status().ToString()));
      return;
    }
    if (got->size() != keys.size()) {
      c_.Fail(&c_.errors, absl::StrCat("GetBatch returned ", got->size(),
                                       " values for ", keys.size(), " keys"));
      return;
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      CheckRead(*entries[i], (*got)[i].get(), before[i], "GetBatch");
    }
  }

  void DoExists() {
    EntryPtr e = PickEntry();
    if (e == nullptr) return DoPut();
    const int before = e->state.load();
    absl::StatusOr<bool> exists = store_.Exists(e->key);
    ++c_.exists;
    if (!exists.ok()) {
      c_.Fail(&c_.errors, absl::StrCat("Exists(", KeyName(e->key),
                                       "): ", exists.status().ToString()));
      return;
    }
    if (!*exists && e->state.load() == kLive) {
      c_.Fail(&c_.lost, absl::StrCat("Exists: live object ", KeyName(e->key),
                                     " does not exist"));
    } else if (*exists && before == kEvicted) {
      ++c_.stale_reads;
    }
  }

  void DoEvict() {
    if (own_.empty()) return DoPut();
    const size_t i = Below(own_.size());
    EntryPtr e = std::move(own_[i]);
    own_[i] = std::move(own_.back());
    own_.pop_back();
    e->state.store(kEvicting);
    absl::Status s = store_.Evict(e->key);
    ++c_.evict_calls;
    if (!s.ok()) {
      c_.Fail(&c_.errors,
              absl::StrCat("Evict(", KeyName(e->key), "): ", s.ToString()));
      return;  // Stays kEvicting: the final pass reports it.
    }
    e->state.store(kEvicted);
    // Our own read right after our own evict.
    absl::StatusOr<std::shared_ptr<const Value>> got =
        store_.Get<Value>(e->key);
    ++c_.gets;
    if (!got.ok()) {
      c_.Fail(&c_.errors, absl::StrCat("Get after Evict(", KeyName(e->key),
                                       "): ", got.status().ToString()));
    } else if (*got != nullptr) {
      ++c_.stale_reads;
    }
  }

  // Puts a value as a proxy; the caller decides where the proxy goes.
  std::optional<ProxyOf> NewProxy(bool evict, bool populate) {
    Value v = MakeValue(rng_, options_);
    ProxyOptions<Value> o;
    o.evict = evict;
    o.populate_target = populate;
    o.connector = options_.put_options;
    absl::StatusOr<Proxy<Value>> p = store_.Proxy<Value>(v, o);
    if (!p.ok()) {
      c_.Fail(&c_.errors, absl::StrCat("Proxy: ", p.status().ToString()));
      return std::nullopt;
    }
    ++c_.put_calls;
    ++c_.objects_put;
    ++c_.proxies_created;
    absl::StatusOr<Key> key = GetKey(*p);
    if (!key.ok()) {
      c_.Fail(&c_.errors, absl::StrCat("GetKey: ", key.status().ToString()));
      return std::nullopt;
    }
    if (p->IsResolved() != populate) {
      c_.Fail(&c_.errors,
              absl::StrCat("Proxy(populate_target=", populate, ") came back ",
                           p->IsResolved() ? "resolved" : "unresolved"));
    }
    return ProxyOf{*std::move(p), shared_.ledger.Add(*key, v)};
  }

  void DoProxy() {
    std::optional<ProxyOf> p = NewProxy(false, Below(4) == 0);
    if (!p.has_value()) return;
    own_.push_back(p->entry);
    private_.push_back(*std::move(p));
  }

  // Takes one of this thread's unresolved-so-far proxies out of private_.
  std::optional<ProxyOf> TakePrivate() {
    if (private_.empty()) {
      DoProxy();
      if (private_.empty()) return std::nullopt;
    }
    const size_t i = Below(private_.size());
    ProxyOf p = std::move(private_[i]);
    private_[i] = std::move(private_.back());
    private_.pop_back();
    return p;
  }

  void DoResolvePrivate() {
    std::optional<ProxyOf> p = TakePrivate();
    if (p.has_value()) ResolveAndCheck(*p, "proxy", true);
  }

  void DoSerializedResolve() {
    if (private_.empty()) DoProxy();
    if (private_.empty()) return;
    const ProxyOf& original = private_[Below(private_.size())];
    absl::StatusOr<std::string> wire = original.proxy.Serialize();
    if (!wire.ok()) {
      c_.Fail(&c_.errors,
              absl::StrCat("Proxy::Serialize: ", wire.status().ToString()));
      return;
    }
    absl::StatusOr<Proxy<Value>> parsed = ParseProxy<Value>(*wire);
    if (!parsed.ok()) {
      c_.Fail(&c_.errors,
              absl::StrCat("ParseProxy: ", parsed.status().ToString()));
      return;
    }
    if (parsed->IsResolved()) {
      c_.Fail(&c_.errors, "ParseProxy returned a resolved proxy");
      return;
    }
    ProxyOf p{*parsed, original.entry};
    const bool async = Below(2) == 0;
    if (async) {
      p.state_at_async = p.entry->state.load();
      p.proxy.ResolveAsync();
    }
    if (ResolveAndCheck(p, "parsed proxy", true)) {
      ++c_.serialized_resolves;
      if (async) ++c_.async_resolves;
    }
  }

  void DoResolveAsync() {
    std::optional<ProxyOf> p = TakePrivate();
    if (!p.has_value()) return;
    p->state_at_async = p->entry->state.load();
    p->proxy.ResolveAsync();
    async_.push_back(*std::move(p));
  }

  void DoFinishAsync() {
    if (async_.empty()) return DoResolveAsync();
    ProxyOf p = std::move(async_.front());
    async_.erase(async_.begin());
    if (ResolveAndCheck(p, "async proxy", true)) ++c_.async_resolves;
  }

  void DoEvictProxy() {
    std::optional<ProxyOf> p = NewProxy(/*evict=*/true, /*populate=*/false);
    if (!p.has_value()) return;
    p->entry->state.store(kEvicting);  // The resolve evicts it.
    if (!ResolveAndCheck(*p, "evict=true proxy", true)) return;
    p->entry->state.store(kEvicted);
    ++c_.evict_proxy_resolves;
    absl::StatusOr<bool> exists = store_.Exists(p->entry->key);
    ++c_.exists;
    if (!exists.ok()) {
      c_.Fail(&c_.errors, absl::StrCat("Exists after an evict=true resolve: ",
                                       exists.status().ToString()));
    } else if (*exists) {
      ++c_.stale_reads;
    }
  }

  void DoSharedResolve() {
    if (shared_.pool.empty()) return DoGet();
    const ProxyOf& p = shared_.pool[Below(shared_.pool.size())];
    if (ResolveAndCheck(p, "shared proxy", false)) ++c_.shared_resolves;
  }

  // Every thread resolves the round's proxy at once; one of them started a
  // ResolveAsync first. All must get the very same target object.
  void Rendezvous(int round) {
    const ProxyOf& p = shared_.rounds[static_cast<size_t>(round)];
    const int threads = options_.threads;
    if (round % threads == index_) p.proxy.ResolveAsync();
    shared_.barrier.Wait();
    if (ResolveAndCheck(p, "rendezvous proxy", false)) {
      ++c_.shared_resolves;
      absl::StatusOr<std::shared_ptr<const Value>> got = p.proxy.Get();
      if (got.ok()) {
        shared_.round_targets[static_cast<size_t>(round)]
                             [static_cast<size_t>(index_)] = got->get();
      }
    }
  }

  Shared& shared_;
  Store& store_;
  const StressOptions& options_;
  const int index_;
  std::mt19937_64 rng_;
  Counters c_;
  std::vector<EntryPtr> own_;     // This thread's live objects.
  std::vector<ProxyOf> private_;  // This thread's proxies, not yet resolved.
  std::vector<ProxyOf> async_;    // ResolveAsync started, oldest first.
};

// `after - before` for a timing's count.
int64_t CountDelta(const std::map<std::string, TimeStats>& before,
                   const std::map<std::string, TimeStats>& after,
                   const std::string& name) {
  auto a = after.find(name);
  auto b = before.find(name);
  return (a == after.end() ? 0 : a->second.count) -
         (b == before.end() ? 0 : b->second.count);
}

int64_t Counter(const std::optional<Metrics>& m, const std::string& name) {
  if (!m.has_value()) return 0;
  auto it = m->counters.find(name);
  return it == m->counters.end() ? 0 : it->second;
}

}  // namespace

std::string StressSummary::ToString() const {
  std::string out = absl::StrCat(
      "stress summary: store \"", store_name, "\" (connector ", connector_kind,
      ")\n  threads x ops: ", threads, " x ", ops_per_thread, " = ", ops,
      " random operations\n  puts ", puts, " (", put_batches,
      " batches), gets ", gets, ", get batches ", get_batches, ", exists ",
      exists, ", evicts ", evicts, "\n  proxies: created ", proxies_created,
      ", resolved ", proxies_resolved, " (shared ", shared_resolves,
      ", serialized ", serialized_resolves, ", async ", async_resolves,
      ")\n  verified: ", objects_verified, " objects intact, ",
      evictions_verified, " evictions; lost ", lost, ", corrupt ", corrupt,
      ", resurrected ", resurrected, ", errors ", errors,
      "\n  metrics: ", metrics_checked ? "checked" : "not enabled", ", ",
      metric_mismatches, " mismatches; stale reads ", stale_reads, "; wall ",
      absl::StrFormat("%.3f", wall_seconds), " s\n");
  for (const std::string& f : failures)
    absl::StrAppend(&out, "  FAIL ", f, "\n");
  return out;
}

absl::StatusOr<StressSummary> RunStoreStress(
    const std::shared_ptr<Store>& store, const StressOptions& options) {
  if (store == nullptr) {
    return absl::InvalidArgumentError("RunStoreStress: store is null");
  }
  if (options.threads < 1 || options.ops_per_thread < 0 ||
      options.shared_proxies < 0 || options.rendezvous_rounds < 0 ||
      options.min_value_size > options.max_value_size) {
    return absl::InvalidArgumentError(
        "RunStoreStress: need threads >= 1, ops_per_thread, shared_proxies "
        "and rendezvous_rounds >= 0, min_value_size <= max_value_size");
  }
  const auto start = std::chrono::steady_clock::now();

  // Parsed proxies find their store through the registry.
  std::optional<StoreRegistration> registration;
  if (std::shared_ptr<Store> registered = GetStore(store->name())) {
    if (registered != store) {
      return absl::FailedPreconditionError(absl::StrCat(
          "RunStoreStress: another store is registered as \"", store->name(),
          "\"; parsed proxies would resolve through it"));
    }
  } else {
    PROXYSTORE_ASSIGN_OR_RETURN(StoreRegistration r,
                                StoreRegistration::Create({store}));
    registration.emplace(std::move(r));
  }

  StoreMetrics* metrics = store->metrics();
  const std::map<std::string, TimeStats> times_before =
      metrics != nullptr ? metrics->AggregateTimes()
                         : std::map<std::string, TimeStats>{};

  // Key ids come from absl::BitGen, seeded from Abseil's entropy pool, set
  // up lazily under absl::call_once, which TSan cannot see in Debian's
  // uninstrumented Abseil: set it up before the threads start.
  (void)NewObjectId();

  Shared shared(store, options);
  Counters total;
  // Shared proxies, made before the workers start (unresolved).
  std::mt19937_64 rng(options.seed);
  auto make_shared_proxy = [&]() -> std::optional<ProxyOf> {
    Value v = MakeValue(rng, options);
    ProxyOptions<Value> o;
    o.populate_target = false;
    o.connector = options.put_options;
    absl::StatusOr<Proxy<Value>> p = store->Proxy<Value>(v, o);
    if (!p.ok()) {
      total.Fail(&total.errors,
                 absl::StrCat("shared Proxy: ", p.status().ToString()));
      return std::nullopt;
    }
    absl::StatusOr<Key> key = GetKey(*p);
    if (!key.ok()) {
      total.Fail(&total.errors,
                 absl::StrCat("GetKey: ", key.status().ToString()));
      return std::nullopt;
    }
    ++total.put_calls;
    ++total.objects_put;
    ++total.proxies_created;
    return ProxyOf{*std::move(p), shared.ledger.Add(*key, v)};
  };
  for (int i = 0; i < options.shared_proxies; ++i) {
    if (std::optional<ProxyOf> p = make_shared_proxy()) {
      shared.pool.push_back(*std::move(p));
    }
  }
  for (int i = 0; i < options.rendezvous_rounds; ++i) {
    if (std::optional<ProxyOf> p = make_shared_proxy()) {
      shared.rounds.push_back(*std::move(p));
    }
  }
  shared.round_targets.assign(
      shared.rounds.size(),
      std::vector<const Value*>(static_cast<size_t>(options.threads), nullptr));

  {
    std::vector<std::unique_ptr<Worker>> workers;
    for (int t = 0; t < options.threads; ++t) {
      workers.push_back(std::make_unique<Worker>(shared, t));
    }
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([&w] { w->Run(); });
    for (std::thread& t : threads) t.join();
    for (auto& w : workers) total.Add(w->counters());
  }

  // Shared proxies run their factory once, on first resolve.
  int64_t shared_attempts = 0;
  for (const ProxyOf& p : shared.pool) shared_attempts += p.proxy.IsResolved();
  for (size_t r = 0; r < shared.rounds.size(); ++r) {
    shared_attempts += shared.rounds[r].proxy.IsResolved();
    const std::vector<const Value*>& targets = shared.round_targets[r];
    for (const Value* t : targets) {
      if (t == nullptr || t != targets[0]) {
        total.Fail(&total.errors,
                   absl::StrCat("rendezvous round ", r,
                                ": threads got different target objects "
                                "(a proxy must resolve once)"));
        break;
      }
    }
  }
  total.factory_attempts += shared_attempts;

  const std::vector<EntryPtr> entries = shared.ledger.All();
  StressSummary s;
  s.store_name = store->name();
  s.connector_kind = std::string(store->connector().kind());
  s.threads = options.threads;
  s.ops_per_thread = options.ops_per_thread;

  // Metrics, before the final pass adds reads of its own.
  if (metrics != nullptr) {
    s.metrics_checked = true;
    const std::map<std::string, TimeStats> after = metrics->AggregateTimes();
    auto expect = [&](const std::string& name, int64_t want) {
      const int64_t got = CountDelta(times_before, after, name);
      if (got != want) {
        ++s.metric_mismatches;
        if (s.failures.size() < kMaxFailures) {
          s.failures.push_back(absl::StrCat("metrics: ", name, ".count is ",
                                            got, ", expected ", want));
        }
      }
    };
    expect("store.put", total.put_calls);
    expect("store.put_batch", total.put_batches);
    expect("store.proxy", total.proxies_created);
    expect("store.get", total.gets + total.factory_attempts);
    expect("factory.resolve", total.factory_attempts - total.failed_resolves);
    expect("store.get_batch", total.get_batches);
    expect("store.exists", total.exists);
    expect("store.evict", total.evict_calls + total.evict_proxy_resolves);
    // Every Store::Get is a cache hit or a miss of its key.
    int64_t hits_and_misses = 0;
    for (const EntryPtr& e : entries) {
      std::optional<Metrics> m = metrics->GetMetrics(e->key);
      hits_and_misses += Counter(m, "store.get.cache_hits") +
                         Counter(m, "store.get.cache_misses");
    }
    const int64_t gets = CountDelta(times_before, after, "store.get");
    if (hits_and_misses != gets) {
      ++s.metric_mismatches;
      if (s.failures.size() < kMaxFailures) {
        s.failures.push_back(absl::StrCat(
            "metrics: store.get.cache_hits + cache_misses summed over keys is ",
            hits_and_misses, ", store.get.count is ", gets));
      }
    }
  }

  // Final pass through a fresh store: its own connector, no cache.
  StoreConfig fresh_config = store->Config();
  fresh_config.name = absl::StrCat(store->name(), ".stress-verify");
  fresh_config.cache_size = 0;
  fresh_config.metrics = false;
  fresh_config.auto_register = false;
  absl::StatusOr<std::shared_ptr<Store>> fresh =
      Store::FromConfig(fresh_config);
  if (!fresh.ok()) {
    total.Fail(&total.errors, absl::StrCat("re-creating the store from its "
                                           "config: ",
                                           fresh.status().ToString()));
  } else {
    for (const EntryPtr& e : entries) {
      const int state = e->state.load();
      absl::StatusOr<std::shared_ptr<const Value>> got =
          (*fresh)->Get<Value>(e->key);
      if (!got.ok()) {
        total.Fail(&total.errors, absl::StrCat("final Get(", KeyName(e->key),
                                               "): ", got.status().ToString()));
        continue;
      }
      if (state == kLive) {
        if (*got == nullptr) {
          total.Fail(&total.lost,
                     absl::StrCat("final: object ", KeyName(e->key), " (",
                                  e->size, " B) is lost"));
        } else if ((*got)->size() != e->size || Fnv1a64(**got) != e->checksum) {
          total.Fail(&total.corrupt,
                     absl::StrCat("final: object ", KeyName(e->key),
                                  " has another checksum"));
        } else {
          ++s.objects_verified;
        }
        continue;
      }
      if (state == kEvicting) {
        total.Fail(&total.errors,
                   absl::StrCat("final: eviction of ", KeyName(e->key),
                                " never finished"));
        continue;
      }
      // Evicted: gone from the connector and from the original store's cache.
      absl::StatusOr<std::shared_ptr<const Value>> original =
          store->Get<Value>(e->key);
      absl::StatusOr<bool> exists = store->Exists(e->key);
      if (!original.ok() || !exists.ok()) {
        total.Fail(&total.errors,
                   absl::StrCat("final: reading evicted ", KeyName(e->key),
                                ": ", original.status().ToString(), " / ",
                                exists.status().ToString()));
      } else if (*got != nullptr || *original != nullptr || *exists) {
        ++s.resurrected;
        if (s.failures.size() < kMaxFailures) {
          s.failures.push_back(absl::StrCat(
              "final: evicted object ", KeyName(e->key), " is still there (",
              *got != nullptr ? "connector" : "",
              *original != nullptr ? " store cache" : "",
              *exists ? " exists" : "", ")"));
        }
      } else {
        ++s.evictions_verified;
      }
    }
    absl::Status closed = (*fresh)->Close(CloseOptions{.clear = false});
    if (!closed.ok()) {
      total.Fail(&total.errors, absl::StrCat("closing the verifying store: ",
                                             closed.ToString()));
    }
  }

  s.ops = total.ops;
  s.puts = total.objects_put;
  s.put_batches = total.put_batches;
  s.gets = total.gets;
  s.get_batches = total.get_batches;
  s.exists = total.exists;
  s.evicts = total.evict_calls + total.evict_proxy_resolves;
  s.proxies_created = total.proxies_created;
  s.proxies_resolved = total.proxies_resolved;
  s.shared_resolves = total.shared_resolves;
  s.serialized_resolves = total.serialized_resolves;
  s.async_resolves = total.async_resolves;
  s.lost = total.lost;
  s.corrupt = total.corrupt;
  s.errors = total.errors;
  s.stale_reads = total.stale_reads;
  for (const std::string& f : total.failures) {
    if (s.failures.size() < kMaxFailures) s.failures.push_back(f);
  }
  s.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (options.print) {
    std::fputs(s.ToString().c_str(), stdout);
    std::fflush(stdout);
  }
  return s;
}

void ExpectStressHeld(const StressSummary& s, const StressOptions& options) {
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(s.threads, options.threads);
  EXPECT_EQ(s.ops, int64_t{options.threads} * options.ops_per_thread);
  EXPECT_TRUE(s.metrics_checked);
  EXPECT_EQ(s.lost, 0);
  EXPECT_GT(s.objects_verified, 0);
  EXPECT_GT(s.evictions_verified, 0);
  EXPECT_EQ(s.objects_verified + s.evictions_verified, s.puts) << s.ToString();
}

}  // namespace proxystore::testing
