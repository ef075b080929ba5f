#include "proxystore/connectors/connector.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/hash/hash_testing.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/mutex.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------
// NewObjectId

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

TEST(NewObjectId, Is32LowercaseHexCharacters) {
  for (int i = 0; i < 100; ++i) {
    std::string id = NewObjectId();
    EXPECT_EQ(id.size(), 32u) << id;
    EXPECT_TRUE(IsLowerHex(id)) << id;
  }
}

TEST(NewObjectId, UniqueOverManyCalls) {
  absl::flat_hash_set<std::string> seen;
  constexpr int kCalls = 100000;
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(seen.insert(NewObjectId()).second) << "duplicate after " << i;
  }
  // Every hex digit shows up in every position: ids are not a counter.
  for (int pos : {0, 15, 16, 31}) {
    absl::flat_hash_set<char> digits;
    for (const std::string& id : seen) digits.insert(id[pos]);
    EXPECT_EQ(digits.size(), 16u) << "position " << pos;
  }
}

TEST(NewObjectId, UniqueAcrossThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 5000;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ids, t] {
      ids[t].reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) ids[t].push_back(NewObjectId());
    });
  }
  for (std::thread& th : threads) th.join();
  absl::flat_hash_set<std::string> all;
  for (const auto& v : ids) {
    for (const std::string& id : v) {
      EXPECT_EQ(id.size(), 32u);
      EXPECT_TRUE(all.insert(id).second) << "duplicate id " << id;
    }
  }
  EXPECT_EQ(all.size(), size_t{kThreads * kPerThread});
}

// ---------------------------------------------------------------------------
// ConnectorConfig

ConnectorConfig SampleConfig() {
  return ConnectorConfig{"file",
                         {{"directory", "/tmp/x"},
                          {"clear", "true"},
                          {"size", "-42"},
                          {"empty", ""},
                          {"binary", std::string("a\0b\xfe", 4)}}};
}

TEST(ConnectorConfig, GetStringReturnsValueOrFallback) {
  ConnectorConfig c = SampleConfig();
  EXPECT_THAT(c.GetString("directory"), IsOkAndHolds(std::string("/tmp/x")));
  EXPECT_THAT(c.GetString("empty", "fb"), IsOkAndHolds(std::string("")));
  EXPECT_THAT(c.GetString("missing", "fb"), IsOkAndHolds(std::string("fb")));
  EXPECT_THAT(c.GetString("missing"), IsOkAndHolds(std::string("")));
}

TEST(ConnectorConfig, GetIntParsesOrNamesTheBadOption) {
  ConnectorConfig c = SampleConfig();
  EXPECT_THAT(c.GetInt("size", 7), IsOkAndHolds(int64_t{-42}));
  EXPECT_THAT(c.GetInt("missing", 7), IsOkAndHolds(int64_t{7}));
  EXPECT_THAT(c.GetInt("directory", 7),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"directory\""), HasSubstr("file"),
                             HasSubstr("integer"))));
  EXPECT_THAT(c.GetInt("empty", 7),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"empty\""));
  ConnectorConfig overflow{"k", {{"n", "99999999999999999999999"}}};
  EXPECT_THAT(overflow.GetInt("n", 0),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"n\""));
  ConnectorConfig trailing{"k", {{"n", "12abc"}}};
  EXPECT_THAT(trailing.GetInt("n", 0),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"n\""));
}

TEST(ConnectorConfig, GetBoolParsesOrNamesTheBadOption) {
  ConnectorConfig c{"k",
                    {{"t", "true"},
                     {"f", "false"},
                     {"one", "1"},
                     {"zero", "0"},
                     {"bad", "yes"}}};
  EXPECT_THAT(c.GetBool("t", false), IsOkAndHolds(true));
  EXPECT_THAT(c.GetBool("f", true), IsOkAndHolds(false));
  EXPECT_THAT(c.GetBool("one", false), IsOkAndHolds(true));
  EXPECT_THAT(c.GetBool("zero", true), IsOkAndHolds(false));
  EXPECT_THAT(c.GetBool("missing", true), IsOkAndHolds(true));
  EXPECT_THAT(c.GetBool("bad", true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"bad\""), HasSubstr("yes"))));
}

