// Fault injection under a Store over the redis connector, against a private
// redis-server (testing/redis_server.h): a server killed in the middle of a
// multi-threaded run and restarted from its append-only file, and a paused
// (SIGSTOP) server. The connector's own tests already cover single-threaded
// kill/restart without persistence (redis_connector_test.cc
// KilledServerIsUnavailableThenRestartedOneWorks), stale pooled connections
// (StalePooledConnectionsAreReplacedTransparently), SIGPIPE on a dead peer
// (DeadServerUnderALargePutIsAnErrorNotSigpipe) and one paused-server call
// (SilentServerTimesOutAsUnavailable); these tests add the Store, threads,
// proxies and the count of acknowledged objects. docs/faults.md has the table.
//
// No sleeps and no timing thresholds: phases are sequenced with latches, and
// every assertion is about status codes and data, never durations.
#include <hiredis/hiredis.h>

#include <atomic>
#include <cstdint>
#include <iostream>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::RedisServer;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

// FNV-1a, 64 bits: the checksum recorded when a put is acknowledged and
// checked when the object is read back.
uint64_t Checksum(absl::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// A distinct value per (thread, op), a few KiB, binary with NULs.
std::string Value(int thread, int op) {
  const size_t n = 1000 + static_cast<size_t>((thread * 977 + op * 131) % 4000);
  std::string s(n, '\0');
  uint32_t x = static_cast<uint32_t>(thread * 100'003 + op) * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

// Number of keys in the server's database 0 (-1 on error), through a plain
// hiredis client, to see what the Store leaves behind.
int64_t DbSize(const RedisServer& server) {
  redisContext* c = redisConnectWithTimeout(server.host().c_str(),
                                            server.port(), timeval{10, 0});
  if (c == nullptr) return -1;
  int64_t n = -1;
  if (c->err == 0) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "DBSIZE"));
    if (r != nullptr && r->type == REDIS_REPLY_INTEGER) n = r->integer;
    if (r != nullptr) freeReplyObject(r);
  }
  redisFree(c);
  return n;
}

absl::StatusOr<std::shared_ptr<Store>> MakeStore(const RedisServer& server,
                                                 std::string name,
                                                 int64_t timeout_ms) {
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::unique_ptr<RedisConnector> connector,
      RedisConnector::Create(
          {"redis",
           {{"host", server.host()},
            {"port", absl::StrCat(server.port())},
            {"connect_timeout_ms", absl::StrCat(timeout_ms)},
            {"command_timeout_ms", absl::StrCat(timeout_ms)}}}));
  // No cache: every Get must reach the server.
  return Store::Create(std::move(name), std::move(connector),
                       StoreOptions{.cache_size = 0});
}

struct Acked {
  Key key;
  uint64_t checksum;
  size_t size;
};

// What one worker thread saw.
struct WorkerLog {
  std::vector<Acked> acked;         // every put the server acknowledged
  int64_t ops_before_kill = 0;      // phase A: all must succeed
  int64_t raced_ok = 0;             // phase B: ops racing the kill that
  int64_t raced_unavailable = 0;    //   succeeded / failed with Unavailable
  int64_t ops_while_down = 0;       // phase C: all must be Unavailable
  int64_t found_after_restart = 0;  // phase D: acknowledged objects read back
  int64_t lost = 0;                 //   ... missing or with a wrong checksum
  int64_t ops_after_restart = 0;    // phase D: new work, all must succeed
};

// Puts Value(t, op) and reads it back; both must succeed.
void PutAndVerify(Store& store, int t, int op, WorkerLog& log) {
  const std::string value = Value(t, op);
  absl::StatusOr<Key> key = store.Put(value);
  ASSERT_THAT(key, IsOk());
  log.acked.push_back({*key, Checksum(value), value.size()});
  absl::StatusOr<std::shared_ptr<const std::string>> got =
      store.Get<std::string>(*key);
  ASSERT_THAT(got, IsOk());
  ASSERT_NE(*got, nullptr);
  EXPECT_EQ(Checksum(**got), Checksum(value));
}

