// Netns: a private network of "hosts" (Linux network namespaces) for tests
// that must cross machines.
//
// Create() makes N host namespaces and one "switch" namespace. The switch
// holds a bridge (br0) with one veth pair per host: port p<i> on the bridge,
// eth0 inside host i, which gets address(i) in a /24 of 10.0.0.0/8 and its
// own loopback. Hosts reach each other only through the switch; nothing is
// routed anywhere else, and nothing is created in (or changed in) the
// caller's namespace: every `ip` command runs inside one of ours. Create()
// returns once every host reached every other host with a TCP connection
// (no sleeps: a connect waits for the handshake, against a deadline).
//
// The namespaces have no names in /run/netns: each is held by a descriptor
// of this object (opened from the thread that unshare(2)d it), so two tests
// running at once never collide, and no namespace, bridge or veth outlives
// the test even when it crashes: the destructor closes the descriptors, the
// kernel closes them if the process dies, and a namespace (with its links;
// deleting a veth end deletes its peer) goes away once nothing holds it. A
// process still running inside one keeps it until it exits, so destroy
// servers and processes (they die with the test too: PR_SET_PDEATHSIG)
// before, or with, the Netns. name() (prefix-pid-counter) is unique among
// the processes running at once; it labels messages, and the subnet is
// derived from it, so that tests running at once mostly use different
// addresses too (not required: their networks never meet).
//
// Programs run in a host through fork, setns(CLONE_NEWNET) and exec
// (Spawn/Run); code of this process through a thread that joined the host's
// namespace (RunInThread): a socket made there stays in that namespace
// whichever thread then uses it, so a test can bind a listener "on host 2"
// and hand it to a child. path(i) names a host's namespace for any process
// (redis-server via RedisServerOptions::netns, `ip link ... netns PATH`,
// nsenter --net=PATH) while this object lives.
//
// Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), iproute2's `ip`, and the
// veth and bridge drivers. Available() says whether this process has them;
// tests skip with its message otherwise. Bazel's linux-sandbox (not this
// repository's default: .bazelrc has --spawn_strategy=local) keeps them
// when Bazel runs as root, so tests need no "no-sandbox" tag.
//
// Thread-safety: the accessors and RunInThread/Spawn/Run may be called from
// several threads at once. A Spawn()ed process dies (PR_SET_PDEATHSIG) when
// the thread that spawned it exits: spawn from a thread that outlives it.
//
//   PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> net,
//                                   Netns::Create({.hosts = 3}));
//   RedisServerOptions options;
//   options.netns = net->path(0);
//   options.bind_address = net->address(0);
//   ... RedisServer::Start(options) ...
//   PROXYSTORE_ASSERT_OK_AND_ASSIGN(
//       NetnsResult r, net->Run(1, {"/usr/bin/redis-cli", "-h",
//                                   net->address(0), "-p", port, "PING"}));
#ifndef PROXYSTORE_TESTING_NETNS_H_
#define PROXYSTORE_TESTING_NETNS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace proxystore::testing {

struct NetnsOptions {
  // How many hosts: 1 .. 250.
  int hosts = 2;
  // The first part of name().
  std::string name_prefix = "psnet";
  // The hosts' /24 as its first three octets ("10.77.0": host i is
  // 10.77.0.<i + 2>). Empty: 10.x.y, derived from name().
  std::string subnet;
  // How long Create() may take in all (namespaces, links, and every host
  // reaching every other).
  absl::Duration timeout = absl::Seconds(30);
};

// How a program run in a namespace ended.
struct NetnsResult {
  // The exit code; 128 + N if it was killed by signal N.
  int exit_code = -1;
  // Its stdout and stderr, interleaved (at most the last MiB).
  std::string output;
};

struct NetnsSpawnOptions {
  // Descriptors (> 2) the program inherits under the same numbers; their
  // close-on-exec flag is cleared in the child only.
  std::vector<int> inherit_fds;
  // The program's standard input; empty: /dev/null.
  std::string stdin_data;
};

// A program started by Netns::Spawn. Its output goes to an anonymous file
// (memfd), so it never blocks on a full pipe while nobody reads.
// Thread-safety: not thread-safe.
class NetnsProcess {
  struct PrivateTag {};