TEST(ConnectorConfig, CheckKnownOptionsNamesTheFirstUnknownOption) {
  ConnectorConfig c{"local", {{"namespace", "n"}, {"typo", "x"}}};
  EXPECT_THAT(c.CheckKnownOptions({"namespace", "typo"}), IsOk());
  EXPECT_THAT(c.CheckKnownOptions({"namespace"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"typo\""), HasSubstr("local"),
                             HasSubstr("namespace"))));
  ConnectorConfig no_options{"local", {}};
  EXPECT_THAT(no_options.CheckKnownOptions({}), IsOk());
}

TEST(ConnectorConfig, SerializeParseRoundTrip) {
  for (const ConnectorConfig& c :
       {SampleConfig(), ConnectorConfig{"local", {}},
        ConnectorConfig{"x", {{"", "empty name"}}}}) {
    std::string wire = c.Serialize();
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig back,
                                    ConnectorConfig::Parse(wire));
    EXPECT_EQ(back, c) << c.DebugString();
  }
}

TEST(ConnectorConfig, ParseFromAnUnalignedCopyWorks) {
  // A config embedded at an odd offset of a bigger message.
  std::string wire = SampleConfig().Serialize();
  std::string shifted = "?" + wire;
  EXPECT_THAT(ConnectorConfig::Parse(absl::string_view(shifted).substr(1)),
              IsOkAndHolds(SampleConfig()));
}

TEST(ConnectorConfig, ParseOfEmptyOrGarbageIsDataLoss) {
  EXPECT_THAT(ConnectorConfig::Parse(""),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ConnectorConfig::Parse("not a flatbuffer at all"),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ConnectorConfig::Parse(std::string(64, '\0')),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ConnectorConfig::Parse(std::string(64, '\xff')),
              StatusIs(absl::StatusCode::kDataLoss));
  absl::BitGen gen(std::seed_seq{42});
  for (int i = 0; i < 2000; ++i) {
    std::string junk(absl::Uniform<size_t>(gen, 0, 200), '\0');
    for (char& ch : junk) ch = static_cast<char>(absl::Uniform<uint8_t>(gen));
    absl::StatusOr<ConnectorConfig> got = ConnectorConfig::Parse(junk);
    EXPECT_THAT(got, AnyOf(StatusIs(absl::StatusCode::kDataLoss),
                           StatusIs(absl::StatusCode::kInvalidArgument)));
  }
}

TEST(ConnectorConfig, ParseOfEveryTruncationIsDataLossOrLosesOnlyPadding) {
  const ConnectorConfig original = SampleConfig();
  std::string wire = original.Serialize();
  int rejected = 0;
  for (size_t n = 0; n < wire.size(); ++n) {
    // A fresh heap copy of exactly n bytes: ASan catches any overread.
    std::string prefix = wire.substr(0, n);
    absl::StatusOr<ConnectorConfig> got = ConnectorConfig::Parse(prefix);
    if (got.ok()) {
      // Only trailing alignment padding may be cut without consequence.
      EXPECT_EQ(*got, original) << "prefix of " << n << " bytes";
      EXPECT_GE(n, wire.size() - 8) << "prefix of " << n << " bytes";
    } else {
      ++rejected;
      EXPECT_THAT(got, StatusIs(absl::StatusCode::kDataLoss))
          << "prefix of " << n << " bytes";
    }
  }
  EXPECT_GE(rejected, static_cast<int>(wire.size()) - 8);
}

