// Uses proxystore-cpp from another Bazel workspace: a store over the file
// connector whose proxy resolves in a child process, and the LRU cache on
// its own. Exits 0 only if both behave as documented.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "proxystore/cache/cache.h"
#include "proxystore/connectors/file/file_connector.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store.h"

namespace {

int failures = 0;

void Check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

// A store over files, a proxy serialized here and resolved in a child.
void StoreAndProxy() {
  using namespace proxystore;
  char dir[] = "/tmp/proxystore-consumer-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    Check(false, "mkdtemp");
    return;
  }
  absl::StatusOr<std::unique_ptr<Connector>> connector =
      MakeConnector({"file", {{"directory", dir}}});
  Check(connector.ok(), "file connector created");
  if (!connector.ok()) return;
  absl::StatusOr<std::shared_ptr<Store>> store =
      Store::Create("consumer-example", *std::move(connector));
  Check(store.ok(), "store created");
  if (!store.ok()) return;
  absl::StatusOr<Proxy<std::string>> proxy =
      (*store)->Proxy(std::string("hello from the parent"));
  absl::StatusOr<std::string> wire =
      proxy.ok() ? proxy->Serialize()
                 : absl::StatusOr<std::string>(proxy.status());
  Check(wire.ok(), "proxy made and serialized");
  if (!wire.ok()) return;
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {  // Another process: only the serialized proxy crosses.
    absl::StatusOr<Proxy<std::string>> p = ParseProxy<std::string>(*wire);
    if (!p.ok()) _exit(2);
    absl::StatusOr<std::shared_ptr<const std::string>> got = p->Get();
    _exit(got.ok() && **got == "hello from the parent" ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  Check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "child resolved the proxy from the file");
  Check((*store)->Close({.clear = true}).ok(), "store closed and cleared");
  Check(rmdir(dir) != 0, "clearing removed the directory");
}

}  // namespace

int main() {
  StoreAndProxy();

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
