// Runs a helper binary as a real child process and collects its output.
//
// Tests that prove something crosses a process boundary (proxies resolved in
// another process, several processes sharing a segment) start a separate
// program with RunChild and check its exit code and what it printed.
//
//   PROXYSTORE_ASSERT_OK_AND_ASSIGN(
//       ChildResult r, RunChild(RunfilePath("store/proxy_child"), {manifest}));
//   EXPECT_EQ(r.exit_code, 0) << r.output;
//
// Thread-safety: RunChild may be called from several threads.
#ifndef PROXYSTORE_TESTING_CHILD_PROCESS_H_
#define PROXYSTORE_TESTING_CHILD_PROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace proxystore::testing {

struct ChildResult {
  // The exit status; 128 + N if killed by signal N.
  int exit_code = -1;
  // stdout and stderr, interleaved.
  std::string output;
};

// Starts `binary` with `args`, waits for it, and returns how it ended.
// An error only if the child could not be started or waited for.
absl::StatusOr<ChildResult> RunChild(const std::string& binary,
                                     const std::vector<std::string>& args);

// Absolute path of a data dependency given relative to the workspace root
// (e.g. "store/proxy_child"), found through the test's runfiles.
std::string RunfilePath(absl::string_view workspace_relative);

// Deterministic, non-repeating bytes of length n, so that a parent and a
// child process can both make (and compare) a large value.
std::string PatternBytes(size_t n);

// A directory private to this test ($TEST_TMPDIR if set and non-empty,
// else /tmp).
std::string TestTempDir();

}  // namespace proxystore::testing

#endif  // PROXYSTORE_TESTING_CHILD_PROCESS_H_
