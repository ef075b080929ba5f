// The redis connector across fork(2): a pre-fork worker pattern against a
// private redis-server. Every process must use connections of its own: a
// child that wrote on its parent's pooled connection would read replies meant
// for the other process (and hand them out as valid objects).
//
// Children report through their exit code and a pipe (testing::ChildResult);
// they end with _exit, so the test binary's statics (the server fixture, gtest)
// are never torn down twice.
#include <hiredis/hiredis.h>
#include <limits.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::ChildResult;
using ::proxystore::testing::IsOk;
using ::proxystore::testing::PatternBytes;
using ::proxystore::testing::RedisServer;

// A forked worker: its pid and the read end of the pipe it reports on.
struct Worker {
  pid_t pid = -1;
  int fd = -1;
};

// Runs `body` in a forked child. The child writes what `body` returns (empty:
// success) to the pipe, at most PIPE_BUF bytes in one write, and exits 0 on
// success, 1 otherwise.
Worker Fork(const std::function<std::string()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const std::string message = body();
    if (!message.empty()) {
      (void)!::write(fds[1], message.data(),
                     std::min<size_t>(message.size(), PIPE_BUF));
    }
    ::_exit(message.empty() ? 0 : 1);
  }
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    return {};
  }
  return {pid, fds[0]};
}

// Collects a worker's report, then reaps it.
ChildResult Wait(const Worker& w) {
  ChildResult r;
  if (w.pid < 0) {
    r.output = "fork or pipe failed";
    return r;
  }
  char buf[PIPE_BUF];
  for (;;) {
    const ssize_t n = ::read(w.fd, buf, sizeof(buf));
    if (n > 0) {
      r.output.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(w.fd);
  int status = 0;
  while (::waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.exit_code = 128 + WTERMSIG(status);
  return r;
}

// Object i of the parent: distinct bytes, sizes from 16 B to ~64 KB so that
// replies span several socket reads.
std::string Expected(size_t i) {
  return absl::StrCat("object ", i, ":",
                      PatternBytes(16 + (i * 7919) % 65'536));
}

std::vector<std::string> ExpectedObjects(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(Expected(i));
  return out;
}

ConnectorConfig TcpConfig(const RedisServer& server) {
  return {"redis",
          {{"host", server.host()}, {"port", absl::StrCat(server.port())}}};
}

// `stats` field of INFO through a raw client, or -1.
int64_t InfoStat(const RedisServer& server, absl::string_view field) {
  redisContext* c = redisConnectWithTimeout(server.host().c_str(),
                                            server.port(), timeval{10, 0});
  int64_t value = -1;
  if (c != nullptr && c->err == 0) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "INFO stats"));
    if (r != nullptr && r->type == REDIS_REPLY_STRING) {
      for (absl::string_view line :
           absl::StrSplit(absl::string_view(r->str, r->len), "\r\n")) {
        if (absl::ConsumePrefix(&line, field) &&
            absl::ConsumePrefix(&line, ":")) {
          (void)absl::SimpleAtoi(line, &value);
        }
      }
    }
    if (r != nullptr) freeReplyObject(r);
  }
  if (c != nullptr) redisFree(c);
  return value;
}

// One worker's loop over the shared objects, plus objects of its own. Returns
// "" or what went wrong.
std::string WorkLoop(RedisConnector& c, const std::vector<Key>& keys,
                     const std::vector<std::string>& expected, int worker) {
  const size_t n = keys.size();
  for (size_t round = 0; round < 2; ++round) {
    for (size_t j = 0; j < n; ++j) {
      const size_t i = (j * 37 + static_cast<size_t>(worker) * 11 + round) % n;
      absl::StatusOr<std::optional<SharedBytes>> got = c.Get(keys[i]);
      if (!got.ok())
        return absl::StrCat("Get ", i, ": ", got.status().ToString());
      if (!got->has_value() || (*got)->view() != expected[i]) {
        return absl::StrCat("worker ", worker, ": Get ", i,
                            " returned another object (",
                            got->has_value() ? (*got)->size() : 0, " bytes)");
      }
      if (j % 10 == 0) {
        const std::string mine =
            absl::StrCat("worker ", worker, " item ", j, PatternBytes(j * 100));
        absl::StatusOr<Key> key = c.Put(SharedBytes::Copy(mine));
        if (!key.ok()) return absl::StrCat("Put: ", key.status().ToString());
        got = c.Get(*key);
        if (!got.ok() || !got->has_value() || (*got)->view() != mine) {
          return absl::StrCat("worker ", worker, ": own object ", j,
                              " did not read back");
        }
        if (absl::Status s = c.Evict(*key); !s.ok()) {
          return absl::StrCat("Evict: ", s.ToString());
        }
      }
      if (j % 50 == 0) {
        const std::vector<Key> some = {keys[i], keys[(i + 1) % n],
                                       keys[(i + 2) % n]};
        absl::StatusOr<std::vector<std::optional<SharedBytes>>> batch =
            c.GetBatch(some);
        if (!batch.ok())
          return absl::StrCat("GetBatch: ", batch.status().ToString());
        for (size_t k = 0; k < 3; ++k) {
          if (!(*batch)[k].has_value() ||
              (*batch)[k]->view() != expected[(i + k) % n]) {
            return absl::StrCat("worker ", worker, ": GetBatch item ", k,
                                " returned another object");
          }
        }
      }
    }
  }
  return "";
}

class RedisForkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(server_, RedisServer::Start());
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        c_, RedisConnector::Create(TcpConfig(*server_)));
  }
  void TearDown() override {
    if (c_ != nullptr) {
      EXPECT_THAT(c_->Close({.clear = true}), IsOk());
    }
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<RedisConnector> c_;
};