TEST(ConnectorConfig, ParseOfBitFlipsNeverCrashes) {
  std::string wire = SampleConfig().Serialize();
  for (size_t i = 0; i < wire.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = wire;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      // Either a (different) valid config or an error; never a crash.
      absl::StatusOr<ConnectorConfig> got = ConnectorConfig::Parse(bad);
      if (!got.ok()) {
        EXPECT_THAT(got, AnyOf(StatusIs(absl::StatusCode::kDataLoss),
                               StatusIs(absl::StatusCode::kInvalidArgument)));
      }
    }
  }
}

TEST(ConnectorConfig, DebugStringShowsKindAndOptions) {
  ConnectorConfig c{"file", {{"a", "1"}, {"b", "2"}}};
  EXPECT_EQ(c.DebugString(), "file{a=1, b=2}");
  ConnectorConfig no_options{"local", {}};
  EXPECT_EQ(no_options.DebugString(), "local{}");
}

// ---------------------------------------------------------------------------
// A minimal in-memory connector used to test the registry and the default
// batch operations of the base class. `fail_put_at` makes the n-th DoPut
// (0-based, counted over the connector's lifetime) fail.
class FakeConnector : public Connector {
 public:
  explicit FakeConnector(int fail_put_at = -1) : fail_put_at_(fail_put_at) {}

  absl::string_view kind() const override { return "fake"; }
  ConnectorConfig Config() const override { return {"fake", {}}; }

  int puts() const {
    MutexLock lock(mu_);
    return puts_;
  }
  int evicts() const {
    MutexLock lock(mu_);
    return evicts_;
  }
  size_t size() const {
    MutexLock lock(mu_);
    return data_.size();
  }

 protected:
  absl::StatusOr<Key> DoPut(SharedBytes data, const PutOptions&) override {
    MutexLock lock(mu_);
    if (puts_++ == fail_put_at_) {
      return absl::ResourceExhaustedError("fake: put failed on purpose");
    }
    Key key(absl::StrCat("k", puts_));
    data_[key] = std::move(data);
    return key;
  }
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override {
    MutexLock lock(mu_);
    if (key.id() == "poison") return absl::InternalError("fake: poisoned key");
    auto it = data_.find(key);
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }
  absl::StatusOr<bool> DoExists(const Key& key) override {
    MutexLock lock(mu_);
    return data_.contains(key);
  }
  absl::Status DoEvict(const Key& key) override {
    MutexLock lock(mu_);
    ++evicts_;
    data_.erase(key);
    return absl::OkStatus();
  }
  absl::Status DoClose(const CloseOptions&) override {
    return absl::OkStatus();
  }

 private:
  mutable Mutex mu_;
  const int fail_put_at_;
  int puts_ ABSL_GUARDED_BY(mu_) = 0;
  int evicts_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<Key, SharedBytes> data_ ABSL_GUARDED_BY(mu_);
};

std::vector<SharedBytes> Items(std::initializer_list<const char*> items) {
  std::vector<SharedBytes> out;
  for (const char* s : items) out.push_back(SharedBytes::Copy(s));
  return out;
}

TEST(ConnectorDefaults, PutBatchKeepsOrder) {
  FakeConnector c;
  std::vector<SharedBytes> items = Items({"zero", "one", "two", ""});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys, c.PutBatch(items));
  ASSERT_EQ(keys.size(), 4u);
  for (size_t i = 0; i < keys.size(); ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                    c.Get(keys[i]));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->view(), items[i].view()) << "item " << i;
  }
}

TEST(ConnectorDefaults, PutBatchOfNothingIsEmpty) {
  FakeConnector c;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> keys, c.PutBatch({}));
  EXPECT_TRUE(keys.empty());
  EXPECT_EQ(c.puts(), 0);
}

