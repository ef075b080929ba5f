// Small file-system helpers shared by the file connector's tests.
#ifndef PROXYSTORE_CONNECTORS_FILE_FILE_TEST_UTIL_H_
#define PROXYSTORE_CONNECTORS_FILE_FILE_TEST_UTIL_H_

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/testing/child_process.h"

namespace proxystore::file_test {

// A fresh, not yet existing directory under $TEST_TMPDIR.
inline std::string FreshDir(absl::string_view tag = "store") {
  return absl::StrCat(::proxystore::testing::TestTempDir(), "/", tag, "-",
                      NewObjectId());
}

// The names in `dir` (empty if it does not exist).
inline std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const std::filesystem::directory_entry& e :
       std::filesystem::directory_iterator(dir, ec)) {
    names.push_back(e.path().filename().string());
  }
  return names;
}

// The whole content of `path` (empty if it cannot be read).
inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace proxystore::file_test

#endif  // PROXYSTORE_CONNECTORS_FILE_FILE_TEST_UTIL_H_
