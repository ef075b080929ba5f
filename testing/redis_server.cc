#include "proxystore/testing/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "hiredis/hiredis.h"
#include "proxystore/base/status.h"

namespace proxystore::testing {
namespace {

constexpr absl::string_view kReadyLine = "Ready to accept connections";
constexpr absl::string_view kPortInUse = "Address already in use";
// Start() gives up after this many ports were taken under it.
constexpr int kMaxPortAttempts = 20;
// Output() keeps at most this much of the log (the tail).
constexpr size_t kMaxOutput = size_t{1} << 20;

absl::Status ErrnoError(absl::string_view what) {
  return absl::ErrnoToStatus(errno, absl::StrCat("redis_server: ", what));
}

}  // namespace

namespace {

// Opens a network namespace file (close-on-exec) and checks that it is one.
absl::StatusOr<int> OpenNetns(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(absl::StrCat("open network namespace ", path));
  const int type = ::ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("redis_server: ", path, " is not a network namespace"));
  }
  return fd;
}

// RunInNetworkNamespace on an open namespace; -1: right here.
absl::Status RunInNetnsFd(int netns_fd, absl::FunctionRef<void()> fn) {
  if (netns_fd < 0) {
    fn();
    return absl::OkStatus();
  }
  int err = 0;
  std::thread t([&] {
    if (::setns(netns_fd, CLONE_NEWNET) != 0) {
      err = errno;
      return;
    }
    fn();
  });
  t.join();
  if (err != 0) {
    errno = err;
    return ErrnoError("setns(CLONE_NEWNET)");
  }
  return absl::OkStatus();
}

// The kernel's pick for port 0 on `address`, in the namespace `netns_fd`.
absl::StatusOr<int> PickPortIn(int netns_fd, const std::string& address) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redis_server: bind address \"", address, "\" is not IPv4"));
  }
  absl::StatusOr<int> port;
  PROXYSTORE_RETURN_IF_ERROR(RunInNetnsFd(netns_fd, [&] {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      port = ErrnoError("socket");
      return;
    }
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      port = ErrnoError(absl::StrCat("binding port 0 on ", address));
    } else {
      port = static_cast<int>(ntohs(addr.sin_port));
    }
    ::close(fd);
  }));
  return port;
}

}  // namespace

absl::StatusOr<int> PickFreeLoopbackPort() {
  return PickPortIn(-1, "127.0.0.1");
}

absl::StatusOr<int> PickFreePort(const std::string& address,
                                 const std::string& netns) {
  if (netns.empty()) return PickPortIn(-1, address);
  PROXYSTORE_ASSIGN_OR_RETURN(int fd, OpenNetns(netns));
  absl::StatusOr<int> port = PickPortIn(fd, address);
  ::close(fd);
  return port;
}

absl::Status RunInNetworkNamespace(const std::string& netns,
                                   absl::FunctionRef<void()> fn) {
  if (netns.empty()) return RunInNetnsFd(-1, fn);
  PROXYSTORE_ASSIGN_OR_RETURN(int fd, OpenNetns(netns));
  absl::Status s = RunInNetnsFd(fd, fn);
  ::close(fd);
  return s;
}

namespace {

// Milliseconds until `deadline` for poll(2): >= 0, capped, -1 for infinity.
int PollTimeoutMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  // Round up so that we do not spin on sub-millisecond remainders.
  int64_t ms = absl::ToInt64Milliseconds(left + absl::Milliseconds(1) -
                                         absl::Nanoseconds(1));
  return static_cast<int>(std::min<int64_t>(ms, 1 << 30));
}

std::string ExitDescription(int status) {
  if (WIFEXITED(status))
    return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return absl::StrCat("ended with wait status ", status);
}

}  // namespace

RedisServer::RedisServer(RedisServerOptions options, std::string temp_dir,
                         std::string dir)
    : options_(std::move(options)),
      host_(options_.bind_address),
      temp_dir_(std::move(temp_dir)),
      dir_(std::move(dir)) {}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(
    const RedisServerOptions& options) {
  if (::access(options.binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "redis_server: ", options.binary, " is missing or not executable (",
        std::strerror(errno),
        "); run tools/setup.sh to install the redis-server package"));
  }
  // Under /tmp, not $TEST_TMPDIR: a Unix socket path must fit in sun_path
  // (108 bytes) and Bazel's test directories are longer than that.
  std::string temp_template = "/tmp/psredis-XXXXXX";
  if (::mkdtemp(temp_template.data()) == nullptr) {
    return ErrnoError("mkdtemp /tmp/psredis-XXXXXX");
  }
  std::string dir = options.dir.empty() ? temp_template : options.dir;
  if (!options.dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      std::filesystem::remove_all(temp_template, ec);
      return absl::InternalError(absl::StrCat(
          "redis_server: cannot create directory ", dir, ": ", ec.message()));
    }
  }
  // From here on the destructor cleans up (process and temporary directory).
  std::unique_ptr<RedisServer> server(
      new RedisServer(options, temp_template, std::move(dir)));
  if (options.unix_socket) {
    server->unix_socket_ = absl::StrCat(server->temp_dir_, "/redis.sock");
  }
  if (!options.netns.empty()) {
    PROXYSTORE_ASSIGN_OR_RETURN(server->netns_fd_, OpenNetns(options.netns));
  }
  for (int attempt = 0; attempt < kMaxPortAttempts; ++attempt) {
    PROXYSTORE_ASSIGN_OR_RETURN(server->port_,
                                PickPortIn(server->netns_fd_, server->host_));
    PROXYSTORE_ASSIGN_OR_RETURN(LaunchResult result, server->Launch());
    if (result == LaunchResult::kReady) return server;
  }
  return absl::UnavailableError(
      absl::StrCat("redis_server: every one of ", kMaxPortAttempts,
                   " free ports was taken before redis-server could bind it"));
}

