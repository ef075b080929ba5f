// Proxies cross machines: the "redis" connector between "hosts" that are
// network namespaces (testing/netns.h), joined by a bridge and nothing else.
//
// Each test puts the Redis side on some hosts, a producer process on
// another and two consumer processes on yet another. The producer makes a
// Store over the connector, puts objects of 100 B to 1 MB and sends only
// their serialized proxies to the consumers, over TCP between the
// namespaces. Each consumer parses the proxies, resolves them (its store is
// re-created from the config inside the proxy, so it connects from its own
// host to the addresses the producer used) and checks every byte of every
// object against the deterministic pattern it regenerates. Nothing but
// proxies travels between producer and consumers; nothing else is shared.
//
//  - ProxiesCrossHostsThroughACluster: a Redis Cluster of 3 masters and 3
//    replicas spread over hosts 0 and 1 (redis-cli puts masters on both,
//    and replicas away from their masters), producer on host 2, consumers
//    on host 3; the connector is given two seed nodes and finds the rest.
//  - ProxiesCrossHostsThroughOneServer: one redis-server on host 0 (options
//    "host"/"port"), producer on host 1, consumers on host 2.
//
// The test binary is its own producer and consumer (see main). Skips, with
// Netns::Available()'s message, where namespaces cannot be made (not root,
// a sandbox); tools/multihost.sh runs it with its output.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/netns.h"
#include "proxystore/testing/redis_cluster.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::Netns;
using ::proxystore::testing::NetnsProcess;
using ::proxystore::testing::NetnsResult;
using ::proxystore::testing::NetnsSpawnOptions;
using ::testing::HasSubstr;

constexpr char kStoreName[] = "multihost";
constexpr char kPrefix[] = "mh:";
// Object sizes, and how many objects of each size the producer puts.
constexpr size_t kSizes[] = {100, 1000, 10'000, 100'000, 1'000'000};
constexpr int kPerSize = 20;
constexpr int kObjects = kPerSize * static_cast<int>(std::size(kSizes));
constexpr int kConsumers = 2;
// A serialized proxy is a key and a store config: never an object.
constexpr size_t kMaxProxyBytes = 4096;
// Bounds on the children, far above what they need.
constexpr absl::Duration kChildTimeout = absl::Minutes(5);

// Object `index` of `size` bytes: the index in front, then bytes that
// depend on both, so that no two objects (or misplaced parts) compare equal.
std::string ObjectBytes(int index, size_t size) {
  std::string s(size, '\0');
  const std::string head = absl::StrCat("object ", index, ":");
  for (size_t k = 0; k < size; ++k) {
    s[k] = k < head.size()
               ? head[k]
               : static_cast<char>(
                     (k * 131 + static_cast<size_t>(index) * 7919) ^ (k >> 7));
  }
  return s;
}

std::string SelfPath() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

bool RedisInstalled() {
  return ::access("/usr/bin/redis-server", X_OK) == 0 &&
         ::access("/usr/bin/redis-cli", X_OK) == 0;
}

#define SKIP_WITHOUT_HOSTS()                                       \
  do {                                                             \
    absl::Status available = Netns::Available();                   \
    if (!available.ok()) GTEST_SKIP() << available.message();      \
    if (!RedisInstalled()) {                                       \
      GTEST_SKIP() << "redis-server or redis-cli is missing: run " \
                      "tools/setup.sh";                            \
    }                                                              \
  } while (false)

// A listening socket on host `host`'s address (made inside its namespace)
// and its port.
absl::StatusOr<std::pair<int, int>> ListenOn(const Netns& net, int host) {
  absl::StatusOr<std::pair<int, int>> result;
  PROXYSTORE_RETURN_IF_ERROR(net.RunInThread(host, [&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      result = absl::ErrnoToStatus(errno, "socket");
      return;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, net.address(host).c_str(), &addr.sin_addr);
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd, 1) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      result = absl::ErrnoToStatus(
          errno, absl::StrCat("listen on ", net.address(host)));
      ::close(fd);
      return;
    }
    result = std::make_pair(fd, static_cast<int>(ntohs(addr.sin_port)));
  }));
  return result;
}

// What the consumers verified, in all.
struct Verified {
  int objects = 0;
  int64_t bytes = 0;
};