TEST(ConnectorDefaults, FailingPutMidBatchUndoesEarlierPuts) {
  FakeConnector c(/*fail_put_at=*/2);
  EXPECT_THAT(c.PutBatch(Items({"a", "b", "c", "d"})),
              StatusIs(absl::StatusCode::kResourceExhausted, "on purpose"));
  EXPECT_EQ(c.puts(), 3);    // Stopped at the failing one.
  EXPECT_EQ(c.evicts(), 2);  // Both earlier puts undone.
  EXPECT_EQ(c.size(), 0u);
  EXPECT_THAT(c.Exists(Key("k1")), IsOkAndHolds(false));
  EXPECT_THAT(c.Exists(Key("k2")), IsOkAndHolds(false));
}

TEST(ConnectorDefaults, FailingFirstPutEvictsNothing) {
  FakeConnector c(/*fail_put_at=*/0);
  EXPECT_THAT(c.PutBatch(Items({"a", "b"})),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(c.evicts(), 0);
  EXPECT_EQ(c.size(), 0u);
}

TEST(ConnectorDefaults, GetBatchKeepsOrderWithMissingKeys) {
  FakeConnector c;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key a, c.Put(SharedBytes::Copy("A")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key b, c.Put(SharedBytes::Copy("B")));
  std::vector<Key> keys = {b, Key("missing"), a, Key("also-missing"), b};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::optional<SharedBytes>> got,
                                  c.GetBatch(keys));
  ASSERT_EQ(got.size(), keys.size());
  ASSERT_TRUE(got[0].has_value());
  EXPECT_EQ(got[0]->view(), "B");
  EXPECT_FALSE(got[1].has_value());
  ASSERT_TRUE(got[2].has_value());
  EXPECT_EQ(got[2]->view(), "A");
  EXPECT_FALSE(got[3].has_value());
  ASSERT_TRUE(got[4].has_value());
  EXPECT_EQ(got[4]->view(), "B");

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto none, c.GetBatch({}));
  EXPECT_TRUE(none.empty());
}

TEST(ConnectorDefaults, GetBatchPropagatesAnError) {
  FakeConnector c;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key a, c.Put(SharedBytes::Copy("A")));
  EXPECT_THAT(c.GetBatch({a, Key("poison"), a}),
              StatusIs(absl::StatusCode::kInternal, "poisoned"));
}

// ---------------------------------------------------------------------------
// Registry. Kinds are process-global, so each test uses its own kind names.

ConnectorFactory FakeFactory() {
  return
      [](const ConnectorConfig&) -> absl::StatusOr<std::unique_ptr<Connector>> {
        return std::make_unique<FakeConnector>();
      };
}

TEST(Registry, RegisterAndMake) {
  ASSERT_THAT(RegisterConnectorKind("regtest", FakeFactory()), IsOk());
  EXPECT_THAT(RegisteredConnectorKinds(), ::testing::Contains("regtest"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector({"regtest", {}}));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->kind(), "fake");
}

