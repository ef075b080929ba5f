#include "proxystore/testing/cross_process.h"

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxystore/store/factory.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::testing {
namespace {

std::string Hex(absl::string_view s) { return absl::BytesToHexString(s); }

template <typename T>
std::string ProxyLine(const std::shared_ptr<Store>& store, const T& value,
                      absl::string_view type, absl::string_view expected,
                      bool evict, Key* key_out) {
  ProxyOptions<T> options;
  options.evict = evict;
  options.populate_target =
      false;  // Checked below: serializing never resolves.
  absl::StatusOr<Proxy<T>> p = store->Proxy(value, options);
  EXPECT_THAT(p.status(), IsOk());
  if (!p.ok()) return "";
  absl::StatusOr<Key> key = GetKey(*p);
  EXPECT_THAT(key.status(), IsOk());
  if (key.ok() && key_out != nullptr) *key_out = *key;
  absl::StatusOr<std::string> wire = p->Serialize();
  EXPECT_THAT(wire.status(), IsOk());
  if (!wire.ok()) return "";
  EXPECT_FALSE(p->IsResolved()) << "serializing must not resolve";
  EXPECT_LT(wire->size(), 1024u) << "only small proxies travel, never objects";
  return absl::StrCat(type, " ", Hex(*wire), " ", Hex(expected), "\n");
}

}  // namespace

void ExpectProxiesResolveInChildProcess(const std::shared_ptr<Store>& store,
                                        size_t large_bytes) {
  ASSERT_NE(store, nullptr);
  std::string manifest;
  std::vector<Key> evicting;

  manifest += ProxyLine<std::string>(store, "hello from the parent", "string",
                                     "hello from the parent", false, nullptr);
  // The child regenerates the large value from its size.
  manifest +=
      ProxyLine<std::string>(store, PatternBytes(large_bytes), "pattern",
                             absl::StrCat(large_bytes), false, nullptr);
  std::vector<double> doubles = {1.5, -2.25, 1e300, 0.0};
  manifest += ProxyLine<std::vector<double>>(
      store, doubles, "doubles",
      absl::string_view(reinterpret_cast<const char*>(doubles.data()),
                        doubles.size() * sizeof(double)),
      false, nullptr);
  int64_t answer = 42;
  manifest += ProxyLine<int64_t>(store, answer, "int64", "42", false, nullptr);
  // evict=true: the child's resolve removes the object.
  Key evict_key;
  manifest += ProxyLine<std::string>(store, "read me once", "string",
                                     "read me once", true, &evict_key);
  // A proxy of an object evicted before the child runs: NotFound there.
  Key gone_key;
  manifest +=
      ProxyLine<std::string>(store, "gone", "missing", "", false, &gone_key);
  ASSERT_THAT(store->Evict(gone_key), IsOk());

  const std::string path =
      absl::StrCat(TestTempDir(), "/proxies-", store->name(), ".manifest");
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << manifest;
    ASSERT_TRUE(out.good()) << path;
  }

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      ChildResult r, RunChild(RunfilePath("testing/proxy_child"), {path}));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resolved 5, missing 1"), std::string::npos)
      << r.output;

  // The child's evict=true resolve removed the object from the connector.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(bool exists, store->Exists(evict_key));
  EXPECT_FALSE(exists) << "evict=true proxy resolved in the child must evict";
}

}  // namespace proxystore::testing