// The scenario of the file comment for `config`, with the producer on host
// `producer` and the consumers on host `consumers` of `net`.
Verified RunProducerAndConsumers(const Netns& net,
                                 const ConnectorConfig& config, int producer,
                                 int consumers) {
  Verified verified;
  // The consumers' listening sockets, made here inside their host and
  // handed down: the producer can connect as soon as it starts, so nobody
  // waits for anybody to listen.
  std::vector<int> listeners;
  std::vector<std::string> destinations;
  for (int k = 0; k < kConsumers; ++k) {
    absl::StatusOr<std::pair<int, int>> listening = ListenOn(net, consumers);
    EXPECT_THAT(listening.status(), testing::IsOk());
    if (!listening.ok()) {
      for (int l : listeners) ::close(l);
      return verified;
    }
    listeners.push_back(listening->first);
    destinations.push_back(
        absl::StrCat(net.address(consumers), ":", listening->second));
  }

  std::vector<std::unique_ptr<NetnsProcess>> readers;
  for (int k = 0; k < kConsumers; ++k) {
    NetnsSpawnOptions pass;
    pass.inherit_fds = {listeners[k]};
    absl::StatusOr<std::unique_ptr<NetnsProcess>> p = net.Spawn(
        consumers,
        {SelfPath(), "--multihost-consumer", absl::StrCat(listeners[k])}, pass);
    EXPECT_THAT(p.status(), testing::IsOk());
    if (p.ok()) readers.push_back(*std::move(p));
  }
  for (int l : listeners) ::close(l);  // The consumers have their own.
  if (static_cast<int>(readers.size()) != kConsumers) return verified;

  std::vector<std::string> args = {SelfPath(), "--multihost-producer",
                                   config.kind};
  for (const auto& [name, value] : config.options) {
    args.push_back(absl::StrCat("--option=", name, "=", value));
  }
  for (const std::string& d : destinations) {
    args.push_back(absl::StrCat("--to=", d));
  }
  std::cout << "producer on host " << producer << " (" << net.address(producer)
            << "), consumers on host " << consumers << " ("
            << absl::StrJoin(destinations, ", ") << ")\n";
  absl::StatusOr<NetnsResult> produced =
      net.Run(producer, std::move(args), kChildTimeout);
  EXPECT_THAT(produced.status(), testing::IsOk());
  if (!produced.ok()) return verified;
  std::cout << "producer:\n" << produced->output;
  // A failed producer fails here, with its error (the consumers, whose
  // connections never came or broke off, are killed on return).
  EXPECT_EQ(produced->exit_code, 0) << produced->output;
  if (produced->exit_code != 0) return verified;
  EXPECT_THAT(produced->output,
              HasSubstr(absl::StrCat("sent ", kObjects, " proxies")));

  for (int k = 0; k < kConsumers; ++k) {
    absl::StatusOr<NetnsResult> r = readers[k]->Wait(kChildTimeout);
    EXPECT_THAT(r.status(), testing::IsOk());
    if (!r.ok()) continue;
    std::cout << "consumer " << k << ":\n" << r->output;
    EXPECT_EQ(r->exit_code, 0) << r->output;
    for (absl::string_view line : absl::StrSplit(r->output, '\n')) {
      // "verified N objects, B bytes"
      std::vector<std::string> words = absl::StrSplit(line, ' ');
      int n = 0;
      int64_t b = 0;
      if (words.size() == 5 && words[0] == "verified" &&
          absl::SimpleAtoi(words[1], &n) && absl::SimpleAtoi(words[3], &b)) {
        verified.objects += n;
        verified.bytes += b;
      }
    }
  }
  EXPECT_EQ(verified.objects, kObjects) << "every object, once";
  int64_t total = 0;
  for (size_t size : kSizes) total += static_cast<int64_t>(size) * kPerSize;
  EXPECT_EQ(verified.bytes, total);
  return verified;
}

