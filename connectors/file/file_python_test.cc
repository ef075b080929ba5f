// The "file" connector's "proxystore-python" layout: what Python ProxyStore
// 1.0's FileConnector reads and writes (an object file and an empty
// `<id>.ready` marker). The first half checks the layout on disk and needs no
// Python; the second runs the real Python FileConnector on the same
// directory (testing/python_proxystore.h) and skips if it cannot be imported.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/file/file_connector.h"
#include "proxystore/connectors/file/file_test_util.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/connector_conformance.h"
#include "proxystore/testing/python_proxystore.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

namespace fs = std::filesystem;
using ::proxystore::file_test::FreshDir;
using ::proxystore::file_test::ListDir;
using ::proxystore::file_test::ReadWholeFile;
using ::proxystore::testing::ConnectorTestParams;
using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

constexpr char kReady[] = ".ready";

ConnectorConfig PythonLayoutConfig(const std::string& dir) {
  return ConnectorConfig{"file",
                         {{"directory", dir}, {"layout", "proxystore-python"}}};
}

void WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Bytes both languages make: ((i * 131) >> 3) & 0xff.
std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(((i * 131) >> 3));
  return s;
}

// str(uuid.uuid4()): 8-4-4-4-12 lowercase hex, version 4, variant 10xx.
bool IsUuid4(absl::string_view id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (c == '-')) return false;
    if (!dash && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return id[14] == '4' && absl::StrContains("89ab", id[19]);
}

std::optional<std::string> GetString(Connector& c, const Key& key) {
  absl::StatusOr<std::optional<SharedBytes>> got = c.Get(key);
  EXPECT_THAT(got, IsOk()) << key;
  if (!got.ok() || !got->has_value()) return std::nullopt;
  return std::string((*got)->view());
}

// The whole conformance suite in the Python layout, through both read paths.
ConnectorTestParams PythonLayoutParams(std::string name,
                                       int64_t mmap_min_size) {
  return {
      .name = std::move(name),
      .make = [mmap_min_size]() -> absl::StatusOr<std::unique_ptr<Connector>> {
        ConnectorConfig config = PythonLayoutConfig(FreshDir("conf"));
        config.options["mmap_min_size"] = absl::StrCat(mmap_min_size);
        return FileConnector::FromConfig(config);
      }};
}

PROXYSTORE_INSTANTIATE_CONNECTOR_CONFORMANCE(
    FilePythonLayout,
    PythonLayoutParams("Default", FileConnector::kDefaultMmapMinSize),
    PythonLayoutParams("AlwaysMmap", 0));

class PythonLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir("layout");
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        connector_, FileConnector::Create(PythonLayoutConfig(dir_)));
  }
  void TearDown() override {
    if (connector_ != nullptr) {
      EXPECT_THAT(connector_->Close({.clear = true}), IsOk());
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  FileConnector& connector() { return *connector_; }
  std::string PathOf(absl::string_view id) {
    return absl::StrCat(dir_, "/", id);
  }
  std::string MarkerOf(absl::string_view id) {
    return absl::StrCat(dir_, "/", id, kReady);
  }

  std::string dir_;
  std::unique_ptr<FileConnector> connector_;
};

TEST_F(PythonLayoutTest, PutWritesTheObjectAndAnEmptyMarkerUnderAPythonId) {
  EXPECT_EQ(connector().layout(), FileConnector::Layout::kProxyStorePython);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy("hello")));
  EXPECT_TRUE(IsUuid4(key.id())) << key.id();
  EXPECT_THAT(ListDir(dir_),
              UnorderedElementsAre(key.id(), absl::StrCat(key.id(), kReady)));
  EXPECT_EQ(ReadWholeFile(PathOf(key.id())), "hello");
  EXPECT_EQ(ReadWholeFile(MarkerOf(key.id())), "");
  for (const std::string& path : {PathOf(key.id()), MarkerOf(key.id())}) {
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_TRUE(S_ISREG(st.st_mode)) << path;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
  }
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(true));
  EXPECT_EQ(GetString(connector(), key), "hello");
  // PutParts and the empty object take the same path.
  const absl::string_view parts[] = {"ab", "", "cd"};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key joined, connector().PutParts(parts));
  EXPECT_TRUE(fs::exists(MarkerOf(joined.id())));
  EXPECT_EQ(GetString(connector(), joined), "abcd");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key empty,
                                  connector().Put(SharedBytes::Copy("")));
  EXPECT_EQ(GetString(connector(), empty), "");
}

