// The child side of testing/multi_process_test.cc: one of several processes
// started at once against one connector.
//
//   stress_child MANIFEST INDEX PUTS SEED
//
// It first waits on its start gate (file descriptor 3, a pipe shared by all
// children: the parent writes one byte per child once every child is
// running, so all of them work at the same time), then, with 4 threads:
//  (a) resolves every proxy listed in MANIFEST, twice per thread (a fresh
//      ParseProxy each time, and one parsed proxy shared by all threads so
//      that its first resolve is contended), checking size and checksum;
//  (b) puts PUTS values of its own (sizes 100 B - 64 KB, bytes from SEED)
//      through a store on the manifest's connector config, half of them as
//      proxies, and reports each on stdout:
//        put <hex key id> <fnv1a64> <size>
//        proxy <hex serialized proxy> <fnv1a64> <size>
// It ends with "resolved <n>" and "ok", exit code 0; any failure prints
// "FAILED <what>" and exits 1. The manifest has one line per item:
//   connector <hex ConnectorConfig::Serialize()>
//   proxy <hex serialized proxy> <fnv1a64> <size>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/stress.h"

namespace {

using proxystore::testing::Fnv1a64;

constexpr int kThreads = 4;
constexpr int kGateFd = 3;

struct Item {
  std::string wire;
  uint64_t checksum = 0;
  size_t size = 0;
};

// Collects output lines and failures from all threads.
class Report {
 public:
  void Line(std::string line) {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.push_back(std::move(line));
  }
  void Fail(std::string what) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_.push_back(std::move(what));
  }
  // Prints everything; the exit code.
  int Finish(int64_t resolved) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& l : lines_) std::printf("%s\n", l.c_str());
    for (const std::string& f : failures_)
      std::printf("FAILED %s\n", f.c_str());
    std::printf("resolved %lld\n", static_cast<long long>(resolved));
    if (failures_.empty()) std::printf("ok\n");
    std::fflush(stdout);
    return failures_.empty() ? 0 : 1;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
  std::vector<std::string> failures_;
};

// Blocks until the parent opens the gate. No gate (not started by the
// test): go at once.
bool WaitForGate() {
  if (fcntl(kGateFd, F_GETFD) == -1) return true;
  char c;
  for (;;) {
    ssize_t n = read(kGateFd, &c, 1);
    if (n == 1) break;
    if (n < 0 && errno == EINTR) continue;
    return false;  // The parent closed the gate without opening it.
  }
  close(kGateFd);
  return true;
}

