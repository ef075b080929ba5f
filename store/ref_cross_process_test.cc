// Owned and borrowed proxies sent to a child process over the FileConnector.
// The test binary is its own child: run with --ref-child it parses the proxy
// in the given file, checks its value and drops it.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/ref.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::ChildResult;
using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::RunChild;
using ::proxystore::testing::TestTempDir;
using ::testing::Pointee;

constexpr char kChildFlag[] = "--ref-child";

// The child: `mode` is "owned" (ParseOwnedProxy) or "borrowed" (ParseProxy).
int ChildMain(const std::string& mode, const std::string& path,
              const std::string& expected) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string wire = buffer.str();
  if (mode == "owned") {
    absl::StatusOr<OwnedProxy<std::string>> owner =
        ParseOwnedProxy<std::string>(wire);
    if (!owner.ok()) {
      std::printf("FAILED parse: %s\n", owner.status().ToString().c_str());
      return 1;
    }
    absl::StatusOr<std::shared_ptr<const std::string>> v = owner->Get();
    if (!v.ok() || **v != expected) {
      std::printf("FAILED get: %s\n",
                  v.ok() ? "value differs" : v.status().ToString().c_str());
      return 1;
    }
    std::printf("owned %s\n", v->get()->c_str());
    return 0;  // `owner` goes away here and evicts the object.
  }
  if (mode == "borrowed") {
    absl::StatusOr<Proxy<std::string>> p = ParseProxy<std::string>(wire);
    if (!p.ok()) {
      std::printf("FAILED parse: %s\n", p.status().ToString().c_str());
      return 1;
    }
    absl::StatusOr<std::shared_ptr<const std::string>> v = p->Get();
    if (!v.ok() || **v != expected) {
      std::printf("FAILED get: %s\n",
                  v.ok() ? "value differs" : v.status().ToString().c_str());
      return 1;
    }
    std::printf("borrowed %s\n", v->get()->c_str());
    return 0;
  }
  std::printf("unknown mode %s\n", mode.c_str());
  return 2;
}

std::string SelfPath() {
  return testing::RunfilePath("store/ref_cross_process_test");
}

std::string WriteWire(const std::string& name, const std::string& wire) {
  const std::string path = absl::StrCat(TestTempDir(), "/", name, ".proxy");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << wire;
  EXPECT_TRUE(out.good()) << path;
  return path;
}

class RefCrossProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConnectorConfig config{
        "file", {{"directory", absl::StrCat(TestTempDir(), "/ref-xproc")}}};
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                    MakeConnector(config));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(store_,
                                    Store::Create("ref-xproc", std::move(c)));
  }
  void TearDown() override {
    if (store_ != nullptr) {
      EXPECT_THAT(store_->Close(), IsOk());
    }
  }

  // Whether the shared directory holds `key` (asks the connector, so that
  // this process's cache cannot answer).
  bool Stored(const Key& key) {
    absl::StatusOr<bool> e = store_->connector().Exists(key);
    EXPECT_THAT(e.status(), IsOk());
    return e.ok() && *e;
  }

  std::shared_ptr<Store> store_;
};

TEST_F(RefCrossProcessTest, OwnerSentToAChildIsEvictedWhenTheChildDropsIt) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      OwnedProxy<std::string> owner,
      OwnedProxyOf(*store_, std::string("owned by the child")));
  const Key key = owner.key();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire,
                                  std::move(owner).Serialize());
  { OwnedProxy<std::string> gone = std::move(owner); }
  ASSERT_TRUE(Stored(key)) << "the sender must not evict a sent owner";

  const std::string path = WriteWire("owned", wire);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      ChildResult r,
      RunChild(SelfPath(), {kChildFlag, "owned", path, "owned by the child"}));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, ::testing::HasSubstr("owned owned by the child"));
  EXPECT_FALSE(Stored(key)) << "the child's owner evicts when dropped";
}

TEST_F(RefCrossProcessTest, BorrowSentToAChildLeavesTheObject) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      OwnedProxy<std::string> owner,
      OwnedProxyOf(*store_, std::string("lent to the child")));
  const Key key = owner.key();
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(RefProxy<std::string> ref, Borrow(owner));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, ref.Serialize());
    const std::string path = WriteWire("borrowed", wire);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        ChildResult r, RunChild(SelfPath(), {kChildFlag, "borrowed", path,
                                             "lent to the child"}));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, ::testing::HasSubstr("borrowed lent to the child"));
    EXPECT_TRUE(Stored(key));
    EXPECT_EQ(owner.shared_borrows(), 1);
  }
  EXPECT_TRUE(Stored(key));
  EXPECT_THAT(owner.Get(),
              IsOkAndHolds(Pointee(std::string("lent to the child"))));
  { OwnedProxy<std::string> drop = std::move(owner); }
  EXPECT_FALSE(Stored(key));
}

}  // namespace
}  // namespace proxystore

int main(int argc, char** argv) {
  if (argc == 5 && std::strcmp(argv[1], proxystore::kChildFlag) == 0) {
    return proxystore::ChildMain(argv[2], argv[3], argv[4]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