TEST_F(PythonLayoutTest, NoMarkerWhileTheObjectIsBeingWritten) {
  const std::string value = Pattern(100'000);
  bool checked = false;
  FileConnector::TestHooks hooks;
  hooks.max_io_chunk = 4096;
  hooks.after_write = [&](const Key& key, const std::string& temp,
                          size_t written) {
    if (written != 4096) return;
    checked = true;
    // Only this writer's temporary is there: no object, no marker.
    EXPECT_THAT(ListDir(dir_), ElementsAre(fs::path(temp).filename().string()));
    EXPECT_FALSE(absl::StrContains(temp, key.id())) << temp;
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::CreateForTesting(PythonLayoutConfig(dir_),
                                      std::move(hooks)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy(value)));
  EXPECT_TRUE(checked);
  EXPECT_THAT(ListDir(dir_),
              UnorderedElementsAre(key.id(), absl::StrCat(key.id(), kReady)));
  EXPECT_EQ(GetString(*c, key), value);
  PROXYSTORE_ASSERT_OK(c->Close({.clear = false}));
}

TEST_F(PythonLayoutTest, AnObjectWithoutItsMarkerReadsAsMissing) {
  // Python's set writes the file in place, then the marker: until then the
  // file holds a prefix, which must never be read.
  const std::string id = "0f8fad5b-d9cb-469f-a165-70867728950e";
  const Key key(id);
  WriteFile(PathOf(id), "hel");
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(false));
  EXPECT_EQ(GetString(connector(), key), std::nullopt);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      GetIntoResult into,
      connector().GetInto(key, [](const ObjectReader&) -> absl::StatusOr<bool> {
        ADD_FAILURE() << "fn called for an unmarked object";
        return true;
      }));
  EXPECT_FALSE(into.found);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::optional<SharedBytes>> batch,
                                  connector().GetBatch({key}));
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_FALSE(batch[0].has_value());
  EXPECT_THAT(connector().WaitFor(key, absl::ZeroDuration()),
              IsOkAndHolds(false));
  // The name is taken (its writer may still be writing): Set leaves it.
  EXPECT_THAT(connector().Set(key, SharedBytes::Copy("mine")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(ReadWholeFile(PathOf(id)), "hel");
  // The writer finishes: the whole object, then the marker.
  WriteFile(PathOf(id), "hello");
  WriteFile(MarkerOf(id), "");
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(true));
  EXPECT_EQ(GetString(connector(), key), "hello");
  EXPECT_THAT(connector().WaitFor(key, absl::ZeroDuration()),
              IsOkAndHolds(true));
}

TEST_F(PythonLayoutTest, AMarkerWithoutItsObjectReadsAsMissing) {
  // What a Python evict leaves between its two removals.
  const std::string id = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed";
  const Key key(id);
  WriteFile(MarkerOf(id), "");
  EXPECT_EQ(GetString(connector(), key), std::nullopt);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      GetIntoResult into,
      connector().GetInto(key, [](const ObjectReader&) -> absl::StatusOr<bool> {
        return true;
      }));
  EXPECT_FALSE(into.found);
  // Exists is Python's: the marker alone.
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(true));
  PROXYSTORE_ASSERT_OK(connector().Evict(key));
  EXPECT_THAT(ListDir(dir_), IsEmpty());
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(false));
}

