// RedisServer: a private redis-server process for tests and benchmarks.
//
// Start() launches /usr/bin/redis-server (fork + exec) on a free loopback TCP
// port, and optionally on a Unix socket too, in a private temporary directory.
// It returns once the server has logged "Ready to accept connections": its
// stdout/stderr go through a pipe that Start() reads with poll(2) against a
// deadline, so there are no sleeps and no connect-retry loops. The port is
// picked by binding port 0 and handing the number to redis-server; if another
// process takes it in between ("Address already in use"), Start() tries a new
// port. By default nothing is persisted (`--save "" --appendonly no`);
// `persistence` turns on the append-only file (appendfsync always) in `dir`
// so that data survives Kill() + Restart(), for fault tests.
//
// The destructor (or Stop()) stops the server by its pid: SIGTERM, then a
// poll(2) wait on a pidfd bounded by `shutdown_timeout`, then SIGKILL; the
// process is always reaped. If the test process dies first, the kernel kills
// the server (PR_SET_PDEATHSIG), so no redis-server outlives its test. Caveat
// of PDEATHSIG: it fires when the *thread* that started the server exits, so
// call Start()/Restart() from a thread that outlives the server (the main
// thread, typically).
//
// Other hosts: `netns` runs the server inside a network namespace (a
// namespace file: testing/netns.h's Netns::path(), /run/netns/NAME,
// /proc/PID/ns/net) and `bind_address` makes it listen on that address
// instead of 127.0.0.1 (the free port is picked there too). Everything this
// class connects to itself (CountKeys) goes through RunInNetwork(), inside
// that namespace; so does a test's own client (or it runs where the address
// is routed, such as another host of the same Netns).
//
// Not gtest-specific: errors are absl::Status values. If redis-server is not
// installed, Start() is FailedPrecondition telling you to run tools/setup.sh.
//
// Thread-safety: a RedisServer is not thread-safe; call its methods from one
// thread at a time. The server itself serves any number of clients and
// threads; the accessors may be read concurrently while no method runs.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<RedisServer> server,
//                               RedisServer::Start({.unix_socket = true}));
//   redisContext* c = redisConnect(server->host().c_str(), server->port());
//   ...
//   PROXYSTORE_RETURN_IF_ERROR(server->Kill());     // crash it
//   PROXYSTORE_RETURN_IF_ERROR(server->Restart());  // same port, same dir
#ifndef PROXYSTORE_TESTING_REDIS_SERVER_H_
#define PROXYSTORE_TESTING_REDIS_SERVER_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace proxystore::testing {

struct RedisServerOptions {
  // The server binary (Debian's redis-server package).
  std::string binary = "/usr/bin/redis-server";
  // Also listen on a Unix socket (in the private temporary directory, whose
  // path is short enough for sun_path).
  bool unix_socket = false;
  // Append-only file on (appendonly yes, appendfsync always) in `dir`;
  // otherwise nothing is written to disk.
  bool persistence = false;
  // Working directory for persistence files. Empty: the private temporary
  // directory (removed by the destructor). A given directory is created if
  // missing and never removed.
  std::string dir;
  // Non-empty: --requirepass, so clients must AUTH.
  std::string password;
  // Non-empty: a network namespace file; the server runs in that namespace
  // (setns(2) between fork and exec; needs CAP_SYS_ADMIN). It is opened by
  // Start() and held until the destructor, so it need not outlive Start().
  std::string netns;
  // The IPv4 address the server listens on, and host() returns. Other than
  // 127.x.y.z, protected mode is off, so that other hosts may connect
  // without a password.
  std::string bind_address = "127.0.0.1";
  // More redis-server arguments, appended verbatim ("--maxmemory", "10mb").
  std::vector<std::string> extra_args;
  // How long Start()/Restart() wait for "Ready to accept connections".
  absl::Duration startup_timeout = absl::Seconds(30);
  // How long Stop() waits after SIGTERM before it sends SIGKILL.
  absl::Duration shutdown_timeout = absl::Seconds(10);
};

class RedisServer {
 public:
  // Starts a server; see the file comment. Errors: FailedPrecondition if the
  // binary is missing, Unavailable/DeadlineExceeded if it does not come up
  // (the message carries the server's output).
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(
      const RedisServerOptions& options = {});

