// The child side of testing/cross_process.h: resolves the proxies listed in a
// manifest file (one per line: "<type> <hex proxy> <hex expected>") and exits
// 0 only if every value matched. Links every connector kind.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"

namespace {

using proxystore::ParseProxy;

template <typename T>
absl::StatusOr<std::shared_ptr<const T>> Resolve(const std::string& wire) {
  absl::StatusOr<proxystore::Proxy<T>> p = ParseProxy<T>(wire);
  if (!p.ok()) return p.status();
  if (p->IsResolved()) {
    return absl::InternalError("a deserialized proxy must start unresolved");
  }
  return p->Get();
}

absl::Status Check(const std::string& type, const std::string& wire,
                   const std::string& expected, int* resolved, int* missing) {
  if (type == "string") {
    auto v = Resolve<std::string>(wire);
    if (!v.ok()) return v.status();
    if (**v != expected) return absl::DataLossError("string value differs");
  } else if (type == "pattern") {
    auto v = Resolve<std::string>(wire);
    if (!v.ok()) return v.status();
    size_t n = 0;
    if (!absl::SimpleAtoi(expected, &n) ||
        **v != proxystore::testing::PatternBytes(n)) {
      return absl::DataLossError("pattern value differs");
    }
  } else if (type == "doubles") {
    auto v = Resolve<std::vector<double>>(wire);
    if (!v.ok()) return v.status();
    std::string got(reinterpret_cast<const char*>((*v)->data()),
                    (*v)->size() * sizeof(double));
    if (got != expected) return absl::DataLossError("doubles differ");
  } else if (type == "int64") {
    auto v = Resolve<int64_t>(wire);
    if (!v.ok()) return v.status();
    if (absl::StrCat(**v) != expected) {
      return absl::DataLossError("int64 differs");
    }
  } else if (type == "missing") {
    auto v = Resolve<std::string>(wire);
    if (v.ok() || !absl::IsNotFound(v.status())) {
      return absl::InternalError(
          absl::StrCat("expected NotFound for an evicted object, got ",
                       v.ok() ? "a value" : v.status().ToString()));
    }
    ++*missing;
    return absl::OkStatus();
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown type ", type));
  }
  ++*resolved;
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MANIFEST\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot open %s\n", argv[1]);
    return 2;
  }
  int resolved = 0;
  int missing = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string type, wire_hex, expected_hex;
    fields >> type >> wire_hex >> expected_hex;
    absl::Status s =
        Check(type, absl::HexStringToBytes(wire_hex),
              absl::HexStringToBytes(expected_hex), &resolved, &missing);
    if (!s.ok()) {
      std::printf("FAILED %s: %s\n", type.c_str(), s.ToString().c_str());
      return 1;
    }
  }
  std::printf("resolved %d, missing %d\n", resolved, missing);
  return 0;
}