TEST_F(RedisForkTest, PreForkWorkersEachGetTheirOwnObjects) {
  const std::vector<std::string> expected = ExpectedObjects(200);
  std::vector<Key> keys;
  for (const std::string& value : expected) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, c_->Put(SharedBytes::Copy(value)));
    keys.push_back(k);
  }
  // The parent's pool now holds an open connection, inherited by every child.
  constexpr int kChildren = 4;
  std::vector<Worker> workers;
  for (int w = 1; w <= kChildren; ++w) {
    workers.push_back(
        Fork([&, w] { return WorkLoop(*c_, keys, expected, w); }));
  }
  EXPECT_EQ(WorkLoop(*c_, keys, expected, 0), "");
  for (int w = 0; w < kChildren; ++w) {
    const ChildResult r = Wait(workers[static_cast<size_t>(w)]);
    EXPECT_EQ(r.exit_code, 0) << "worker " << w + 1 << ": " << r.output;
  }
  EXPECT_EQ(server_->CountKeys(c_->prefix()), 200);
}

TEST_F(RedisForkTest, ChildOpensItsOwnConnectionAndParentKeepsItsPool) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c_->Put(SharedBytes::Copy("v")));
  const int64_t before = InfoStat(*server_, "total_connections_received");
  ASSERT_GT(before, 0);
  const Worker child = Fork([&]() -> std::string {
    absl::StatusOr<std::optional<SharedBytes>> got = c_->Get(key);
    if (!got.ok() || !got->has_value() || (*got)->view() != "v") {
      return "the child's Get failed";
    }
    return "";
  });
  const ChildResult r = Wait(child);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // The child connected once (InfoStat's own client counts one more).
  const int64_t after_child = InfoStat(*server_, "total_connections_received");
  EXPECT_EQ(after_child - before, 2);
  // The parent's pooled connection is untouched: it is reused, no new one.
  EXPECT_THAT(c_->Get(key), IsOk());
  EXPECT_EQ(InfoStat(*server_, "total_connections_received") - after_child, 1);
}

// A pre-fork server whose parent keeps using the connector from other threads
// while it forks: the child finds the pool usable (its lock is never inherited
// in a locked state) and still only uses connections of its own.
TEST_F(RedisForkTest, ForkWhileOtherThreadsUseThePool) {
#if defined(__SANITIZE_ADDRESS__)
  // Debian 12's AddressSanitizer runtime (GCC 12) does not hold its allocator
  // locks across fork(): a child forked while another thread is in malloc
  // deadlocks in its first malloc. glibc's malloc (plain builds) and TSan's
  // runtime do; newer ASan runtimes do too.
  GTEST_SKIP() << "ASan's allocator is not fork-safe in this runtime";
#endif
  const std::vector<std::string> expected = ExpectedObjects(20);
  std::vector<Key> keys;
  for (const std::string& value : expected) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k, c_->Put(SharedBytes::Copy(value)));
    keys.push_back(k);
  }
  std::atomic<bool> done{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (size_t j = 0; !done.load(); ++j) {
        const size_t i = (j + static_cast<size_t>(t)) % keys.size();
        absl::StatusOr<std::optional<SharedBytes>> got = c_->Get(keys[i]);
        if (!got.ok() || !got->has_value() || (*got)->view() != expected[i]) {
          errors.fetch_add(1);
        }
      }
    });
  }
  for (int k = 0; k < 20; ++k) {
    const Worker child = Fork([&]() -> std::string {
      for (size_t i = 0; i < keys.size(); ++i) {
        absl::StatusOr<std::optional<SharedBytes>> got = c_->Get(keys[i]);
        if (!got.ok() || !got->has_value() || (*got)->view() != expected[i]) {
          return absl::StrCat("child Get ", i, " failed or was wrong");
        }
      }
      return "";
    });
    const ChildResult r = Wait(child);
    EXPECT_EQ(r.exit_code, 0) << "child " << k << ": " << r.output;
  }
  done.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
}

}  // namespace
}  // namespace proxystore
