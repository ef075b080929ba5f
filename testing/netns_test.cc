// Netns: hosts with addresses and loopback that reach each other through the
// switch and nothing else; programs and threads inside a host; nothing in
// the caller's namespace; and no namespace left once the Netns, or the
// process that made it, is gone. Skips where namespaces cannot be made.
//
// The test binary is also its own helper program (see main): run inside a
// namespace, it sends to a peer, writes to an inherited descriptor, blocks,
// or makes a Netns and dies abruptly.
#include "proxystore/testing/netns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

#define SKIP_WITHOUT_NAMESPACES()                             \
  do {                                                        \
    absl::Status available = Netns::Available();              \
    if (!available.ok()) GTEST_SKIP() << available.message(); \
  } while (false)

std::string SelfPath() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// The interface names of the calling thread's network namespace.
std::set<std::string> Interfaces() {
  std::set<std::string> names;
  struct if_nameindex* all = ::if_nameindex();
  if (all == nullptr) return names;
  for (struct if_nameindex* i = all; i->if_index != 0; ++i)
    names.insert(i->if_name);
  ::if_freenameindex(all);
  return names;
}

// A listening socket on address:0; its port in *port. -1 on failure.
int Listen(const std::string& address, int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  socklen_t len = sizeof(addr);
  if (fd < 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 8) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// errno of a blocking connect to address:port (0: connected).
int ConnectErrno(const std::string& address, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  int err = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    err = errno;
  }
  ::close(fd);
  return err;
}

// Everything `fd` sends until it closes.
std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// The inode of the namespace a path opens ("net:[inode]").
ino_t InodeOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Every place a process can hold a network namespace by: its tasks'
// namespaces and its open descriptors. Returns those that name one of
// `inodes`, as "/proc/<pid>/..." paths.
std::vector<std::string> Holders(const std::set<ino_t>& inodes) {
  std::vector<std::string> found;
  auto check = [&](const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return;
    char link[256];
    ssize_t n = ::readlink(path.c_str(), link, sizeof(link) - 1);
    if (n <= 0) return;
    if (!absl::StartsWith(absl::string_view(link, static_cast<size_t>(n)),
                          "net:[")) {
      return;
    }
    if (inodes.count(st.st_ino) > 0) found.push_back(path);
  };
  auto list = [](const std::string& dir) {
    std::vector<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return names;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    ::closedir(d);
    return names;
  };
  for (const std::string& pid : list("/proc")) {
    int ignored = 0;
    if (!absl::SimpleAtoi(pid, &ignored)) continue;
    const std::string base = absl::StrCat("/proc/", pid);
    for (const std::string& tid : list(base + "/task")) {
      check(absl::StrCat(base, "/task/", tid, "/ns/net"));
    }
    for (const std::string& fd : list(base + "/fd")) {
      check(absl::StrCat(base, "/fd/", fd));
    }
  }
  return found;
}

TEST(Netns, AvailableIsOkOrSaysWhy) {
  absl::Status s = Netns::Available();
  if (!s.ok()) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("netns: ")) << s;
    GTEST_SKIP() << s.message();
  }
  // Asking again gives the same answer without probing again.
  EXPECT_THAT(Netns::Available(), IsOk());
}

