#include "connectors/file/file_connector.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/bytes.h"
#include "testing/child_process.h"
#include "testing/connector_conformance.h"
#include "testing/status_matchers.h"

namespace proxystore {
namespace {

namespace fs = std::filesystem;
using ::proxystore::testing::ConnectorTestParams;
using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

MATCHER_P(IsOkAndHolds, matcher, "") {
  if (!arg.ok()) {
    *result_listener << "which is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

std::string TestTmpDir() { return ::proxystore::testing::TestTempDir(); }

// A fresh, not yet existing directory under $TEST_TMPDIR.
std::string FreshDir(absl::string_view tag = "store") {
  return absl::StrCat(TestTmpDir(), "/", tag, "-", NewObjectId());
}

ConnectorConfig FileConfig(const std::string& dir) {
  return ConnectorConfig{"file", {{"directory", dir}}};
}

// The names in `dir` (empty if it does not exist).
std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    names.push_back(e.path().filename().string());
  }
  return names;
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  return s;
}

// Conformance, through both read paths: mmap for everything non-empty, and
// read() for everything.
ConnectorTestParams FileParams(std::string name, int64_t mmap_min_size) {
  return {
      .name = std::move(name),
      .make = [mmap_min_size]() -> absl::StatusOr<std::unique_ptr<Connector>> {
        ConnectorConfig config = FileConfig(FreshDir("conformance"));
        config.options["mmap_min_size"] = absl::StrCat(mmap_min_size);
        return FileConnector::FromConfig(config);
      }};
}

PROXYSTORE_INSTANTIATE_CONNECTOR_CONFORMANCE(
    File, FileParams("Default", FileConnector::kDefaultMmapMinSize),
    FileParams("AlwaysMmap", 0), FileParams("NeverMmap", int64_t{1} << 62));

class FileConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir();
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(connector_,
                                    FileConnector::Create(FileConfig(dir_)));
  }
  void TearDown() override {
    if (connector_ != nullptr) {
      EXPECT_THAT(connector_->Close(CloseOptions{.clear = true}), IsOk());
    }
  }
  FileConnector& connector() { return *connector_; }
  std::string ObjectPath(const Key& key) {
    return absl::StrCat(dir_, "/", key.id());
  }

  std::string dir_;
  std::unique_ptr<FileConnector> connector_;
};

TEST_F(FileConnectorTest, IsRegisteredAsFile) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Connector> c,
      MakeConnector({"FileConnector", {{"directory", dir_}}}));
  EXPECT_EQ(c->kind(), "file");
  PROXYSTORE_ASSERT_OK(c->Close(CloseOptions{.clear = false}));
}

TEST_F(FileConnectorTest, OneFilePerObjectNamedByTheKey) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key a,
                                  connector().Put(SharedBytes::Copy("A")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key b,
                                  connector().Put(SharedBytes::Copy("BB")));
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAre(a.id(), b.id()));
  EXPECT_EQ(ReadWholeFile(ObjectPath(a)), "A");
  EXPECT_EQ(ReadWholeFile(ObjectPath(b)), "BB");
  PROXYSTORE_ASSERT_OK(connector().Evict(a));
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAre(b.id()));
}

TEST_F(FileConnectorTest, CreatesMissingParentsAndConfigIsAbsolute) {
  const std::string nested = absl::StrCat(FreshDir("parent"), "/a/b/c");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> c,
                                  FileConnector::Create(FileConfig(nested)));
  EXPECT_TRUE(fs::is_directory(nested));
  EXPECT_EQ(c->directory(), nested);
  ConnectorConfig config = c->Config();
  EXPECT_EQ(config.kind, "file");
  EXPECT_EQ(config.options.at("directory"), nested);
  EXPECT_EQ(config.options.at("clear"), "true");
  EXPECT_EQ(config.options.at("mmap_min_size"),
            absl::StrCat(FileConnector::kDefaultMmapMinSize));
  PROXYSTORE_ASSERT_OK(c->Close());
  EXPECT_FALSE(fs::exists(nested));
}

TEST_F(FileConnectorTest, DirectoryIsNormalized) {
  const std::string base = FreshDir("norm");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::Create(FileConfig(absl::StrCat(base, "/x/../y/./"))));
  EXPECT_EQ(c->directory(), absl::StrCat(base, "/y"));
  EXPECT_TRUE(fs::is_directory(absl::StrCat(base, "/y")));
  PROXYSTORE_ASSERT_OK(c->Close());
}

