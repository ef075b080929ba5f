// Several real processes at once on one connector (shm, file, redis).
//
// The parent puts objects, makes proxies of them and writes only the
// serialized proxies (plus the connector's config) to a manifest. It then
// starts kChildren copies of testing/stress_child with posix_spawn, all held
// at a start gate (a pipe on their fd 3) until every one is running, and
// opens the gate: the children work at the same time. Each child resolves
// every parent proxy (from 4 threads, shared and freshly parsed) and puts
// objects of its own, reporting keys, serialized proxies and checksums on
// stdout. The parent then reads back everything every child put, resolves
// the children's proxies, and finally clears the store and checks that
// nothing of it is left.
#include <dirent.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/file/file_connector.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/connectors/shm/shm_connector.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"
#include "proxystore/testing/stress.h"

extern char** environ;

namespace proxystore::testing {
namespace {

constexpr int kChildren = 4;
constexpr int kParentProxies = 12;
#ifdef PROXYSTORE_SANITIZER
constexpr int kPutsPerChild = 24;
#else
constexpr int kPutsPerChild = 40;
#endif

// A started child: its pid and the read end of its stdout+stderr pipe.
struct Child {
  pid_t pid = -1;
  int out = -1;
  std::string output;
  int exit_code = -1;
};

// Starts `binary` with `args`; the child's fd 3 is `gate` (read end).
absl::StatusOr<Child> Spawn(const std::string& binary,
                            const std::vector<std::string>& args, int gate) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  posix_spawn_file_actions_adddup2(&actions, gate, 3);
  std::vector<std::string> storage = {binary};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  Child child;
  const int rc = posix_spawn(&child.pid, binary.c_str(), &actions, nullptr,
                             argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return absl::InternalError(
        absl::StrCat("posix_spawn(", binary, "): ", std::strerror(rc)));
  }
  child.out = fds[0];
  return child;
}

// Reads every child's output until all have closed it, then reaps them all.
void WaitAll(std::vector<Child>& children) {
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<Child*> owners;
    for (Child& c : children) {
      if (c.out >= 0) {
        fds.push_back({c.out, POLLIN, 0});
        owners.push_back(&c);
      }
    }
    if (fds.empty()) break;
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      break;
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      char buf[65536];
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        owners[i]->output.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(owners[i]->out);
        owners[i]->out = -1;
      }
    }
  }
  for (Child& c : children) {
    int status = 0;
    while (waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
    }
    c.exit_code = WIFEXITED(status)     ? WEXITSTATUS(status)
                  : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                        : -1;
  }
}

int CountShm(const std::string& ns) {
  const std::string prefix = absl::StrCat("proxystore.", ns, ".");
  int n = 0;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (const struct dirent* e = ::readdir(d)) {
      n += absl::StartsWith(e->d_name, prefix);
    }
    ::closedir(d);
  }
  return n;
}

class MultiProcess : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string& kind = GetParam();
    absl::StatusOr<std::unique_ptr<Connector>> c;
    if (kind == "shm") {
      absl::StatusOr<std::unique_ptr<ShmConnector>> shm =
          ShmConnector::Create({"shm", {}});
      ASSERT_THAT(shm.status(), IsOk());
      namespace_ = (*shm)->segment_namespace();
      c = *std::move(shm);
    } else if (kind == "file") {
      dir_ = absl::StrCat(TestTempDir(), "/multi-process-file");
      c = MakeConnector({"file", {{"directory", dir_}}});
    } else {
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(server_, RedisServer::Start());
      absl::StatusOr<std::unique_ptr<RedisConnector>> redis =
          RedisConnector::Create({"redis",
                                  {{"host", server_->host()},
                                   {"port", absl::StrCat(server_->port())}}});
      ASSERT_THAT(redis.status(), IsOk());
      prefix_ = (*redis)->prefix();
      c = *std::move(redis);
    }
    ASSERT_THAT(c.status(), IsOk());
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        store_, Store::Create(absl::StrCat("multi-process-", kind),
                              *std::move(c), {.auto_register = true}));
  }

  // A test that failed half-way still removes its objects (Close is
  // idempotent; a clearing Close clears again).
  void TearDown() override {
    if (store_ != nullptr) {
      EXPECT_THAT(store_->Close(CloseOptions{.clear = true}), IsOk());
    }
  }

  // What the store's connector holds of ours: segments, files or keys.
  int64_t Leftovers() const {
    if (!namespace_.empty()) return CountShm(namespace_);
    if (!dir_.empty()) {
      int64_t n = 0;
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
        (void)e;
        ++n;
      }
      return n;
    }
    return server_->CountKeys(prefix_);
  }

  std::unique_ptr<RedisServer> server_;
  std::shared_ptr<Store> store_;
  std::string namespace_;
  std::string dir_;
  std::string prefix_;
};

