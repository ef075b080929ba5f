// Uses proxystore-cpp's LruCache from another Bazel workspace, with nothing
// else of proxystore. Exits 0 only if the cache behaves as documented.
#include <cstdio>
#include <memory>
#include <string>

#include "proxystore/cache/cache.h"

namespace {

int failures = 0;

void Check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

}  // namespace

int main() {
  using Cache = proxystore::LruCache<std::string, std::string>;

  absl::StatusOr<std::unique_ptr<Cache>> bad = Cache::Create(-1);
  Check(!bad.ok() && bad.status().code() == absl::StatusCode::kInvalidArgument,
        "negative capacity is rejected");

  absl::StatusOr<std::unique_ptr<Cache>> created = Cache::Create(2);
  if (!created.ok()) {
    std::printf("FAIL Create(2): %s\n", created.status().ToString().c_str());
    return 1;
  }
  Cache& cache = **created;

  cache.Set("alpha", std::string("first"));
  cache.Set("beta", std::string("second"));
  std::shared_ptr<const std::string> alpha = cache.Get("alpha");
  Check(alpha != nullptr && *alpha == "first", "hit returns the value");
  Check(cache.Get("alpha").get() == alpha.get(), "hits share one object");

  cache.Set("gamma", std::string("third"));  // Evicts beta, the LRU entry.
  Check(!cache.Exists("beta"), "least recently used entry was evicted");
  Check(cache.Exists("alpha") && cache.Exists("gamma"),
        "recently used entries were kept");
  Check(cache.Get("beta") == nullptr, "evicted key misses");
  Check(cache.hits() == 2 && cache.misses() == 1, "hits and misses counted");

  std::printf("size=%zu capacity=%lld hits=%lld misses=%lld\n", cache.size(),
              static_cast<long long>(cache.capacity()),
              static_cast<long long>(cache.hits()),
              static_cast<long long>(cache.misses()));
  std::printf("%s\n", failures == 0 ? "PASS" : "FAILED");
  return failures == 0 ? 0 : 1;
}