TEST_F(PythonLayoutTest, EvictRemovesTheMarkerAndTheObject) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy("x")));
  PROXYSTORE_ASSERT_OK(connector().Evict(key));
  EXPECT_THAT(ListDir(dir_), IsEmpty());
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(false));
  PROXYSTORE_ASSERT_OK(connector().Evict(key));
  // An object Python wrote, under a name of the user's choosing.
  WriteFile(PathOf("results_2024.bin"), "data");
  WriteFile(MarkerOf("results_2024.bin"), "");
  const Key named("results_2024.bin");
  EXPECT_EQ(GetString(connector(), named), "data");
  PROXYSTORE_ASSERT_OK(connector().Evict(named));
  EXPECT_THAT(ListDir(dir_), IsEmpty());
  // The key is free again.
  PROXYSTORE_ASSERT_OK(connector().Set(named, SharedBytes::Copy("again")));
  EXPECT_EQ(GetString(connector(), named), "again");
}

TEST_F(PythonLayoutTest, NewKeyMintsPythonIdsAndSetWritesObjectThenMarker) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, connector().NewKey());
  EXPECT_TRUE(IsUuid4(key.id())) << key.id();
  EXPECT_THAT(ListDir(dir_), IsEmpty());
  EXPECT_THAT(connector().WaitFor(key, absl::ZeroDuration()),
              IsOkAndHolds(false));
  const absl::string_view parts[] = {"se", "t"};
  PROXYSTORE_ASSERT_OK(connector().SetParts(key, parts));
  EXPECT_THAT(ListDir(dir_),
              UnorderedElementsAre(key.id(), absl::StrCat(key.id(), kReady)));
  EXPECT_EQ(GetString(connector(), key), "set");
  EXPECT_THAT(connector().Set(key, SharedBytes::Copy("again")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(GetString(connector(), key), "set");
  // Python FileKeys other than uuid4s are accepted too.
  for (const std::string& id :
       {std::string("my-object_1.bin"), std::string("A"), NewObjectId(),
        std::string("0F8FAD5B-D9CB-469F-A165-70867728950E"),
        std::string(FileConnector::kMaxPythonObjectName, 'x')}) {
    PROXYSTORE_EXPECT_OK(connector().Set(Key(id), SharedBytes::Copy(id))) << id;
    EXPECT_EQ(GetString(connector(), Key(id)), id);
  }
}

TEST_F(PythonLayoutTest, WaitForWakesWhenAPythonStyleWriterAddsTheMarker) {
  const Key key("6fa459ea-ee8a-4ca4-894e-db77e160355e");
  absl::StatusOr<bool> woke = false;
  std::thread waiter(
      [&] { woke = connector().WaitFor(key, absl::Minutes(5)); });
  // Python's order: the file, written in place, then the marker.
  WriteFile(PathOf(key.id()), "late");
  WriteFile(MarkerOf(key.id()), "");
  waiter.join();
  EXPECT_THAT(woke, IsOkAndHolds(true));
  EXPECT_EQ(GetString(connector(), key), "late");
}

TEST_F(PythonLayoutTest, HostileIdsAreRefusedBeforeAnyFileIsTouched) {
  const std::string outside = FreshDir("outside");
  ASSERT_TRUE(fs::create_directories(outside));
  const std::string escape =
      absl::StrCat("../", fs::path(outside).filename().string(), "/x");
  const std::vector<std::string> hostile = {
      "",
      ".",
      "..",
      "../escape",
      escape,
      "a/b",
      "/etc/passwd",
      ".hidden",
      absl::StrCat(".", NewObjectId(), ".tmp"),
      "x.ready",
      absl::StrCat(NewObjectId(), kReady),
      std::string("a\0b", 3),
      "x y",
      "a\nb",
      "tab\t",
      "back\\slash",
      "na\xc3\xafve",
      "*",
      std::string(FileConnector::kMaxPythonObjectName + 1, 'x')};
  for (const std::string& id : hostile) {
    const Key key(id);
    const std::string shown = absl::CHexEscape(id);
    EXPECT_THAT(connector().Get(key),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("proxystore-python")))
        << shown;
    EXPECT_THAT(
        connector().GetInto(
            key,
            [](const ObjectReader&) -> absl::StatusOr<bool> { return true; }),
        StatusIs(absl::StatusCode::kInvalidArgument))
        << shown;
    EXPECT_THAT(connector().Exists(key),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << shown;
    EXPECT_THAT(connector().Evict(key),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << shown;
    EXPECT_THAT(connector().Set(key, SharedBytes::Copy("v")),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << shown;
    EXPECT_THAT(connector().WaitFor(key, absl::ZeroDuration()),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << shown;
    EXPECT_THAT(connector().GetBatch({key}),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << shown;
  }
  EXPECT_THAT(ListDir(dir_), IsEmpty());
  EXPECT_THAT(ListDir(outside), IsEmpty());
  fs::remove_all(outside);
}

TEST_F(PythonLayoutTest, AMarkerPlantedAsALinkIsNeverFollowed) {
  const std::string outside = FreshDir("target");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, connector().NewKey());
  ASSERT_EQ(::symlink(outside.c_str(), MarkerOf(key.id()).c_str()), 0);
  const absl::Status set = connector().Set(key, SharedBytes::Copy("v"));
  EXPECT_FALSE(set.ok());
  EXPECT_THAT(set.message(), HasSubstr("cannot create marker"));
  EXPECT_FALSE(fs::exists(outside));
  // The object taken back: only the planted link is left.
  EXPECT_THAT(ListDir(dir_),
              UnorderedElementsAre(absl::StrCat(key.id(), kReady)));
  fs::remove(MarkerOf(key.id()));
}

TEST_F(PythonLayoutTest, ClearRemovesObjectsAndMarkersAndNothingElse) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key a,
                                  connector().Put(SharedBytes::Copy("a")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key b, connector().NewKey());
  PROXYSTORE_ASSERT_OK(connector().Set(b, SharedBytes::Copy("b")));
  // Python's objects: a named one, an unmarked uuid4 file (a writer that
  // died before its marker), a lone marker (an evict cut short).
  WriteFile(PathOf("named.bin"), "n");
  WriteFile(MarkerOf("named.bin"), "");
  WriteFile(PathOf("9b2d5b0c-58a4-4c8e-8d52-2f1f6a3b9c11"), "partial");
  WriteFile(MarkerOf("c2a7b9e8-4f7b-4c1d-9a3e-5d6c7b8a9f00"), "");
  // A dead writer's temporary.
  WriteFile(absl::StrCat(dir_, "/.", NewObjectId(), ".tmp"), "t");
  // Not the store's: kept.
  const std::vector<std::string> foreign = {
      "notes.txt", ".bashrc",        NewObjectId(), "x.ready.bak",
      ".ready",    "bad name.ready", "keep.me",     ".stray.tmp"};
  for (const std::string& name : foreign) WriteFile(PathOf(name), name);
  PROXYSTORE_ASSERT_OK(connector().Close({.clear = true}));
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAreArray(foreign));
  for (const std::string& name : foreign) {
    EXPECT_EQ(ReadWholeFile(PathOf(name)), name);
  }
  for (const std::string& name : foreign) fs::remove(PathOf(name));
  PROXYSTORE_ASSERT_OK(connector().Close({.clear = true}));
  EXPECT_FALSE(fs::exists(dir_));
  (void)a;
}

TEST_F(PythonLayoutTest, TheLayoutTravelsInTheConfigAndThroughProxies) {
  const ConnectorConfig config = connector().Config();
  EXPECT_EQ(config.options.at("layout"), "proxystore-python");
  EXPECT_EQ(config.options.size(), 6u);
  // The default layout is not spelled out: native configs are unchanged.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> native,
      FileConnector::Create({"file", {{"directory", FreshDir("native")}}}));
  EXPECT_EQ(native->layout(), FileConnector::Layout::kNative);
  EXPECT_FALSE(native->Config().options.contains("layout"));
  PROXYSTORE_ASSERT_OK(native->Close());

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy("v")));
  const std::string unmarked = "3f2b8c1e-7d4a-4e6b-9c5d-1a2b3c4d5e6f";
  WriteFile(PathOf(unmarked), "half");
  // Made from Config(), from the serialized config, and from a proxy's
  // (location only, then the receiver's defaults): all read markers.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig parsed,
                                  ConnectorConfig::Parse(config.Serialize()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig location,
                                  LocationConfig(config));
  EXPECT_EQ(location, PythonLayoutConfig(dir_));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      ConnectorConfig receiver, ReceiverConfig(config, TrustPolicy::Default()));
  EXPECT_EQ(receiver.options.at("layout"), "proxystore-python");
  std::vector<std::unique_ptr<Connector>> clones;
  for (const ConnectorConfig& c : {config, parsed}) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                    MakeConnector(c));
    clones.push_back(std::move(clone));
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> received,
                                  MakeConnectorFromWire(config));
  clones.push_back(std::move(received));
  for (const std::unique_ptr<Connector>& clone : clones) {
    EXPECT_EQ(clone->Config().options.at("layout"), "proxystore-python");
    EXPECT_EQ(GetString(*clone, key), "v");
    EXPECT_EQ(GetString(*clone, Key(unmarked)), std::nullopt);
    EXPECT_THAT(clone->Exists(Key(unmarked)), IsOkAndHolds(false));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key minted, clone->NewKey());
    EXPECT_TRUE(IsUuid4(minted.id())) << minted.id();
    PROXYSTORE_EXPECT_OK(clone->Close({.clear = false}));
  }
  // A receiver cannot switch a proxy's layout: it is a location option.
  EXPECT_THAT(SetReceiverOptions("file", {{"layout", "native"}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PythonLayoutOptionTest, UnknownLayoutsAreInvalidArgument) {
  for (const char* layout : {"", "python", "Proxystore-Python", "NATIVE"}) {
    EXPECT_THAT(
        FileConnector::Create(
            {"file", {{"directory", FreshDir("bad")}, {"layout", layout}}}),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"layout\"")))
        << layout;
  }
  // The native layout, spelled out, is the default one.
  const std::string dir = FreshDir("native");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::Create(
          {"file", {{"directory", dir}, {"layout", "native"}}}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("n")));
  EXPECT_THAT(ListDir(dir), ElementsAre(key.id()));
  EXPECT_THAT(c->Get(Key("0f8fad5b-d9cb-469f-a165-70867728950e")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  PROXYSTORE_ASSERT_OK(c->Close());
}

// --- With the real Python ProxyStore ------------------------------------

// One Python FileConnector on argv[1]; each further argument is one
// operation, and prints one line. Bytes travel as hex, objects as
// "hex:<bytes>" or "None".
constexpr char kPythonScript[] = R"py(
import sys
from proxystore.connectors.file import FileConnector, FileKey

def show(v):
    return 'None' if v is None else 'hex:' + bytes(v).hex()

def pattern(n):
    return bytes(((i * 131) >> 3) & 0xff for i in range(n))

c = FileConnector(sys.argv[1], clear=False)
for cmd in sys.argv[2:]:
    op, _, arg = cmd.partition(':')
    if op == 'put':
        print(c.put(bytes.fromhex(arg)).filename)
    elif op == 'put_pattern':
        print(c.put(pattern(int(arg))).filename)
    elif op == 'is_pattern':
        key, _, n = arg.partition('=')
        v = c.get(FileKey(key))
        print(v is not None and bytes(v) == pattern(int(n)))
    elif op == 'put_batch':
        objs = [bytes.fromhex(x) for x in arg.split(',')]
        print(','.join(k.filename for k in c.put_batch(objs)))
    elif op == 'get':
        print(show(c.get(FileKey(arg))))
    elif op == 'get_batch':
        keys = [FileKey(k) for k in arg.split(',')]
        print(','.join(show(v) for v in c.get_batch(keys)))
    elif op == 'exists':
        print(c.exists(FileKey(arg)))
    elif op == 'evict':
        c.evict(FileKey(arg))
        print('evicted')
    elif op == 'new_key':
        print(c.new_key().filename)
    elif op == 'set':
        key, _, data = arg.partition('=')
        c.set(FileKey(key), bytes.fromhex(data))
        print('set')
    else:
        raise SystemExit('unknown operation ' + repr(cmd))
)py";

