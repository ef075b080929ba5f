// Counts heap requests for the benchmark suite by interposing glibc's malloc
// family in the benchmark executable (symbols in the executable win over
// libc's for every shared library too) and forwarding to glibc's own
// __libc_* entry points. Disabled under sanitizers, which own malloc.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "proxystore/bench/bench_util.h"

namespace proxystore::bench {
namespace {
// One pair of counters per thread slot, a cache line each: threads that
// allocate at once (the thread rows) never write the same line, so counting
// adds no contention of its own. The first kSlots - 1 threads own a slot
// each and count with plain loads and stores (no locked instruction: the
// counter must not cost more than the allocations it counts, or rows that
// allocate twice would pay for the instrument); later threads share the
// last slot and count with atomic adds.
constexpr int kSlots = 64;
struct alignas(64) Slot {
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> count{0};
};
Slot g_slots[kSlots];
std::atomic<int> g_next_slot{0};
// Constant-initialized: reading it in malloc allocates nothing.
thread_local int t_slot = -1;
inline void Add(std::atomic<int64_t>& counter, int64_t n, bool owned) {
  if (owned) {
    counter.store(counter.load(std::memory_order_relaxed) + n,
                  std::memory_order_relaxed);
  } else {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
}
inline void Count(size_t n) {
  if (t_slot < 0) {
    t_slot = std::min(g_next_slot.fetch_add(1, std::memory_order_relaxed),
                      kSlots - 1);
  }
  const bool owned = t_slot < kSlots - 1;
  Slot& s = g_slots[t_slot];
  Add(s.bytes, static_cast<int64_t>(n), owned);
  Add(s.count, 1, owned);
}
}  // namespace

#if defined(PROXYSTORE_SANITIZER)
AllocCounts CurrentAllocs() { return {}; }
bool AllocCountingEnabled() { return false; }
#else
AllocCounts CurrentAllocs() {
  AllocCounts total;
  for (const Slot& s : g_slots) {
    total.bytes += s.bytes.load(std::memory_order_relaxed);
    total.count += s.count.load(std::memory_order_relaxed);
  }
  return total;
}
bool AllocCountingEnabled() { return true; }
#endif

}  // namespace proxystore::bench

#if !defined(PROXYSTORE_SANITIZER)
extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);

void* malloc(size_t n) {
  proxystore::bench::Count(n);
  return __libc_malloc(n);
}
void free(void* p) { __libc_free(p); }
void* calloc(size_t a, size_t b) {
  proxystore::bench::Count(a * b);
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  proxystore::bench::Count(n);
  return __libc_realloc(p, n);
}
void* memalign(size_t alignment, size_t n) {
  proxystore::bench::Count(n);
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(size_t alignment, size_t n) {
  proxystore::bench::Count(n);
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, size_t alignment, size_t n) {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) {
    return EINVAL;
  }
  proxystore::bench::Count(n);
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr && n != 0) return ENOMEM;
  *out = p;
  return 0;
}
}  // extern "C"
#endif