TEST(RedisMultihost, ProxiesCrossHostsThroughACluster) {
  SKIP_WITHOUT_HOSTS();
  // Hosts 0 and 1: the cluster; 2: the producer; 3: the consumers.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> net,
                                  Netns::Create({.hosts = 4}));
  testing::RedisClusterOptions options;
  for (int i = 0; i < 6; ++i) {
    options.placement.push_back({net->path(i % 2), net->address(i % 2)});
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<testing::RedisCluster> cluster,
      testing::RedisCluster::Start(options));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(testing::RedisClusterLayout layout,
                                  cluster->Layout());
  std::cout << "network " << net->name() << " " << net->subnet() << "\n";
  for (int i = 0; i < cluster->size(); ++i) {
    const testing::RedisClusterNodeInfo& n = layout.nodes[i];
    std::cout << "node " << i << " on host " << i % 2 << " "
              << cluster->address(i) << ": "
              << (n.master ? "master"
                           : absl::StrCat("replica of node ", n.master_index))
              << "\n";
  }
  // Two seeds, one on each host; the connector discovers the rest.
  const ConnectorConfig config{
      "redis",
      {{"cluster", absl::StrCat(cluster->address(0), ",", cluster->address(1))},
       {"prefix", kPrefix}}};
  Verified v = RunProducerAndConsumers(*net, config, /*producer=*/2,
                                       /*consumers=*/3);
  if (::testing::Test::HasFailure()) return;
  // The objects were spread over the masters, on both hosts.
  int64_t keys = 0;
  std::map<int, int64_t> per_host;
  for (int m : layout.masters()) {
    const int64_t n = cluster->node(m).CountKeys(kPrefix);
    std::cout << "master " << m << " on host " << m % 2 << " holds " << n
              << " objects\n";
    EXPECT_GT(n, 0) << "master " << m;
    keys += n;
    per_host[m % 2] += n;
  }
  EXPECT_EQ(keys, v.objects);
  EXPECT_EQ(per_host.size(), 2u) << "objects on both hosts";
}

TEST(RedisMultihost, ProxiesCrossHostsThroughOneServer) {
  SKIP_WITHOUT_HOSTS();
  // Host 0: redis-server; 1: the producer; 2: the consumers.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> net,
                                  Netns::Create({.hosts = 3}));
  testing::RedisServerOptions options;
  options.netns = net->path(0);
  options.bind_address = net->address(0);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<testing::RedisServer> server,
                                  testing::RedisServer::Start(options));
  std::cout << "network " << net->name() << " " << net->subnet()
            << ", redis-server on host 0 " << server->host() << ":"
            << server->port() << "\n";
  const ConnectorConfig config{"redis",
                               {{"host", server->host()},
                                {"port", absl::StrCat(server->port())},
                                {"prefix", kPrefix}}};
  Verified v = RunProducerAndConsumers(*net, config, /*producer=*/1,
                                       /*consumers=*/2);
  if (::testing::Test::HasFailure()) return;
  EXPECT_EQ(server->CountKeys(kPrefix), v.objects);
}

// --- The producer and consumer processes ---------------------------------

