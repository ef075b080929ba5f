// Counts heap requests for the benchmark suite by interposing glibc's malloc
// family in the benchmark executable (symbols in the executable win over
// libc's for every shared library too) and forwarding to glibc's own
// __libc_* entry points. Disabled under sanitizers, which own malloc.
#include <malloc.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "proxystore/bench/bench_util.h"

namespace proxystore::bench {
namespace {
std::atomic<int64_t> g_bytes{0};
std::atomic<int64_t> g_count{0};
inline void Count(size_t n) {
  g_bytes.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed);
  g_count.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if defined(PROXYSTORE_SANITIZER)
AllocCounts CurrentAllocs() { return {}; }
bool AllocCountingEnabled() { return false; }
#else
AllocCounts CurrentAllocs() {
  return {g_bytes.load(std::memory_order_relaxed),
          g_count.load(std::memory_order_relaxed)};
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