TEST_P(MultiProcess, ChildrenResolveAndPutConcurrently) {
  // The parent's objects, as proxies in the manifest.
  std::string manifest = absl::StrCat(
      "connector ",
      absl::BytesToHexString(store_->connector().Config().Serialize()), "\n");
  for (int i = 0; i < kParentProxies; ++i) {
    const std::string value =
        RandomBytes(1000 + static_cast<uint64_t>(i), 100 + i * 5000);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p, store_->Proxy(value));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, p.Serialize());
    absl::StrAppend(&manifest, "proxy ", absl::BytesToHexString(wire), " ",
                    Fnv1a64(value), " ", value.size(), "\n");
  }
  const std::string path =
      absl::StrCat(TestTempDir(), "/multi-process-", GetParam(), ".manifest");
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << manifest;
    ASSERT_TRUE(out.good()) << path;
  }

  // The start gate: children block reading it until every one runs. Its
  // read end is moved above the fds a child maps (0-3), so that dup2 onto
  // fd 3 always makes a fresh, inheritable descriptor.
  int gate[2];
  ASSERT_EQ(pipe2(gate, O_CLOEXEC), 0) << std::strerror(errno);
  const int gate_read = fcntl(gate[0], F_DUPFD_CLOEXEC, 10);
  ASSERT_GE(gate_read, 10);
  close(gate[0]);
  std::vector<Child> children;
  const std::string binary = RunfilePath("testing/stress_child");
  for (int i = 0; i < kChildren; ++i) {
    absl::StatusOr<Child> c =
        Spawn(binary,
              {path, absl::StrCat(i), absl::StrCat(kPutsPerChild),
               absl::StrCat(77 + i)},
              gate_read);
    ASSERT_THAT(c.status(), IsOk());
    children.push_back(*std::move(c));
  }
  close(gate_read);
  // Every child is running (spawned): open the gate, one byte each.
  const std::string go(kChildren, 'g');
  ASSERT_EQ(write(gate[1], go.data(), go.size()),
            static_cast<ssize_t>(go.size()));
  close(gate[1]);
  WaitAll(children);

  // Everything every child put reads back intact here.
  std::set<std::string> keys;
  int64_t verified = 0;
  for (size_t i = 0; i < children.size(); ++i) {
    const Child& c = children[i];
    ASSERT_EQ(c.exit_code, 0) << "child " << i << ":\n" << c.output;
    EXPECT_TRUE(absl::StrContains(
        c.output, absl::StrCat("resolved ", kParentProxies * 4 * 2, "\n")))
        << c.output;
    int puts = 0;
    for (absl::string_view line : absl::StrSplit(c.output, '\n')) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f.size() != 4 || (f[0] != "put" && f[0] != "proxy")) continue;
      ++puts;
      uint64_t sum = 0;
      size_t size = 0;
      ASSERT_TRUE(absl::SimpleAtoi(f[2], &sum) && absl::SimpleAtoi(f[3], &size))
          << line;
      std::shared_ptr<const std::string> got;
      if (f[0] == "put") {
        const Key key(absl::HexStringToBytes(f[1]));
        EXPECT_TRUE(keys.insert(key.id()).second) << "duplicate key " << key;
        PROXYSTORE_ASSERT_OK_AND_ASSIGN(got, store_->Get<std::string>(key));
        ASSERT_NE(got, nullptr)
            << "child " << i << " put " << key << ", which is missing";
      } else {
        PROXYSTORE_ASSERT_OK_AND_ASSIGN(
            Proxy<std::string> p,
            ParseProxy<std::string>(absl::HexStringToBytes(f[1])));
        PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, GetKey(p));
        EXPECT_TRUE(keys.insert(key.id()).second) << "duplicate key " << key;
        PROXYSTORE_ASSERT_OK_AND_ASSIGN(got, p.Get());
      }
      EXPECT_EQ(got->size(), size);
      EXPECT_EQ(Fnv1a64(*got), sum) << "child " << i << ": " << line;
      ++verified;
    }
    EXPECT_EQ(puts, kPutsPerChild) << c.output;
  }
  std::printf(
      "multi-process[%s]: %d children x 4 threads resolved %d parent proxies "
      "each twice per thread; parent verified %lld objects put by the "
      "children (%d each), lost 0\n",
      GetParam().c_str(), kChildren, kParentProxies,
      static_cast<long long>(verified), kPutsPerChild);
  EXPECT_EQ(verified, kChildren * kPutsPerChild);

  // The parent's and the children's objects all live in the one connector.
  EXPECT_EQ(Leftovers(), kParentProxies + kChildren * kPutsPerChild);
  // Stores the children's proxies made here (one per child name).
  for (int i = 0; i < kChildren; ++i) {
    const std::string name = absl::StrCat("stress-child-", i);
    if (std::shared_ptr<Store> s = GetStore(name)) {
      EXPECT_THAT(s->Close(CloseOptions{.clear = false}), IsOk());
      UnregisterStore(name);
    }
  }
  EXPECT_THAT(store_->Close(CloseOptions{.clear = true}), IsOk());
  EXPECT_EQ(Leftovers(), 0);
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Connectors, MultiProcess,
                         ::testing::Values("shm", "file", "redis"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace proxystore::testing