// Writes all of `data` to `fd`.
bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// args: KIND [--option=NAME=VALUE]... [--to=ADDRESS:PORT]...
int ProducerMain(int argc, char** argv) {
  ConnectorConfig config;
  config.kind = argv[0];
  std::vector<std::string> to;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--option=")) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(arg, absl::MaxSplits('=', 1));
      config.options[kv.first] = kv.second;
    } else if (absl::ConsumePrefix(&arg, "--to=")) {
      to.emplace_back(arg);
    } else {
      std::printf("FAILED: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  absl::StatusOr<std::unique_ptr<Connector>> connector = MakeConnector(config);
  if (!connector.ok()) {
    std::printf("FAILED to make the connector: %s\n",
                connector.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::shared_ptr<Store>> store =
      Store::Create(kStoreName, *std::move(connector));
  if (!store.ok()) {
    std::printf("FAILED to make the store: %s\n",
                store.status().ToString().c_str());
    return 1;
  }
  std::vector<int> sockets;
  for (const std::string& destination : to) {
    std::pair<std::string, std::string> hp =
        absl::StrSplit(destination, absl::MaxSplits(':', 1));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    int port = 0;
    if (!absl::SimpleAtoi(hp.second, &port) ||
        ::inet_pton(AF_INET, hp.first.c_str(), &addr.sin_addr) != 1) {
      std::printf("FAILED: bad destination %s\n", destination.c_str());
      return 2;
    }
    addr.sin_port = htons(static_cast<uint16_t>(port));
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      std::printf("FAILED to connect to %s: %s\n", destination.c_str(),
                  std::strerror(errno));
      return 1;
    }
    sockets.push_back(fd);
  }
  if (sockets.empty()) {
    std::printf("FAILED: no --to\n");
    return 2;
  }
  int index = 0;
  size_t proxy_bytes = 0;
  for (size_t size : kSizes) {
    for (int j = 0; j < kPerSize; ++j, ++index) {
      ProxyOptions<std::string> options;
      options.populate_target = false;
      absl::StatusOr<Proxy<std::string>> p =
          (*store)->Proxy(ObjectBytes(index, size), options);
      if (!p.ok()) {
        std::printf("FAILED to put object %d (%zu B): %s\n", index, size,
                    p.status().ToString().c_str());
        return 1;
      }
      absl::StatusOr<std::string> wire = p->Serialize();
      if (!wire.ok() || wire->size() > kMaxProxyBytes) {
        std::printf("FAILED to serialize the proxy of object %d: %s\n", index,
                    wire.ok() ? "too large" : wire.status().ToString().c_str());
        return 1;
      }
      proxy_bytes += wire->size();
      const std::string line = absl::StrCat(
          index, " ", size, " ", absl::BytesToHexString(*wire), "\n");
      if (!WriteAll(sockets[static_cast<size_t>(index) % sockets.size()],
                    line)) {
        std::printf("FAILED to send the proxy of object %d: %s\n", index,
                    std::strerror(errno));
        return 1;
      }
    }
    std::printf("put %d objects of %zu B\n", kPerSize, size);
  }
  for (int fd : sockets) ::close(fd);
  // The objects stay for the consumers: no clearing close.
  absl::Status closed = (*store)->Close({.clear = false});
  if (!closed.ok()) {
    std::printf("FAILED to close the store: %s\n", closed.ToString().c_str());
    return 1;
  }
  std::printf("sent %d proxies (%zu bytes of proxies) to %zu consumers\n",
              index, proxy_bytes, sockets.size());
  return 0;
}

// args: LISTENING_FD. Accepts the producer, reads "INDEX SIZE HEXPROXY"
// lines until it closes, and checks each object.
int ConsumerMain(const std::string& fd_text) {
  int listener = -1;
  if (!absl::SimpleAtoi(fd_text, &listener)) return 2;
  const int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (conn < 0) {
    std::printf("FAILED to accept: %s\n", std::strerror(errno));
    return 1;
  }
  ::close(listener);
  std::string input;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(conn, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::printf("FAILED to read: %s\n", std::strerror(errno));
      return 1;
    }
    if (n == 0) break;
    input.append(buf, static_cast<size_t>(n));
    // Bounded: kObjects proxies of at most kMaxProxyBytes, hex-encoded.
    if (input.size() > size_t{4} * kObjects * kMaxProxyBytes) {
      std::printf("FAILED: the producer sent too much\n");
      return 1;
    }
  }
  ::close(conn);
  int objects = 0;
  int64_t bytes = 0;
  for (absl::string_view line :
       absl::StrSplit(input, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ');
    int index = -1;
    size_t size = 0;
    if (words.size() != 3 || !absl::SimpleAtoi(words[0], &index) ||
        !absl::SimpleAtoi(words[1], &size) || size > (size_t{1} << 20)) {
      std::printf("FAILED: bad line %s\n", std::string(line).c_str());
      return 1;
    }
    absl::StatusOr<Proxy<std::string>> p =
        ParseProxy<std::string>(absl::HexStringToBytes(words[2]));
    if (!p.ok()) {
      std::printf("FAILED to parse the proxy of object %d: %s\n", index,
                  p.status().ToString().c_str());
      return 1;
    }
    if (p->IsResolved()) {
      std::printf("FAILED: the proxy of object %d arrived resolved\n", index);
      return 1;
    }
    absl::StatusOr<std::shared_ptr<const std::string>> v = p->Get();
    if (!v.ok()) {
      std::printf("FAILED to resolve object %d: %s\n", index,
                  v.status().ToString().c_str());
      return 1;
    }
    if (**v != ObjectBytes(index, size)) {
      std::printf("FAILED: object %d (%zu B) resolved to %zu different bytes\n",
                  index, size, (*v)->size());
      return 1;
    }
    ++objects;
    bytes += static_cast<int64_t>(size);
  }
  std::printf("verified %d objects, %lld bytes\n", objects,
              static_cast<long long>(bytes));
  return 0;
}

}  // namespace
}  // namespace proxystore

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "--multihost-producer" && argc >= 3) {
    return proxystore::ProducerMain(argc - 2, argv + 2);
  }
  if (mode == "--multihost-consumer" && argc == 3) {
    return proxystore::ConsumerMain(argv[2]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