TEST(Netns, RejectsBadOptions) {
  SKIP_WITHOUT_NAMESPACES();
  EXPECT_THAT(Netns::Create({.hosts = 0}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hosts")));
  EXPECT_THAT(Netns::Create({.hosts = 251}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  for (const char* subnet : {"10.77", "10.77.0.0", "10.300.0", "x.y.z"}) {
    EXPECT_THAT(Netns::Create({.hosts = 1, .subnet = subnet}).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(subnet)))
        << subnet;
  }
}

TEST(Netns, HostsHaveTheirAddressLoopbackAndOnlyTheSubnetRoute) {
  SKIP_WITHOUT_NAMESPACES();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Netns> net,
      Netns::Create({.hosts = 3, .subnet = "10.77.0"}));
  ASSERT_EQ(net->hosts(), 3);
  EXPECT_EQ(net->subnet(), "10.77.0.0/24");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(net->address(i), absl::StrCat("10.77.0.", i + 2));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        NetnsResult addr,
        net->Run(i, {"ip", "-o", "-4", "addr", "show", "dev", "eth0"}));
    EXPECT_EQ(addr.exit_code, 0) << addr.output;
    EXPECT_THAT(addr.output, HasSubstr(absl::StrCat(net->address(i), "/24")));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(NetnsResult route,
                                    net->Run(i, {"ip", "-o", "-4", "route"}));
    EXPECT_EQ(route.exit_code, 0) << route.output;
    EXPECT_THAT(route.output, HasSubstr("10.77.0.0/24 dev eth0"));
    EXPECT_THAT(route.output, Not(HasSubstr("default"))) << "no way out";
    // Loopback is up: a server on 127.0.0.1 of the host is reachable there.
    int err = -1;
    ASSERT_THAT(net->RunInThread(i,
                                 [&] {
                                   int port = 0;
                                   int fd = Listen("127.0.0.1", &port);
                                   if (fd < 0) return;
                                   err = ConnectErrno("127.0.0.1", port);
                                   ::close(fd);
                                 }),
                IsOk());
    EXPECT_EQ(err, 0) << std::strerror(err);
  }
}

TEST(Netns, HostsTalkThroughTheSwitchAndNotThroughLoopback) {
  SKIP_WITHOUT_NAMESPACES();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> net,
                                  Netns::Create({.hosts = 3}));
  // A listener on host 2's address, and one on host 2's loopback.
  int listener = -1, port = 0, loop_listener = -1, loop_port = 0;
  ASSERT_THAT(net->RunInThread(2,
                               [&] {
                                 listener = Listen(net->address(2), &port);
                                 loop_listener =
                                     Listen("127.0.0.1", &loop_port);
                               }),
              IsOk());
  ASSERT_GE(listener, 0);
  ASSERT_GE(loop_listener, 0);
  // Host 0's loopback is its own: host 2's loopback port is not there.
  int loop_err = 0;
  ASSERT_THAT(net->RunInThread(
                  0, [&] { loop_err = ConnectErrno("127.0.0.1", loop_port); }),
              IsOk());
  EXPECT_EQ(loop_err, ECONNREFUSED) << std::strerror(loop_err);
  ::close(loop_listener);

  // A program on host 0 sends to host 2; this thread accepts and reads
  // (the listener works from any thread: it lives in host 2's namespace).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<NetnsProcess> sender,
      net->Spawn(0, {SelfPath(), "--netns-send", net->address(2),
                     absl::StrCat(port), "across the bridge"}));
  int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0) << std::strerror(errno);
  EXPECT_EQ(ReadAll(conn), "across the bridge");
  // The peer is host 0: the bytes crossed the switch.
  sockaddr_in peer{};
  socklen_t len = sizeof(peer);
  ASSERT_EQ(::getpeername(conn, reinterpret_cast<sockaddr*>(&peer), &len), 0);
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof(text));
  EXPECT_EQ(std::string(text), net->address(0));
  ::close(conn);
  ::close(listener);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NetnsResult r,
                                  sender->Wait(absl::Seconds(60)));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Netns, LinksLiveInTheSwitchAndHostsNotInTheCallersNamespace) {
  SKIP_WITHOUT_NAMESPACES();
  const std::set<std::string> before = Interfaces();
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> net,
                                    Netns::Create({.hosts = 2}));
    EXPECT_EQ(Interfaces(), before) << "nothing is made in this namespace";
    std::set<std::string> in_switch, in_host;
    ASSERT_THAT(
        net->RunInThread(Netns::kSwitch, [&] { in_switch = Interfaces(); }),
        IsOk());
    ASSERT_THAT(net->RunInThread(1, [&] { in_host = Interfaces(); }), IsOk());
    EXPECT_EQ(in_switch, (std::set<std::string>{"lo", "br0", "p0", "p1"}));
    EXPECT_EQ(in_host, (std::set<std::string>{"lo", "eth0"}));
    // Bridge ports: ip sees p0 and p1 enslaved to br0.
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        NetnsResult ports, net->Run(Netns::kSwitch, {"ip", "-o", "link", "show",
                                                     "master", "br0"}));
    EXPECT_THAT(ports.output, HasSubstr("p0@"));
    EXPECT_THAT(ports.output, HasSubstr("p1@"));
  }
  EXPECT_EQ(Interfaces(), before);
}