  // Stops the server (Stop()) and removes the private temporary directory.
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Where to connect: options.bind_address ("127.0.0.1" unless set) and
  // the TCP port.
  const std::string& host() const { return host_; }
  int port() const { return port_; }
  // The Unix socket path; empty unless options.unix_socket.
  const std::string& unix_socket() const { return unix_socket_; }
  // The persistence directory (options.dir or the private one).
  const std::string& dir() const { return dir_; }
  // The server's pid, or -1 when it is not running.
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  const RedisServerOptions& options() const { return options_; }

  // Graceful stop: SIGTERM, bounded wait, SIGKILL fallback; reaps. OK if
  // already stopped.
  absl::Status Stop();
  // Abrupt stop (SIGKILL, then reap), to simulate a crash. OK if stopped.
  absl::Status Kill();
  // Stops the server if it runs, then starts it again with the same port,
  // socket, directory and options (persisted data is reloaded).
  absl::Status Restart();
  // SIGSTOP / SIGCONT: a server that accepts connections but never answers,
  // for timeout tests. Stop()/Kill() work on a paused server.
  absl::Status Pause();
  absl::Status Resume();

  // Runs fn where the server's address is reachable: on a new thread that
  // joined options.netns (then waits for it), or right here without one.
  // Sockets fn opens stay in that namespace whichever thread uses them
  // later. An error only if the thread could not join the namespace.
  absl::Status RunInNetwork(absl::FunctionRef<void()> fn) const;

  // How many keys the server holds under `prefix` (SCAN MATCH through a raw
  // hiredis client, independent of any connector); -1 if it cannot be asked.
  int64_t CountKeys(const std::string& prefix) const;

  // The server's output (log) read so far, plus whatever is ready now.
  std::string Output();

  // For waiting on the logs of several servers at once (RedisCluster): the
  // read end of the output pipe, or -1 while the server is not running.
  // poll(2) it for POLLIN, then read with OutputSince() (which drains it).
  int output_fd() const { return output_fd_; }
  // How many bytes of output were read in all, across restarts (Output()
  // keeps only the tail, so this is not its size): a mark for OutputSince().
  uint64_t OutputMark();
  // The output read after `mark` (an earlier OutputMark(), or 0 for all of
  // it that is kept), plus whatever is ready now.
  std::string OutputSince(uint64_t mark);

 private:
  RedisServer(RedisServerOptions options, std::string temp_dir,
              std::string dir);

  enum class LaunchResult { kReady, kPortInUse };
  // Launches redis-server on port_ and waits until it is ready. kPortInUse:
  // it exited because another process holds the port.
  absl::StatusOr<LaunchResult> Launch();
  // Reads what the pipe has without blocking.
  void DrainOutput();
  // Waits for the process to exit until `deadline`; reaps it on exit.
  // Returns whether it exited.
  bool WaitForExit(absl::Time deadline);
  // Closes the pipe and pidfd and forgets the process.
  void Forget();

  const RedisServerOptions options_;
  const std::string host_;      // options_.bind_address
  const std::string temp_dir_;  // Private; removed by the destructor.
  const std::string dir_;
  std::string unix_socket_;
  int port_ = 0;
  // options_.netns, opened (close-on-exec); -1 without one.
  int netns_fd_ = -1;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int output_fd_ = -1;
  std::string output_;
  // Bytes dropped from the front of output_ to keep it bounded.
  uint64_t output_dropped_ = 0;
};

// A TCP port that is free on 127.0.0.1 right now (the kernel's pick for port
// 0), for a server that needs more than one (a cluster node's bus port).
absl::StatusOr<int> PickFreeLoopbackPort();

// The same on IPv4 `address` inside the network namespace file `netns`
// (empty: the caller's namespace).
absl::StatusOr<int> PickFreePort(const std::string& address,
                                 const std::string& netns = "");

// Runs fn on a new thread that joined the network namespace of file
// `netns`, and waits for it; with an empty `netns`, runs fn here. Sockets fn
// opens stay in that namespace. Errors: opening `netns` (NotFound...),
// InvalidArgument if it is no network namespace, setns(2)'s error.
absl::Status RunInNetworkNamespace(const std::string& netns,
                                   absl::FunctionRef<void()> fn);

}  // namespace proxystore::testing

#endif  // PROXYSTORE_TESTING_REDIS_SERVER_H_