std::string Hex(absl::string_view bytes) {
  return absl::BytesToHexString(bytes);
}
std::string Shown(absl::string_view bytes) {
  return absl::StrCat("hex:", Hex(bytes));
}

class PythonInteropTest : public PythonLayoutTest {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> python = testing::PythonProxyStoreDir();
    if (!python.ok()) {
      GTEST_SKIP() << "Python ProxyStore is not available, so the tests "
                      "against it are skipped: "
                   << python.status().message();
    }
    PythonLayoutTest::SetUp();
  }

  // Runs the operations in one Python process; one output line each.
  absl::StatusOr<std::vector<std::string>> Python(
      std::vector<std::string> operations) {
    std::vector<std::string> args = {dir_};
    args.insert(args.end(), operations.begin(), operations.end());
    PROXYSTORE_ASSIGN_OR_RETURN(std::string out,
                                testing::RunPython(kPythonScript, args));
    std::vector<std::string> lines = absl::StrSplit(out, '\n');
    if (lines.empty() || !lines.back().empty()) {
      return absl::InternalError(absl::StrCat("unterminated output: ", out));
    }
    lines.pop_back();
    if (lines.size() != operations.size()) {
      return absl::InternalError(
          absl::StrCat("expected ", operations.size(), " lines, got: ", out));
    }
    return lines;
  }
};

