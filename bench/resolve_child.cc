// Child side of the "proxy resolve in another process" rows: reads serialized
// proxies (one hex line each) from a manifest, resolves each one and prints
// its resolve time. Proxies are parsed before the clock starts; each resolve
// is timed alone (ParseProxy is measured by the serialize+deserialize row).
//
//   resolve_child MANIFEST [string|view]
// prints:  ns <resolve ns> <bytes>   per proxy, then  faults <n>,
//          cpu_ns <thread CPU ns of all resolves>  and  ok
#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store.h"

namespace {

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t Faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt + u.ru_majflt;
}

template <typename T>
int Run(const std::vector<std::string>& wires) {
  std::vector<proxystore::Proxy<T>> proxies;
  for (const std::string& w : wires) {
    auto p = proxystore::ParseProxy<T>(w);
    if (!p.ok()) {
      std::printf("error %s\n", p.status().ToString().c_str());
      return 1;
    }
    proxies.push_back(*std::move(p));
  }
  // Warm the store (created from the first proxy's config) outside the clock.
  if (!proxies.empty()) {
    auto store = proxystore::GetStore(proxies.front());
    if (!store.ok()) {
      std::printf("error %s\n", store.status().ToString().c_str());
      return 1;
    }
  }
  const int64_t f0 = Faults();
  int64_t cpu_ns = 0;
  for (auto& p : proxies) {
    const int64_t c0 = ThreadCpuNs();
    const int64_t t0 = Now();
    auto v = p.Get();
    const int64_t t1 = Now();
    cpu_ns += ThreadCpuNs() - c0;
    if (!v.ok()) {
      std::printf("error %s\n", v.status().ToString().c_str());
      return 1;
    }
    std::printf("ns %lld %zu\n", static_cast<long long>(t1 - t0),
                static_cast<size_t>((*v)->size()));
  }
  std::printf("faults %lld\ncpu_ns %lld\nok\n",
              static_cast<long long>(Faults() - f0),
              static_cast<long long>(cpu_ns));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MANIFEST [string|view]\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  std::vector<std::string> wires;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) wires.push_back(absl::HexStringToBytes(line));
  }
  const std::string type = argc > 2 ? argv[2] : "string";
  if (type == "view") return Run<proxystore::SharedBytes>(wires);
  return Run<std::string>(wires);
}