TEST(Netns, TwoAtOnceHaveTheirOwnNamesAndNetworks) {
  SKIP_WITHOUT_NAMESPACES();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> a,
                                  Netns::Create({.hosts = 2}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> b,
                                  Netns::Create({.hosts = 2}));
  EXPECT_NE(a->name(), b->name());
  EXPECT_THAT(a->name(), HasSubstr(absl::StrCat("psnet-", ::getpid(), "-")));
  EXPECT_NE(a->path(0), b->path(0));
  EXPECT_NE(InodeOf(a->path(0)), InodeOf(b->path(0)));
  EXPECT_NE(InodeOf(a->path(0)), InodeOf(a->path(1)));
  // Both networks work side by side (each has its own br0, p0, eth0).
  for (Netns* net : {a.get(), b.get()}) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        NetnsResult r, net->Run(1, {"ip", "-o", "-4", "addr", "show"}));
    EXPECT_THAT(r.output, HasSubstr(net->address(1)));
  }
}

TEST(Netns, ProgramsGetInputDescriptorsAndExitCodes) {
  SKIP_WITHOUT_NAMESPACES();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> net,
                                  Netns::Create({.hosts = 1}));
  NetnsSpawnOptions input;
  input.stdin_data = "typed in\n";
  EXPECT_THAT(
      net->Run(0, {"cat"}, absl::Seconds(60), input),
      IsOkAndHolds(::testing::Field(&NetnsResult::output, "typed in\n")));
  EXPECT_THAT(net->Run(0, {"sh", "-c", "exit 3"}),
              IsOkAndHolds(::testing::Field(&NetnsResult::exit_code, 3)));
  EXPECT_THAT(net->Run(0, {"/nonexistent/program"}).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("execv")));
  EXPECT_THAT(net->Run(0, {"no-such-program-anywhere"}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(
      net->Run(7, {"cat"}).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("host 7")));
  EXPECT_EQ(net->path(7), "");

  // An inherited descriptor keeps its number in the program.
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  NetnsSpawnOptions pass;
  pass.inherit_fds = {fds[1]};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      NetnsResult wrote,
      net->Run(0, {SelfPath(), "--netns-write", absl::StrCat(fds[1]), "piped"},
               absl::Seconds(60), pass));
  ::close(fds[1]);
  EXPECT_EQ(wrote.exit_code, 0) << wrote.output;
  EXPECT_EQ(ReadAll(fds[0]), "piped");
  ::close(fds[0]);
  NetnsSpawnOptions bad;
  bad.inherit_fds = {1};
  EXPECT_THAT(net->Spawn(0, {"cat"}, bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Netns, WaitKillsAProgramAtItsDeadline) {
  SKIP_WITHOUT_NAMESPACES();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> net,
                                  Netns::Create({.hosts = 1}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<NetnsProcess> p,
                                  net->Spawn(0, {SelfPath(), "--netns-block"}));
  EXPECT_THAT(
      p->Wait(absl::Milliseconds(50)).status(),
      StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("was killed")));
  // It ended: later waits say how.
  EXPECT_THAT(
      p->Wait(absl::Seconds(1)),
      IsOkAndHolds(::testing::Field(&NetnsResult::exit_code, 128 + SIGKILL)));
}

TEST(Netns, DestructorLeavesNothingHeld) {
  SKIP_WITHOUT_NAMESPACES();
  std::set<ino_t> inodes;
  std::unique_ptr<NetnsProcess> blocked;
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> net,
                                    Netns::Create({.hosts = 3}));
    inodes.insert(InodeOf(net->path(Netns::kSwitch)));
    for (int i = 0; i < net->hosts(); ++i) inodes.insert(InodeOf(net->path(i)));
    ASSERT_EQ(inodes.size(), 4u);
    ASSERT_EQ(inodes.count(0), 0u);
    EXPECT_THAT(Holders(inodes), Not(::testing::IsEmpty()));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        blocked, net->Spawn(1, {SelfPath(), "--netns-block"}));
  }
  // A process still inside holds its host, and nothing else...
  std::vector<std::string> held = Holders(inodes);
  ASSERT_EQ(held.size(), 1u) << ::testing::PrintToString(held);
  EXPECT_THAT(held[0], HasSubstr(absl::StrCat("/proc/", blocked->pid(), "/")));
  // ... until it ends.
  blocked.reset();
  EXPECT_THAT(Holders(inodes), ::testing::IsEmpty());
}

