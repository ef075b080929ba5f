// Put an object, proxy it, send only the proxy to another process, resolve it
// there. The data moves once, producer to consumer, through the FileConnector.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "proxystore/store/factory.h"
#include "proxystore/store/store.h"

using namespace proxystore;

int main() {
  char dir[] = "/tmp/proxystore-example-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  auto connector = MakeConnector({"file", {{"directory", dir}}});
  if (!connector.ok()) return 1;
  auto store = Store::Create("example", *std::move(connector));
  if (!store.ok()) return 1;

  std::string big(10'000'000, 'x');  // 10 MB stays in the store...
  auto proxy = (*store)->Proxy(big, {.evict = true});
  if (!proxy.ok()) return 1;
  auto wire = proxy->Serialize();  // ...only these bytes travel.
  if (!wire.ok()) return 1;
  std::printf("parent: proxy of %zu bytes serialized to %zu bytes\n",
              big.size(), wire->size());

  int fds[2];
  if (pipe(fds) != 0) return 1;
  pid_t pid = fork();
  if (pid == 0) {  // The consumer: another process.
    close(fds[1]);
    std::string bytes(wire->size(), '\0');
    if (read(fds[0], bytes.data(), bytes.size()) != ssize_t(bytes.size()))
      _exit(1);
    auto p = ParseProxy<std::string>(bytes);  // Unresolved: nothing fetched.
    if (!p.ok()) _exit(1);
    std::printf("child: resolved %zu bytes, first '%c'\n", (*p)->size(),
                (**p)[0]);
    std::fflush(stdout);
    _exit(**p == std::string(10'000'000, 'x') ? 0 : 1);
  }
  close(fds[0]);
  if (write(fds[1], wire->data(), wire->size()) != ssize_t(wire->size()))
    return 1;
  close(fds[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  auto key = GetKey(*proxy);
  bool gone = key.ok() && !*(*store)->Exists(*key);  // evict=true: consumed.
  std::printf("parent: child %s, object evicted: %s\n",
              WEXITSTATUS(status) == 0 ? "ok" : "failed", gone ? "yes" : "no");
  (void)(*store)->Close({.clear = true});
  return WEXITSTATUS(status) == 0 && gone ? 0 : 1;
}
