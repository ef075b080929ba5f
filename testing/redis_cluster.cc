#include "proxystore/testing/redis_cluster.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "hiredis/hiredis.h"
#include "proxystore/base/status.h"

namespace proxystore::testing {
namespace {

constexpr absl::string_view kStateOkLine = "Cluster state changed: ok";
constexpr absl::string_view kSyncDoneLine =
    "MASTER <-> REPLICA sync: Finished with success";
// The poll(2) timeout of a wait (see the header): from kMinBackoff, doubled
// after every check that came up short while no node logged anything, up to
// kMaxBackoff.
constexpr absl::Duration kMinBackoff = absl::Milliseconds(5);
constexpr absl::Duration kMaxBackoff = absl::Milliseconds(100);
// Connect and reply timeout of our own queries: a node that takes longer is
// overloaded or paused, and the check that asked it comes up short.
constexpr timeval kQueryTimeout = {2, 0};
// A node whose bus port was taken between our pick and its bind is started
// again this many times with a new bus port.
constexpr int kMaxNodeAttempts = 3;
// How many lines of each node's log an error message carries.
constexpr int kLogTailLines = 12;

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

absl::Status ErrnoError(absl::string_view what) {
  return absl::ErrnoToStatus(errno, absl::StrCat("redis_cluster: ", what));
}

// Milliseconds until `deadline`, for poll(2): >= 0, rounded up.
int MsUntil(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(left + absl::Milliseconds(1) -
                                                  absl::Nanoseconds(1)),
                        1 << 30));
}

absl::StatusOr<Reply> RunOn(redisContext* c,
                            const std::vector<std::string>& words) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& w : words) {
    argv.push_back(w.data());
    lens.push_back(w.size());
  }
  Reply r(static_cast<redisReply*>(redisCommandArgv(
      c, static_cast<int>(argv.size()), argv.data(), lens.data())));
  if (r == nullptr) {
    return absl::UnavailableError(
        absl::StrCat(words.empty() ? "" : words[0], ": ", c->errstr));
  }
  return r;
}

// One command on a fresh connection to `server` (AUTH first if `password`
// is set), made inside the server's network namespace. An error reply is
// returned as a reply.
absl::StatusOr<Reply> Query(const RedisServer& server,
                            const std::string& password,
                            const std::vector<std::string>& words) {
  const std::string where = absl::StrCat(server.host(), ":", server.port());
  Context c;
  PROXYSTORE_RETURN_IF_ERROR(server.RunInNetwork([&] {
    c.reset(redisConnectWithTimeout(server.host().c_str(), server.port(),
                                    kQueryTimeout));
  }));
  if (c == nullptr || c->err != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", where, ": ",
                     c == nullptr ? "out of memory" : c->errstr));
  }
  redisSetTimeout(c.get(), kQueryTimeout);
  if (!password.empty()) {
    PROXYSTORE_ASSIGN_OR_RETURN(Reply auth, RunOn(c.get(), {"AUTH", password}));
    if (auth->type == REDIS_REPLY_ERROR) {
      return absl::PermissionDeniedError(absl::StrCat(
          "AUTH on ", where, ": ", absl::string_view(auth->str, auth->len)));
    }
  }
  return RunOn(c.get(), words);
}

absl::string_view Str(const redisReply* r) {
  if (r == nullptr || r->str == nullptr) return "";
  return absl::string_view(r->str, r->len);
}

// "key:value" lines (CLUSTER INFO, INFO) as a map.
std::map<std::string, std::string, std::less<>> InfoFields(
    absl::string_view text) {
  std::map<std::string, std::string, std::less<>> fields;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripTrailingAsciiWhitespace(line);
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (!kv.first.empty())
      fields[std::string(kv.first)] = std::string(kv.second);
  }
  return fields;
}

std::string Field(const std::map<std::string, std::string, std::less<>>& fields,
                  absl::string_view key) {
  auto it = fields.find(key);
  return it == fields.end() ? "(missing)" : it->second;
}