TEST_F(FileConnectorTest, RelativeDirectoryIsMadeAbsoluteAndSurvivesChdir) {
  const std::string base = FreshDir("cwd");
  ASSERT_TRUE(fs::create_directories(base));
  const fs::path original_cwd = fs::current_path();
  ASSERT_EQ(::chdir(base.c_str()), 0);
  absl::StatusOr<std::unique_ptr<FileConnector>> made =
      FileConnector::Create(FileConfig("rel/store"));
  // Move elsewhere before using it: the absolute path must still work.
  ASSERT_EQ(::chdir(original_cwd.c_str()), 0);
  ASSERT_THAT(made, IsOk());
  std::unique_ptr<FileConnector> c = *std::move(made);
  const std::string expected = absl::StrCat(base, "/rel/store");
  EXPECT_EQ(c->directory(), expected);
  EXPECT_EQ(c->Config().options.at("directory"), expected);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("rel")));
  EXPECT_EQ(ReadWholeFile(absl::StrCat(expected, "/", key.id())), "rel");
  PROXYSTORE_ASSERT_OK(c->Close());
}

TEST_F(FileConnectorTest, ExistingNonDirectoryIsAClearError) {
  const std::string file = absl::StrCat(dir_, "/plain-file");
  std::ofstream(file) << "x";
  EXPECT_THAT(FileConnector::Create(FileConfig(file)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(file), HasSubstr("not a directory"))));
  // A file in the middle of the path cannot be created through.
  EXPECT_THAT(FileConnector::Create(FileConfig(absl::StrCat(file, "/sub"))),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrCat(file, "/sub"))));
}

