#include "proxystore/connectors/multi/multi_connector.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/mutex.h"
#include "proxystore/connectors/file/file_connector.h"
#include "proxystore/connectors/local/local_connector.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/connector_conformance.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

namespace fs = std::filesystem;
using ::proxystore::testing::ConnectorTestParams;
using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

std::string TestTmpDir() { return ::proxystore::testing::TestTempDir(); }

// A fresh, not yet existing directory under $TEST_TMPDIR.
std::string FreshDir(absl::string_view tag = "multi") {
  return absl::StrCat(TestTmpDir(), "/", tag, "-", NewObjectId());
}

// `s` with every ERE metacharacter backslash-escaped: a pattern matching
// exactly `s`.
std::string EscapeRegex(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (absl::string_view("\\^$.|?*+()[]{}").find(c) !=
        absl::string_view::npos) {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

std::unique_ptr<Connector> NewLocal() {
  absl::StatusOr<std::unique_ptr<Connector>> c =
      LocalConnector::FromConfig({"local", {}});
  EXPECT_THAT(c, IsOk());
  return c.ok() ? *std::move(c) : nullptr;
}

std::unique_ptr<Connector> NewFile(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<Connector>> c =
      FileConnector::FromConfig({"file", {{"directory", dir}}});
  EXPECT_THAT(c, IsOk());
  return c.ok() ? *std::move(c) : nullptr;
}

Policy SizePolicy(uint64_t min, uint64_t max) {
  Policy p;
  p.min_size_bytes = min;
  p.max_size_bytes = max;
  return p;
}

Policy PriorityPolicy(int64_t priority) {
  Policy p;
  p.priority = priority;
  return p;
}

// The child name a multi key routes to.
std::string ChildOf(const Key& key) {
  absl::StatusOr<MultiKey> mk = MultiKey::Decode(key);
  EXPECT_THAT(mk, IsOk());
  return mk.ok() ? mk->connector_name : "";
}

Key InnerOf(const Key& key) {
  absl::StatusOr<MultiKey> mk = MultiKey::Decode(key);
  EXPECT_THAT(mk, IsOk());
  return mk.ok() ? mk->connector_key : Key();
}

// An in-memory test connector that counts calls and can be told to fail puts.
class CountingConnector : public Connector {
 public:
  absl::string_view kind() const override { return "counting"; }
  ConnectorConfig Config() const override { return {"counting", {}}; }

  size_t size() {
    MutexLock lock(mu_);
    return objects_.size();
  }
  int get_batch_calls() {
    MutexLock lock(mu_);
    return get_batch_calls_;
  }
  int put_batch_calls() {
    MutexLock lock(mu_);
    return put_batch_calls_;
  }
  std::optional<CloseOptions> last_close() {
    MutexLock lock(mu_);
    return last_close_;
  }
  void FailPuts() {
    MutexLock lock(mu_);
    fail_puts_ = true;
  }

 protected:
  absl::StatusOr<Key> DoPut(SharedBytes data, const PutOptions&) override {
    MutexLock lock(mu_);
    if (fail_puts_) return absl::UnavailableError("counting: put failed");
    Key key(NewObjectId());
    objects_[key.id()] = std::move(data);
    return key;
  }
  absl::StatusOr<std::vector<Key>> DoPutBatch(
      absl::Span<const SharedBytes> data, const PutOptions& options) override {
    {
      MutexLock lock(mu_);
      ++put_batch_calls_;
    }
    return Connector::DoPutBatch(data, options);
  }
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override {
    MutexLock lock(mu_);
    auto it = objects_.find(key.id());
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> DoGetBatch(
      absl::Span<const Key> keys) override {
    {
      MutexLock lock(mu_);
      ++get_batch_calls_;
    }
    return Connector::DoGetBatch(keys);
  }
  absl::StatusOr<bool> DoExists(const Key& key) override {
    MutexLock lock(mu_);
    return objects_.contains(key.id());
  }
  absl::Status DoEvict(const Key& key) override {
    MutexLock lock(mu_);
    objects_.erase(key.id());
    return absl::OkStatus();
  }
  absl::Status DoClose(const CloseOptions& options) override {
    MutexLock lock(mu_);
    last_close_ = options;
    return absl::OkStatus();
  }

 private:
  Mutex mu_;
  absl::flat_hash_map<std::string, SharedBytes> objects_ ABSL_GUARDED_BY(mu_);
  int get_batch_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int put_batch_calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool fail_puts_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<CloseOptions> last_close_ ABSL_GUARDED_BY(mu_);
};

// --- Policy -----------------------------------------------------------------

TEST(Policy, SizeBoundsAreInclusive) {
  Policy p = SizePolicy(10, 20);
  EXPECT_FALSE(p.IsValid(9));
  EXPECT_TRUE(p.IsValid(10));
  EXPECT_TRUE(p.IsValid(15));
  EXPECT_TRUE(p.IsValid(20));
  EXPECT_FALSE(p.IsValid(21));

  Policy exact = SizePolicy(7, 7);
  EXPECT_FALSE(exact.IsValid(6));
  EXPECT_TRUE(exact.IsValid(7));
  EXPECT_FALSE(exact.IsValid(8));

  Policy any;
  EXPECT_TRUE(any.IsValid(0));
  EXPECT_TRUE(any.IsValid(kMax));
}

TEST(Policy, GivenSubsetTagsMustBeASubsetOfThePolicys) {
  Policy none;  // Default: no subset tags.
  EXPECT_TRUE(none.IsValid(1, {}));
  // A default policy rejects any non-empty subset-tag request.
  EXPECT_FALSE(none.IsValid(1, {"a"}));

  Policy ab;
  ab.subset_tags = {"a", "b"};
  EXPECT_TRUE(ab.IsValid(1, {}));
  EXPECT_TRUE(ab.IsValid(1, {"a"}));
  EXPECT_TRUE(ab.IsValid(1, {"b", "a"}));
  EXPECT_TRUE(ab.IsValid(1, {"a", "a"}));  // Sets: duplicates do not matter.
  EXPECT_FALSE(ab.IsValid(1, {"c"}));
  EXPECT_FALSE(ab.IsValid(1, {"a", "c"}));
  EXPECT_FALSE(ab.IsValid(1, {"A"}));  // Case-sensitive.
}

TEST(Policy, GivenSupersetTagsMustBeASupersetOfThePolicys) {
  Policy none;
  EXPECT_TRUE(none.IsValid(1, {}, {}));
  EXPECT_TRUE(none.IsValid(1, {}, {"anything"}));

  Policy xy;
  xy.superset_tags = {"x", "y"};
  EXPECT_FALSE(xy.IsValid(1, {}, {}));
  EXPECT_FALSE(xy.IsValid(1, {}, {"x"}));
  EXPECT_TRUE(xy.IsValid(1, {}, {"y", "x"}));
  EXPECT_TRUE(xy.IsValid(1, {}, {"x", "y", "z"}));
}

TEST(Policy, AllConstraintsMustHold) {
  Policy p = SizePolicy(0, 100);
  p.subset_tags = {"a"};
  p.superset_tags = {"s"};
  EXPECT_TRUE(p.IsValid(100, {"a"}, {"s"}));
  EXPECT_FALSE(p.IsValid(101, {"a"}, {"s"}));
  EXPECT_FALSE(p.IsValid(100, {"b"}, {"s"}));
  EXPECT_FALSE(p.IsValid(100, {"a"}, {}));
  EXPECT_TRUE(p.IsValidIgnoringHost(100, {"a"}, {"s"}));
}

TEST(Policy, HostPatternsFullyMatchThisHost) {
  const std::string host = CurrentHostname();
  ASSERT_FALSE(host.empty());

  Policy any;
  EXPECT_TRUE(any.IsValidOnHost());

  Policy here;
  here.host_patterns = {EscapeRegex(host)};
  EXPECT_TRUE(here.IsValidOnHost());
  EXPECT_TRUE(here.IsValid(1));

  Policy elsewhere;
  elsewhere.host_patterns = {"no-such-host-.*"};
  EXPECT_FALSE(elsewhere.IsValidOnHost());
  // The host check is part of IsValid, as in ProxyStore.
  EXPECT_FALSE(elsewhere.IsValid(1));
  EXPECT_TRUE(elsewhere.IsValidIgnoringHost(1, {}, {}));

  // Any one of the patterns suffices.
  Policy either;
  either.host_patterns = {"no-such-host-.*", ".*"};
  EXPECT_TRUE(either.IsValidOnHost());

  // Full match: a prefix or a suffix of the name is not enough.
  Policy prefix;
  prefix.host_patterns = {EscapeRegex(host.substr(0, host.size() - 1))};
  EXPECT_FALSE(prefix.IsValidOnHost());
  Policy longer;
  longer.host_patterns = {absl::StrCat(EscapeRegex(host), "x")};
  EXPECT_FALSE(longer.IsValidOnHost());
}

TEST(Policy, HostPatternsAreFullMatchesOfGivenNames) {
  Policy p;
  p.host_patterns = {"node-[0-9]+"};
  EXPECT_TRUE(p.IsValidOnHost("node-12"));
  EXPECT_FALSE(p.IsValidOnHost("my-node-12"));
  EXPECT_FALSE(p.IsValidOnHost("node-12.cluster"));
  EXPECT_FALSE(p.IsValidOnHost("node-"));

  // Alternation is inside the anchors, as with re.fullmatch.
  Policy alt;
  alt.host_patterns = {"node-1|node-2"};
  EXPECT_TRUE(alt.IsValidOnHost("node-1"));
  EXPECT_TRUE(alt.IsValidOnHost("node-2"));
  EXPECT_FALSE(alt.IsValidOnHost("node-12"));
  EXPECT_FALSE(alt.IsValidOnHost("xnode-2"));

  // A shorter alternative first must not hide a full match.
  Policy shorter_first;
  shorter_first.host_patterns = {"a|ab"};
  EXPECT_TRUE(shorter_first.IsValidOnHost("ab"));
  EXPECT_TRUE(shorter_first.IsValidOnHost("a"));
  EXPECT_FALSE(shorter_first.IsValidOnHost("abc"));

  // ProxyStore's patterns are Python's: \d, \w and (?:...) work.
  Policy python;
  python.host_patterns = {"(?:gpu|cpu)-\\w+", "node\\d{2}"};
  EXPECT_TRUE(python.IsValidOnHost("gpu-a_1"));
  EXPECT_TRUE(python.IsValidOnHost("node07"));
  EXPECT_FALSE(python.IsValidOnHost("node7"));
  EXPECT_FALSE(python.IsValidOnHost("tpu-a"));

  Policy empty_pattern;
  empty_pattern.host_patterns = {""};
  EXPECT_TRUE(empty_pattern.IsValidOnHost(""));
  EXPECT_FALSE(empty_pattern.IsValidOnHost("a"));
}

TEST(Policy, InvalidPatternsAreRejectedByNameAndMatchNothing) {
  for (const std::string& bad :
       {std::string("("), std::string("[a-"), std::string("(?i)node"),
        std::string("x)|(y"), std::string("a{2,1}"),
        std::string("node\0x", 6)}) {
    Policy p;
    p.host_patterns = {"ok-.*", bad};
    EXPECT_THAT(p.Validate(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("\"", absl::CHexEscape(bad), "\"")))
        << absl::CHexEscape(bad);
    EXPECT_FALSE(p.IsValidOnHost("x"));
    EXPECT_FALSE(p.IsValidOnHost("y"));
    EXPECT_FALSE(p.IsValidOnHost("xy"));
  }
  // "x)|(y" as "^(x)|(y)$" would match any name starting with "x".
  Policy injected;
  injected.host_patterns = {"x)|(y"};
  EXPECT_FALSE(injected.IsValidOnHost("xanything"));
}

TEST(Policy, ValidateRejectsAnEmptySizeRange) {
  EXPECT_THAT(SizePolicy(2, 1).Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "min_size_bytes 2 exceeds max_size_bytes 1"));
  EXPECT_THAT(SizePolicy(1, 1).Validate(), IsOk());
  EXPECT_THAT(Policy().Validate(), IsOk());
}

// --- MultiKey ---------------------------------------------------------------

TEST(MultiKey, EncodeDecodeRoundTrip) {
  for (const MultiKey& mk :
       {MultiKey{"local", Key("abc")}, MultiKey{"a:b:c", Key("x:y")},
        MultiKey{"12", Key("3:4")}, MultiKey{std::string(255, 'n'), Key("k")},
        MultiKey{std::string("nul\0", 4), Key(std::string("\0", 1))}}) {
    Key key = mk.Encode();
    EXPECT_THAT(MultiKey::Decode(key), IsOkAndHolds(mk)) << key;
  }
  EXPECT_EQ(MultiKey({"local", Key("abc")}).Encode().id(), "5:local:abc");
}

TEST(MultiKey, MalformedKeysAreInvalidArgument) {
  for (const std::string& bad : {
           std::string(""),
           std::string("abc"),
           std::string(":local:abc"),
           std::string("x:local:abc"),
           std::string("-5:local:abc"),
           std::string("+5:local:abc"),
           std::string(" 5:local:abc"),
           std::string("05:local:abc"),
           std::string("0::abc"),
           std::string("5:local"),
           std::string("5:local:"),
           std::string("5:locaX"),
           std::string("5:loc"),
           std::string("6:local:abc"),  // Name length off by one.
           std::string("4:local:abc"),
           std::string("256:") + std::string(256, 'n') + ":k",
           std::string("99999999999999999999999:x:y"),
           std::string("18446744073709551617:x:y"),
           std::string("5;local:abc"),
           std::string("5"),
           std::string("5:"),
           std::string(1, '\0'),
           std::string("5\0local:abc", 11),
       }) {
    EXPECT_THAT(
        MultiKey::Decode(Key(bad)),
        StatusIs(absl::StatusCode::kInvalidArgument, "malformed multi key"))
        << absl::CHexEscape(bad);
  }
}

TEST(MultiKey, ArbitraryBytesNeverCrashAndDecodedKeysReencodeExactly) {
  // A deterministic stream of keys built from key-like fragments.
  const std::vector<std::string> fragments = {
      "0",   "1",     "5",   "9", "12",   ":",
      "::",  "local", "a",   "",  "\xff", std::string(1, '\0'),
      "255", "-",     "1:a:"};
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 20000; ++i) {
    std::string id;
    int parts = 1 + static_cast<int>(x % 6);
    for (int j = 0; j < parts; ++j) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      id += fragments[x % fragments.size()];
    }
    absl::StatusOr<MultiKey> mk = MultiKey::Decode(Key(id));
    if (mk.ok()) {
      EXPECT_EQ(mk->Encode().id(), id);
    } else {
      EXPECT_EQ(mk.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

// --- Creation ---------------------------------------------------------------

TEST(MultiConnector, CreateRejectsBadChildren) {
  auto make = [](std::vector<std::pair<std::string, Policy>> specs,
                 bool null_connector = false) {
    std::vector<MultiConnector::Entry> entries;
    for (auto& [name, policy] : specs) {
      entries.push_back({name, null_connector ? nullptr : NewLocal(), policy});
    }
    return MultiConnector::Create(std::move(entries));
  };
  EXPECT_THAT(make({}), StatusIs(absl::StatusCode::kInvalidArgument,
                                 "at least one child"));
  EXPECT_THAT(make({{"", Policy()}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "empty name"));
  EXPECT_THAT(make({{"a", Policy()}, {"b", Policy()}, {"a", Policy()}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "'a' is used more than once"));
  EXPECT_THAT(make({{std::string(256, 'n'), Policy()}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "longer than 255"));
  EXPECT_THAT(make({{"a", Policy()}}, /*null_connector=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument, "null connector"));
  Policy bad_regex;
  bad_regex.host_patterns = {"node-(1"};
  EXPECT_THAT(make({{"a", Policy()}, {"b", bad_regex}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "'b': policy host pattern \"node-(1\""));
  EXPECT_THAT(make({{"a", SizePolicy(5, 4)}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "min_size_bytes"));

  // Names are unique across active and dormant children too.
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"a", NewLocal(), Policy()});
  std::vector<MultiConnector::DormantEntry> dormant;
  dormant.push_back({"a", {"local", {}}, Policy()});
  EXPECT_THAT(
      MultiConnector::Create(std::move(entries), std::move(dormant)),
      StatusIs(absl::StatusCode::kInvalidArgument, "used more than once"));
  std::vector<MultiConnector::DormantEntry> kindless;
  kindless.push_back({"d", {}, Policy()});
  EXPECT_THAT(MultiConnector::Create({}, std::move(kindless)),
              StatusIs(absl::StatusCode::kInvalidArgument, "without a kind"));

  EXPECT_THAT(make({{"one", Policy()}, {"a:b", Policy()}}), IsOk());
}

TEST(MultiConnector, IsRegisteredAsMulti) {
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"local", NewLocal(), Policy()});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  ConnectorConfig config = multi->Config();
  EXPECT_EQ(config.kind, "multi");
  config.kind = "MultiConnector";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(config));
  EXPECT_EQ(c->kind(), "multi");
}

// --- Routing ----------------------------------------------------------------

TEST(MultiConnector, PutsGoToTheHighestPriorityTiesInGivenOrder) {
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"low", NewLocal(), PriorityPolicy(-1)});
  entries.push_back({"zero", NewLocal(), PriorityPolicy(0)});
  entries.push_back({"high1", NewLocal(), PriorityPolicy(5)});
  entries.push_back({"high2", NewLocal(), PriorityPolicy(5)});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, multi->Put(SharedBytes::Copy("v")));
  EXPECT_EQ(ChildOf(key), "high1");
  EXPECT_THAT(multi->connector("high1")->Exists(InnerOf(key)),
              IsOkAndHolds(true));
  EXPECT_THAT(multi->connector("high2")->Exists(InnerOf(key)),
              IsOkAndHolds(false));

  // When the top ones refuse (size), the next priority takes it.
  std::vector<MultiConnector::Entry> sized;
  Policy small_high = SizePolicy(0, 3);
  small_high.priority = 10;
  sized.push_back({"zero", NewLocal(), PriorityPolicy(0)});
  sized.push_back({"small_high", NewLocal(), small_high});
  sized.push_back({"one", NewLocal(), PriorityPolicy(1)});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi2,
                                  MultiConnector::Create(std::move(sized)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key a, multi2->Put(SharedBytes::Copy("abc")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key b,
                                  multi2->Put(SharedBytes::Copy("abcd")));
  EXPECT_EQ(ChildOf(a), "small_high");
  EXPECT_EQ(ChildOf(b), "one");
}

TEST(MultiConnector, SmallObjectsToLocalLargeToFile) {
  const std::string dir = FreshDir();
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"local", NewLocal(), SizePolicy(0, 1024)});
  entries.push_back({"file", NewFile(dir), SizePolicy(1025, kMax)});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key empty, multi->Put(SharedBytes()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key at_limit, multi->Put(SharedBytes::Copy(std::string(1024, 's'))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key over, multi->Put(SharedBytes::Copy(std::string(1025, 'l'))));
  EXPECT_EQ(ChildOf(empty), "local");
  EXPECT_EQ(ChildOf(at_limit), "local");
  EXPECT_EQ(ChildOf(over), "file");
  // The large object really is a file in the file child's directory.
  EXPECT_TRUE(fs::is_regular_file(fs::path(dir) / InnerOf(over).id()));
  EXPECT_EQ(fs::file_size(fs::path(dir) / InnerOf(over).id()), 1025u);
  EXPECT_FALSE(fs::exists(fs::path(dir) / InnerOf(at_limit).id()));

  // Reads reach the right child, directly and through the multi.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto direct, multi->connector("local")->Get(InnerOf(at_limit)));
  ASSERT_TRUE(direct.has_value());
  EXPECT_EQ(direct->view(), std::string(1024, 's'));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto via_multi, multi->Get(over));
  ASSERT_TRUE(via_multi.has_value());
  EXPECT_EQ(via_multi->view(), std::string(1025, 'l'));

  // Evict through the multi removes it from the child.
  PROXYSTORE_ASSERT_OK(multi->Evict(over));
  EXPECT_FALSE(fs::exists(fs::path(dir) / InnerOf(over).id()));
  EXPECT_THAT(multi->Exists(over), IsOkAndHolds(false));
  PROXYSTORE_ASSERT_OK(multi->Close(CloseOptions{.clear = true}));
}

TEST(MultiConnector, NoSuitablePolicyIsAnErrorNamingTheConstraints) {
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"small", NewLocal(), SizePolicy(0, 10)});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  EXPECT_THAT(multi->Put(SharedBytes::Copy(std::string(11, 'x'))),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "No connector policy was suitable for the constraints: "
                       "size=11, subset_tags=[], superset_tags=[]"));
  EXPECT_THAT(multi->Put(SharedBytes::Copy("x"),
                         PutOptions{.subset_tags = {"gpu", "a\"b"},
                                    .superset_tags = {"s"}}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "size=1, subset_tags=[\"gpu\", \"a\\\"b\"], "
                       "superset_tags=[\"s\"]"));
}

TEST(MultiConnector, TagsFromStorePutRouteObjects) {
  // "plain" is tried first but (default policy) refuses any subset tag;
  // "gpu" accepts subset tags gpu/fast; "archive" (highest priority) takes
  // only puts whose superset tags include "archive".
  Policy plain = PriorityPolicy(1);
  Policy gpu = PriorityPolicy(0);
  gpu.subset_tags = {"gpu", "fast"};
  Policy archive = PriorityPolicy(10);
  archive.superset_tags = {"archive"};
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"plain", NewLocal(), plain});
  entries.push_back({"gpu", NewLocal(), gpu});
  entries.push_back({"archive", NewLocal(), archive});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  MultiConnector* m = multi.get();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("multi-tags", std::move(multi)));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key untagged,
                                  store->Put(std::string("untagged")));
  StorePutOptions<std::string> to_gpu;
  to_gpu.connector.subset_tags = {"gpu"};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key tagged,
                                  store->Put(std::string("tagged"), to_gpu));
  StorePutOptions<std::string> to_archive;
  to_archive.connector.superset_tags = {"archive", "cold"};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key archived, store->Put(std::string("archived"), to_archive));
  StorePutOptions<std::string> unknown_tag;
  unknown_tag.connector.subset_tags = {"tpu"};
  EXPECT_THAT(
      store->Put(std::string("nowhere"), unknown_tag),
      StatusIs(absl::StatusCode::kFailedPrecondition, "subset_tags=[\"tpu\"]"));

  EXPECT_EQ(ChildOf(untagged), "plain");
  EXPECT_EQ(ChildOf(tagged), "gpu");
  EXPECT_EQ(ChildOf(archived), "archive");
  EXPECT_THAT(m->connector("gpu")->Exists(InnerOf(tagged)), IsOkAndHolds(true));
  EXPECT_THAT(m->connector("plain")->Exists(InnerOf(tagged)),
              IsOkAndHolds(false));

  // Batches carry the tags too.
  std::vector<std::string> values = {"b1", "b2"};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<Key> batch,
      store->PutBatch(absl::Span<const std::string>(values), to_gpu));
  EXPECT_THAT(batch, SizeIs(2));
  for (const Key& k : batch) EXPECT_EQ(ChildOf(k), "gpu");

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, store->Get<std::string>(tagged));
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(*got, "tagged");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(got, store->Get<std::string>(archived));
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(*got, "archived");
  PROXYSTORE_ASSERT_OK(store->Close());
}

TEST(MultiConnector, ChildWhoseHostDoesNotMatchIsNeverChosenButServesKeys) {
  Policy elsewhere = PriorityPolicy(100);
  elsewhere.host_patterns = {"no-such-host-.*"};
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"elsewhere", NewLocal(), elsewhere});
  entries.push_back({"here", NewLocal(), Policy()});
  Connector* elsewhere_child = entries[0].connector.get();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key inner,
                                  elsewhere_child->Put(SharedBytes::Copy("e")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  EXPECT_FALSE(multi->IsDormant("elsewhere"));  // Create keeps it active.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, multi->Put(SharedBytes::Copy("v")));
  EXPECT_EQ(ChildOf(key), "here");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto got, multi->Get(MultiKey{"elsewhere", inner}.Encode()));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), "e");
}

TEST(MultiConnector, BatchesRouteEachItemAndKeepOrder) {
  const std::string dir = FreshDir();
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"local", NewLocal(), SizePolicy(0, 4)});
  entries.push_back({"file", NewFile(dir), SizePolicy(5, kMax)});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  std::vector<std::string> values = {"big one", "s", "bigger one", "t", ""};
  std::vector<SharedBytes> items;
  for (const std::string& v : values) items.push_back(SharedBytes::Copy(v));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys,
                                  multi->PutBatch(items));
  ASSERT_THAT(keys, SizeIs(5));
  EXPECT_EQ(ChildOf(keys[0]), "file");
  EXPECT_EQ(ChildOf(keys[1]), "local");
  EXPECT_EQ(ChildOf(keys[2]), "file");
  EXPECT_EQ(ChildOf(keys[3]), "local");
  EXPECT_EQ(ChildOf(keys[4]), "local");

  PROXYSTORE_ASSERT_OK(multi->Evict(keys[2]));
  std::vector<Key> query = {keys[3], keys[2], keys[0],
                            keys[1], keys[4], keys[0]};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, multi->GetBatch(query));
  ASSERT_THAT(got, SizeIs(6));
  ASSERT_TRUE(got[0].has_value());
  EXPECT_EQ(got[0]->view(), "t");
  EXPECT_FALSE(got[1].has_value());
  ASSERT_TRUE(got[2].has_value());
  EXPECT_EQ(got[2]->view(), "big one");
  ASSERT_TRUE(got[3].has_value());
  EXPECT_EQ(got[3]->view(), "s");
  ASSERT_TRUE(got[4].has_value());
  EXPECT_EQ(got[4]->view(), "");
  ASSERT_TRUE(got[5].has_value());
  EXPECT_EQ(got[5]->view(), "big one");
  PROXYSTORE_ASSERT_OK(multi->Close(CloseOptions{.clear = true}));
}

TEST(MultiConnector, BatchesMakeOneChildCallPerChild) {
  auto small = std::make_unique<CountingConnector>();
  auto large = std::make_unique<CountingConnector>();
  CountingConnector* s = small.get();
  CountingConnector* l = large.get();
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"s", std::move(small), SizePolicy(0, 1)});
  entries.push_back({"l", std::move(large), SizePolicy(2, kMax)});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  std::vector<SharedBytes> items = {
      SharedBytes::Copy("a"), SharedBytes::Copy("bb"), SharedBytes::Copy("c"),
      SharedBytes::Copy("dd"), SharedBytes::Copy("e")};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys,
                                  multi->PutBatch(items));
  EXPECT_EQ(s->put_batch_calls(), 1);
  EXPECT_EQ(l->put_batch_calls(), 1);
  EXPECT_EQ(s->size(), 3u);
  EXPECT_EQ(l->size(), 2u);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, multi->GetBatch(keys));
  EXPECT_EQ(s->get_batch_calls(), 1);
  EXPECT_EQ(l->get_batch_calls(), 1);
  for (size_t i = 0; i < items.size(); ++i) {
    ASSERT_TRUE(got[i].has_value());
    EXPECT_EQ(got[i]->view(), items[i].view());
  }
}

TEST(MultiConnector, FailedBatchLeavesNothingBehind) {
  auto small = std::make_unique<CountingConnector>();
  auto large = std::make_unique<CountingConnector>();
  CountingConnector* s = small.get();
  CountingConnector* l = large.get();
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"s", std::move(small), SizePolicy(0, 1)});
  entries.push_back({"l", std::move(large), SizePolicy(2, 100)});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));

  // One item no child accepts: nothing is stored at all.
  std::vector<SharedBytes> unroutable = {
      SharedBytes::Copy("a"), SharedBytes::Copy("bb"),
      SharedBytes::Copy(std::string(101, 'x'))};
  EXPECT_THAT(multi->PutBatch(unroutable),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "No connector policy was suitable"));
  EXPECT_EQ(s->size(), 0u);
  EXPECT_EQ(l->size(), 0u);

  // The second child fails: what the first stored is evicted.
  l->FailPuts();
  std::vector<SharedBytes> items = {
      SharedBytes::Copy("a"), SharedBytes::Copy("c"), SharedBytes::Copy("bb")};
  EXPECT_THAT(multi->PutBatch(items),
              StatusIs(absl::StatusCode::kUnavailable, "'l'"));
  EXPECT_EQ(s->size(), 0u);
  EXPECT_EQ(l->size(), 0u);
  // A single put to the failing child reports it too.
  EXPECT_THAT(multi->Put(SharedBytes::Copy("bb")),
              StatusIs(absl::StatusCode::kUnavailable, "counting: put failed"));
}

TEST(MultiConnector, KeysOfUnknownChildrenAndMalformedKeysAreErrors) {
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"local", NewLocal(), Policy()});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key good, multi->Put(SharedBytes::Copy("g")));
  const Key unknown = MultiKey{"nope", Key("abc")}.Encode();
  EXPECT_THAT(multi->Get(unknown), StatusIs(absl::StatusCode::kInvalidArgument,
                                            "'nope' does not exist"));
  EXPECT_THAT(
      multi->Exists(unknown),
      StatusIs(absl::StatusCode::kInvalidArgument, "'nope' does not exist"));
  EXPECT_THAT(
      multi->Evict(unknown),
      StatusIs(absl::StatusCode::kInvalidArgument, "'nope' does not exist"));
  EXPECT_THAT(
      multi->GetBatch({good, unknown}),
      StatusIs(absl::StatusCode::kInvalidArgument, "'nope' does not exist"));

  for (const std::string& bad :
       {std::string("abc"), std::string("5:local"), std::string("05:local:x"),
        std::string("9:local:abc"), std::string("x:y:z"), good.id().substr(2),
        std::string("5:local:")}) {
    const Key key(bad);
    EXPECT_THAT(multi->Get(key), StatusIs(absl::StatusCode::kInvalidArgument,
                                          "malformed multi key"))
        << bad;
    EXPECT_THAT(multi->Exists(key), StatusIs(absl::StatusCode::kInvalidArgument,
                                             "malformed multi key"));
    EXPECT_THAT(multi->Evict(key), StatusIs(absl::StatusCode::kInvalidArgument,
                                            "malformed multi key"));
    EXPECT_THAT(
        multi->GetBatch({good, key}),
        StatusIs(absl::StatusCode::kInvalidArgument, "malformed multi key"));
  }
  // The good key still works.
  EXPECT_THAT(multi->Exists(good), IsOkAndHolds(true));
}

TEST(MultiConnector, ClosePassesOptionsToEveryActiveChild) {
  auto a = std::make_unique<CountingConnector>();
  auto b = std::make_unique<CountingConnector>();
  CountingConnector* pa = a.get();
  CountingConnector* pb = b.get();
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"a", std::move(a), Policy()});
  entries.push_back({"b", std::move(b), Policy()});
  std::vector<MultiConnector::DormantEntry> dormant;
  dormant.push_back({"d", {"local", {}}, Policy()});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto multi,
      MultiConnector::Create(std::move(entries), std::move(dormant)));
  PROXYSTORE_ASSERT_OK(multi->Close(CloseOptions{.clear = true}));
  ASSERT_TRUE(pa->last_close().has_value());
  ASSERT_TRUE(pb->last_close().has_value());
  EXPECT_EQ(pa->last_close()->clear, std::optional<bool>(true));
  EXPECT_EQ(pb->last_close()->clear, std::optional<bool>(true));
  PROXYSTORE_ASSERT_OK(multi->Close());
  EXPECT_EQ(pa->last_close()->clear, std::nullopt);
  EXPECT_EQ(pb->last_close()->clear, std::nullopt);
}

TEST(MultiConnector, CloseKeepsOrClearsFileChildAsAsked) {
  const std::string dir = FreshDir();
  auto make = [&] {
    std::vector<MultiConnector::Entry> entries;
    entries.push_back({"file", NewFile(dir), Policy()});
    return MultiConnector::Create(std::move(entries));
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto keep, make());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, keep->Put(SharedBytes::Copy("x")));
  PROXYSTORE_ASSERT_OK(keep->Close(CloseOptions{.clear = false}));
  EXPECT_TRUE(fs::exists(fs::path(dir) / InnerOf(key).id()));
  // After Close the child refuses work, and the multi says which child.
  EXPECT_THAT(keep->Get(key),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::AllOf(HasSubstr("child 'file'"),
                                        HasSubstr("after Close"))));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto clear, make());
  PROXYSTORE_ASSERT_OK(clear->Close());  // The file child clears by default.
  EXPECT_FALSE(fs::exists(dir));
  PROXYSTORE_ASSERT_OK(clear->Close());  // Idempotent.
}

// --- Deferred writes (NewKey / Set) ----------------------------------------

Policy SupersetTagPolicy(std::string tag) {
  Policy p;
  p.superset_tags = {std::move(tag)};
  return p;
}

TEST(MultiConnector, NewKeyRoutesBySizeHintAndTagsAsPutWould) {
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"small", NewLocal(), SizePolicy(0, 1024)});
  entries.push_back({"gpu", NewLocal(), SupersetTagPolicy("gpu")});
  entries.push_back({"big", NewLocal(), Policy()});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  struct Case {
    NewKeyOptions options;
    std::string child;
  };
  const std::vector<Case> cases = {
      {{.size_hint = 0}, "small"},
      {{.size_hint = 1024}, "small"},
      {{.size_hint = 1025}, "big"},
      {{.size_hint = 10, .superset_tags = {"gpu"}}, "small"},
      {{.size_hint = 5000, .superset_tags = {"gpu"}}, "gpu"},
      // Without a hint: the first child without size bounds that the tags
      // admit ("small" has bounds).
      {{}, "big"},
      {{.superset_tags = {"gpu"}}, "gpu"},
  };
  for (const Case& c : cases) {
    const std::string hint = c.options.size_hint.has_value()
                                 ? absl::StrCat(*c.options.size_hint)
                                 : "none";
    SCOPED_TRACE(absl::StrCat("size_hint ", hint));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, multi->NewKey(c.options));
    EXPECT_EQ(ChildOf(key), c.child);
    if (c.options.size_hint.has_value()) {
      // Where Put would place an object of that size with those tags.
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(
          Key put,
          multi->Put(SharedBytes::Copy(std::string(*c.options.size_hint, 'p')),
                     PutOptions{.superset_tags = c.options.superset_tags}));
      EXPECT_EQ(ChildOf(put), c.child);
    }
  }

  // Set writes into the key's child whatever the object's size: the key was
  // placed when it was minted.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key small, multi->NewKey({.size_hint = 10}));
  EXPECT_THAT(multi->Exists(small), IsOkAndHolds(false));
  const std::string large(5000, 'l');
  PROXYSTORE_ASSERT_OK(multi->Set(small, SharedBytes::Copy(large)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto direct, multi->connector("small")->Get(InnerOf(small)));
  ASSERT_TRUE(direct.has_value());
  EXPECT_EQ(direct->view(), large);
  EXPECT_THAT(multi->connector("big")->Exists(InnerOf(small)),
              IsOkAndHolds(false));
  // Written once; the error names the child.
  EXPECT_THAT(multi->Set(small, SharedBytes::Copy("other")),
              StatusIs(absl::StatusCode::kAlreadyExists, "child 'small'"));
  PROXYSTORE_ASSERT_OK(multi->Close(CloseOptions{.clear = true}));
}

TEST(MultiConnector, NewKeyWithoutAHintNeedsAChildWithoutSizeBounds) {
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"small", NewLocal(), SizePolicy(0, 1024)});
  entries.push_back({"large", NewLocal(), SizePolicy(1025, kMax)});
  // Takes every size, but only objects tagged "gpu".
  entries.push_back({"gpu", NewLocal(), SupersetTagPolicy("gpu")});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  EXPECT_THAT(multi->NewKey(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("size hint is needed"),
                                        HasSubstr("size_hint"))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key tagged,
                                  multi->NewKey({.superset_tags = {"gpu"}}));
  EXPECT_EQ(ChildOf(tagged), "gpu");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key hinted, multi->NewKey({.size_hint = 1}));
  EXPECT_EQ(ChildOf(hinted), "small");
  // A hint no policy admits fails as Put does.
  EXPECT_THAT(multi->NewKey({.size_hint = 5, .subset_tags = {"x"}}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "No connector policy was suitable"));
  PROXYSTORE_ASSERT_OK(multi->Close(CloseOptions{.clear = true}));
}

TEST(MultiConnector, ChildThatCannotDeferGivesItsUnimplementedWithItsName) {
  std::vector<MultiConnector::Entry> entries;
  entries.push_back(
      {"plain", std::make_unique<CountingConnector>(), SizePolicy(0, 10)});
  entries.push_back({"local", NewLocal(), Policy()});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  const auto unimplemented = StatusIs(
      absl::StatusCode::kUnimplemented,
      ::testing::AllOf(HasSubstr("child 'plain'"),
                       HasSubstr("connector \"counting\" cannot defer")));
  EXPECT_THAT(multi->NewKey({.size_hint = 3}), unimplemented);
  EXPECT_THAT(multi->Set(MultiKey{"plain", Key(NewObjectId())}.Encode(),
                         SharedBytes::Copy("v")),
              unimplemented);
  // The other child defers.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, multi->NewKey());
  EXPECT_EQ(ChildOf(key), "local");
  PROXYSTORE_EXPECT_OK(multi->Set(key, SharedBytes::Copy("v")));
}

TEST(MultiConnector, SetOfKeysOfUnknownDormantOrClosedChildrenIsAnError) {
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"local", NewLocal(), Policy()});
  std::vector<MultiConnector::DormantEntry> dormant;
  dormant.push_back({"away", {"local", {}}, Policy()});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto multi,
      MultiConnector::Create(std::move(entries), std::move(dormant)));
  const Key id(NewObjectId());
  EXPECT_THAT(
      multi->Set(MultiKey{"nope", id}.Encode(), SharedBytes::Copy("v")),
      StatusIs(absl::StatusCode::kInvalidArgument, "'nope' does not exist"));
  EXPECT_THAT(multi->Set(MultiKey{"away", id}.Encode(), SharedBytes::Copy("v")),
              StatusIs(absl::StatusCode::kFailedPrecondition, "dormant"));
  // A child key the child does not mint is the child's InvalidArgument.
  EXPECT_THAT(multi->Set(MultiKey{"local", Key("x y")}.Encode(),
                         SharedBytes::Copy("v")),
              StatusIs(absl::StatusCode::kInvalidArgument, "child 'local'"));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, multi->NewKey());
  PROXYSTORE_ASSERT_OK(multi->Close(CloseOptions{.clear = true}));
  // After Close, Set fails as Put does.
  const absl::Status put = multi->Put(SharedBytes::Copy("v")).status();
  const absl::Status set = multi->Set(key, SharedBytes::Copy("v"));
  EXPECT_FALSE(put.ok());
  EXPECT_EQ(set.code(), put.code()) << set << " vs " << put;
  EXPECT_THAT(set, StatusIs(put.code(), "child 'local'"));
}

// --- Configuration and dormant children -------------------------------------

TEST(MultiConnector, ConfigListsChildrenInOrder) {
  Policy p = SizePolicy(1, 2);
  p.subset_tags = {"t"};
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"zeta", NewLocal(), p});
  entries.push_back({"alpha", NewLocal(), Policy()});
  const ConnectorConfig zeta_config = entries[0].connector->Config();
  const ConnectorConfig alpha_config = entries[1].connector->Config();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  ConnectorConfig config = multi->Config();
  EXPECT_EQ(config, (ConnectorConfig{"multi",
                                     {},
                                     {{"zeta", zeta_config, p},
                                      {"alpha", alpha_config, Policy()}}}));
  EXPECT_THAT(multi->names(), ElementsAre("zeta", "alpha"));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  MakeConnector(config));
  EXPECT_EQ(clone->Config(), config);
  auto* multi_clone = dynamic_cast<MultiConnector*>(clone.get());
  ASSERT_NE(multi_clone, nullptr);
  EXPECT_THAT(multi_clone->names(), ElementsAre("zeta", "alpha"));
  ASSERT_NE(multi_clone->policy("zeta"), nullptr);
  EXPECT_EQ(*multi_clone->policy("zeta"), p);
  EXPECT_EQ(multi_clone->policy("nope"), nullptr);
}

TEST(MultiConnector, ManyChildrenKeepTheirOrderThroughConfig) {
  // Names in reverse order, so that no sorting can pass for the given order.
  std::vector<MultiConnector::Entry> entries;
  std::vector<std::string> names;
  for (int i = 0; i < 12; ++i) {
    names.push_back(absl::StrCat("c", 11 - i));
    entries.push_back({names.back(), NewLocal(), Policy()});
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto multi,
                                  MultiConnector::Create(std::move(entries)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      ConnectorConfig parsed,
      ConnectorConfig::Parse(multi->Config().Serialize()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  MakeConnector(parsed));
  EXPECT_EQ(dynamic_cast<MultiConnector&>(*clone).names(), names);
  // Equal priorities: the first given child takes puts, in the clone too.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, clone->Put(SharedBytes::Copy("x")));
  EXPECT_EQ(ChildOf(key), "c11");
}

TEST(MultiConnector, NestedConfigRoundTripsThroughItsWireForm) {
  // multi{outer-local, inner: multi{a: local, b: dormant file}}, with
  // policies that use every field.
  Policy full;
  full.priority = -3;
  full.host_patterns = {EscapeRegex(CurrentHostname()), "node-[0-9]+"};
  full.min_size_bytes = 1;
  full.max_size_bytes = 1 << 20;
  full.subset_tags = {"gpu", std::string("nul\0", 4)};
  full.superset_tags = {"cold"};
  Policy elsewhere;
  elsewhere.host_patterns = {"no-such-host-.*"};
  const ConnectorConfig dormant_file{
      "file", {{"directory", FreshDir("never")}, {"clear", "true"}}};
  const ConnectorConfig inner{
      "multi",
      {},
      {{"a", {"local", {{"namespace", NewObjectId()}}}, full},
       {"b", dormant_file, elsewhere}}};
  const ConnectorConfig outer{"multi",
                              {},
                              {{"outer-local",
                                {"local", {{"namespace", NewObjectId()}}},
                                PriorityPolicy(1)},
                               {"inner", inner, Policy()}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(outer));
  EXPECT_EQ(c->Config(), outer);
  const std::string wire = c->Config().Serialize();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig parsed,
                                  ConnectorConfig::Parse(wire));
  EXPECT_EQ(parsed, outer);
  EXPECT_EQ(parsed.Serialize(), wire);

  // The clone reaches the same data, through both levels.
  auto& multi = dynamic_cast<MultiConnector&>(*c);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key inner_key,
      multi.connector("inner")->Put(
          SharedBytes::Copy("deep"),
          PutOptions{.subset_tags = {"gpu"}, .superset_tags = {"cold"}}));
  const Key key = MultiKey{"inner", inner_key}.Encode();
  EXPECT_EQ(ChildOf(inner_key), "a");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  MakeConnector(parsed));
  EXPECT_EQ(clone->Config(), outer);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, clone->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), "deep");
  auto& inner_clone = dynamic_cast<MultiConnector&>(
      *dynamic_cast<MultiConnector&>(*clone).connector("inner"));
  EXPECT_TRUE(inner_clone.IsDormant("b"));
  EXPECT_FALSE(fs::exists(dormant_file.options.at("directory")));
}

ConnectorConfig DormantTestConfig(const std::string& here_ns,
                                  const std::string& elsewhere_dir) {
  Policy elsewhere = PriorityPolicy(100);  // Would win every put if active.
  elsewhere.host_patterns = {"no-such-host-.*"};
  Policy here;
  here.host_patterns = {EscapeRegex(CurrentHostname()), "no-such-host-.*"};
  return ConnectorConfig{
      "multi",
      {},
      {{"elsewhere", {"file", {{"directory", elsewhere_dir}}}, elsewhere},
       {"here", {"local", {{"namespace", here_ns}}}, here}}};
}

TEST(MultiConnector, ChildrenForOtherHostsAreDormant) {
  const std::string dir = FreshDir("dormant");
  const std::string ns = NewObjectId();
  const ConnectorConfig config = DormantTestConfig(ns, dir);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(config));
  auto& multi = dynamic_cast<MultiConnector&>(*c);
  EXPECT_TRUE(multi.IsDormant("elsewhere"));
  EXPECT_FALSE(multi.IsDormant("here"));
  EXPECT_FALSE(multi.IsDormant("nope"));
  EXPECT_EQ(multi.connector("elsewhere"), nullptr);
  ASSERT_NE(multi.connector("here"), nullptr);
  // Never instantiated: the file connector would have made its directory.
  EXPECT_FALSE(fs::exists(dir));

  // Puts avoid it, whatever the size.
  for (size_t n : {size_t{0}, size_t{10}, size_t{100000}}) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        Key key, c->Put(SharedBytes::Copy(std::string(n, 'x'))));
    EXPECT_EQ(ChildOf(key), "here");
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<Key> keys,
      c->PutBatch({SharedBytes::Copy("a"), SharedBytes::Copy("b")}));
  for (const Key& k : keys) EXPECT_EQ(ChildOf(k), "here");

  // Its keys are errors.
  const Key dormant_key = MultiKey{"elsewhere", Key(NewObjectId())}.Encode();
  EXPECT_THAT(c->Get(dormant_key),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "'elsewhere' is dormant"));
  EXPECT_THAT(c->Exists(dormant_key),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "'elsewhere' is dormant"));
  EXPECT_THAT(c->Evict(dormant_key),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "'elsewhere' is dormant"));
  EXPECT_THAT(c->GetBatch({keys[0], dormant_key}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "'elsewhere' is dormant"));

  // The round trip keeps the dormant child's config, in its place.
  EXPECT_EQ(c->Config(), config);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      ConnectorConfig parsed, ConnectorConfig::Parse(c->Config().Serialize()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  MakeConnector(parsed));
  EXPECT_EQ(clone->Config(), config);
  EXPECT_TRUE(dynamic_cast<MultiConnector&>(*clone).IsDormant("elsewhere"));
  // The clone reaches the active child's data.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, clone->Get(keys[1]));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), "b");

  // Closing skips the dormant child (nothing to close, nothing created).
  PROXYSTORE_ASSERT_OK(clone->Close(CloseOptions{.clear = false}));
  PROXYSTORE_ASSERT_OK(c->Close(CloseOptions{.clear = true}));
  EXPECT_FALSE(fs::exists(dir));
}

TEST(MultiConnector, DormantChildrenKeepTheirConfigsUnread) {
  // A dormant child is never made, so neither its kind nor its options need
  // to make sense here: Config() gives back exactly what came in.
  Policy elsewhere;
  elsewhere.host_patterns = {"no-such-host-.*"};
  const ConnectorConfig odd{
      "kind-not-linked-here",
      {{"x", "y"}, {"", std::string("\0\xff", 2)}},
      {{"grandchild", {"local", {{"bogus", "1"}}}, Policy()}}};
  const ConnectorConfig config{
      "multi",
      {},
      {{"here", {"local", {}}, Policy()}, {"far", odd, elsewhere}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(config));
  EXPECT_TRUE(dynamic_cast<MultiConnector&>(*c).IsDormant("far"));
  const ConnectorConfig got = c->Config();
  ASSERT_THAT(got.children, SizeIs(2));
  EXPECT_EQ(got.children[1], (ConnectorChild{"far", odd, elsewhere}));

  // Dormant entries given to Create come back the same way, after the
  // active ones.
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"active", NewLocal(), Policy()});
  std::vector<MultiConnector::DormantEntry> dormant;
  const ConnectorConfig dormant_config{"file", {{"directory", FreshDir()}}};
  dormant.push_back({"sleepy", dormant_config, elsewhere});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto multi,
      MultiConnector::Create(std::move(entries), std::move(dormant)));
  EXPECT_TRUE(multi->IsDormant("sleepy"));
  const ConnectorConfig created = multi->Config();
  ASSERT_THAT(created.children, SizeIs(2));
  EXPECT_EQ(created.children[0].name, "active");
  EXPECT_EQ(created.children[1],
            (ConnectorChild{"sleepy", dormant_config, elsewhere}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  MakeConnector(created));
  EXPECT_EQ(clone->Config(), created);
}

TEST(MultiConnector, MalformedConfigsAreInvalidArgumentNamingTheProblem) {
  const std::string dir = FreshDir("unused");
  const ConnectorConfig good = DormantTestConfig(NewObjectId(), dir);
  ASSERT_THAT(MakeConnector(good), IsOk());
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  auto with = [&](auto change) {
    ConnectorConfig c = good;
    change(c);
    return MakeConnector(c);
  };

  EXPECT_THAT(MakeConnector({"multi", {}}),
              StatusIs(kInvalid, "at least one child"));
  // Options are refused: everything a multi connector is lives in its
  // children.
  for (const char* option : {"color", "child.0.name", "child.0.config"}) {
    EXPECT_THAT(with([&](ConnectorConfig& c) { c.options[option] = "v"; }),
                StatusIs(kInvalid, absl::StrCat("unknown option \"", option)))
        << option;
  }
  EXPECT_THAT(with([](ConnectorConfig& c) { c.children[1].name = ""; }),
              StatusIs(kInvalid, "child 1 has an empty name"));
  EXPECT_THAT(
      with([](ConnectorConfig& c) { c.children[1].name = "elsewhere"; }),
      StatusIs(kInvalid, "'elsewhere' is used more than once"));
  EXPECT_THAT(with([](ConnectorConfig& c) {
                c.children[1].name =
                    std::string(MultiKey::kMaxNameSize + 1, 'n');
              }),
              StatusIs(kInvalid, "longer than 255 bytes"));
  EXPECT_THAT(with([](ConnectorConfig& c) {
                c.children[1].name = std::string(MultiKey::kMaxNameSize, 'n');
              }),
              IsOk());
  EXPECT_THAT(with([](ConnectorConfig& c) {
                c.children[1].policy.host_patterns = {"("};
              }),
              StatusIs(kInvalid, "child 'here': policy host pattern \"(\""));
  // A dormant child's bad policy is an error too.
  EXPECT_THAT(with([](ConnectorConfig& c) {
                c.children[0].policy.min_size_bytes = 2;
                c.children[0].policy.max_size_bytes = 1;
              }),
              StatusIs(kInvalid, "child 'elsewhere': policy min_size_bytes"));
  EXPECT_THAT(with([](ConnectorConfig& c) {
                c.children[1].config = {"nosuchkind", {}};
              }),
              StatusIs(kInvalid, "child 1 ('here'): unknown connector kind"));
  // A child's own option error names the child.
  EXPECT_THAT(with([](ConnectorConfig& c) {
                c.children[1].config.options["bogus"] = "1";
              }),
              StatusIs(kInvalid, "child 1 ('here')"));
  // Nothing was made for any of these (the file child is dormant anyway).
  EXPECT_FALSE(fs::exists(dir));
}

TEST(MultiConnector, OnlyMultiTakesChildren) {
  const ConnectorChild child{"c", {"local", {}}, Policy()};
  EXPECT_THAT(MakeConnector(ConnectorConfig{"local", {}, {child}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "\"local\" takes no children"));
  // Also as a child of a multi connector, which names the child.
  EXPECT_THAT(
      MakeConnector(ConnectorConfig{
          "multi",
          {},
          {{"parent", ConnectorConfig{"local", {}, {child}}, Policy()}}}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "child 0 ('parent'): connector \"local\" takes no "
               "children"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorKindTraits traits,
                                  GetConnectorKindTraits("multi"));
  EXPECT_TRUE(traits.has_children);
  EXPECT_TRUE(traits.location_options.empty());
}

TEST(MultiConnector, NestedMultiRoutesAndRoundTrips) {
  std::vector<MultiConnector::Entry> inner_entries;
  inner_entries.push_back({"a", NewLocal(), Policy()});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto inner, MultiConnector::Create(std::move(inner_entries)));
  std::vector<MultiConnector::Entry> entries;
  entries.push_back({"inner", std::move(inner), Policy()});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto outer,
                                  MultiConnector::Create(std::move(entries)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, outer->Put(SharedBytes::Copy("n")));
  EXPECT_EQ(ChildOf(key), "inner");
  EXPECT_EQ(ChildOf(InnerOf(key)), "a");
  const ConnectorConfig config = outer->Config();
  ASSERT_THAT(config.children, SizeIs(1));
  EXPECT_EQ(config.children[0].config.kind, "multi");
  ASSERT_THAT(config.children[0].config.children, SizeIs(1));
  EXPECT_EQ(config.children[0].config.children[0].name, "a");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig parsed,
                                  ConnectorConfig::Parse(config.Serialize()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  MakeConnector(parsed));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, clone->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), "n");
}

// --- Conformance ------------------------------------------------------------

// Objects up to 1 KB go to "local", larger ones to "file", so that the suite
// exercises both paths (its values range from 0 bytes to 10 MB). "file" has
// no size bound of its own ("local", first, takes the small objects): that
// makes it the child NewKey() without a size hint places keys in.
ConnectorTestParams LocalAndFileParams() {
  return {
      .name = "LocalSmallFileLarge",
      .make = []() -> absl::StatusOr<std::unique_ptr<Connector>> {
        PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<Connector> local,
                                    LocalConnector::FromConfig({"local", {}}));
        PROXYSTORE_ASSIGN_OR_RETURN(
            std::unique_ptr<Connector> file,
            FileConnector::FromConfig(
                {"file", {{"directory", FreshDir("conformance")}}}));
        std::vector<MultiConnector::Entry> entries;
        entries.push_back({"local", std::move(local), SizePolicy(0, 1024)});
        entries.push_back({"file", std::move(file), Policy()});
        PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<MultiConnector> multi,
                                    MultiConnector::Create(std::move(entries)));
        return std::unique_ptr<Connector>(std::move(multi));
      }};
}

PROXYSTORE_INSTANTIATE_CONNECTOR_CONFORMANCE(Multi, LocalAndFileParams());

// --- From the wire ----------------------------------------------------------

TEST(MultiFromTheWire, ActiveChildrenAreReducedAndDormantOnesCarriedUnread) {
  Policy dormant_policy;
  dormant_policy.host_patterns = {"no-such-host-[0-9]+"};
  const ConnectorConfig unlinked{"kind-not-linked-here", {{"x", "y"}}};
  const ConnectorConfig wire{
      "multi",
      {{"injected", "dropped"}},
      {{"f", {"file", {{"directory", "/srv/ps"}, {"clear", "true"}}}, Policy()},
       {"elsewhere", unlinked, dormant_policy}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig got,
                                  ReceiverConfig(wire, TrustPolicy::Default()));
  EXPECT_TRUE(got.options.empty());
  ASSERT_THAT(got.children, SizeIs(2));
  EXPECT_EQ(got.children[0].name, "f");
  EXPECT_EQ(got.children[0].config.options.at("directory"), "/srv/ps");
  EXPECT_EQ(got.children[0].config.options.at("clear"), "false");
  EXPECT_EQ(got.children[1],
            (ConnectorChild{"elsewhere", unlinked, dormant_policy}));

  // Only the active child's destination is judged.
  EXPECT_THAT(ReceiverConfig(
                  wire, TrustPolicy::DenyAll().AllowDestination("file:/srv")),
              IsOk());
  EXPECT_THAT(
      ReceiverConfig(wire, TrustPolicy::DenyAll().AllowDestination("file:/x")),
      StatusIs(absl::StatusCode::kPermissionDenied,
               HasSubstr("\"file:/srv/ps\"")));
}

TEST(MultiFromTheWire, ProxiesCarryEachChildReducedToItsLocation) {
  // An active "file" child and a "file" child dormant on this host: in the
  // proxy, both carry only their location ("directory"), never the
  // producer's "clear", and keep their names and policies.
  const std::string active_dir = FreshDir("proxy-active");
  const std::string dormant_dir = FreshDir("proxy-dormant");
  Policy elsewhere;
  elsewhere.priority = 100;
  elsewhere.host_patterns = {"no-such-host-.*"};
  const ConnectorConfig config{
      "multi",
      {},
      {{"here",
        {"file", {{"directory", active_dir}, {"clear", "true"}}},
        PriorityPolicy(1)},
       {"far",
        {"file", {{"directory", dormant_dir}, {"clear", "true"}}},
        elsewhere}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(config));
  ASSERT_TRUE(dynamic_cast<MultiConnector&>(*c).IsDormant("far"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create(absl::StrCat("multi-location-", NewObjectId()),
                    std::move(c)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> proxy,
                                  store->Proxy(std::string("located")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, proxy.Serialize());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(FactoryData data, FactoryData::Parse(wire));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::string active_canonical,
      trust_internal::CanonicalDirectory("file", active_dir));
  const ConnectorConfig expected{
      "multi",
      {},
      {{"here", {"file", {{"directory", active_dir}}}, PriorityPolicy(1)},
       {"far", {"file", {{"directory", dormant_dir}}}, elsewhere}}};
  EXPECT_EQ(data.store_config.connector, expected);
  ASSERT_NE(store->location(), nullptr);
  EXPECT_EQ(*store->location(), expected);
  EXPECT_THAT(LocationConfig(config), IsOkAndHolds(expected));
  // What the active child reaches is checked; the dormant one reaches
  // nothing here.
  EXPECT_THAT(
      ConnectorDestinations(config),
      IsOkAndHolds(ElementsAre(absl::StrCat("file:", active_canonical))));

  // The proxy resolves in a store made from that config.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> parsed,
                                  ParseProxy<std::string>(wire));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto value, parsed.Get());
  EXPECT_EQ(*value, "located");
  EXPECT_THAT(store->Close(), IsOk());
  EXPECT_FALSE(fs::exists(active_dir));
  EXPECT_FALSE(fs::exists(dormant_dir));
}

TEST(Policy, PrintsAsItsDebugString) {
  Policy p;
  p.priority = 3;
  p.subset_tags = {"gpu"};
  EXPECT_EQ(::testing::PrintToString(p), p.DebugString());
  EXPECT_EQ(p.DebugString(), "{priority: 3, subset_tags: [\"gpu\"]}");
}

}  // namespace
}  // namespace proxystore