// Drops the terminal color sequences redis-cli writes even to a pipe.
std::string WithoutColors(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\x1b' && i + 1 < text.size() && text[i + 1] == '[') {
      size_t end = text.find('m', i);
      if (end != absl::string_view::npos) {
        i = end;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

std::string LastLines(absl::string_view text, int n) {
  size_t pos = text.size();
  while (pos > 0 && text[pos - 1] == '\n') --pos;
  size_t end = pos;
  for (int lines = 0; pos > 0; --pos) {
    if (text[pos - 1] == '\n' && ++lines == n) break;
  }
  return std::string(text.substr(pos, end - pos));
}

struct ToolResult {
  int exit_code = -1;
  std::string output;
};

// Runs a tool (redis-cli) to completion, its stdout and stderr captured,
// killing it at `deadline`; inside the network namespace file `netns` if
// one is given. Not RunChild (//testing:child_process): that one is
// testonly, and has no deadline, while redis-cli's "wait for the cluster to
// join" loop has none either.
absl::StatusOr<ToolResult> RunTool(std::vector<std::string> args,
                                   const std::string& netns,
                                   absl::Time deadline) {
  // Built before fork(): the child of a multithreaded parent may only make
  // async-signal-safe calls.
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int netns_fd = -1;
  if (!netns.empty()) {
    netns_fd = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0) {
      return ErrnoError(absl::StrCat("open network namespace ", netns));
    }
  }
  absl::Cleanup close_netns = [netns_fd] {
    if (netns_fd >= 0) ::close(netns_fd);
  };
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe2");
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) {
    absl::Status s = ErrnoError("open /dev/null");
    ::close(fds[0]);
    ::close(fds[1]);
    return s;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::dup2(devnull, STDIN_FILENO) < 0 ||
        ::dup2(fds[1], STDOUT_FILENO) < 0 ||
        ::dup2(fds[1], STDERR_FILENO) < 0) {
      ::_exit(127);
    }
    if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) {
      static const char kSetnsFailed[] =
          "redis_cluster: setns(CLONE_NEWNET) failed\n";
      ssize_t ignored =
          ::write(STDERR_FILENO, kSetnsFailed, sizeof(kSetnsFailed) - 1);
      (void)ignored;
      ::_exit(127);
    }
    ::execv(argv[0], argv.data());
    static const char kExecFailed[] = "redis_cluster: execv failed\n";
    ssize_t ignored =
        ::write(STDERR_FILENO, kExecFailed, sizeof(kExecFailed) - 1);
    (void)ignored;
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(fds[1]);
  ::close(devnull);
  if (pid < 0) {
    ::close(fds[0]);
    errno = fork_errno;
    return ErrnoError("fork");
  }
  ToolResult result;
  bool timed_out = false;
  while (true) {
    pollfd p{fds[0], POLLIN, 0};
    int rc = ::poll(&p, 1, MsUntil(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) {
      timed_out = true;
      break;
    }
    char buf[4096];
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n > 0) {
      result.output.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waitpid");
  }
  result.output = WithoutColors(result.output);
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat("redis_cluster: ", args[0],
                     " did not finish in time; its output:\n", result.output));
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

// Parses one node's CLUSTER SHARDS reply (RESP2: each shard and node a flat
// key/value array). `index_of` maps an ip and port to a node index (-1: not
// ours).
template <typename IndexOf>
absl::StatusOr<RedisClusterLayout> ParseShards(const redisReply* r, int asked,
                                               int size, IndexOf index_of) {
  if (r->type != REDIS_REPLY_ARRAY) {
    return absl::InternalError(absl::StrCat(
        "redis_cluster: CLUSTER SHARDS answered ", Str(r), " (not an array)"));
  }
  RedisClusterLayout layout;
  layout.asked = asked;
  layout.nodes.resize(static_cast<size_t>(size));
  for (size_t s = 0; s < r->elements; ++s) {
    const redisReply* shard = r->element[s];
    if (shard->type != REDIS_REPLY_ARRAY) continue;
    std::vector<RedisClusterSlotRange> slots;
    std::vector<int> members;
    int master = -1;
    for (size_t k = 0; k + 1 < shard->elements; k += 2) {
      const absl::string_view key = Str(shard->element[k]);
      const redisReply* value = shard->element[k + 1];
      if (key == "slots" && value->type == REDIS_REPLY_ARRAY) {
        for (size_t j = 0; j + 1 < value->elements; j += 2) {
          slots.push_back({static_cast<int>(value->element[j]->integer),
                           static_cast<int>(value->element[j + 1]->integer)});
        }
      } else if (key == "nodes" && value->type == REDIS_REPLY_ARRAY) {
        for (size_t j = 0; j < value->elements; ++j) {
          const redisReply* n = value->element[j];
          RedisClusterNodeInfo info;
          std::string ip;
          int port = -1;
          for (size_t f = 0; f + 1 < n->elements; f += 2) {
            const absl::string_view name = Str(n->element[f]);
            const redisReply* v = n->element[f + 1];
            if (name == "id") info.id = std::string(Str(v));
            if (name == "ip") ip = std::string(Str(v));
            if (name == "port") port = static_cast<int>(v->integer);
            if (name == "role") info.master = Str(v) == "master";
            if (name == "health") info.failed = Str(v) == "fail";
            if (name == "replication-offset" &&
                v->type == REDIS_REPLY_INTEGER) {
              info.replication_offset = v->integer;
            }
          }
          info.index = index_of(ip, port);
          if (info.index < 0) continue;  // Not one of ours.
          if (info.master) master = info.index;
          members.push_back(info.index);
          layout.nodes[static_cast<size_t>(info.index)] = std::move(info);
        }
      }
    }
    std::sort(slots.begin(), slots.end(),
              [](const RedisClusterSlotRange& a,
                 const RedisClusterSlotRange& b) { return a.first < b.first; });
    for (int m : members) {
      RedisClusterNodeInfo& info = layout.nodes[static_cast<size_t>(m)];
      if (info.master) {
        info.slots = slots;
      } else {
        info.master_index = master;
      }
    }
  }
  return layout;
}

// What must be the same in every node's view: who owns which slots, who
// replicates whom, among the nodes in `relevant`.
std::string ViewSignature(const RedisClusterLayout& layout,
                          const std::vector<bool>& relevant) {
  std::string out;
  for (const RedisClusterNodeInfo& n : layout.nodes) {
    if (n.index < 0 || !relevant[static_cast<size_t>(n.index)]) continue;
    absl::StrAppend(&out, n.index, n.master ? " master" : " replica of ",
                    n.master ? "" : absl::StrCat(n.master_index));
    for (const RedisClusterSlotRange& r : n.slots) {
      absl::StrAppend(&out, " ", r.first, "-", r.last);
    }
    out += "; ";
  }
  return out;
}

}  // namespace