TEST_F(PythonInteropTest, WhatPythonPutsCppGets) {
  const std::string binary("a\0b\xff\n", 5);
  constexpr size_t kLarge = 3 << 20;  // past mmap_min_size: the mapped path
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<std::string> keys,
      Python({absl::StrCat("put:", Hex("hello")),
              absl::StrCat("put:", Hex(binary)),
              "put:", absl::StrCat("put_pattern:", kLarge)}));
  for (const std::string& id : keys) EXPECT_TRUE(IsUuid4(id)) << id;
  EXPECT_THAT(connector().Exists(Key(keys[0])), IsOkAndHolds(true));
  EXPECT_EQ(GetString(connector(), Key(keys[0])), "hello");
  EXPECT_EQ(GetString(connector(), Key(keys[1])), binary);
  EXPECT_EQ(GetString(connector(), Key(keys[2])), "");
  EXPECT_EQ(GetString(connector(), Key(keys[3])), Pattern(kLarge));
  std::string into;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      GetIntoResult r,
      connector().GetInto(
          Key(keys[3]),
          [&](const ObjectReader& reader) -> absl::StatusOr<bool> {
            into.resize(reader.size);
            PROXYSTORE_RETURN_IF_ERROR(reader.read(into.data(), 0));
            return true;
          }));
  EXPECT_TRUE(r.found);
  EXPECT_EQ(into, Pattern(kLarge));
}