void CheckValue(const absl::StatusOr<std::shared_ptr<const std::string>>& got,
                const Item& item, absl::string_view what, Report& report,
                std::atomic<int64_t>& resolved) {
  if (!got.ok()) {
    report.Fail(absl::StrCat(what, ": ", got.status().ToString()));
  } else if ((*got)->size() != item.size || Fnv1a64(**got) != item.checksum) {
    report.Fail(absl::StrCat(what, ": value differs (", (*got)->size(),
                             " B, expected ", item.size, " B)"));
  } else {
    ++resolved;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s MANIFEST INDEX PUTS SEED\n", argv[0]);
    return 2;
  }
  int index = 0;
  int puts = 0;
  uint64_t seed = 0;
  if (!absl::SimpleAtoi(argv[2], &index) || !absl::SimpleAtoi(argv[3], &puts) ||
      !absl::SimpleAtoi(argv[4], &seed) || puts < 0) {
    std::fprintf(stderr, "bad INDEX, PUTS or SEED\n");
    return 2;
  }
  if (!WaitForGate()) {
    std::printf("FAILED the start gate closed before it opened\n");
    return 1;
  }

  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::printf("FAILED cannot open %s\n", argv[1]);
    return 1;
  }
  std::vector<Item> items;
  std::string connector_hex;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string tag, hex;
    fields >> tag >> hex;
    if (tag == "connector") {
      connector_hex = hex;
    } else if (tag == "proxy") {
      Item item;
      item.wire = absl::HexStringToBytes(hex);
      fields >> item.checksum >> item.size;
      items.push_back(std::move(item));
    }
  }
  absl::StatusOr<proxystore::ConnectorConfig> config =
      proxystore::ConnectorConfig::Parse(absl::HexStringToBytes(connector_hex));
  if (!config.ok()) {
    std::printf("FAILED manifest connector config: %s\n",
                config.status().ToString().c_str());
    return 1;
  }

  Report report;
  std::atomic<int64_t> resolved{0};

  // (a) Resolve the parent's proxies: one shared parsed proxy per item...
  std::vector<proxystore::Proxy<std::string>> shared;
  for (const Item& item : items) {
    absl::StatusOr<proxystore::Proxy<std::string>> p =
        proxystore::ParseProxy<std::string>(item.wire);
    if (!p.ok()) {
      std::printf("FAILED ParseProxy: %s\n", p.status().ToString().c_str());
      return 1;
    }
    shared.push_back(*std::move(p));
  }

  // (b) ... and a store of our own for the puts.
  absl::StatusOr<std::unique_ptr<proxystore::Connector>> connector =
      proxystore::MakeConnector(*config);
  if (!connector.ok()) {
    std::printf("FAILED MakeConnector: %s\n",
                connector.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::shared_ptr<proxystore::Store>> store =
      proxystore::Store::Create(absl::StrCat("stress-child-", index),
                                *std::move(connector));
  if (!store.ok()) {
    std::printf("FAILED Store::Create: %s\n",
                store.status().ToString().c_str());
    return 1;
  }

  // Key ids come from absl::BitGen, seeded from Abseil's entropy pool, which
  // is set up lazily under absl::call_once. Debian's Abseil is not built
  // for TSan, so a first use from several threads at once is reported as a
  // race: set the pool up here, before the threads start.
  (void)proxystore::NewObjectId();

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(t));
      // Every item through the shared proxy and through a fresh parse, in an
      // order of this thread's own.
      std::vector<size_t> order(items.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), rng);
      for (size_t i : order) {
        CheckValue(shared[i].Get(), items[i], "shared proxy", report, resolved);
        absl::StatusOr<proxystore::Proxy<std::string>> p =
            proxystore::ParseProxy<std::string>(items[i].wire);
        if (!p.ok()) {
          report.Fail(absl::StrCat("ParseProxy: ", p.status().ToString()));
          continue;
        }
        if (rng() % 2 == 0) p->ResolveAsync();
        CheckValue(p->Get(), items[i], "parsed proxy", report, resolved);
      }
      // Our own puts: this thread's share.
      for (int i = t; i < puts; i += kThreads) {
        const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
        const size_t size = static_cast<size_t>(
            std::llround(std::exp(std::log(100.0) + u * std::log(655.36))));
        const std::string value = proxystore::testing::RandomBytes(rng(), size);
        const uint64_t sum = Fnv1a64(value);
        if (i % 2 == 0) {
          absl::StatusOr<proxystore::Key> key = (*store)->Put(value);
          if (!key.ok()) {
            report.Fail(absl::StrCat("Put: ", key.status().ToString()));
            continue;
          }
          report.Line(absl::StrCat("put ", absl::BytesToHexString(key->id()),
                                   " ", sum, " ", size));
        } else {
          absl::StatusOr<proxystore::Proxy<std::string>> p =
              (*store)->Proxy(value);
          absl::StatusOr<std::string> wire =
              p.ok() ? p->Serialize() : absl::StatusOr<std::string>(p.status());
          if (!wire.ok()) {
            report.Fail(absl::StrCat("Proxy: ", wire.status().ToString()));
            continue;
          }
          report.Line(absl::StrCat("proxy ", absl::BytesToHexString(*wire), " ",
                                   sum, " ", size));
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();

  // Never clear: the objects are the parent's to check (and "file" clears
  // by default).
  absl::Status closed =
      (*store)->Close(proxystore::CloseOptions{.clear = false});
  if (!closed.ok()) report.Fail(absl::StrCat("Close: ", closed.ToString()));
  return report.Finish(resolved.load());
}
