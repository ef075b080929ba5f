#include "proxystore/testing/netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/base/status.h"

namespace proxystore::testing {
namespace {

// Closes a descriptor when it goes out of scope. (Not absl::Cleanup: GCC 12
// under -fsanitize=thread warns that its captured descriptor may be used
// uninitialized.)
class CloseOnExit {
 public:
  explicit CloseOnExit(int fd) : fd_(fd) {}
  ~CloseOnExit() {
    if (fd_ >= 0) ::close(fd_);
  }
  CloseOnExit(const CloseOnExit&) = delete;
  CloseOnExit& operator=(const CloseOnExit&) = delete;
  // Keeps the descriptor open.
  void Cancel() { fd_ = -1; }

 private:
  int fd_;
};

// NetnsProcess::Output() keeps at most this much (the tail).
constexpr off_t kMaxOutput = off_t{1} << 20;
// What a caller can do about a failed probe.
constexpr absl::string_view kHowToFix =
    "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN), and no "
    "sandbox that takes them away (Bazel's linux-sandbox keeps them for "
    "root, not for other users)";

absl::Status ErrnoError(int err, absl::string_view what) {
  return absl::ErrnoToStatus(err, absl::StrCat("netns: ", what));
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

// A new network namespace, held by the returned descriptor. unshare(2) on a
// thread of its own: only that thread enters the namespace, and it ends
// right after, so nothing else of this process ever runs in it.
absl::StatusOr<int> NewNetworkNamespace() {
  int fd = -1;
  int err = 0;
  const char* step = "";
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      err = errno;
      step = "unshare(CLONE_NEWNET)";
      return;
    }
    fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      err = errno;
      step = "open /proc/thread-self/ns/net";
    }
  });
  t.join();
  if (fd < 0) return ErrnoError(err, step);
  return fd;
}

// Runs fn on a new thread that joined the namespace `ns_fd`.
absl::Status RunInNamespace(int ns_fd, absl::FunctionRef<void()> fn) {
  int err = 0;
  std::thread t([&] {
    if (::setns(ns_fd, CLONE_NEWNET) != 0) {
      err = errno;
      return;
    }
    fn();
  });
  t.join();
  if (err != 0) return ErrnoError(err, "setns(CLONE_NEWNET)");
  return absl::OkStatus();
}

// The absolute path of a program: argv[0] itself if it has a '/', else the
// first executable of that name in $PATH or the sbin directories (where
// `ip` lives, and which a non-login PATH may lack). Empty if none.
std::string FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* env = std::getenv("PATH");
  std::vector<std::string> dirs =
      absl::StrSplit(env != nullptr ? env : "", ':', absl::SkipEmpty());
  for (const char* d :
       {"/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
    dirs.emplace_back(d);
  }
  for (const std::string& dir : dirs) {
    std::string path = absl::StrCat(dir, "/", name);
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

std::string ExitDescription(int code) {
  if (code >= 128) return absl::StrCat("was killed by signal ", code - 128);
  return absl::StrCat("exited with code ", code);
}

// FNV-1a: a stable hash of a name, for the derived subnet.
uint32_t Fnv1a(absl::string_view s) {
  uint32_t h = 2166136261u;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

// A nonblocking connect to address:port, waited for until `deadline`.
// Returns the connected socket.
absl::StatusOr<int> ConnectBefore(const std::string& address, int port,
                                  absl::Time deadline) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("netns: not an IPv4 address: ", address));
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ErrnoError(errno, "socket");
  CloseOnExit close_fd(fd);
  const std::string where = absl::StrCat("connect to ", address, ":", port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) return ErrnoError(errno, where);
    while (true) {
      pollfd p{fd, POLLOUT, 0};
      int rc = ::poll(&p, 1, MsUntil(deadline));
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0) return ErrnoError(errno, "poll");
      if (rc == 0) {
        return absl::DeadlineExceededError(
            absl::StrCat("netns: ", where, " did not complete in time"));
      }
      break;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      return ErrnoError(errno, "getsockopt(SO_ERROR)");
    }
    if (err != 0) return ErrnoError(err, where);
  }
  close_fd.Cancel();
  return fd;
}

}  // namespace

// --- NetnsProcess ----------------------------------------------------------