TEST(Netns, NothingOutlivesAProcessKilledWithItsNetwork) {
  SKIP_WITHOUT_NAMESPACES();
  // The child makes a Netns with a program inside, prints what to look
  // for, and SIGKILLs itself: no destructor runs.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> runner,
                                  Netns::Create({.hosts = 1}));
  // (Run from a host of another Netns: any namespace works for the child.)
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      NetnsResult r, runner->Run(0, {SelfPath(), "--netns-crash"}));
  EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.output;
  std::set<ino_t> inodes;
  pid_t inside = -1;
  for (absl::string_view line : absl::StrSplit(r.output, '\n')) {
    std::vector<std::string> words = absl::StrSplit(line, ' ');
    if (words.size() == 2 && words[0] == "inode") {
      ino_t ino = 0;
      ASSERT_TRUE(absl::SimpleAtoi(words[1], &ino)) << line;
      inodes.insert(ino);
    } else if (words.size() == 2 && words[0] == "inside") {
      ASSERT_TRUE(absl::SimpleAtoi(words[1], &inside)) << line;
    }
  }
  ASSERT_EQ(inodes.size(), 3u) << r.output;
  ASSERT_GT(inside, 0) << r.output;
  // The program inside dies with the child (PR_SET_PDEATHSIG); wait for
  // its exit on a pidfd (ESRCH: it is already gone).
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, inside, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 60'000), 1) << "the program inside still runs";
    ::close(pidfd);
  } else {
    ASSERT_EQ(errno, ESRCH) << std::strerror(errno);
  }
  EXPECT_THAT(Holders(inodes), ::testing::IsEmpty());
}

// --- The helper program (see main) ---------------------------------------

int SendMain(const std::string& address, const std::string& port_text,
             const std::string& text) {
  int port = 0;
  if (!absl::SimpleAtoi(port_text, &port)) return 2;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::write(fd, text.data(), text.size()) !=
          static_cast<ssize_t>(text.size())) {
    std::printf("send: %s\n", std::strerror(errno));
    return 1;
  }
  ::close(fd);
  return 0;
}

int WriteMain(const std::string& fd_text, const std::string& text) {
  int fd = -1;
  if (!absl::SimpleAtoi(fd_text, &fd)) return 2;
  if (::write(fd, text.data(), text.size()) !=
      static_cast<ssize_t>(text.size())) {
    std::printf("write: %s\n", std::strerror(errno));
    return 1;
  }
  return 0;
}

int CrashMain() {
  absl::StatusOr<std::unique_ptr<Netns>> net = Netns::Create({.hosts = 2});
  if (!net.ok()) {
    std::printf("%s\n", net.status().ToString().c_str());
    return 1;
  }
  std::printf("inode %lu\n", static_cast<unsigned long>(
                                 InodeOf((*net)->path(Netns::kSwitch))));
  for (int i = 0; i < 2; ++i) {
    std::printf("inode %lu\n",
                static_cast<unsigned long>(InodeOf((*net)->path(i))));
  }
  absl::StatusOr<std::unique_ptr<NetnsProcess>> p =
      (*net)->Spawn(0, {SelfPath(), "--netns-block"});
  if (!p.ok()) {
    std::printf("%s\n", p.status().ToString().c_str());
    return 1;
  }
  std::printf("inside %d\n", static_cast<int>((*p)->pid()));
  std::fflush(stdout);
  ::kill(::getpid(), SIGKILL);
  return 1;
}

}  // namespace
}  // namespace proxystore::testing

int main(int argc, char** argv) {
  namespace t = proxystore::testing;
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "--netns-send" && argc == 5) {
    return t::SendMain(argv[2], argv[3], argv[4]);
  }
  if (mode == "--netns-write" && argc == 4)
    return t::WriteMain(argv[2], argv[3]);
  if (mode == "--netns-crash") return t::CrashMain();
  if (mode == "--netns-block") {
    // Blocks until killed (by the test, or by PR_SET_PDEATHSIG).
    while (true) ::pause();
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
