// The stream-throughput benchmark: items through a proxy stream carried by
// the broker itself vs as proxies with the bulk data in a store (ProxyStore's
// TPDS'24 stream experiment, scaled to one machine).
//
// A private redis-server is the broker (Redis Streams, stream/redis_broker.h).
// For each item size (default 10 KB, 1 MB, 10 MB) and each number of
// consumers (1, 2, 4), one producer sends the items to one topic and the
// consumers, each a process of one consumer group, take them until the end
// of the stream and read every byte:
//   broker  the objects travel inside the events (a topic without a store):
//           producer -> redis-server -> consumer, twice through the broker's
//           single thread, and kept in the stream
//   proxy   the objects go to a store ("shm": POSIX shared memory, the
//           one-host data path whose reads map the object) and the events
//           carry ~400-byte proxies; a consumer resolves each proxy, which
//           maps the object and evicts it (consumed once)
// Consumer processes are started, connected and waiting before the clock
// starts; the clock is read again when the last consumer has read the end of
// the stream. Throughput = items (and bytes) over that time.
//
//   stream_throughput [--full | --quick] [--json=FILE]
//
// Exit status 1 if a run fails or a consumer reads wrong bytes.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proxystore/base/status.h"
#include "proxystore/bench/suite_reporter.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/store/store.h"
#include "proxystore/stream/redis_broker.h"
#include "proxystore/stream/stream.h"
#include "proxystore/testing/redis_server.h"

namespace proxystore::bench {
namespace {

struct Case {
  int64_t size;
  int items;
};

struct Result {
  std::string mode;
  int64_t size = 0;
  int consumers = 0;
  int items = 0;
  double seconds = 0;
};

// Item i: its index in the first 8 bytes, then a pattern; a consumer checks
// both ends so that a torn or wrong object is caught without a full compare.
std::string Item(int64_t size, int i) {
  std::string s(static_cast<size_t>(size), static_cast<char>('a' + i % 26));
  std::memcpy(s.data(), &i, std::min<size_t>(sizeof(i), s.size()));
  return s;
}
bool Check(const std::string& s, int64_t size) {
  if (static_cast<int64_t>(s.size()) != size || size < 8) return false;
  int i = 0;
  std::memcpy(&i, s.data(), sizeof(i));
  return s.back() == static_cast<char>('a' + i % 26);
}

absl::StatusOr<std::shared_ptr<Store>> MakeShmStore() {
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<Connector> c,
                              MakeConnector(ConnectorConfig{"shm", {}}));
  return Store::Create(absl::StrCat("stream-bench-", NewObjectId()),
                       std::move(c), {.cache_size = 0});
}

// A consumer process: connects, says it is ready (one byte on `ready`),
// takes items until the end, then writes its count (or -1) to `done`.
[[noreturn]] void ConsumerMain(const RedisBrokerOptions& broker,
                               const std::string& topic, int index,
                               int64_t size, int ready, int done) {
  int count = -1;
  {
    absl::StatusOr<std::unique_ptr<RedisStreamSubscriber>> sub =
        RedisStreamSubscriber::Create(
            broker, {topic, "bench", absl::StrCat("c", index)});
    if (sub.ok()) {
      StreamConsumer<std::string> consumer(*std::move(sub));
      char b = 'r';
      (void)!write(ready, &b, 1);
      count = 0;
      for (;;) {
        absl::StatusOr<std::optional<std::shared_ptr<const std::string>>> o =
            consumer.NextObject(absl::Seconds(120));
        if (!o.ok()) {
          std::fprintf(stderr, "consumer %d: %s\n", index,
                       o.status().ToString().c_str());
          count = -1;
          break;
        }
        if (!o->has_value()) break;
        if (!Check(***o, size)) {
          std::fprintf(stderr, "consumer %d: wrong bytes\n", index);
          count = -1;
          break;
        }
        ++count;
      }
      if (!consumer.Close().ok()) count = -1;
    } else {
      char b = 'x';
      (void)!write(ready, &b, 1);
    }
  }
  (void)!write(done, &count, sizeof(count));
  std::fflush(nullptr);
  _exit(count < 0 ? 1 : 0);
}

absl::StatusOr<Result> RunOne(const RedisBrokerOptions& broker,
                              const std::string& mode, const Case& c,
                              int consumers) {
  const std::string topic =
      absl::StrCat(mode, "-", c.size, "-", consumers, "-", NewObjectId());
  int ready[2], done[2];
  if (pipe(ready) != 0 || pipe(done) != 0) {
    return absl::InternalError("pipe failed");
  }
  std::shared_ptr<Store> store;
  if (mode == "proxy") {
    PROXYSTORE_ASSIGN_OR_RETURN(store, MakeShmStore());
  }
  // The group exists before anything is sent (no event can be missed).
  {
    PROXYSTORE_ASSIGN_OR_RETURN(
        std::unique_ptr<RedisStreamSubscriber> probe,
        RedisStreamSubscriber::Create(broker, {topic, "bench", "setup"}));
    PROXYSTORE_RETURN_IF_ERROR(probe->Close());
  }
  std::vector<pid_t> pids;
  for (int i = 0; i < consumers; ++i) {
    const pid_t pid = fork();
    if (pid == 0) ConsumerMain(broker, topic, i, c.size, ready[1], done[1]);
    pids.push_back(pid);
  }
  for (int i = 0; i < consumers; ++i) {
    char b = 0;
    if (read(ready[0], &b, 1) != 1 || b != 'r') {
      return absl::InternalError("a consumer could not connect");
    }
  }
  // Items are made before the clock starts.
  std::vector<std::string> items;
  for (int i = 0; i < std::min(c.items, 8); ++i)
    items.push_back(Item(c.size, i));
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<RedisStreamPublisher> pub,
                              RedisStreamPublisher::Create(broker));
  StreamProducer<std::string> producer(std::move(pub),
                                       {.default_store = store});
  const absl::Time start = absl::Now();
  for (int i = 0; i < c.items; ++i) {
    PROXYSTORE_RETURN_IF_ERROR(
        producer.Send(topic, items[static_cast<size_t>(i) % items.size()]));
  }
  PROXYSTORE_RETURN_IF_ERROR(producer.CloseTopics({topic}));
  int total = 0;
  bool failed = false;
  for (int i = 0; i < consumers; ++i) {
    int n = -1;
    if (read(done[0], &n, sizeof(n)) != sizeof(n) || n < 0) failed = true;
    total += std::max(n, 0);
  }
  const absl::Duration took = absl::Now() - start;
  for (pid_t pid : pids) waitpid(pid, nullptr, 0);
  for (int fd : {ready[0], ready[1], done[0], done[1]}) close(fd);
  PROXYSTORE_RETURN_IF_ERROR(producer.Close());
  if (store != nullptr) {
    PROXYSTORE_RETURN_IF_ERROR(store->Close(CloseOptions{.clear = true}));
  }
  if (failed || total != c.items) {
    return absl::InternalError(absl::StrCat(
        mode, " ", HumanBytes(static_cast<double>(c.size)), " x", consumers,
        ": consumers took ", total, " of ", c.items, " items"));
  }
  return Result{mode, c.size, consumers, c.items, absl::ToDoubleSeconds(took)};
}

