// A reusable concurrency stress harness for a Store over any connector.
//
// RunStoreStress() runs `threads` worker threads over one Store, each doing a
// fixed number of operations (no time-based loops) drawn from a seeded random
// mix: Put, PutBatch, Get, GetBatch, Exists, Evict, Proxy, proxy resolve,
// proxy Serialize + ParseProxy + resolve, ResolveAsync + resolve, and
// evict=true proxies. On top of that, proxies made before the workers start
// are shared by all of them: a pool resolved at random moments, and one proxy
// per "rendezvous round" that every thread resolves at the same moment (all
// threads meet at a barrier first; one of them has started a ResolveAsync), so
// the first resolve really is contended.
//
// Every acknowledged put is recorded (key -> FNV-1a checksum of the value,
// size, and whether it was evicted). During the run a read of a live object
// must be intact and present; a read of an object whose eviction has started
// may be missing. Afterwards, through a FRESH store made from the store's
// config (its own connector, no cache, so nothing is answered from the
// original store's memory), every live object must read back intact, and
// every evicted one must be gone, also through the original store (its cache
// must not bring it back). With metrics enabled on the store, the counters
// must add up exactly: store.put / store.put_batch / store.proxy /
// store.exists / store.evict / store.get_batch counts equal the operations
// done, store.get equals direct Gets plus factory resolves (proxy resolves go
// through Store::Get), factory.resolve equals the successful ones, and the
// per-key cache_hits + cache_misses counters sum to store.get's count.
//
// Violations do not abort the run: they are counted in the summary (lost,
// corrupt, resurrected, errors, metric_mismatches) with the first few
// messages, so a test asserts summary.ok() and prints ToString(). A returned
// error status means the run could not start (null store, a different store
// registered under the same name, ...).
//
// The store must hold nothing the harness did not put under the keys it
// makes; it may be shared with other users as long as they do not evict the
// harness's keys. If the store is not in the process registry, it is
// registered for the run (ParseProxy'd proxies resolve through the registry)
// and unregistered afterwards.
//
//   PROXYSTORE_ASSERT_OK_AND_ASSIGN(
//       std::shared_ptr<Store> store,
//       Store::Create("stress", std::move(connector), {.metrics = true}));
//   PROXYSTORE_ASSERT_OK_AND_ASSIGN(StressSummary s, RunStoreStress(store));
//   EXPECT_TRUE(s.ok()) << s.ToString();
//
// Thread-safety: RunStoreStress may run concurrently on different stores.
#ifndef PROXYSTORE_TESTING_STRESS_H_
#define PROXYSTORE_TESTING_STRESS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/store/store.h"

namespace proxystore::testing {

// Operations per thread by default: fewer under the sanitizers
// (-DPROXYSTORE_SANITIZER), which slow everything down 5-20x.
#ifdef PROXYSTORE_SANITIZER
inline constexpr int kDefaultStressOpsPerThread = 250;
#else
inline constexpr int kDefaultStressOpsPerThread = 400;
#endif

// 64-bit FNV-1a of `data`: the checksum the harness (and the multi-process
// test's children) record for each value.
uint64_t Fnv1a64(absl::string_view data);

// `size` pseudo-random bytes from `seed`: the same on every run and in every
// process.
std::string RandomBytes(uint64_t seed, size_t size);

struct StressOptions {
  // At least 1; the point is >= 8.
  int threads = 8;
  // Random operations per thread (rendezvous resolves and the final resolve
  // of each thread's leftover proxies come on top).
  int ops_per_thread = kDefaultStressOpsPerThread;
  // Value sizes are log-uniform in [min_value_size, max_value_size].
  size_t min_value_size = 100;
  size_t max_value_size = 64 * 1024;
  uint64_t seed = 1;
  // Proxies shared by every thread, resolved at random moments.
  int shared_proxies = 16;
  // Barrier rounds in which every thread resolves the same fresh proxy.
  int rendezvous_rounds = 4;
  // Passed to the connector on every put (routing tags for "multi").
  PutOptions put_options;
  // Print the summary to stdout when done.
  bool print = true;
};

struct StressSummary {
  std::string store_name;
  std::string connector_kind;
  int threads = 0;
  int64_t ops_per_thread = 0;
  // Random operations done, over all threads.
  int64_t ops = 0;
  // Objects acknowledged (Put, PutBatch items, Proxy): the ledger's size.
  int64_t puts = 0;
  int64_t put_batches = 0;
  // Direct Store::Get calls during the run.
  int64_t gets = 0;
  int64_t get_batches = 0;
  int64_t exists = 0;
  // Objects evicted: Evict calls and evict=true proxy resolves.
  int64_t evicts = 0;
  int64_t proxies_created = 0;
  // Successful proxy resolves (any path), and of those: on proxies shared by
  // threads, after Serialize + ParseProxy, after ResolveAsync.
  int64_t proxies_resolved = 0;
  int64_t shared_resolves = 0;
  int64_t serialized_resolves = 0;
  int64_t async_resolves = 0;
  // Final pass: live objects read back intact, evicted ones found gone.
  int64_t objects_verified = 0;
  int64_t evictions_verified = 0;
  // Violations; all must be 0.
  int64_t lost = 0;         // acknowledged, not evicted, missing
  int64_t corrupt = 0;      // read back with another checksum
  int64_t resurrected = 0;  // evicted, yet readable at the end
  int64_t errors = 0;       // unexpected error statuses
  int64_t metric_mismatches = 0;
  bool metrics_checked = false;
  // Informational, not a violation: during the run, a read that started after
  // an eviction had completed still returned the object (possible while a
  // concurrent Get re-inserts into the cache before it notices the eviction;
  // the final pass requires such objects to be gone).
  int64_t stale_reads = 0;
  double wall_seconds = 0;
  // The first violation messages (at most 20).
  std::vector<std::string> failures;

  bool ok() const {
    return lost == 0 && corrupt == 0 && resurrected == 0 && errors == 0 &&
           metric_mismatches == 0;
  }
  // One line per aspect, for logs and test output.
  std::string ToString() const;
};

// Runs the stress scenario above on `store`, values typed std::string.
absl::StatusOr<StressSummary> RunStoreStress(
    const std::shared_ptr<Store>& store, const StressOptions& options = {});

// The checks every connector's stress test makes of a run with `options` on
// a store with metrics on (gtest EXPECTs, each naming its figure): no
// violations, every thread and operation ran, the metrics were
// cross-checked, nothing was lost, and every acknowledged object is
// accounted for: read back intact or verified evicted (some of each).
void ExpectStressHeld(const StressSummary& s, const StressOptions& options);

}  // namespace proxystore::testing

#endif  // PROXYSTORE_TESTING_STRESS_H_