std::vector<int> RedisClusterLayout::masters() const {
  std::vector<int> out;
  for (const RedisClusterNodeInfo& n : nodes) {
    if (n.index >= 0 && n.master) out.push_back(n.index);
  }
  return out;
}

std::vector<int> RedisClusterLayout::replicas_of(int master) const {
  std::vector<int> out;
  for (const RedisClusterNodeInfo& n : nodes) {
    if (n.index >= 0 && !n.master && n.master_index == master) {
      out.push_back(n.index);
    }
  }
  return out;
}

int RedisClusterLayout::SlotOwner(int slot) const {
  for (const RedisClusterNodeInfo& n : nodes) {
    if (n.index < 0 || !n.master) continue;
    for (const RedisClusterSlotRange& r : n.slots) {
      if (r.first <= slot && slot <= r.last) return n.index;
    }
  }
  return -1;
}

RedisCluster::RedisCluster(RedisClusterOptions options, std::string dir)
    : options_(std::move(options)), dir_(std::move(dir)) {}

absl::StatusOr<std::unique_ptr<RedisCluster>> RedisCluster::Start(
    const RedisClusterOptions& options) {
  if (options.masters < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redis_cluster: masters is ", options.masters,
        "; Redis Cluster (redis-cli --cluster create) needs at least 3"));
  }
  if (options.replicas_per_master < 0) {
    return absl::InvalidArgumentError("redis_cluster: replicas_per_master < 0");
  }
  const int count = options.masters * (1 + options.replicas_per_master);
  if (!options.placement.empty() &&
      static_cast<int>(options.placement.size()) != count) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis_cluster: placement has ", options.placement.size(),
                     " entries for ", count,
                     " nodes (masters * (1 + replicas_per_master))"));
  }
  for (const std::string* binary :
       {&options.server_binary, &options.cli_binary}) {
    if (::access(binary->c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "redis_cluster: ", *binary, " is missing or not executable (",
          std::strerror(errno),
          "); run tools/setup.sh to install the redis-server package"));
    }
  }
  const absl::Time deadline = absl::Now() + options.startup_timeout;
  // Under $TEST_TMPDIR when there is one (Bazel removes it whatever
  // happens), else /tmp; the destructor removes it either way.
  const char* test_tmp = std::getenv("TEST_TMPDIR");
  std::string dir =
      absl::StrCat(test_tmp != nullptr && *test_tmp != '\0' ? test_tmp : "/tmp",
                   "/psrediscluster-XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) {
    return ErrnoError(absl::StrCat("mkdtemp ", dir));
  }
  // From here on the destructor cleans up.
  std::unique_ptr<RedisCluster> cluster(
      new RedisCluster(options, std::move(dir)));
  PROXYSTORE_RETURN_IF_ERROR(cluster->StartNodes());
  PROXYSTORE_RETURN_IF_ERROR(cluster->CreateWithCli(deadline));

  // The log lines first (no queries until every node said so), then the
  // queries of the health check, then the shape redis-cli was asked for.
  const int replicas = options.masters * options.replicas_per_master;
  PROXYSTORE_RETURN_IF_ERROR(cluster->WaitFor(
      "cluster formation", deadline, [&]() -> absl::StatusOr<std::string> {
        int synced = 0;
        for (int i = 0; i < cluster->size(); ++i) {
          const std::string log = cluster->node(i).OutputSince(0);
          if (!absl::StrContains(log, kStateOkLine)) {
            return absl::StrCat("node ", i, " has not logged \"", kStateOkLine,
                                "\"");
          }
          if (absl::StrContains(log, kSyncDoneLine)) ++synced;
        }
        if (synced < replicas) {
          return absl::StrCat(synced, " of ", replicas, " replicas logged \"",
                              kSyncDoneLine, "\"");
        }
        PROXYSTORE_ASSIGN_OR_RETURN(std::string problem,
                                    cluster->HealthProblem({}));
        if (!problem.empty()) return problem;
        const RedisClusterLayout& layout = cluster->healthy_layout_;
        if (static_cast<int>(layout.masters().size()) != options.masters) {
          return absl::StrCat(layout.masters().size(), " masters, not ",
                              options.masters);
        }
        for (int m : layout.masters()) {
          if (static_cast<int>(layout.replicas_of(m).size()) !=
              options.replicas_per_master) {
            return absl::StrCat("master ", m, " has ",
                                layout.replicas_of(m).size(), " replicas");
          }
        }
        return std::string();
      }));
  return cluster;
}