NetnsProcess::~NetnsProcess() {
  if (!exited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  if (output_fd_ >= 0) ::close(output_fd_);
}

std::string NetnsProcess::Output() const {
  struct stat st {};
  if (::fstat(output_fd_, &st) != 0) return "";
  const off_t from = std::max<off_t>(0, st.st_size - kMaxOutput);
  std::string out(static_cast<size_t>(st.st_size - from), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(output_fd_, out.data() + got, out.size() - got,
                        from + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

absl::StatusOr<NetnsResult> NetnsProcess::Wait(absl::Duration timeout) {
  if (exited_) return result_;
  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  while (true) {
    pollfd p{pidfd_, POLLIN, 0};
    int rc = ::poll(&p, 1, MsUntil(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return ErrnoError(errno, "poll");
    if (rc == 0) {
      timed_out = true;
      ::kill(pid_, SIGKILL);
    }
    break;
  }
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError(errno, "waitpid");
  }
  exited_ = true;
  ::close(pidfd_);
  pidfd_ = -1;
  if (WIFEXITED(status)) {
    result_.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result_.exit_code = 128 + WTERMSIG(status);
  }
  result_.output = Output();
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat("netns: ", label_, " did not finish within ",
                     absl::FormatDuration(timeout),
                     " and was killed; its output:\n", result_.output));
  }
  return result_;
}

// --- Netns -----------------------------------------------------------------

absl::Status Netns::Available() {
  static NoDestructor<absl::Status> status([]() -> absl::Status {
    if (FindProgram("ip").empty()) {
      return absl::FailedPreconditionError(
          "netns: the ip command (iproute2) is missing; run tools/setup.sh");
    }
    const int pidfd =
        static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
    if (pidfd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("netns: pidfd_open failed (", std::strerror(errno),
                       "); Linux 5.3 or later is needed"));
    }
    ::close(pidfd);
    absl::StatusOr<int> ns = NewNetworkNamespace();
    if (!ns.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(ns.status().message(), ": ", kHowToFix));
    }
    absl::Cleanup close_ns = [fd = *ns] { ::close(fd); };
    // The links Create() makes, in a namespace thrown away afterwards.
    NetnsSpawnOptions options;
    options.stdin_data =
        "link add t0 type veth peer name t1\nlink add b0 type bridge\n"
        "link set t0 master b0\n";
    absl::StatusOr<std::unique_ptr<NetnsProcess>> ip =
        SpawnInNamespace(*ns, "the probe", {"ip", "-batch", "-"}, options);
    if (!ip.ok()) {
      return absl::FailedPreconditionError(ip.status().message());
    }
    absl::StatusOr<NetnsResult> r = (*ip)->Wait(absl::Seconds(30));
    if (!r.ok()) return absl::FailedPreconditionError(r.status().message());
    if (r->exit_code != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "netns: cannot make a veth pair and a bridge in a new network "
          "namespace (ip ",
          ExitDescription(r->exit_code), "): ", r->output, "; ", kHowToFix));
    }
    return absl::OkStatus();
  }());
  return *status;
}

absl::StatusOr<std::unique_ptr<Netns>> Netns::Create(
    const NetnsOptions& options) {
  PROXYSTORE_RETURN_IF_ERROR(Available());
  if (options.hosts < 1 || options.hosts > 250) {
    return absl::InvalidArgumentError(absl::StrCat(
        "netns: hosts is ", options.hosts, "; 1 to 250 fit in a /24"));
  }
  static std::atomic<int> counter{0};
  std::string name =
      absl::StrCat(options.name_prefix, "-", ::getpid(), "-", counter++);
  std::string subnet = options.subnet;
  if (subnet.empty()) {
    // 10.64.0 .. 10.191.255: away from 10.0.x, which people use by hand.
    const uint32_t x = Fnv1a(name) % (128 * 256);
    subnet = absl::StrCat("10.", 64 + x / 256, ".", x % 256);
  } else {
    in_addr probe{};
    std::vector<absl::string_view> octets = absl::StrSplit(subnet, '.');
    if (octets.size() != 3 ||
        ::inet_pton(AF_INET, absl::StrCat(subnet, ".0").c_str(), &probe) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "netns: subnet must be three octets such as \"10.77.0\", got \"",
          subnet, "\""));
    }
  }
  const absl::Time deadline = absl::Now() + options.timeout;
  // From here on the destructor closes whatever was made.
  auto net =
      std::make_unique<Netns>(PrivateTag{}, std::move(name), std::move(subnet));
  PROXYSTORE_ASSIGN_OR_RETURN(net->switch_fd_, NewNetworkNamespace());
  for (int i = 0; i < options.hosts; ++i) {
    PROXYSTORE_ASSIGN_OR_RETURN(int fd, NewNetworkNamespace());
    net->hosts_.push_back(fd);
    net->addresses_.push_back(absl::StrCat(net->subnet_, ".", i + 2));
  }
  // The switch: a bridge, and one veth pair per host whose other end is
  // created right inside the host, so it never exists anywhere else.
  std::string commands = "link set lo up\nlink add br0 type bridge\n";
  for (int i = 0; i < options.hosts; ++i) {
    absl::StrAppend(&commands, "link add p", i, " type veth peer name eth0",
                    " netns ", net->path(i), "\nlink set p", i,
                    " master br0\nlink set p", i, " up\n");
  }
  commands += "link set br0 up\n";
  PROXYSTORE_RETURN_IF_ERROR(net->Ip(kSwitch, commands, deadline));
  for (int i = 0; i < options.hosts; ++i) {
    PROXYSTORE_RETURN_IF_ERROR(
        net->Ip(i,
                absl::StrCat("link set lo up\naddr add ", net->address(i),
                             "/24 dev eth0\nlink set eth0 up\n"),
                deadline));
  }
  PROXYSTORE_RETURN_IF_ERROR(net->CheckConnectivity(deadline));
  return net;
}