TEST_F(FileConnectorTest, BadOptionsAreInvalidArgument) {
  EXPECT_THAT(FileConnector::Create({"file", {}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"directory\""));
  EXPECT_THAT(FileConnector::Create(FileConfig("")),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"directory\""));
  EXPECT_THAT(
      FileConnector::Create({"file", {{"directory", dir_}, {"typo", "1"}}}),
      StatusIs(absl::StatusCode::kInvalidArgument, "\"typo\""));
  EXPECT_THAT(FileConnector::Create(
                  {"file", {{"directory", dir_}, {"clear", "maybe"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"clear\""));
  EXPECT_THAT(FileConnector::Create(
                  {"file", {{"directory", dir_}, {"mmap_min_size", "-1"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "mmap_min_size"));
  EXPECT_THAT(FileConnector::Create(
                  {"file", {{"directory", dir_}, {"mmap_min_size", "big"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "mmap_min_size"));
  // Clearing removes the whole directory: never the root.
  EXPECT_THAT(FileConnector::Create(FileConfig("/")),
              StatusIs(absl::StatusCode::kInvalidArgument, "root"));
  EXPECT_THAT(FileConnector::Create(FileConfig("/tmp/../")),
              StatusIs(absl::StatusCode::kInvalidArgument, "root"));
  EXPECT_THAT(FileConnector::Create(FileConfig(std::string("/tmp/a\0b", 8))),
              StatusIs(absl::StatusCode::kInvalidArgument, "NUL"));
}

TEST_F(FileConnectorTest, InvalidObjectNamesAreRejectedWithoutTouchingFiles) {
  // A victim file next to the store directory.
  const std::string victim = absl::StrCat(dir_, "-victim");
  std::ofstream(victim) << "precious";
  const std::string victim_name = fs::path(victim).filename().string();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key real,
                                  connector().Put(SharedBytes::Copy("real")));

  const std::vector<Key> bad = {
      Key(""),
      Key("."),
      Key(".."),
      Key(absl::StrCat("../", victim_name)),
      Key(victim),  // Absolute path.
      Key("a/b"),
      Key("/"),
      Key(std::string("ab\0cd", 5)),
      Key(std::string(256, 'a')),
      Key(absl::StrCat(".", real.id(), ".tmp")),  // A temporary name.
      Key(".hidden"),
  };
  for (const Key& key : bad) {
    EXPECT_THAT(connector().Get(key),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "not a valid object file name"))
        << key;
    EXPECT_THAT(connector().Exists(key),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << key;
    EXPECT_THAT(connector().Evict(key),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << key;
    EXPECT_THAT(connector().GetBatch({real, key}),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << key;
  }
  EXPECT_EQ(ReadWholeFile(victim), "precious");
  EXPECT_THAT(connector().Exists(real), IsOkAndHolds(true));
  // The longest valid name is fine (and simply missing).
  EXPECT_THAT(connector().Exists(Key(std::string(255, 'a'))),
              IsOkAndHolds(false));
  fs::remove(victim);
}

TEST_F(FileConnectorTest, HalfWrittenObjectIsInvisible) {
  const std::string value = Pattern(100'000);
  bool checked = false;
  FileConnector* self = nullptr;
  FileConnector::TestHooks hooks;
  hooks.max_io_chunk = 4096;
  hooks.after_write = [&](const Key& key, const std::string& temp,
                          size_t written) {
    if (written != 4096) return;  // Check once, mid-write.
    checked = true;
    // The temporary file holds a prefix; the key is not yet visible.
    EXPECT_EQ(ReadWholeFile(temp), value.substr(0, 4096));
    EXPECT_EQ(fs::path(temp).parent_path().string(), self->directory());
    EXPECT_TRUE(absl::StartsWith(fs::path(temp).filename().string(), "."));
    EXPECT_THAT(self->Exists(key), IsOkAndHolds(false));
    absl::StatusOr<std::optional<SharedBytes>> got = self->Get(key);
    ASSERT_THAT(got, IsOk());
    EXPECT_FALSE(got->has_value());
    // Temporary names cannot be addressed as keys.
    EXPECT_THAT(self->Get(Key(fs::path(temp).filename().string())),
                StatusIs(absl::StatusCode::kInvalidArgument));
  };
  const std::string dir = FreshDir("half");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::CreateForTesting(FileConfig(dir), std::move(hooks)));
  self = c.get();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy(value)));
  EXPECT_TRUE(checked);
  // Published whole, and no temporary file left behind.
  EXPECT_THAT(ListDir(dir), UnorderedElementsAre(key.id()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got, c->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), value);
  PROXYSTORE_ASSERT_OK(c->Close());
}

TEST_F(FileConnectorTest, StrayTemporaryFilesAreInvisible) {
  // What a writer that crashed mid-put leaves behind.
  const std::string id = NewObjectId();
  std::ofstream(absl::StrCat(dir_, "/.", id, ".tmp")) << "partial";
  EXPECT_THAT(connector().Exists(Key(id)), IsOkAndHolds(false));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  connector().Get(Key(id)));
  EXPECT_FALSE(got.has_value());
}

TEST_F(FileConnectorTest, TinyChunksExerciseThePartialIoLoops) {
  // Every read()/write() moves at most 7 bytes: the loops must stitch the
  // object together exactly, on both paths (put, then read() get).
  const std::string value = Pattern(300'007);
  size_t writes = 0;
  FileConnector::TestHooks hooks;
  hooks.max_io_chunk = 7;
  hooks.after_write = [&](const Key&, const std::string&, size_t written) {
    ++writes;
    EXPECT_EQ(written, std::min(writes * 7, value.size()));
  };
  ConnectorConfig config = FileConfig(FreshDir("chunks"));
  config.options["mmap_min_size"] = absl::StrCat(int64_t{1} << 62);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::CreateForTesting(config, std::move(hooks)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy(value)));
  EXPECT_EQ(writes, (value.size() + 6) / 7);
  EXPECT_EQ(fs::file_size(absl::StrCat(c->directory(), "/", key.id())),
            value.size());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got, c->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->size(), value.size());
  EXPECT_TRUE(got->view() == value);
  PROXYSTORE_ASSERT_OK(c->Close());
}

TEST_F(FileConnectorTest, DefaultChunkIsBelowTheKernelPerCallLimit) {
  // Linux transfers at most 0x7ffff000 bytes per read()/write(); objects
  // above 2 GiB need the loop (exercised with tiny chunks above).
  EXPECT_LE(FileConnector::kDefaultMaxIoChunk, size_t{0x7ffff000});
  EXPECT_GT(FileConnector::kDefaultMaxIoChunk, size_t{0});
}

TEST_F(FileConnectorTest, LargeObjectsAreMappedSmallOnesRead) {
  // Observable through the owner: the read() path owns a heap array, the
  // mmap path a mapping whose address is page aligned.
  const std::string big = Pattern(3'000'000);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key big_key,
                                  connector().Put(SharedBytes::Copy(big)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  connector().Get(big_key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(got->data()) %
                static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE)),
            0u);
  EXPECT_TRUE(got->view() == big);
  // The mapping survives the unlink of its file (eviction, clearing).
  PROXYSTORE_ASSERT_OK(connector().Evict(big_key));
  EXPECT_TRUE(got->view() == big);
}

TEST_F(FileConnectorTest, TruncatedFileIsReadAsItIs) {
  // Connectors do not checksum: a file damaged before Get is returned as it
  // now is, and the serializer above detects the corruption.
  for (int64_t mmap_min_size : {int64_t{0}, int64_t{1} << 62}) {
    ConnectorConfig config = FileConfig(FreshDir("trunc"));
    config.options["mmap_min_size"] = absl::StrCat(mmap_min_size);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> c,
                                    FileConnector::Create(config));
    const std::string value = Pattern(10'000);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy(value)));
    const std::string path = absl::StrCat(c->directory(), "/", key.id());
    ASSERT_EQ(::truncate(path.c_str(), 4000), 0);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                    c->Get(key));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->view(), value.substr(0, 4000));
    ASSERT_EQ(::truncate(path.c_str(), 0), 0);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(got, c->Get(key));
    ASSERT_TRUE(got.has_value());
    EXPECT_TRUE(got->empty());
    PROXYSTORE_ASSERT_OK(c->Close());
  }
}

TEST_F(FileConnectorTest, FileChangingSizeDuringGetIsDataLoss) {
  struct Case {
    const char* name;
    int64_t mmap_min_size;
    off_t new_size;
  };
  for (const Case& tc :
       {Case{"read shrink", int64_t{1} << 62, 1000},
        Case{"read grow", int64_t{1} << 62, 20000},
        Case{"read to empty", int64_t{1} << 62, 0},
        Case{"mmap shrink", 0, 1000}, Case{"mmap grow", 0, 20000},
        Case{"mmap to empty", 0, 0}}) {
    SCOPED_TRACE(tc.name);
    FileConnector::TestHooks hooks;
    off_t new_size = tc.new_size;
    hooks.before_read = [new_size](const std::string& path) {
      ASSERT_EQ(::truncate(path.c_str(), new_size), 0);
    };
    ConnectorConfig config = FileConfig(FreshDir("resize"));
    config.options["mmap_min_size"] = absl::StrCat(tc.mmap_min_size);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<FileConnector> c,
        FileConnector::CreateForTesting(config, std::move(hooks)));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                    c->Put(SharedBytes::Copy(Pattern(10'000))));
    EXPECT_THAT(c->Get(key), StatusIs(absl::StatusCode::kDataLoss,
                                      AllOf(HasSubstr(key.id()),
                                            HasSubstr("while being read"))));
    PROXYSTORE_ASSERT_OK(c->Close());
  }
}

TEST_F(FileConnectorTest, NonRegularFileUnderAKeyIsAnError) {
  const std::string id = NewObjectId();
  ASSERT_TRUE(fs::create_directory(absl::StrCat(dir_, "/", id)));
  EXPECT_THAT(
      connector().Get(Key(id)),
      StatusIs(absl::StatusCode::kFailedPrecondition, "not a regular file"));
  EXPECT_THAT(connector().Exists(Key(id)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(connector().Evict(Key(id)).ok());

  // A FIFO must not block Get.
  const std::string fifo_id = NewObjectId();
  ASSERT_EQ(::mkfifo(absl::StrCat(dir_, "/", fifo_id).c_str(), 0600), 0);
  EXPECT_THAT(connector().Get(Key(fifo_id)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(FileConnectorTest, TwoConnectorsOnOneDirectoryShareData) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> other,
                                  FileConnector::Create(FileConfig(dir_)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy("shared")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  other->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), "shared");
  PROXYSTORE_ASSERT_OK(other->Evict(key));
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(false));
  // One closing with clear removes the directory for both; the other then
  // sees nothing (not an error) and its own Close is still fine.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key2,
                                  connector().Put(SharedBytes::Copy("x")));
  PROXYSTORE_ASSERT_OK(other->Close(CloseOptions{.clear = true}));
  EXPECT_FALSE(fs::exists(dir_));
  EXPECT_THAT(connector().Exists(key2), IsOkAndHolds(false));
  EXPECT_THAT(connector().Evict(key2), IsOk());
  EXPECT_THAT(connector().Put(SharedBytes::Copy("y")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(dir_), HasSubstr("no longer exists"))));
}

TEST_F(FileConnectorTest, CloseClearsByDefaultAndIsIdempotent) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy("x")));
  (void)key;
  ASSERT_TRUE(fs::exists(dir_));
  PROXYSTORE_ASSERT_OK(connector().Close());  // "clear" defaults to true.
  EXPECT_FALSE(fs::exists(dir_));
  PROXYSTORE_ASSERT_OK(connector().Close());
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = true}));
  EXPECT_FALSE(fs::exists(dir_));
}