RedisCluster::~RedisCluster() {
  // SIGKILL rather than a graceful shutdown: the data is thrown away, and a
  // master's shutdown would wait for lagging replicas.
  for (Node& n : nodes_) {
    if (n.server != nullptr) n.server->Kill().IgnoreError();
  }
  nodes_.clear();  // Each RedisServer removes its own temporary directory.
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

absl::Status RedisCluster::StartNodes() {
  const int count = options_.masters * (1 + options_.replicas_per_master);
  for (int i = 0; i < count; ++i) {
    const std::string node_dir = absl::StrCat(dir_, "/node-", i);
    RedisServerOptions server_options;
    server_options.binary = options_.server_binary;
    server_options.persistence = options_.persistence;
    server_options.dir = node_dir;
    server_options.password = options_.password;
    server_options.startup_timeout = options_.startup_timeout;
    if (!options_.placement.empty()) {
      const RedisClusterNodePlacement& place =
          options_.placement[static_cast<size_t>(i)];
      server_options.netns = place.netns;
      server_options.bind_address = place.bind_address;
    }
    absl::Status last;
    for (int attempt = 0; attempt < kMaxNodeAttempts; ++attempt) {
      PROXYSTORE_ASSIGN_OR_RETURN(
          int bus_port,
          PickFreePort(server_options.bind_address, server_options.netns));
      server_options.extra_args = {
          "--cluster-enabled", "yes",
          // Its own directory, so nodes never share a config file.
          "--cluster-config-file", absl::StrCat(node_dir, "/nodes.conf"),
          "--cluster-node-timeout",
          absl::StrCat(absl::ToInt64Milliseconds(options_.node_timeout)),
          "--cluster-port", absl::StrCat(bus_port),
          // A replica that lost its master a while ago still takes over
          // (the default refuses after 10 node timeouts + 10 s).
          "--cluster-replica-validity-factor", "0",
          // Replicas sync as soon as they ask (the default waits 5 s for
          // more replicas to share one transfer).
          "--repl-diskless-sync-delay", "0"};
      if (!options_.password.empty()) {
        server_options.extra_args.insert(server_options.extra_args.end(),
                                         {"--masterauth", options_.password});
      }
      server_options.extra_args.insert(server_options.extra_args.end(),
                                       options_.extra_args.begin(),
                                       options_.extra_args.end());
      absl::StatusOr<std::unique_ptr<RedisServer>> server =
          RedisServer::Start(server_options);
      if (server.ok()) {
        nodes_.push_back(Node{std::move(*server), "", bus_port});
        break;
      }
      last = server.status();
      // Unavailable: it exited, perhaps because the bus port was taken in
      // the meantime; anything else will not get better.
      if (!absl::IsUnavailable(last)) break;
    }
    if (static_cast<int>(nodes_.size()) != i + 1) {
      return Annotate(last, absl::StrCat("redis_cluster: node ", i));
    }
    PROXYSTORE_ASSIGN_OR_RETURN(std::string id,
                                Command(i, {"CLUSTER", "MYID"}));
    nodes_.back().id = std::move(id);
  }
  return absl::OkStatus();
}

absl::Status RedisCluster::CreateWithCli(absl::Time deadline) {
  std::vector<std::string> args = {options_.cli_binary};
  if (!options_.password.empty()) {
    args.insert(args.end(), {"-a", options_.password, "--no-auth-warning"});
  }
  args.insert(args.end(), {"--cluster", "create"});
  for (int i = 0; i < size(); ++i) args.push_back(address(i));
  args.insert(args.end(),
              {"--cluster-replicas", absl::StrCat(options_.replicas_per_master),
               "--cluster-yes"});
  // In node 0's network namespace: it reaches every node, as nodes must
  // reach each other.
  PROXYSTORE_ASSIGN_OR_RETURN(ToolResult result,
                              RunTool(args, node(0).options().netns, deadline));
  // redis-cli reports some failures ("[ERR] Nodes don't agree") with exit
  // code 0; "[OK] All 16384 slots covered." ends a successful creation.
  if (result.exit_code != 0 ||
      !absl::StrContains(result.output, "[OK] All 16384 slots covered")) {
    return absl::UnavailableError(
        absl::StrCat("redis_cluster: ", absl::StrJoin(args, " "),
                     " exited with code ", result.exit_code, "; its output:\n",
                     result.output, "\nThe nodes' logs:\n", LogTails()));
  }
  return absl::OkStatus();
}

absl::Status RedisCluster::WaitFor(absl::string_view what, absl::Time deadline,
                                   Check check) {
  absl::Duration backoff = kMinBackoff;
  while (true) {
    PROXYSTORE_ASSIGN_OR_RETURN(std::string problem, check());
    if (problem.empty()) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "redis_cluster: ", what, " did not complete in time; the last ",
          "check found: ", problem, "\nThe nodes' logs:\n", LogTails()));
    }
    std::vector<pollfd> fds;
    std::vector<int> who;
    for (int i = 0; i < size(); ++i) {
      if (node(i).output_fd() < 0) continue;
      fds.push_back({node(i).output_fd(), POLLIN, 0});
      who.push_back(i);
    }
    const int timeout_ms =
        std::min(MsUntil(deadline),
                 static_cast<int>(absl::ToInt64Milliseconds(backoff)));
    const int rc = ::poll(fds.data(), fds.size(), timeout_ms);
    if (rc < 0 && errno != EINTR) return ErrnoError("poll");
    if (rc <= 0) {
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    backoff = kMinBackoff;
    for (size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      node(who[k]).OutputMark();  // Reads what it logged.
      if ((fds[k].revents & (POLLHUP | POLLERR)) != 0) {
        // Every writer of the pipe is gone: the node exited on its own.
        return absl::UnavailableError(
            absl::StrCat("redis_cluster: node ", who[k], " (", address(who[k]),
                         ") exited during ", what, "; its log:\n",
                         LastLines(node(who[k]).Output(), 3 * kLogTailLines)));
      }
    }
  }
}