TEST_F(PythonInteropTest, WhatCppPutsPythonGets) {
  const std::string binary("\0\x01z\xfe", 4);
  constexpr size_t kLarge = 3 << 20;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key hello,
                                  connector().Put(SharedBytes::Copy("hello")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key bin,
                                  connector().Put(SharedBytes::Copy(binary)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key empty,
                                  connector().Put(SharedBytes::Copy("")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key large, connector().Put(SharedBytes::Copy(Pattern(kLarge))));
  EXPECT_THAT(
      Python({absl::StrCat("exists:", hello.id()),
              absl::StrCat("get:", hello.id()), absl::StrCat("get:", bin.id()),
              absl::StrCat("get:", empty.id()),
              absl::StrCat("is_pattern:", large.id(), "=", kLarge),
              absl::StrCat("exists:", NewObjectId())}),
      IsOkAndHolds(ElementsAre("True", Shown("hello"), Shown(binary),
                               "hex:", "True", "False")));
}

TEST_F(PythonInteropTest, DeferredWritesAcrossTheBorder) {
  // A key Python mints, set here; a key minted here, set by Python.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::string> minted,
                                  Python({"new_key"}));
  const Key from_python(minted[0]);
  PROXYSTORE_ASSERT_OK(
      connector().Set(from_python, SharedBytes::Copy("set in C++")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key ours, connector().NewKey());
  absl::StatusOr<bool> woke = false;
  std::thread waiter(
      [&] { woke = connector().WaitFor(ours, absl::Minutes(5)); });
  EXPECT_THAT(Python({absl::StrCat("get:", from_python.id()),
                      absl::StrCat("exists:", ours.id()),
                      absl::StrCat("set:", ours.id(), "=", Hex("set in py"))}),
              IsOkAndHolds(ElementsAre(Shown("set in C++"), "False", "set")));
  waiter.join();
  EXPECT_THAT(woke, IsOkAndHolds(true));
  EXPECT_EQ(GetString(connector(), ours), "set in py");
  // Written once: Python's object stays.
  EXPECT_THAT(connector().Set(ours, SharedBytes::Copy("again")),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST_F(PythonInteropTest, EvictionsAcrossTheBorder) {
  // C++ evicts Python's object: its marker goes too, so Python sees nothing.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::string> put,
                                  Python({absl::StrCat("put:", Hex("py"))}));
  const Key python_key(put[0]);
  PROXYSTORE_ASSERT_OK(connector().Evict(python_key));
  EXPECT_THAT(ListDir(dir_), IsEmpty());
  EXPECT_THAT(Python({absl::StrCat("exists:", python_key.id()),
                      absl::StrCat("get:", python_key.id())}),
              IsOkAndHolds(ElementsAre("False", "None")));
  // Python evicts ours.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key ours,
                                  connector().Put(SharedBytes::Copy("cpp")));
  EXPECT_THAT(Python({absl::StrCat("evict:", ours.id())}),
              IsOkAndHolds(ElementsAre("evicted")));
  EXPECT_THAT(connector().Exists(ours), IsOkAndHolds(false));
  EXPECT_EQ(GetString(connector(), ours), std::nullopt);
  EXPECT_THAT(ListDir(dir_), IsEmpty());
}

TEST_F(PythonInteropTest, APythonObjectBeingWrittenIsMissingUntilMarked) {
  // Python's set mid-write: its key's file holds a prefix, no marker yet.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::string> minted,
                                  Python({"new_key"}));
  const Key key(minted[0]);
  WriteFile(PathOf(key.id()), "hel");
  EXPECT_EQ(GetString(connector(), key), std::nullopt);
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(false));
  // Python agrees, and once its set completes both see the whole object.
  EXPECT_THAT(Python({absl::StrCat("exists:", key.id()),
                      absl::StrCat("set:", key.id(), "=", Hex("hello")),
                      absl::StrCat("get:", key.id())}),
              IsOkAndHolds(ElementsAre("False", "set", Shown("hello"))));
  EXPECT_EQ(GetString(connector(), key), "hello");
}