Netns::~Netns() {
  for (int fd : hosts_) ::close(fd);
  if (switch_fd_ >= 0) ::close(switch_fd_);
}

std::string Netns::subnet() const { return absl::StrCat(subnet_, ".0/24"); }

int Netns::FdOf(int host) const {
  if (host == kSwitch) return switch_fd_;
  if (host < 0 || host >= hosts()) return -1;
  return hosts_[static_cast<size_t>(host)];
}

std::string Netns::Label(int host) const {
  return host == kSwitch ? absl::StrCat(name_, " switch")
                         : absl::StrCat(name_, " host ", host);
}

absl::Status Netns::CheckHost(int host) const {
  if (FdOf(host) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "netns: ", name_, " has no host ", host, " (it has ", hosts(), ")"));
  }
  return absl::OkStatus();
}

std::string Netns::path(int host) const {
  const int fd = FdOf(host);
  if (fd < 0) return "";
  return absl::StrCat("/proc/", ::getpid(), "/fd/", fd);
}

absl::Status Netns::RunInThread(int host, absl::FunctionRef<void()> fn) const {
  PROXYSTORE_RETURN_IF_ERROR(CheckHost(host));
  return RunInNamespace(FdOf(host), fn);
}

absl::StatusOr<std::unique_ptr<NetnsProcess>> Netns::Spawn(
    int host, std::vector<std::string> argv,
    const NetnsSpawnOptions& options) const {
  PROXYSTORE_RETURN_IF_ERROR(CheckHost(host));
  return SpawnInNamespace(FdOf(host), Label(host), std::move(argv), options);
}

absl::StatusOr<NetnsResult> Netns::Run(int host, std::vector<std::string> argv,
                                       absl::Duration timeout,
                                       const NetnsSpawnOptions& options) const {
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<NetnsProcess> p,
                              Spawn(host, std::move(argv), options));
  return p->Wait(timeout);
}