 public:
  // For Netns only.
  NetnsProcess(PrivateTag, std::string label, pid_t pid, int pidfd,
               int output_fd)
      : label_(std::move(label)),
        pid_(pid),
        pidfd_(pidfd),
        output_fd_(output_fd) {}
  // Kills (SIGKILL) and reaps the process if it still runs.
  ~NetnsProcess();
  NetnsProcess(const NetnsProcess&) = delete;
  NetnsProcess& operator=(const NetnsProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits until the process exits and returns how it ended. At the
  // deadline it is killed, and the error (DeadlineExceeded) carries its
  // output. Once it ended, later calls return the same result.
  absl::StatusOr<NetnsResult> Wait(absl::Duration timeout);
  // What it printed so far.
  std::string Output() const;

 private:
  friend class Netns;

  const std::string label_;  // For messages: "<argv[0]> on <host>".
  pid_t pid_;
  int pidfd_;
  int output_fd_;
  bool exited_ = false;
  NetnsResult result_;
};

class Netns {
  struct PrivateTag {};

 public:
  // The switch namespace, where host indices are accepted (RunInThread,
  // Spawn, Run, path): to look at the bridge.
  static constexpr int kSwitch = -1;

  // OK if this process can make a Netns. Otherwise FailedPrecondition
  // saying what is missing (not root, no CAP_SYS_ADMIN, a sandbox that
  // forbids namespaces, no `ip`, no veth or bridge driver), for
  // GTEST_SKIP(). Probes once per process.
  static absl::Status Available();

  // Builds the network; see the file comment. Errors: Available()'s;
  // InvalidArgument for bad options; Internal (with `ip`'s output) or
  // DeadlineExceeded (a host that cannot reach another) if the network
  // cannot be built. A failed Create() leaves nothing behind.
  static absl::StatusOr<std::unique_ptr<Netns>> Create(
      const NetnsOptions& options = {});

  // For Create() only.
  Netns(PrivateTag, std::string name, std::string subnet)
      : name_(std::move(name)), subnet_(std::move(subnet)) {}
  // Closes every namespace; see the file comment.
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  // "<prefix>-<pid>-<n>": unique within this process and among processes
  // running at once.
  const std::string& name() const { return name_; }
  int hosts() const { return static_cast<int>(hosts_.size()); }
  // Host `host`'s address ("10.x.y.z"), for 0 <= host < hosts().
  const std::string& address(int host) const { return addresses_[host]; }
  // The hosts' subnet: "10.x.y.0/24".
  std::string subnet() const;
  // A path that opens host `host`'s namespace (or kSwitch's) from any
  // process while this Netns lives: "/proc/<pid>/fd/<fd>". Empty for a bad
  // index.
  std::string path(int host) const;

  // Runs `fn` on a new thread that joined the namespace of `host` (or
  // kSwitch), and waits for it. InvalidArgument for a bad index; the
  // setns(2) error if the thread could not join.
  absl::Status RunInThread(int host, absl::FunctionRef<void()> fn) const;

  // Starts argv (argv[0]: a path, or a name looked up in $PATH and the
  // sbin directories) inside the namespace of `host` (or kSwitch), and
  // returns once it was exec'd there. An error if it cannot be started
  // (FailedPrecondition: no such program; else errno's code, naming the
  // step that failed: fork, setns, execv).
  absl::StatusOr<std::unique_ptr<NetnsProcess>> Spawn(
      int host, std::vector<std::string> argv,
      const NetnsSpawnOptions& options = {}) const;
  // Spawn() + Wait(timeout).
  absl::StatusOr<NetnsResult> Run(int host, std::vector<std::string> argv,
                                  absl::Duration timeout = absl::Seconds(60),
                                  const NetnsSpawnOptions& options = {}) const;

 private:
  // Spawn() in the namespace `ns_fd`; `label` names it in messages.
  static absl::StatusOr<std::unique_ptr<NetnsProcess>> SpawnInNamespace(
      int ns_fd, const std::string& label, std::vector<std::string> argv,
      const NetnsSpawnOptions& options);

  // The namespace descriptor of `host` (or kSwitch); -1 for a bad index.
  int FdOf(int host) const;
  std::string Label(int host) const;
  absl::Status CheckHost(int host) const;
  // Runs `ip -batch -` with `commands` in `host`'s namespace.
  absl::Status Ip(int host, const std::string& commands,
                  absl::Time deadline) const;
  // Every host connects to every other host's listener.
  absl::Status CheckConnectivity(absl::Time deadline) const;

  const std::string name_;
  const std::string subnet_;  // "10.x.y"
  int switch_fd_ = -1;
  std::vector<int> hosts_;  // Namespace descriptors.
  std::vector<std::string> addresses_;
};

}  // namespace proxystore::testing

#endif  // PROXYSTORE_TESTING_NETNS_H_
