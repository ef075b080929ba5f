#include "proxystore/testing/python_proxystore.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/no_destructor.h"

extern char** environ;

namespace proxystore::testing {
namespace {

constexpr char kDefaultDir[] = "/work/shared/python-proxystore";
constexpr char kBash[] = "/bin/bash";
// What bash runs: $1 is env.sh, the rest are python3's arguments, passed on
// as "$@" (never parsed by the shell). env.sh's own output goes to stderr so
// that stdout is the program's alone.
constexpr char kLauncher[] =
    "source \"$1\" >&2 || exit 125; shift; export PYTHONDONTWRITEBYTECODE=1; "
    "exec python3 \"$@\"";
// What a usable installation imports: the package, and the modules that
// need its dependencies (pydantic 2, cloudpickle).
constexpr char kImportCheck[] =
    "import proxystore, proxystore.store, proxystore.connectors.file";
constexpr absl::Duration kTimeout = absl::Minutes(5);
// How much of stderr an error carries.
constexpr size_t kStderrTail = 2000;

absl::Status ErrnoError(absl::string_view what) {
  return absl::InternalError(
      absl::StrCat("python_proxystore: ", what, ": ", std::strerror(errno)));
}

std::string Tail(const std::string& s) {
  if (s.size() <= kStderrTail) return s;
  return absl::StrCat("...", s.substr(s.size() - kStderrTail));
}

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string ConfiguredDir() {
  const char* env = std::getenv("PROXYSTORE_PYTHON_DIR");
  return env != nullptr && *env != '\0' ? env : kDefaultDir;
}

struct Outcome {
  // exit status, or -N if killed by signal N
  int status = 0;
  std::string out;
  std::string err;
};

std::string Describe(const Outcome& o) {
  return o.status >= 0 ? absl::StrCat("exited with status ", o.status)
                       : absl::StrCat("was killed by signal ", -o.status);
}

// Runs python3 with `python_args` (argv[1:]) after sourcing `dir`/env.sh,
// collecting stdout and stderr (read together with poll(2), so neither pipe
// fills up and blocks the child).
absl::StatusOr<Outcome> Run(const std::string& dir,
                            const std::vector<std::string>& python_args) {
  std::vector<std::string> storage = {kBash, "-c", kLauncher,
                                      "python-proxystore",
                                      absl::StrCat(dir, "/env.sh")};
  storage.insert(storage.end(), python_args.begin(), python_args.end());
  std::vector<char*> argv;
  argv.reserve(storage.size() + 1);
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);

  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoError("pipe2");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    const absl::Status s = ErrnoError("pipe2");
    ::close(out[0]);
    ::close(out[1]);
    return s;
  }
  // The read ends, closed on every return; -1 once at end of file.
  int readers[2] = {out[0], err[0]};
  absl::Cleanup close_readers = [&readers] {
    for (int fd : readers) {
      if (fd >= 0) ::close(fd);
    }
  };

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  pid_t pid;
  const int rc =
      ::posix_spawn(&pid, kBash, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("python_proxystore: posix_spawn(",
                                            kBash, "): ", std::strerror(rc)));
  }

  Outcome outcome;
  std::string* sinks[2] = {&outcome.out, &outcome.err};
  const absl::Time deadline = absl::Now() + kTimeout;
  absl::Status failure;
  char buffer[16384];
  while (failure.ok() && (readers[0] >= 0 || readers[1] >= 0)) {
    pollfd fds[2] = {{readers[0], POLLIN, 0}, {readers[1], POLLIN, 0}};
    const int64_t ms = std::max<int64_t>(
        0, absl::ToInt64Milliseconds(
               absl::Ceil(deadline - absl::Now(), absl::Milliseconds(1))));
    const int ready = ::poll(
        fds, 2, static_cast<int>(std::min<int64_t>(ms, int64_t{1} << 30)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      failure = ErrnoError("poll");
      break;
    }
    if (ready == 0) {
      failure = absl::DeadlineExceededError(
          absl::StrCat("python_proxystore: python3 still running after ",
                       absl::FormatDuration(kTimeout), "; killed it"));
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (readers[i] < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(readers[i], buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0) {
        ::close(readers[i]);
        readers[i] = -1;
      } else if (errno != EINTR) {
        failure = ErrnoError("read");
        break;
      }
    }
  }
  // On a failure the child is ended by its pid (it is ours and not yet
  // reaped, so the pid cannot name another process), then reaped.
  if (!failure.ok()) ::kill(pid, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waitpid");
  }
  if (!failure.ok()) return failure;
  outcome.status = WIFEXITED(wstatus)     ? WEXITSTATUS(wstatus)
                   : WIFSIGNALED(wstatus) ? -WTERMSIG(wstatus)
                                          : -1;
  return outcome;
}

absl::Status CheckInstallation(const std::string& dir) {
  const std::string how = absl::StrCat(
      "set PROXYSTORE_PYTHON_DIR to a directory holding ProxyStore 1.0's "
      "proxystore/ package and an env.sh that makes it importable (as ",
      kDefaultDir,
      " does; see its README.md), with a python3 that has "
      "pydantic 2 and cloudpickle");
  if (!IsFile(absl::StrCat(dir, "/env.sh")) ||
      !IsFile(absl::StrCat(dir, "/proxystore/__init__.py"))) {
    return absl::NotFoundError(
        absl::StrCat("Python ProxyStore not found: ", dir,
                     " has no env.sh and proxystore/__init__.py; ", how));
  }
  if (!IsFile(kBash)) {
    return absl::NotFoundError(
        absl::StrCat("Python ProxyStore at ", dir, " cannot be used: ", kBash,
                     " (which sources its env.sh) is missing"));
  }
  absl::StatusOr<Outcome> check = Run(dir, {"-c", kImportCheck});
  if (!check.ok()) {
    return absl::NotFoundError(
        absl::StrCat("Python ProxyStore at ", dir,
                     " could not be checked: ", check.status().message()));
  }
  if (check->status != 0) {
    return absl::NotFoundError(absl::StrCat(
        "Python ProxyStore at ", dir, " cannot be imported: python3 -c \"",
        kImportCheck, "\" ", Describe(*check), " (", how,
        "); stderr: ", Tail(check->err)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> PythonProxyStoreDir() {
  struct Checked {
    Mutex mu;
    // Directory -> the result of its check.
    std::map<std::string, absl::Status> results ABSL_GUARDED_BY(mu);
  };
  static NoDestructor<Checked> checked;
  const std::string dir = ConfiguredDir();
  // Held while checking: each directory is checked once.
  MutexLock lock(checked->mu);
  auto it = checked->results.find(dir);
  if (it == checked->results.end()) {
    it = checked->results.emplace(dir, CheckInstallation(dir)).first;
  }
  if (!it->second.ok()) return it->second;
  return dir;
}

absl::StatusOr<std::string> RunPython(absl::string_view script,
                                      const std::vector<std::string>& args) {
  absl::StatusOr<std::string> dir = PythonProxyStoreDir();
  if (!dir.ok()) return dir.status();
  // argv strings end at a NUL: refuse rather than pass a shortened one.
  if (script.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("RunPython: the script contains a NUL");
  }
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("RunPython: argument ", i + 1, " contains a NUL"));
    }
  }
  std::vector<std::string> python_args = {"-c", std::string(script)};
  python_args.insert(python_args.end(), args.begin(), args.end());
  absl::StatusOr<Outcome> outcome = Run(*dir, python_args);
  if (!outcome.ok()) return outcome.status();
  if (outcome->status != 0) {
    return absl::InternalError(absl::StrCat("python3 ", Describe(*outcome),
                                            "; stderr: ", Tail(outcome->err)));
  }
  return std::move(outcome->out);
}

}  // namespace proxystore::testing