absl::StatusOr<std::unique_ptr<NetnsProcess>> Netns::SpawnInNamespace(
    int ns_fd, const std::string& label, std::vector<std::string> argv,
    const NetnsSpawnOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("netns: empty argv");
  const std::string program = FindProgram(argv[0]);
  if (program.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("netns: no program ", argv[0], " in $PATH"));
  }
  const std::string what = absl::StrCat(argv[0], " on ", label);
  argv[0] = program;
  for (int fd : options.inherit_fds) {
    if (fd <= STDERR_FILENO || ::fcntl(fd, F_GETFD) < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("netns: cannot pass descriptor ", fd, " to ", what,
                       " (it must be open and above 2)"));
    }
  }
  // Everything the child needs is made before fork(): between fork and exec
  // the child of a multithreaded parent may only make async-signal-safe
  // calls.
  const int out = ::memfd_create("netns-output", MFD_CLOEXEC);
  if (out < 0) return ErrnoError(errno, "memfd_create");
  CloseOnExit close_out(out);
  int in = -1;
  if (options.stdin_data.empty()) {
    in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0) return ErrnoError(errno, "open /dev/null");
  } else {
    in = ::memfd_create("netns-input", MFD_CLOEXEC);
    if (in < 0) return ErrnoError(errno, "memfd_create");
    size_t done = 0;
    while (done < options.stdin_data.size()) {
      ssize_t n = ::write(in, options.stdin_data.data() + done,
                          options.stdin_data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        absl::Status s = ErrnoError(errno, "write to the input memfd");
        ::close(in);
        return s;
      }
      done += static_cast<size_t>(n);
    }
    ::lseek(in, 0, SEEK_SET);
  }
  CloseOnExit close_in(in);
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const std::vector<int> inherit = options.inherit_fds;

  // The child reports a failed setns or exec on this pipe; a successful
  // exec closes it (close-on-exec), so the parent reads EOF.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe2");
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // The parent already died.
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int failure[2] = {0, 0};  // {step, errno}: 1 dup2, 2 setns, 3 execv.
    if (::dup2(in, STDIN_FILENO) < 0 || ::dup2(out, STDOUT_FILENO) < 0 ||
        ::dup2(out, STDERR_FILENO) < 0) {
      failure[0] = 1;
    } else if (::setns(ns_fd, CLONE_NEWNET) != 0) {
      failure[0] = 2;
    } else {
      for (int fd : inherit) ::fcntl(fd, F_SETFD, 0);
      ::execv(args[0], args.data());
      failure[0] = 3;
    }
    failure[1] = errno;
    ssize_t ignored = ::write(report[1], failure, sizeof(failure));
    (void)ignored;
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(report[1]);
  if (pid < 0) {
    ::close(report[0]);
    return ErrnoError(fork_errno, absl::StrCat("fork for ", what));
  }
  int failure[2] = {0, 0};
  ssize_t n;
  while ((n = ::read(report[0], failure, sizeof(failure))) < 0 &&
         errno == EINTR) {
  }
  ::close(report[0]);
  if (n != 0) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    static constexpr const char* kSteps[] = {"?", "dup2", "setns(CLONE_NEWNET)",
                                             "execv"};
    const int step = n == sizeof(failure) && failure[0] >= 1 && failure[0] <= 3
                         ? failure[0]
                         : 0;
    return ErrnoError(failure[1], absl::StrCat(kSteps[step], " for ", what,
                                               " (", argv[0], ")"));
  }
  // A pidfd becomes readable when the process exits: Wait() needs no
  // sleeps. (glibc 2.36's <sys/pidfd.h> lacks extern "C", hence the raw
  // syscall.)
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    absl::Status s = ErrnoError(errno, "pidfd_open");
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return s;
  }
  close_out.Cancel();
  return std::make_unique<NetnsProcess>(NetnsProcess::PrivateTag{}, what, pid,
                                        pidfd, out);
}

absl::Status Netns::Ip(int host, const std::string& commands,
                       absl::Time deadline) const {
  NetnsSpawnOptions options;
  options.stdin_data = commands;
  PROXYSTORE_ASSIGN_OR_RETURN(
      NetnsResult r,
      Run(host, {"ip", "-batch", "-"}, deadline - absl::Now(), options));
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat(
        "netns: ip on ", Label(host), " ", ExitDescription(r.exit_code),
        "; its output:\n", r.output, "\nThe commands:\n", commands));
  }
  return absl::OkStatus();
}

absl::Status Netns::CheckConnectivity(absl::Time deadline) const {
  const int n = hosts();
  std::vector<int> listeners(static_cast<size_t>(n), -1);
  std::vector<int> ports(static_cast<size_t>(n), 0);
  absl::Cleanup close_listeners = [&listeners] {
    for (int fd : listeners) {
      if (fd >= 0) ::close(fd);
    }
  };
  for (int i = 0; i < n; ++i) {
    absl::Status listened;
    PROXYSTORE_RETURN_IF_ERROR(RunInThread(i, [&] {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        listened = ErrnoError(errno, "socket");
        return;
      }
      listeners[static_cast<size_t>(i)] = fd;
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      ::inet_pton(AF_INET, address(i).c_str(), &addr.sin_addr);
      socklen_t len = sizeof(addr);
      // Every other host's connection waits in the backlog, never accepted.
      if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
          ::listen(fd, n + 8) != 0 ||
          ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        listened = ErrnoError(errno, absl::StrCat("listen on ", address(i)));
        return;
      }
      ports[static_cast<size_t>(i)] = ntohs(addr.sin_port);
    }));
    PROXYSTORE_RETURN_IF_ERROR(listened);
  }
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      if (i == j) continue;
      absl::Status reached;
      PROXYSTORE_RETURN_IF_ERROR(RunInThread(i, [&] {
        absl::StatusOr<int> fd =
            ConnectBefore(address(j), ports[static_cast<size_t>(j)], deadline);
        if (fd.ok()) {
          ::close(*fd);
        } else {
          reached = fd.status();
        }
      }));
      if (!reached.ok()) {
        return Annotate(
            reached, absl::StrCat("netns: ", Label(i), " cannot reach host ", j,
                                  " (", address(j), ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace proxystore::testing