TEST(Registry, FactoryReceivesTheConfigAndItsErrorsPropagate) {
  ASSERT_THAT(
      RegisterConnectorKind("regtestconfig",
                            [](const ConnectorConfig& config)
                                -> absl::StatusOr<std::unique_ptr<Connector>> {
                              PROXYSTORE_RETURN_IF_ERROR(
                                  config.CheckKnownOptions({"ok"}));
                              return std::make_unique<FakeConnector>();
                            }),
      IsOk());
  EXPECT_THAT(MakeConnector({"regtestconfig", {{"ok", "1"}}}), IsOk());
  EXPECT_THAT(MakeConnector({"regtestconfig", {{"bad", "1"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"bad\""));
}

TEST(Registry, DuplicateIsAlreadyExists) {
  ASSERT_THAT(RegisterConnectorKind("regtestdup", FakeFactory()), IsOk());
  EXPECT_THAT(RegisterConnectorKind("regtestdup", FakeFactory()),
              StatusIs(absl::StatusCode::kAlreadyExists, "regtestdup"));
  // Spelling variants are the same kind.
  EXPECT_THAT(RegisterConnectorKind("RegTestDup", FakeFactory()),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(RegisterConnectorKind("RegTestDupConnector", FakeFactory()),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST(Registry, EmptyKindOrNullFactoryIsInvalidArgument) {
  EXPECT_THAT(RegisterConnectorKind("", FakeFactory()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RegisterConnectorKind("regtestnull", nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MakeConnector({"regtestnull", {}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Registry, LookupIsCaseInsensitiveAndIgnoresConnectorSuffix) {
  ASSERT_THAT(RegisterConnectorKind("RegTestCase", FakeFactory()), IsOk());
  // Stored normalized.
  EXPECT_THAT(RegisteredConnectorKinds(), ::testing::Contains("regtestcase"));
  for (const char* spelling :
       {"regtestcase", "REGTESTCASE", "RegTestCase", "RegTestCaseConnector",
        "regtestcaseconnector", "REGTESTCASECONNECTOR"}) {
    EXPECT_THAT(MakeConnector({spelling, {}}), IsOk()) << spelling;
  }
  // "Connector" alone is not stripped to an empty kind.
  EXPECT_THAT(MakeConnector({"Connector", {}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Registry, UnknownKindIsInvalidArgumentListingKinds) {
  ASSERT_THAT(RegisterConnectorKind("regtestlisted", FakeFactory()), IsOk());
  EXPECT_THAT(
      MakeConnector({"nosuchkind", {}}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("\"nosuchkind\""), HasSubstr("regtestlisted"))));
  EXPECT_THAT(MakeConnector({"", {}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Registry, KindsAreSorted) {
  ASSERT_THAT(RegisterConnectorKind("regtestsort_b", FakeFactory()), IsOk());
  ASSERT_THAT(RegisterConnectorKind("regtestsort_a", FakeFactory()), IsOk());
  std::vector<std::string> kinds = RegisteredConnectorKinds();
  EXPECT_TRUE(std::is_sorted(kinds.begin(), kinds.end()));
}

TEST(Registry, ConcurrentRegistrationAndLookup) {
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &results] {
      // Everyone races to register the same kind; exactly one wins.
      results[t] = RegisterConnectorKind("regtestrace", FakeFactory());
      for (int i = 0; i < 50; ++i) {
        (void)MakeConnector({"regtestrace", {}});
        (void)RegisteredConnectorKinds();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  int ok = 0;
  for (const absl::Status& s : results) {
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kAlreadyExists));
    }
  }
  EXPECT_EQ(ok, 1);
  EXPECT_THAT(MakeConnector({"regtestrace", {}}), IsOk());
}

// Registration through the static registrar macro, as connector .cc files do.
PROXYSTORE_REGISTER_CONNECTOR(
    "RegTestStatic",
    [](const ConnectorConfig&) -> absl::StatusOr<std::unique_ptr<Connector>> {
      return std::make_unique<FakeConnector>();
    });

TEST(Registry, StaticRegistrarRegistersBeforeMain) {
  EXPECT_THAT(RegisteredConnectorKinds(), ::testing::Contains("regteststatic"));
  EXPECT_THAT(MakeConnector({"RegTestStaticConnector", {}}), IsOk());
}

TEST(NewObjectIdFork, AForkedChildDoesNotRepeatTheParentsIds) {
  (void)NewObjectId();  // Seed this thread's generator before the fork.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string id = NewObjectId();
    ssize_t n = write(fds[1], id.data(), id.size());
    _exit(n == static_cast<ssize_t>(id.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string parent_id = NewObjectId();
  std::string child_id(32, '\0');
  ASSERT_EQ(read(fds[0], child_id.data(), child_id.size()), 32);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_NE(parent_id, child_id);
}

TEST(ConnectorConfig, PrintsAsItsDebugString) {
  ConnectorConfig c{"file", {{"directory", "/d"}}};
  EXPECT_EQ(::testing::PrintToString(c), c.DebugString());
  EXPECT_THAT(::testing::PrintToString(c), ::testing::HasSubstr("/d"));
}

}  // namespace
}  // namespace proxystore
