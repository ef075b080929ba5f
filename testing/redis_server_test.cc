#include "proxystore/testing/redis_server.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/netns.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::testing {
namespace {

using ::testing::HasSubstr;

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

constexpr timeval kTimeout = {5, 0};

Context ConnectTcp(const RedisServer& server) {
  return Context(
      redisConnectWithTimeout(server.host().c_str(), server.port(), kTimeout));
}

// Runs one command (space-separated words) and renders the reply as text:
// "+status", "-error", ":integer", "$string", "nil", "*n"; or "!io error".
std::string Command(redisContext* c, const std::vector<std::string>& words) {
  if (c == nullptr) return "!no context";
  if (c->err != 0) return absl::StrCat("!", c->errstr);
  redisSetTimeout(c, kTimeout);
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& w : words) {
    argv.push_back(w.data());
    lens.push_back(w.size());
  }
  Reply r(static_cast<redisReply*>(redisCommandArgv(
      c, static_cast<int>(argv.size()), argv.data(), lens.data())));
  if (r == nullptr) return absl::StrCat("!", c->errstr);
  switch (r->type) {
    case REDIS_REPLY_STATUS:
      return absl::StrCat("+", std::string(r->str, r->len));
    case REDIS_REPLY_ERROR:
      return absl::StrCat("-", std::string(r->str, r->len));
    case REDIS_REPLY_INTEGER:
      return absl::StrCat(":", r->integer);
    case REDIS_REPLY_STRING:
      return absl::StrCat("$", std::string(r->str, r->len));
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_ARRAY: {
      std::string out = absl::StrCat("*", r->elements);
      for (size_t i = 0; i < r->elements; ++i) {
        out += absl::StrCat(
            " ", std::string(r->element[i]->str, r->element[i]->len));
      }
      return out;
    }
  }
  return "?";
}

// True if no process has this pid any more (after it was reaped).
bool ProcessGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

TEST(RedisServer, StartsAnswersPingAndStopsByPid) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start());
  EXPECT_EQ(server->host(), "127.0.0.1");
  EXPECT_GT(server->port(), 0);
  EXPECT_TRUE(server->unix_socket().empty());
  const pid_t pid = server->pid();
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(server->running());
  EXPECT_FALSE(ProcessGone(pid));

  Context c = ConnectTcp(*server);
  EXPECT_EQ(Command(c.get(), {"PING"}), "+PONG");
  EXPECT_EQ(Command(c.get(), {"SET", "k", std::string("a\0b", 3)}), "+OK");
  EXPECT_EQ(Command(c.get(), {"GET", "k"}), std::string("$a\0b", 4));
  EXPECT_THAT(server->Output(), HasSubstr("Ready to accept connections"));

  server.reset();  // The destructor stops it.
  EXPECT_TRUE(ProcessGone(pid));
}

TEST(RedisServer, NothingIsPersistedByDefault) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start());
  Context c = ConnectTcp(*server);
  EXPECT_EQ(Command(c.get(), {"CONFIG", "GET", "save"}), "*2 save ");
  EXPECT_EQ(Command(c.get(), {"CONFIG", "GET", "appendonly"}),
            "*2 appendonly no");
}

TEST(RedisServer, StopIsExplicitAndIdempotent) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start());
  const pid_t pid = server->pid();
  PROXYSTORE_EXPECT_OK(server->Stop());
  EXPECT_TRUE(ProcessGone(pid));
  EXPECT_FALSE(server->running());
  EXPECT_EQ(server->pid(), -1);
  PROXYSTORE_EXPECT_OK(server->Stop());
  PROXYSTORE_EXPECT_OK(server->Kill());
  EXPECT_THAT(server->Output(), HasSubstr("ready to exit"));
}

TEST(RedisServer, TwoServersGetDistinctPorts) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> a,
                                  RedisServer::Start());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> b,
                                  RedisServer::Start());
  EXPECT_NE(a->port(), b->port());
  Context ca = ConnectTcp(*a);
  Context cb = ConnectTcp(*b);
  EXPECT_EQ(Command(ca.get(), {"SET", "where", "a"}), "+OK");
  EXPECT_EQ(Command(cb.get(), {"GET", "where"}), "nil");
}