TEST_F(FileConnectorTest, ClearRemovesEverythingInTheDirectory) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy("x")));
  (void)key;
  std::ofstream(absl::StrCat(dir_, "/.stray.tmp")) << "t";
  ASSERT_TRUE(fs::create_directories(absl::StrCat(dir_, "/sub/deeper")));
  std::ofstream(absl::StrCat(dir_, "/sub/deeper/f")) << "f";
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = true}));
  EXPECT_FALSE(fs::exists(dir_));
}

TEST_F(FileConnectorTest, ClearOptionFalseKeepsDataOnClose) {
  ConnectorConfig config = FileConfig(dir_);
  config.options["clear"] = "false";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> keeper,
                                  FileConnector::Create(config));
  EXPECT_EQ(keeper->Config().options.at("clear"), "false");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  keeper->Put(SharedBytes::Copy("kept")));
  PROXYSTORE_ASSERT_OK(keeper->Close());
  EXPECT_TRUE(fs::exists(absl::StrCat(dir_, "/", key.id())));
  // The per-call override wins over the option.
  PROXYSTORE_ASSERT_OK(keeper->Close(CloseOptions{.clear = true}));
  EXPECT_FALSE(fs::exists(dir_));
}

TEST_F(FileConnectorTest, OperationsAfterCloseAreFailedPrecondition) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy("x")));
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = false}));
  EXPECT_THAT(connector().Put(SharedBytes::Copy("y")),
              StatusIs(absl::StatusCode::kFailedPrecondition, "Put"));
  EXPECT_THAT(connector().Get(key),
              StatusIs(absl::StatusCode::kFailedPrecondition, "Get"));
  EXPECT_THAT(connector().Exists(key),
              StatusIs(absl::StatusCode::kFailedPrecondition, "Exists"));
  EXPECT_THAT(connector().Evict(key),
              StatusIs(absl::StatusCode::kFailedPrecondition, "Evict"));
  EXPECT_TRUE(fs::exists(absl::StrCat(dir_, "/", key.id())));
}