RedisServer::~RedisServer() {
  absl::Status stopped = Stop();
  (void)stopped;  // Stop() always ends the process; nothing to report to.
  if (netns_fd_ >= 0) ::close(netns_fd_);
  std::error_code ec;
  std::filesystem::remove_all(temp_dir_, ec);
}

absl::Status RedisServer::RunInNetwork(absl::FunctionRef<void()> fn) const {
  return RunInNetnsFd(netns_fd_, fn);
}

absl::StatusOr<RedisServer::LaunchResult> RedisServer::Launch() {
  // Everything the child needs is built before fork(): between fork and exec
  // a multithreaded parent's child may only make async-signal-safe calls.
  std::vector<std::string> args = {options_.binary,
                                   "--port",
                                   absl::StrCat(port_),
                                   "--bind",
                                   host_,
                                   "--daemonize",
                                   "no",
                                   "--logfile",
                                   "",
                                   "--dir",
                                   dir_,
                                   "--save",
                                   "",
                                   "--appendonly",
                                   options_.persistence ? "yes" : "no"};
  if (options_.persistence) {
    args.insert(args.end(), {"--appendfsync", "always"});
  }
  if (!absl::StartsWith(host_, "127.")) {
    // Protected mode answers DENIED to any client not on loopback while
    // there is no password; the address is a test network's.
    args.insert(args.end(), {"--protected-mode", "no"});
  }
  if (!unix_socket_.empty()) {
    args.insert(args.end(),
                {"--unixsocket", unix_socket_, "--unixsocketperm", "700"});
  }
  if (!options_.password.empty()) {
    args.insert(args.end(), {"--requirepass", options_.password});
  }
  args.insert(args.end(), options_.extra_args.begin(),
              options_.extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // Non-blocking on both ends: the server never blocks on a full pipe (a
  // log line is lost instead), and we read with poll(2).
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return ErrnoError("pipe2");
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) {
    absl::Status s = ErrnoError("open /dev/null");
    ::close(fds[0]);
    ::close(fds[1]);
    return s;
  }
  const int netns_fd = netns_fd_;
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // The parent already died.
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
          "redis_server: setns(CLONE_NEWNET) failed\n";
      ssize_t ignored =
          ::write(STDERR_FILENO, kSetnsFailed, sizeof(kSetnsFailed) - 1);
      (void)ignored;
      ::_exit(127);
    }
    ::execv(argv[0], argv.data());
    static const char kExecFailed[] = "redis_server: execv failed\n";
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
  pid_ = pid;
  output_fd_ = fds[0];
  // A pidfd becomes readable when the process exits: waits need no sleeps.
  // Kernels before 5.3 have none; WaitForExit() copes. (glibc 2.36's
  // <sys/pidfd.h> lacks extern "C", hence the raw syscall.)
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));

  const absl::Time deadline = absl::Now() + options_.startup_timeout;
  const size_t scan_from = output_.size();
  while (true) {
    pollfd p{output_fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, PollTimeoutMs(deadline));
    if (rc < 0 && errno != EINTR) {
      absl::Status s = ErrnoError("poll");
      Kill().IgnoreError();
      return s;
    }
    bool eof = false;
    if (rc > 0) {
      char buf[4096];
      while (true) {
        ssize_t n = ::read(output_fd_, buf, sizeof(buf));
        if (n > 0) {
          output_.append(buf, static_cast<size_t>(n));
          continue;
        }
        if (n == 0) eof = true;
        if (n < 0 && errno == EINTR) continue;
        break;  // EAGAIN: all read for now.
      }
    }
    absl::string_view fresh = absl::string_view(output_).substr(scan_from);
    if (absl::StrContains(fresh, kReadyLine)) return LaunchResult::kReady;
    if (eof) {
      // The server closed its output: it is exiting. Reap it.
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      std::string log(fresh);
      Forget();
      if (absl::StrContains(log, kPortInUse)) return LaunchResult::kPortInUse;
      return absl::UnavailableError(absl::StrCat(
          "redis_server: ", options_.binary, " on ", host_, ":", port_, " ",
          ExitDescription(status), " before it was ready; its output:\n", log));
    }
    if (absl::Now() >= deadline) {
      std::string log(fresh);
      Kill().IgnoreError();
      return absl::DeadlineExceededError(
          absl::StrCat("redis_server: ", options_.binary, " on ", host_, ":",
                       port_, " was not ready after ",
                       absl::FormatDuration(options_.startup_timeout),
                       "; its output:\n", log));
    }
  }
}