TEST(RedisFaultTest, KilledServerFailsFastAndRestartedServerKeepsAckedObjects) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start({.persistence = true}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      MakeStore(*server, "redis-kill", /*timeout_ms=*/5000));

  constexpr int kThreads = 4;
  constexpr int kOpsBeforeKill = 50;  // put + get each
  constexpr int kRoundsWhileDown = 5;
  constexpr int kOpsAfterRestart = 25;
  const auto unavailable = StatusIs(absl::StatusCode::kUnavailable);
  // Nobody listens: a pooled connection fails, is dropped, and the one
  // retry on a new connection is refused at once.
  const auto refused =
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot connect"));

  std::latch before_kill(kThreads);  // phase A done everywhere
  std::atomic<bool> killed{false};   // set once Kill() returned
  std::latch down_done(kThreads);    // phase C done everywhere
  std::latch restarted(1);
  std::vector<WorkerLog> logs(kThreads);
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      WorkerLog& log = logs[t];
      // Phase A: the server is up; everything succeeds.
      for (int i = 0; i < kOpsBeforeKill; ++i) {
        PutAndVerify(*store, t, i, log);
        ++log.ops_before_kill;
      }
      before_kill.count_down();

      // Phase B: keep working while the main thread kills the server. Each
      // op either completes (then it is acknowledged and must survive) or
      // fails with Unavailable; nothing else, no hang, no crash.
      for (int i = kOpsBeforeKill; !killed.load(std::memory_order_acquire);
           ++i) {
        const std::string value = Value(t, i);
        absl::StatusOr<Key> key = store->Put(value);
        if (!key.ok()) {
          EXPECT_THAT(key, unavailable);
          ++log.raced_unavailable;
          continue;
        }
        ++log.raced_ok;
        log.acked.push_back({*key, Checksum(value), value.size()});
        absl::StatusOr<std::shared_ptr<const std::string>> got =
            store->Get<std::string>(*key);
        if (got.ok()) {
          ++log.raced_ok;
          EXPECT_NE(*got, nullptr);
          if (*got != nullptr) {
            EXPECT_EQ(Checksum(**got), Checksum(value));
          }
        } else {
          EXPECT_THAT(got, unavailable);
          ++log.raced_unavailable;
        }
      }

      // Phase C: the server is dead. Every kind of call fails with
      // Unavailable, through the same store.
      std::vector<Proxy<std::string>> proxies;
      for (int r = 0; r < kRoundsWhileDown && !log.acked.empty(); ++r) {
        const Acked& a = log.acked[static_cast<size_t>(r) % log.acked.size()];
        EXPECT_THAT(store->Put(Value(t, 100'000 + r)), refused);
        EXPECT_THAT(store->Get<std::string>(a.key), refused);
        EXPECT_THAT(store->Exists(a.key), refused);
        EXPECT_THAT(store->Evict(a.key), refused);
        const std::vector<Key> keys = {a.key, log.acked.front().key};
        EXPECT_THAT(store->GetBatch<std::string>(keys), refused);
        const std::vector<std::string> values = {Value(t, 200'000 + r)};
        EXPECT_THAT(store->PutBatch<std::string>(values), refused);
        EXPECT_THAT(store->Proxy(Value(t, 300'000 + r)), refused);
        Proxy<std::string> p = store->ProxyFromKey<std::string>(a.key);
        EXPECT_THAT(p.Get(), refused);
        proxies.push_back(std::move(p));
        log.ops_while_down += 8;
      }
      down_done.count_down();
      restarted.wait();

      // Phase D: the same store (and the same proxies, whose failed
      // resolution is retried) works again, and every acknowledged object
      // is there with its bytes intact.
      for (const Acked& a : log.acked) {
        absl::StatusOr<std::shared_ptr<const std::string>> got =
            store->Get<std::string>(a.key);
        EXPECT_THAT(got, IsOk());
        if (got.ok() && *got != nullptr && (*got)->size() == a.size &&
            Checksum(**got) == a.checksum) {
          ++log.found_after_restart;
        } else {
          ++log.lost;
        }
      }
      for (const Proxy<std::string>& p : proxies) {
        absl::StatusOr<std::shared_ptr<const std::string>> got = p.Get();
        EXPECT_THAT(got, IsOk());
      }
      for (int i = 0; i < kOpsAfterRestart; ++i) {
        PutAndVerify(*store, t, 400'000 + i, log);
        ++log.ops_after_restart;
      }
    });
  }

  before_kill.wait();
  // No ASSERT between starting and joining the workers: they must always be
  // released, or the test would hang instead of failing.
  EXPECT_THAT(server->Kill(), IsOk());
  killed.store(true, std::memory_order_release);
  down_done.wait();
  EXPECT_THAT(server->Restart(), IsOk());  // Reloads the append-only file.
  restarted.count_down();
  for (std::thread& w : workers) w.join();

  WorkerLog total;
  int64_t acked = 0;
  for (const WorkerLog& log : logs) {
    acked += static_cast<int64_t>(log.acked.size());
    total.ops_before_kill += log.ops_before_kill;
    total.raced_ok += log.raced_ok;
    total.raced_unavailable += log.raced_unavailable;
    total.ops_while_down += log.ops_while_down;
    total.found_after_restart += log.found_after_restart;
    total.lost += log.lost;
    total.ops_after_restart += log.ops_after_restart;
  }
  // Acknowledged before (and while racing) the kill, then read back; the
  // phase D puts are acknowledged after the restart.
  const int64_t acked_before_kill = acked - total.ops_after_restart;
  EXPECT_EQ(total.ops_before_kill, kThreads * kOpsBeforeKill);
  EXPECT_EQ(total.ops_while_down, kThreads * kRoundsWhileDown * 8);
  EXPECT_EQ(total.found_after_restart, acked_before_kill);
  EXPECT_EQ(total.lost, 0);
  EXPECT_EQ(total.ops_after_restart, kThreads * kOpsAfterRestart);

  // Keys on the server: every acknowledged object, plus any put that was
  // applied but whose reply the kill cut off (an "orphan": the caller saw
  // Unavailable and never got its key).
  const int64_t keys = DbSize(*server);
  EXPECT_GE(keys, acked);
  std::cout << "redis kill: " << kThreads << " threads; before the kill "
            << total.ops_before_kill << " put+get pairs; racing the kill "
            << total.raced_ok << " ops OK and " << total.raced_unavailable
            << " Unavailable; while down " << total.ops_while_down
            << " calls, all Unavailable; acknowledged before the kill "
            << acked_before_kill << ", found after restart "
            << total.found_after_restart << ", lost " << total.lost
            << "; after restart " << total.ops_after_restart
            << " put+get pairs; keys on the server " << keys << " (orphans "
            << keys - acked << ")" << std::endl;
  RecordProperty("acked_before_kill", static_cast<int>(acked_before_kill));
  RecordProperty("found_after_restart",
                 static_cast<int>(total.found_after_restart));
  RecordProperty("lost", static_cast<int>(total.lost));

  // A clearing Close removes every key under the store's prefix, orphans
  // included; the server and its append-only file go with the fixture.
  EXPECT_THAT(store->Close({.clear = true}), IsOk());
  EXPECT_EQ(DbSize(*server), 0);
}

TEST(RedisFaultTest, PausedServerTimesOutAsUnavailableAndRecoversOnResume) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start());
  // Short enough to keep the test quick; long enough that a loaded machine
  // still answers in time once the server runs again.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      MakeStore(*server, "redis-pause", /*timeout_ms=*/1000));

  constexpr int kThreads = 3;
  constexpr int kObjects = 12;
  std::vector<Acked> acked;
  for (int i = 0; i < kObjects; ++i) {
    const std::string value = Value(99, i);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, store->Put(value));
    acked.push_back({key, Checksum(value), value.size()});
  }
  Proxy<std::string> proxy = store->ProxyFromKey<std::string>(acked[0].key);

  PROXYSTORE_ASSERT_OK(server->Pause());
  // The kernel still completes TCP handshakes; nobody answers. Every call
  // returns Unavailable after command_timeout_ms instead of hanging; pooled
  // and new connections alike.
  const auto timed_out =
      StatusIs(absl::StatusCode::kUnavailable,
               HasSubstr("did not respond within command_timeout_ms=1000"));
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      EXPECT_THAT(store->Put(Value(t, 1)), timed_out);
      EXPECT_THAT(store->Get<std::string>(acked[t].key), timed_out);
      const std::vector<Key> keys = {acked[t].key, acked[t + kThreads].key};
      EXPECT_THAT(store->GetBatch<std::string>(keys), timed_out);
    });
  }
  for (std::thread& w : workers) w.join();
  EXPECT_THAT(proxy.Get(), timed_out);
  EXPECT_FALSE(proxy.IsResolved());
  PROXYSTORE_ASSERT_OK(server->Resume());

  // The same store and proxy work again; nothing acknowledged was lost.
  for (const Acked& a : acked) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const std::string> got,
                                    store->Get<std::string>(a.key));
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->size(), a.size);
    EXPECT_EQ(Checksum(*got), a.checksum);
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const std::string> resolved,
                                  proxy.Get());
  EXPECT_EQ(Checksum(*resolved), acked[0].checksum);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, store->Put(std::string("after")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const std::string> after,
                                  store->Get<std::string>(key));
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(*after, "after");
  // A put that timed out may still be applied once the server runs again
  // (its bytes were in the socket): Unavailable does not mean "not stored".
  // The clearing Close removes such orphans with everything else under the
  // prefix; the private server goes with the fixture.
  EXPECT_THAT(store->Close({.clear = true}), IsOk());
}

}  // namespace
}  // namespace proxystore