absl::StatusOr<std::string> RedisCluster::HealthProblem(
    const std::vector<int>& excluded) {
  // The nodes that are asked, and that may own slots.
  std::vector<bool> relevant(static_cast<size_t>(size()));
  for (int i = 0; i < size(); ++i) {
    relevant[static_cast<size_t>(i)] =
        node(i).running() &&
        std::find(excluded.begin(), excluded.end(), i) == excluded.end();
  }
  std::string first_signature;
  RedisClusterLayout first_layout;
  for (int i = 0; i < size(); ++i) {
    if (!relevant[static_cast<size_t>(i)]) continue;
    absl::StatusOr<std::string> info = Command(i, {"CLUSTER", "INFO"});
    if (!info.ok())
      return absl::StrCat("node ", i, ": ", info.status().message());
    const auto fields = InfoFields(*info);
    if (Field(fields, "cluster_state") != "ok" ||
        Field(fields, "cluster_slots_assigned") !=
            absl::StrCat(kRedisClusterSlots) ||
        Field(fields, "cluster_known_nodes") != absl::StrCat(size())) {
      return absl::StrCat(
          "node ", i, " says cluster_state:", Field(fields, "cluster_state"),
          " cluster_slots_assigned:", Field(fields, "cluster_slots_assigned"),
          " cluster_known_nodes:", Field(fields, "cluster_known_nodes"));
    }
    absl::StatusOr<RedisClusterLayout> layout = Layout(i);
    if (!layout.ok())
      return absl::StrCat("node ", i, ": ", layout.status().message());
    for (const RedisClusterNodeInfo& n : layout->nodes) {
      if (n.index < 0) return absl::StrCat("node ", i, " misses a node");
      if (n.master && !n.slots.empty() &&
          !relevant[static_cast<size_t>(n.index)]) {
        return absl::StrCat("node ", i, " still assigns slots to node ",
                            n.index);
      }
      if (n.failed && relevant[static_cast<size_t>(n.index)]) {
        return absl::StrCat("node ", i, " marks node ", n.index, " as failed");
      }
      // So that clients reading CLUSTER SLOTS see every replica.
      if (!n.master && relevant[static_cast<size_t>(n.index)] &&
          n.replication_offset <= 0) {
        return absl::StrCat("node ", i, " knows no replication offset of ",
                            "replica ", n.index);
      }
    }
    const RedisClusterNodeInfo& self = layout->nodes[static_cast<size_t>(i)];
    if (!self.master) {
      if (self.master_index < 0) {
        return absl::StrCat("node ", i, " is a replica without a master");
      }
      absl::StatusOr<std::string> repl = Command(i, {"INFO", "replication"});
      if (!repl.ok())
        return absl::StrCat("node ", i, ": ", repl.status().message());
      const auto r = InfoFields(*repl);
      if (Field(r, "master_link_status") != "up" ||
          Field(r, "master_sync_in_progress") != "0" ||
          Field(r, "master_host") != node(self.master_index).host() ||
          Field(r, "master_port") !=
              absl::StrCat(node(self.master_index).port())) {
        return absl::StrCat(
            "replica ", i, " of node ", self.master_index,
            " says master_host:", Field(r, "master_host"),
            " master_port:", Field(r, "master_port"),
            " master_link_status:", Field(r, "master_link_status"),
            " master_sync_in_progress:", Field(r, "master_sync_in_progress"));
      }
    }
    std::string signature = ViewSignature(*layout, relevant);
    if (first_layout.asked < 0) {
      first_signature = std::move(signature);
      first_layout = *std::move(layout);
    } else if (signature != first_signature) {
      return absl::StrCat("node ", first_layout.asked, " sees ",
                          first_signature, " but node ", i, " sees ",
                          signature);
    }
  }
  if (first_layout.asked < 0) return std::string("no node is running");
  healthy_layout_ = std::move(first_layout);
  return std::string();
}