TEST_F(FileConnectorTest, FailedWriteInAFileSizeLimitedChildLeavesNothing) {
  const std::string dir = FreshDir("fsize");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> c,
                                  FileConnector::Create(FileConfig(dir)));
  const SharedBytes value = SharedBytes::Copy(Pattern(1'000'000));
  // A value within the limit is written fine in the child too.
  const SharedBytes small = SharedBytes::Copy("small");
  fflush(nullptr);
  pid_t pid = ::fork();
  ASSERT_NE(pid, -1);
  if (pid == 0) {
    // Child: no gtest assertions, report through the exit code.
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = {64 * 1024, 64 * 1024};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(10);
    absl::StatusOr<Key> ok_key = c->Put(small);
    if (!ok_key.ok()) ::_exit(11);
    if (!c->Evict(*ok_key).ok()) ::_exit(12);
    absl::StatusOr<Key> key = c->Put(value);
    if (key.ok()) ::_exit(13);  // Must fail.
    const std::string message(key.status().message());
    if (key.status().code() != absl::StatusCode::kResourceExhausted) {
      ::_exit(14);
    }
    if (!absl::StrContains(message, dir)) ::_exit(15);
    if (!absl::StrContains(message, "Put of key")) ::_exit(16);
    if (!absl::StrContains(message, "of 1000000 bytes")) ::_exit(17);
    ::_exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus)) << "child died: " << wstatus;
  EXPECT_EQ(WEXITSTATUS(wstatus), 0)
      << "child exit code (see the test's _exit codes)";
  // Neither a visible object nor a temporary file is left.
  EXPECT_THAT(ListDir(dir), IsEmpty());
  PROXYSTORE_ASSERT_OK(c->Close());
}

TEST_F(FileConnectorTest, ManyConnectorsAndThreadsOnOneDirectory) {
  // Writers and readers in distinct connector objects on one directory.
  constexpr int kThreads = 4;
  std::vector<std::unique_ptr<FileConnector>> connectors;
  for (int t = 0; t < kThreads; ++t) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> c,
                                    FileConnector::Create(FileConfig(dir_)));
    connectors.push_back(std::move(c));
  }
  std::vector<std::vector<Key>> keys(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        absl::StatusOr<Key> k =
            connectors[t]->Put(SharedBytes::Copy(absl::StrCat(t, ":", i)));
        ASSERT_THAT(k, IsOk());
        keys[t].push_back(*k);
        // Read it through a different connector object.
        absl::StatusOr<std::optional<SharedBytes>> got =
            connectors[(t + 1) % kThreads]->Get(*k);
        ASSERT_THAT(got, IsOk());
        ASSERT_TRUE(got->has_value());
        EXPECT_EQ((*got)->view(), absl::StrCat(t, ":", i));
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(ListDir(dir_).size(), size_t{kThreads * 20});
  for (auto& c : connectors) PROXYSTORE_ASSERT_OK(c->Close({.clear = false}));
}

}  // namespace
}  // namespace proxystore
