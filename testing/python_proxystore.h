// The real Python ProxyStore, for interoperability tests: where it is, and
// running python3 programs with it importable.
//
// The library is a directory holding ProxyStore 1.0's `proxystore/` package
// and an `env.sh` that, sourced by bash, makes it importable by python3
// (/work/shared/python-proxystore; its README.md). Tests skip when it is
// missing or cannot be imported:
//
//   absl::StatusOr<std::string> dir = PythonProxyStoreDir();
//   if (!dir.ok()) GTEST_SKIP() << dir.status();
//   PROXYSTORE_ASSERT_OK_AND_ASSIGN(
//       std::string out,
//       RunPython("import sys\nprint(sys.argv[1])\n", {"hello"}));
//   // out == "hello\n"
//
// Not gtest-specific: errors are absl::Status values.
//
// Thread-safety: both functions may be called from any number of threads.
// The import check runs once per directory per process (its result, good or
// bad, is cached).
#ifndef PROXYSTORE_TESTING_PYTHON_PROXYSTORE_H_
#define PROXYSTORE_TESTING_PYTHON_PROXYSTORE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace proxystore::testing {

// The Python ProxyStore directory: $PROXYSTORE_PYTHON_DIR if set (and not
// empty), else /work/shared/python-proxystore. NotFound, saying how to get
// it, if the directory has no env.sh or proxystore/ package, or if
// `python3 -c "import proxystore"` fails with env.sh sourced. The check also
// imports proxystore.store and proxystore.connectors.file, which need
// pydantic 2 and cloudpickle: a python3 that lacks them cannot run
// ProxyStore, and is reported the same way.
absl::StatusOr<std::string> PythonProxyStoreDir();

// Runs python3 on `script` (program text, as `python3 -c script`) with `args`
// as sys.argv[1:], with env.sh sourced (the library importable) and
// PYTHONDONTWRITEBYTECODE set (the library's directory is left untouched).
// The arguments reach Python as they are: no shell reads them. stdin is
// /dev/null. Returns what the program wrote to stdout. Errors: those of
// PythonProxyStoreDir(); InvalidArgument if `script` or an argument holds a
// NUL byte (argv cannot carry it); Internal, carrying the last part of stderr,
// if python3 exits with a non-zero status or is killed by a signal;
// DeadlineExceeded (the process killed) if it runs for more than 5 minutes.
absl::StatusOr<std::string> RunPython(
    absl::string_view script, const std::vector<std::string>& args = {});

}  // namespace proxystore::testing

#endif  // PROXYSTORE_TESTING_PYTHON_PROXYSTORE_H_