absl::StatusOr<std::string> RedisCluster::Command(
    int i, const std::vector<std::string>& words) const {
  PROXYSTORE_ASSIGN_OR_RETURN(Reply r,
                              Query(node(i), options_.password, words));
  switch (r->type) {
    case REDIS_REPLY_ERROR:
      return absl::FailedPreconditionError(
          absl::StrCat("redis_cluster: ", absl::StrJoin(words, " "),
                       " on node ", i, " (", address(i), "): ", Str(r.get())));
    case REDIS_REPLY_INTEGER:
      return absl::StrCat(r->integer);
    case REDIS_REPLY_ARRAY: {
      std::vector<absl::string_view> parts;
      for (size_t k = 0; k < r->elements; ++k) {
        parts.push_back(Str(r->element[k]));
      }
      return absl::StrJoin(parts, "\n");
    }
    default:
      return std::string(Str(r.get()));
  }
}

std::string RedisCluster::LogTails() {
  std::string out;
  for (int i = 0; i < size(); ++i) {
    absl::StrAppend(&out, "--- node ", i, " (", address(i), ", ",
                    node(i).running() ? "running" : "down", ") ---\n",
                    LastLines(node(i).Output(), kLogTailLines), "\n");
  }
  return out;
}

int RedisCluster::IndexOf(const std::string& ip, int port) const {
  // Nodes in different network namespaces may share a port number.
  for (int i = 0; i < size(); ++i) {
    if (node(i).port() == port && (ip.empty() || node(i).host() == ip)) {
      return i;
    }
  }
  return -1;
}