TEST_F(PythonInteropTest, BatchesAcrossTheBorder) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<std::string> put,
      Python({absl::StrCat("put_batch:", Hex("one"), ",", Hex(""), ",",
                           Hex("three"))}));
  std::vector<Key> keys;
  for (absl::string_view id : absl::StrSplit(put[0], ',')) {
    keys.emplace_back(std::string(id));
  }
  ASSERT_EQ(keys.size(), 3u);
  keys.insert(keys.begin() + 1, Key(NewObjectId()));  // missing
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::optional<SharedBytes>> got,
                                  connector().GetBatch(keys));
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0]->view(), "one");
  EXPECT_FALSE(got[1].has_value());
  EXPECT_EQ(got[2]->view(), "");
  EXPECT_EQ(got[3]->view(), "three");

  const std::vector<SharedBytes> values = {
      SharedBytes::Copy("a"), SharedBytes::Copy(std::string("\0b", 2)),
      SharedBytes::Copy("")};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<Key> ours,
                                  connector().PutBatch(values));
  std::vector<std::string> ids;
  for (const Key& k : ours) ids.push_back(k.id());
  ids.push_back("5d41402a-bc4b-4a76-b971-9d911017c592");  // missing
  const std::string expected =
      absl::StrCat(Shown("a"), ",", Shown(std::string("\0b", 2)), ",hex:,None");
  EXPECT_THAT(Python({absl::StrCat("get_batch:", absl::StrJoin(ids, ","))}),
              IsOkAndHolds(ElementsAre(expected)));
}