void RedisServer::DrainOutput() {
  if (output_fd_ < 0) return;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(output_fd_, buf, sizeof(buf));
    if (n > 0) {
      output_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  if (output_.size() > kMaxOutput) {
    output_dropped_ += output_.size() - kMaxOutput;
    output_.erase(0, output_.size() - kMaxOutput);
  }
}

bool RedisServer::WaitForExit(absl::Time deadline) {
  if (pid_ <= 0) return true;
  while (true) {
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      int rc = ::poll(&p, 1, PollTimeoutMs(deadline));
      if (rc < 0 && errno == EINTR) continue;
      if (rc == 0) return false;  // Deadline.
      // Readable (or poll failed): waitpid tells for sure.
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, rc > 0 ? 0 : WNOHANG);
      if (r == pid_ || (r < 0 && errno == ECHILD)) return true;
      if (r < 0 && errno == EINTR) continue;
      if (rc < 0) return false;
    } else {
      // No pidfd (old kernel): poll waitpid at 10 ms intervals.
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno == ECHILD)) return true;
      if (absl::Now() >= deadline) return false;
      ::poll(nullptr, 0, std::min(10, std::max(0, PollTimeoutMs(deadline))));
    }
  }
}

void RedisServer::Forget() {
  DrainOutput();
  if (output_fd_ >= 0) ::close(output_fd_);
  if (pidfd_ >= 0) ::close(pidfd_);
  output_fd_ = -1;
  pidfd_ = -1;
  pid_ = -1;
}

absl::Status RedisServer::Stop() {
  if (pid_ <= 0) return absl::OkStatus();
  ::kill(pid_, SIGTERM);
  ::kill(pid_, SIGCONT);  // A paused server handles SIGTERM once continued.
  if (!WaitForExit(absl::Now() + options_.shutdown_timeout)) {
    ::kill(pid_, SIGKILL);
    WaitForExit(absl::InfiniteFuture());
  }
  Forget();
  return absl::OkStatus();
}

absl::Status RedisServer::Kill() {
  if (pid_ <= 0) return absl::OkStatus();
  if (::kill(pid_, SIGKILL) != 0 && errno != ESRCH) {
    return ErrnoError(absl::StrCat("kill(", pid_, ", SIGKILL)"));
  }
  WaitForExit(absl::InfiniteFuture());
  Forget();
  return absl::OkStatus();
}

absl::Status RedisServer::Restart() {
  PROXYSTORE_RETURN_IF_ERROR(Stop());
  PROXYSTORE_ASSIGN_OR_RETURN(LaunchResult result, Launch());
  if (result == LaunchResult::kPortInUse) {
    return absl::UnavailableError(
        absl::StrCat("redis_server: cannot restart on port ", port_,
                     ": another process took it while the server was down"));
  }
  return absl::OkStatus();
}

absl::Status RedisServer::Pause() {
  if (pid_ <= 0) {
    return absl::FailedPreconditionError("redis_server: Pause: not running");
  }
  if (::kill(pid_, SIGSTOP) != 0) return ErrnoError("kill(SIGSTOP)");
  return absl::OkStatus();
}

absl::Status RedisServer::Resume() {
  if (pid_ <= 0) {
    return absl::FailedPreconditionError("redis_server: Resume: not running");
  }
  if (::kill(pid_, SIGCONT) != 0) return ErrnoError("kill(SIGCONT)");
  return absl::OkStatus();
}

std::string RedisServer::Output() {
  DrainOutput();
  return output_;
}

uint64_t RedisServer::OutputMark() {
  DrainOutput();
  return output_dropped_ + output_.size();
}

std::string RedisServer::OutputSince(uint64_t mark) {
  DrainOutput();
  if (mark <= output_dropped_) return output_;
  const uint64_t skip = mark - output_dropped_;
  if (skip >= output_.size()) return "";
  return output_.substr(static_cast<size_t>(skip));
}

int64_t RedisServer::CountKeys(const std::string& prefix) const {
  int64_t n = -1;
  absl::Status ran = RunInNetwork([&] {
    redisContext* c = redisConnect(host_.c_str(), port_);
    if (c == nullptr || c->err != 0) {
      if (c != nullptr) redisFree(c);
      return;
    }
    int64_t count = 0;
    std::string cursor = "0";
    const std::string pattern = absl::StrCat(prefix, "*");
    do {
      const char* argv[] = {"SCAN",          cursor.c_str(), "MATCH",
                            pattern.c_str(), "COUNT",        "1000"};
      auto* r = static_cast<redisReply*>(redisCommandArgv(c, 6, argv, nullptr));
      if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        if (r != nullptr) freeReplyObject(r);
        redisFree(c);
        return;
      }
      cursor.assign(r->element[0]->str, r->element[0]->len);
      count += static_cast<int64_t>(r->element[1]->elements);
      freeReplyObject(r);
    } while (cursor != "0");
    redisFree(c);
    n = count;
  });
  return ran.ok() ? n : -1;
}

}  // namespace proxystore::testing