std::string RedisCluster::address(int i) const {
  return absl::StrCat(node(i).host(), ":", node(i).port());
}

std::string RedisCluster::addresses() const {
  std::vector<std::string> all;
  for (int i = 0; i < size(); ++i) all.push_back(address(i));
  return absl::StrJoin(all, ",");
}

absl::StatusOr<RedisClusterLayout> RedisCluster::Layout(int asked) const {
  if (asked >= size()) return CheckIndex("Layout", asked);
  if (asked < 0) {
    for (int i = 0; i < size() && asked < 0; ++i) {
      if (node(i).running()) asked = i;
    }
    if (asked < 0) {
      return absl::FailedPreconditionError("redis_cluster: no node runs");
    }
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      Reply r, Query(node(asked), options_.password, {"CLUSTER", "SHARDS"}));
  return ParseShards(
      r.get(), asked, size(),
      [this](const std::string& ip, int port) { return IndexOf(ip, port); });
}

absl::Status RedisCluster::CheckIndex(absl::string_view what, int i) const {
  if (i < 0 || i >= size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redis_cluster: ", what, ": no node ", i, " (there are ", size(), ")"));
  }
  return absl::OkStatus();
}

absl::Status RedisCluster::KillNode(int i) {
  PROXYSTORE_RETURN_IF_ERROR(CheckIndex("KillNode", i));
  return node(i).Kill();
}

absl::Status RedisCluster::RestartNode(int i) {
  PROXYSTORE_RETURN_IF_ERROR(CheckIndex("RestartNode", i));
  PROXYSTORE_RETURN_IF_ERROR(node(i).Restart());
  return WaitFor(absl::StrCat("the rejoin of node ", i),
                 absl::Now() + options_.wait_timeout,
                 [this]() { return HealthProblem({}); });
}

absl::StatusOr<int> RedisCluster::WaitForFailover(int old_master) {
  PROXYSTORE_RETURN_IF_ERROR(CheckIndex("WaitForFailover", old_master));
  if (old_master >= static_cast<int>(healthy_layout_.nodes.size()) ||
      !healthy_layout_.nodes[static_cast<size_t>(old_master)].master) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis_cluster: node ", old_master,
                     " was no master when the cluster was last healthy"));
  }
  const std::vector<int> candidates = healthy_layout_.replicas_of(old_master);
  if (candidates.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("redis_cluster: master ", old_master,
                     " had no replica when the cluster was last healthy"));
  }
  int promoted = -1;
  PROXYSTORE_RETURN_IF_ERROR(WaitFor(
      absl::StrCat("the failover of node ", old_master),
      absl::Now() + options_.wait_timeout,
      [&]() -> absl::StatusOr<std::string> {
        PROXYSTORE_ASSIGN_OR_RETURN(std::string problem,
                                    HealthProblem({old_master}));
        if (!problem.empty()) return problem;
        for (int c : candidates) {
          if (healthy_layout_.nodes[static_cast<size_t>(c)].master) {
            promoted = c;
            return std::string();
          }
        }
        return absl::StrCat("no replica of node ", old_master, " is a master");
      }));
  return promoted;
}

absl::Status RedisCluster::WaitUntilHealthy() {
  return WaitFor("the wait for a healthy cluster",
                 absl::Now() + options_.wait_timeout,
                 [this]() { return HealthProblem({}); });
}