int Main(int argc, char** argv) {
  std::vector<Case> cases = {
      {10'000, 2000}, {1'000'000, 200}, {10'000'000, 40}};
  std::vector<int> consumer_counts = {1, 2, 4};
  std::string form = "default";
  std::string json;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--full") {
      cases = {{10'000, 10000}, {1'000'000, 1000}, {10'000'000, 150}};
      form = "full";
    } else if (arg == "--quick") {
      cases = {{10'000, 100}, {1'000'000, 10}};
      consumer_counts = {1, 2};
      form = "quick";
    } else if (absl::StartsWith(arg, "--json=")) {
      json = std::string(arg.substr(7));
    } else {
      std::fprintf(
          stderr,
          "usage: stream_throughput [--full | --quick] [--json=FILE]\n");
      return 2;
    }
  }
  absl::StatusOr<std::unique_ptr<testing::RedisServer>> server =
      testing::RedisServer::Start();
  if (!server.ok()) {
    std::fprintf(stderr, "stream_throughput: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  RedisBrokerOptions broker;
  broker.host = (*server)->host();
  broker.port = (*server)->port();
  broker.block_slice = absl::Milliseconds(20);
  broker.max_len = 10'000;  // the broker keeps a bounded backlog
  std::printf(
      "stream throughput: Redis Streams broker (private redis-server), "
      "proxy mode stores objects in shm; one producer, consumer "
      "processes of one group\n");
  std::printf("%-7s %8s %9s %7s %9s %11s %9s\n", "mode", "size", "consumers",
              "items", "seconds", "items/s", "MB/s");
  std::fflush(stdout);
  std::vector<Result> results;
  for (const Case& c : cases) {
    for (int consumers : consumer_counts) {
      for (const char* mode : {"broker", "proxy"}) {
        absl::StatusOr<Result> r = RunOne(broker, mode, c, consumers);
        if (!r.ok()) {
          std::fprintf(stderr, "stream_throughput: %s\n",
                       r.status().ToString().c_str());
          return 1;
        }
        const double items_s = r->items / r->seconds;
        std::printf("%-7s %8s %9d %7d %9.3f %11.0f %9.1f\n", mode,
                    HumanBytes(static_cast<double>(c.size)).c_str(), consumers,
                    r->items, r->seconds, items_s, items_s * c.size / 1e6);
        std::fflush(stdout);
        results.push_back(*std::move(r));
      }
    }
  }
  if (!json.empty()) {
    std::ostringstream o;
    o << "{\n  \"form\": \"" << form << "\",\n  \"runs\": [";
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      o << (i ? "," : "") << "\n    {\"mode\": \"" << r.mode
        << "\", \"size\": " << r.size << ", \"consumers\": " << r.consumers
        << ", \"items\": " << r.items << ", \"seconds\": " << r.seconds << "}";
    }
    o << "\n  ]\n}\n";
    std::ofstream out(json, std::ios::trunc);
    out << o.str();
    if (!out.good()) {
      std::fprintf(stderr, "stream_throughput: cannot write %s\n",
                   json.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace proxystore::bench

int main(int argc, char** argv) { return proxystore::bench::Main(argc, argv); }