TEST(RedisServer, UnixSocket) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start({.unix_socket = true}));
  ASSERT_FALSE(server->unix_socket().empty());
  struct stat st;
  ASSERT_EQ(::stat(server->unix_socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  Context c(
      redisConnectUnixWithTimeout(server->unix_socket().c_str(), kTimeout));
  EXPECT_EQ(Command(c.get(), {"PING"}), "+PONG");
  // TCP still works.
  EXPECT_EQ(Command(ConnectTcp(*server).get(), {"PING"}), "+PONG");

  const std::string dir = server->dir();
  server.reset();
  // The private directory (and socket) are removed.
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(RedisServer, PasswordIsRequired) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start({.password = "s3cret"}));
  Context c = ConnectTcp(*server);
  EXPECT_THAT(Command(c.get(), {"PING"}), HasSubstr("-NOAUTH"));
  EXPECT_THAT(Command(c.get(), {"AUTH", "wrong"}), HasSubstr("-WRONGPASS"));
  EXPECT_EQ(Command(c.get(), {"AUTH", "s3cret"}), "+OK");
  EXPECT_EQ(Command(c.get(), {"PING"}), "+PONG");
}

TEST(RedisServer, KillAndRestartKeepPortAndPersistedData) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR") != nullptr
                                           ? std::getenv("TEST_TMPDIR")
                                           : "/tmp",
                                       "/redis-aof");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<RedisServer> server,
      RedisServer::Start(
          {.unix_socket = true, .persistence = true, .dir = dir}));
  EXPECT_EQ(server->dir(), dir);
  const int port = server->port();
  const std::string socket = server->unix_socket();
  {
    Context c = ConnectTcp(*server);
    EXPECT_EQ(Command(c.get(), {"SET", "durable", "yes"}), "+OK");
  }
  const pid_t first = server->pid();
  PROXYSTORE_ASSERT_OK(server->Kill());
  EXPECT_TRUE(ProcessGone(first));
  EXPECT_FALSE(server->running());
  EXPECT_THAT(Command(ConnectTcp(*server).get(), {"PING"}), HasSubstr("!"));

  PROXYSTORE_ASSERT_OK(server->Restart());
  EXPECT_EQ(server->port(), port);
  EXPECT_EQ(server->unix_socket(), socket);
  EXPECT_NE(server->pid(), first);
  EXPECT_EQ(Command(ConnectTcp(*server).get(), {"GET", "durable"}), "$yes");
  Context u(redisConnectUnixWithTimeout(socket.c_str(), kTimeout));
  EXPECT_EQ(Command(u.get(), {"GET", "durable"}), "$yes");

  // Graceful restart too.
  PROXYSTORE_ASSERT_OK(server->Restart());
  EXPECT_EQ(Command(ConnectTcp(*server).get(), {"GET", "durable"}), "$yes");
  server.reset();
  // A directory we passed in is left alone.
  EXPECT_TRUE(std::filesystem::exists(dir));
}

TEST(RedisServer, WithoutPersistenceARestartStartsEmpty) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start());
  EXPECT_EQ(Command(ConnectTcp(*server).get(), {"SET", "k", "v"}), "+OK");
  PROXYSTORE_ASSERT_OK(server->Restart());
  EXPECT_EQ(Command(ConnectTcp(*server).get(), {"GET", "k"}), "nil");
}