absl::Status RedisCluster::BeginSlotMigration(int slot, int from, int to) {
  PROXYSTORE_RETURN_IF_ERROR(CheckIndex("BeginSlotMigration", from));
  PROXYSTORE_RETURN_IF_ERROR(CheckIndex("BeginSlotMigration", to));
  const std::string s = absl::StrCat(slot);
  // IMPORTING on the target first: once the source is MIGRATING it sends
  // clients there with ASK, and the target must accept them by then.
  PROXYSTORE_RETURN_IF_ERROR(
      Command(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", node_id(from)})
          .status());
  return Command(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", node_id(to)})
      .status();
}

absl::StatusOr<int> RedisCluster::MigrateSlotKeys(int slot, int from, int to,
                                                  int max_keys) {
  PROXYSTORE_RETURN_IF_ERROR(CheckIndex("MigrateSlotKeys", from));
  PROXYSTORE_RETURN_IF_ERROR(CheckIndex("MigrateSlotKeys", to));
  if (max_keys <= 0) {
    return absl::InvalidArgumentError(
        "redis_cluster: MigrateSlotKeys: "
        "max_keys <= 0");
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      Reply keys, Query(node(from), options_.password,
                        {"CLUSTER", "GETKEYSINSLOT", absl::StrCat(slot),
                         absl::StrCat(max_keys)}));
  if (keys->type != REDIS_REPLY_ARRAY) {
    return absl::FailedPreconditionError(
        absl::StrCat("redis_cluster: CLUSTER GETKEYSINSLOT on node ", from,
                     ": ", Str(keys.get())));
  }
  if (keys->elements == 0) return 0;
  std::vector<std::string> migrate = {
      "MIGRATE",
      node(to).host(),
      absl::StrCat(node(to).port()),
      "",  // Several keys: they follow KEYS.
      "0",
      absl::StrCat(absl::ToInt64Milliseconds(options_.migrate_timeout))};
  if (!options_.password.empty()) {
    migrate.insert(migrate.end(), {"AUTH", options_.password});
  }
  migrate.push_back("KEYS");
  for (size_t k = 0; k < keys->elements; ++k) {
    migrate.emplace_back(Str(keys->element[k]));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(Reply r,
                              Query(node(from), options_.password, migrate));
  // NOKEY: every key was deleted (or expired) since GETKEYSINSLOT; a later
  // batch finds the rest.
  if (r->type == REDIS_REPLY_ERROR ||
      (Str(r.get()) != "OK" && Str(r.get()) != "NOKEY")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "redis_cluster: MIGRATE of ", keys->elements, " keys of slot ", slot,
        " from node ", from, " to node ", to, ": ", Str(r.get())));
  }
  return static_cast<int>(keys->elements);
}

absl::Status RedisCluster::FinishSlotMigration(int slot, int from, int to) {
  PROXYSTORE_RETURN_IF_ERROR(CheckIndex("FinishSlotMigration", from));
  PROXYSTORE_RETURN_IF_ERROR(CheckIndex("FinishSlotMigration", to));
  const std::string s = absl::StrCat(slot);
  // The target first (it owns the slot from now on and bumps its config
  // epoch, so gossip carries the change), then the source (which from now
  // on answers MOVED), then every other master, so that none sends clients
  // to the source any more.
  PROXYSTORE_RETURN_IF_ERROR(
      Command(to, {"CLUSTER", "SETSLOT", s, "NODE", node_id(to)}).status());
  PROXYSTORE_RETURN_IF_ERROR(
      Command(from, {"CLUSTER", "SETSLOT", s, "NODE", node_id(to)}).status());
  PROXYSTORE_ASSIGN_OR_RETURN(RedisClusterLayout layout, Layout(to));
  for (int m : layout.masters()) {
    if (m == to || m == from || !node(m).running()) continue;
    PROXYSTORE_RETURN_IF_ERROR(
        Command(m, {"CLUSTER", "SETSLOT", s, "NODE", node_id(to)}).status());
  }
  return WaitFor(absl::StrCat("the migration of slot ", slot, " to node ", to),
                 absl::Now() + options_.wait_timeout,
                 [&]() -> absl::StatusOr<std::string> {
                   PROXYSTORE_ASSIGN_OR_RETURN(std::string problem,
                                               HealthProblem({}));
                   if (!problem.empty()) return problem;
                   if (healthy_layout_.SlotOwner(slot) != to) {
                     return absl::StrCat("slot ", slot, " is owned by node ",
                                         healthy_layout_.SlotOwner(slot));
                   }
                   return std::string();
                 });
}

absl::Status RedisCluster::MigrateSlot(int slot, int from, int to, int batch) {
  if (slot < 0 || slot >= kRedisClusterSlots || from == to || batch <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis_cluster: MigrateSlot(", slot, ", ", from, ", ", to,
                     ", ", batch, ")"));
  }
  PROXYSTORE_RETURN_IF_ERROR(BeginSlotMigration(slot, from, to));
  while (true) {
    PROXYSTORE_ASSIGN_OR_RETURN(int moved,
                                MigrateSlotKeys(slot, from, to, batch));
    if (moved == 0) break;
  }
  return FinishSlotMigration(slot, from, to);
}

}  // namespace proxystore::testing