TEST_F(PythonInteropTest, ConnectorsMadeFromTheConfigKeepTheLayout) {
  const ConnectorConfig config = connector().Config();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  MakeConnector(config));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> received,
                                  MakeConnectorFromWire(config));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key from_clone,
                                  clone->Put(SharedBytes::Copy("clone")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<std::string> out,
      Python({absl::StrCat("get:", from_clone.id()),
              absl::StrCat("put:", Hex("to the receiver"))}));
  EXPECT_EQ(out[0], Shown("clone"));
  EXPECT_EQ(GetString(*received, Key(out[1])), "to the receiver");
  PROXYSTORE_EXPECT_OK(clone->Close({.clear = false}));
  PROXYSTORE_EXPECT_OK(received->Close());
}

TEST_F(PythonInteropTest, AClearingCloseRemovesPythonsObjectsToo) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<std::string> put,
      Python({absl::StrCat("put:", Hex("x")), absl::StrCat("put:", Hex("y"))}));
  PROXYSTORE_ASSERT_OK(connector().Put(SharedBytes::Copy("z")).status());
  PROXYSTORE_ASSERT_OK(connector().Close({.clear = true}));
  EXPECT_FALSE(fs::exists(dir_));
  EXPECT_THAT(Python({absl::StrCat("exists:", put[0])}),
              IsOkAndHolds(ElementsAre("False")));
}

// --- testing/python_proxystore.h itself ---------------------------------

class RunPythonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> python = testing::PythonProxyStoreDir();
    if (!python.ok()) {
      GTEST_SKIP() << "Python ProxyStore is not available: "
                   << python.status().message();
    }
  }
};

TEST_F(RunPythonTest, ArgumentsArriveUnreadByAnyShell) {
  const std::vector<std::string> args = {
      "$(touch /tmp/never)", "a b", "'\"", "`id`", "*", "", "--", "-c"};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::string out,
      testing::RunPython("import sys\nprint(repr(sys.argv[1:]))\n", args));
  EXPECT_EQ(out,
            "['$(touch /tmp/never)', 'a b', '\\'\"', '`id`', '*', '', '--', "
            "'-c']\n");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::string version,
      testing::RunPython("import proxystore\nprint(proxystore.__version__)"));
  EXPECT_TRUE(absl::StartsWith(version, "1.")) << version;
}

TEST_F(RunPythonTest, AFailingProgramIsAnErrorWithItsStderr) {
  EXPECT_THAT(testing::RunPython("import sys\nsys.stderr.write('went wrong')\n"
                                 "sys.exit(3)\n"),
              StatusIs(absl::StatusCode::kInternal,
                       ::testing::AllOf(HasSubstr("status 3"),
                                        HasSubstr("went wrong"))));
  EXPECT_THAT(testing::RunPython("print(1)", {std::string("a\0b", 3)}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace proxystore