TEST(RedisServer, PauseMakesItUnresponsiveUntilResumed) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start());
  Context c = ConnectTcp(*server);
  EXPECT_EQ(Command(c.get(), {"PING"}), "+PONG");
  PROXYSTORE_ASSERT_OK(server->Pause());
  redisSetTimeout(c.get(), timeval{0, 200'000});
  Reply r(static_cast<redisReply*>(redisCommand(c.get(), "PING")));
  EXPECT_EQ(r, nullptr);
  EXPECT_NE(c->err, 0);
  PROXYSTORE_ASSERT_OK(server->Resume());
  EXPECT_EQ(Command(ConnectTcp(*server).get(), {"PING"}), "+PONG");
  // Stopping a paused server works too.
  PROXYSTORE_ASSERT_OK(server->Pause());
  const pid_t pid = server->pid();
  PROXYSTORE_ASSERT_OK(server->Stop());
  EXPECT_TRUE(ProcessGone(pid));
}

TEST(RedisServer, MissingBinaryIsFailedPreconditionPointingAtSetup) {
  EXPECT_THAT(
      RedisServer::Start({.binary = "/nonexistent/redis-server"}),
      StatusIs(absl::StatusCode::kFailedPrecondition, "tools/setup.sh"));
}

TEST(RedisServer, BadArgumentsFailWithTheServersOutput) {
  EXPECT_THAT(RedisServer::Start({.extra_args = {"--no-such-directive", "1"}}),
              StatusIs(absl::StatusCode::kUnavailable,
                       "Bad directive or wrong number of arguments"));
}

TEST(RedisServer, RestartFailsClearlyWhenThePortWasTaken) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start());
  PROXYSTORE_ASSERT_OK(server->Stop());
  // Take the port while the server is down.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(server->port()));
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  EXPECT_THAT(server->Restart(),
              StatusIs(absl::StatusCode::kUnavailable, "took it"));
  EXPECT_FALSE(server->running());
  ::close(fd);
  PROXYSTORE_ASSERT_OK(server->Restart());
  EXPECT_EQ(Command(ConnectTcp(*server).get(), {"PING"}), "+PONG");
}

// Another host: a server inside host 0 of a Netns, on host 0's address,
// serves clients on host 1 (hiredis, redis-cli), and is restarted there.
TEST(RedisServer, RunsInANetworkNamespaceOnItsAddress) {
  absl::Status available = Netns::Available();
  if (!available.ok()) GTEST_SKIP() << available.message();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> net,
                                  Netns::Create({.hosts = 2}));
  RedisServerOptions options;
  options.netns = net->path(0);
  options.bind_address = net->address(0);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start(options));
  EXPECT_EQ(server->host(), net->address(0));

  std::string set, loopback;
  PROXYSTORE_ASSERT_OK(net->RunInThread(1, [&] {
    set = Command(ConnectTcp(*server).get(), {"SET", "mh:k", "from host 1"});
  }));
  EXPECT_EQ(set, "+OK");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      NetnsResult cli,
      net->Run(1, {"redis-cli", "-h", server->host(), "-p",
                   absl::StrCat(server->port()), "GET", "mh:k"}));
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_EQ(cli.output, "from host 1\n");
  EXPECT_EQ(server->CountKeys("mh:"), 1);
  // Bound to its address only: not on host 0's loopback.
  PROXYSTORE_ASSERT_OK(server->RunInNetwork([&] {
    loopback = Command(
        Context(redisConnectWithTimeout("127.0.0.1", server->port(), kTimeout))
            .get(),
        {"PING"});
  }));
  EXPECT_THAT(loopback, HasSubstr("!"));

  const int port = server->port();
  PROXYSTORE_ASSERT_OK(server->Restart());
  EXPECT_EQ(server->port(), port);
  std::string ping;
  PROXYSTORE_ASSERT_OK(net->RunInThread(
      1, [&] { ping = Command(ConnectTcp(*server).get(), {"PING"}); }));
  EXPECT_EQ(ping, "+PONG");
}

TEST(RedisServer, BadNetworkNamespaceOrAddressIsAClearError) {
  EXPECT_THAT(RedisServer::Start({.netns = "/nonexistent/netns"}),
              StatusIs(absl::StatusCode::kNotFound, "/nonexistent/netns"));
  EXPECT_THAT(RedisServer::Start({.netns = "/proc/self/ns/uts"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "is not a network namespace"));
  EXPECT_THAT(RedisServer::Start({.bind_address = "localhost"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "not IPv4"));
  // Without a namespace, RunInNetwork runs right here.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start());
  const std::thread::id here = std::this_thread::get_id();
  std::thread::id ran;
  PROXYSTORE_ASSERT_OK(
      server->RunInNetwork([&] { ran = std::this_thread::get_id(); }));
  EXPECT_EQ(ran, here);
}

}  // namespace
}  // namespace proxystore::testing
