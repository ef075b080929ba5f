#include "proxystore/connectors/file/file_connector.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
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
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/file/file_test_util.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/connector_conformance.h"
#include "proxystore/testing/status_matchers.h"

// Under the sanitizers a failed allocation returns null, as it does with the
// plain allocator: the tests below check that such a failure is a Status.
extern "C" const char* __asan_default_options() {
  return "allocator_may_return_null=1";
}
extern "C" const char* __tsan_default_options() {
  return "allocator_may_return_null=1";
}

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
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

ConnectorConfig FileConfig(const std::string& dir) {
  return ConnectorConfig{"file", {{"directory", dir}}};
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
  // Opens another connector on dir_, which sweeps it for temporaries no
  // writer holds, and expects `temp` to be gone.
  void SweepAndExpectGone(const std::string& temp) {
    absl::StatusOr<std::unique_ptr<FileConnector>> sweeper =
        FileConnector::Create(FileConfig(dir_));
    ASSERT_THAT(sweeper, IsOk());
    EXPECT_FALSE(fs::exists(temp));
  }

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
  EXPECT_EQ(config.options.at("create_directory"), "true");
  EXPECT_EQ(config.options.at("mmap_min_size"),
            absl::StrCat(FileConnector::kDefaultMmapMinSize));
  EXPECT_EQ(config.options.at("max_object_size"),
            absl::StrCat(FileConnector::kNoSizeLimit));
  EXPECT_EQ(config.options.size(), 5u);
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
  EXPECT_THAT(FileConnector::Create(
                  {"file", {{"directory", dir_}, {"max_object_size", "-1"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "max_object_size"));
  EXPECT_THAT(
      FileConnector::Create(
          {"file", {{"directory", dir_}, {"create_directory", "perhaps"}}}),
      StatusIs(absl::StatusCode::kInvalidArgument, "create_directory"));
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

  // Only the names the connector mints (32 lowercase hex digits) pass.
  std::string upper = real.id();
  for (char& ch : upper) ch = static_cast<char>(std::toupper(ch));
  const std::vector<Key> bad = {
      Key(""),
      Key("."),
      Key(".."),
      Key(absl::StrCat("../", victim_name)),
      Key(victim),  // Absolute path.
      Key("../etc/passwd"),
      Key(".bashrc"),
      Key("x.tmp"),
      Key("a/b"),
      Key("/"),
      Key(std::string("ab\0cd", 5)),
      Key(std::string(256, 'a')),
      Key(std::string(255, 'a')),
      Key(absl::StrCat(".", real.id(), ".tmp")),  // A temporary name.
      Key(".hidden"),
      Key(upper),
      Key(real.id().substr(1)),
      Key(absl::StrCat(real.id(), "0")),
      Key(absl::StrCat(real.id().substr(1), "g")),
      Key(absl::StrCat(real.id().substr(2), "/x")),
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
  // A name of the minted form is fine (and simply missing).
  EXPECT_THAT(connector().Exists(Key(NewObjectId())), IsOkAndHolds(false));
  EXPECT_THAT(connector().Exists(Key(std::string(32, 'f'))),
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
    size_t size = 10'000;  // read whole with one read (<= kWholeReadMax)
  };
  constexpr size_t kLarge = FileConnector::kWholeReadMax + 1000;
  for (const Case& tc :
       {Case{"read shrink", int64_t{1} << 62, 1000},
        Case{"read grow", int64_t{1} << 62, 20000},
        Case{"read to empty", int64_t{1} << 62, 0},
        Case{"large read shrink", int64_t{1} << 62, 1000, kLarge},
        Case{"large read grow", int64_t{1} << 62, 2 * kLarge, kLarge},
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
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        Key key, c->Put(SharedBytes::Copy(Pattern(tc.size))));
    EXPECT_THAT(c->Get(key), StatusIs(absl::StatusCode::kDataLoss,
                                      AllOf(HasSubstr(key.id()),
                                            HasSubstr("while being read"))));
    PROXYSTORE_ASSERT_OK(c->Close());
  }
}

// GetInto with a fn that reads everything into a buffer of its own.
absl::StatusOr<GetIntoResult> GetIntoBuffer(Connector& c, const Key& key,
                                            std::string& buffer) {
  return c.GetInto(key,
                   [&](const ObjectReader& reader) -> absl::StatusOr<bool> {
                     buffer.resize(reader.size);
                     PROXYSTORE_RETURN_IF_ERROR(reader.read(buffer.data(), 0));
                     return true;
                   });
}

// Between fstat and the prefix read (the before_read hook): the prefix
// comes up short, or read() finds bytes past the size fstat reported.
TEST_F(FileConnectorTest, FileChangingSizeBeforeGetIntoReadsIsDataLoss) {
  struct Case {
    const char* name;
    size_t size;
    off_t new_size;
  };
  for (const Case& tc :
       {Case{"shrink in the prefix", 10'000, 1000},
        Case{"shrink past the prefix", 10'000, 6000},
        Case{"to empty", 10'000, 0}, Case{"grow", 10'000, 20'000},
        Case{"small grows", 100, 101}, Case{"empty grows", 0, 1}}) {
    SCOPED_TRACE(tc.name);
    FileConnector::TestHooks hooks;
    off_t new_size = tc.new_size;
    hooks.before_read = [new_size](const std::string& path) {
      ASSERT_EQ(::truncate(path.c_str(), new_size), 0);
    };
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<FileConnector> c,
        FileConnector::CreateForTesting(FileConfig(FreshDir("resize")),
                                        std::move(hooks)));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        Key key, c->Put(SharedBytes::Copy(Pattern(tc.size))));
    std::string buffer;
    EXPECT_THAT(
        GetIntoBuffer(*c, key, buffer),
        StatusIs(absl::StatusCode::kDataLoss,
                 AllOf(HasSubstr(key.id()), HasSubstr("while being read"))));
    PROXYSTORE_ASSERT_OK(c->Close());
  }
}

// Between the prefix read and read(): the fn itself resizes the file before
// reading, at every offset kind (inside the prefix, past it).
TEST_F(FileConnectorTest, FileChangingSizeBeforeReadIntoIsDataLoss) {
  // Larger than what GetInto reads at once.
  const size_t size = FileConnector::kWholeReadMax + 3 * kGetIntoPrefix;
  for (const off_t new_size :
       {off_t{0}, off_t{100}, off_t{kGetIntoPrefix}, off_t{size - 1},
        off_t{size + 1}, off_t{2 * size}}) {
    for (const uint64_t offset :
         {uint64_t{0}, uint64_t{10}, uint64_t{kGetIntoPrefix + 10}}) {
      SCOPED_TRACE(absl::StrCat("to ", new_size, " bytes, offset ", offset));
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(
          Key key, connector().Put(SharedBytes::Copy(Pattern(size))));
      const std::string path = ObjectPath(key);
      std::string buffer(size - offset, '\0');
      EXPECT_THAT(
          connector().GetInto(
              key,
              [&](const ObjectReader& reader) -> absl::StatusOr<bool> {
                EXPECT_EQ(reader.size, size);
                EXPECT_EQ(reader.prefix.size(), kGetIntoPrefix);
                if (::truncate(path.c_str(), new_size) != 0) {
                  return absl::InternalError("truncate failed");
                }
                PROXYSTORE_RETURN_IF_ERROR(reader.read(buffer.data(), offset));
                return true;
              }),
          StatusIs(absl::StatusCode::kDataLoss,
                   AllOf(HasSubstr(key.id()), HasSubstr("while being read"))));
      PROXYSTORE_ASSERT_OK(connector().Evict(key));
    }
  }
}

// The prefix and the rest come from pread loops: with 7-byte calls the
// object is stitched together exactly, from any offset.
TEST_F(FileConnectorTest, GetIntoWithTinyChunks) {
  FileConnector::TestHooks hooks;
  hooks.max_io_chunk = 7;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::CreateForTesting(FileConfig(FreshDir("chunks")),
                                      std::move(hooks)));
  const std::string value =
      Pattern(FileConnector::kWholeReadMax + 3 * kGetIntoPrefix + 5);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy(value)));
  for (const uint64_t offset : {uint64_t{0}, uint64_t{kGetIntoPrefix - 3},
                                uint64_t{kGetIntoPrefix + 3}}) {
    SCOPED_TRACE(offset);
    std::string buffer(value.size() - offset, '\0');
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        GetIntoResult result,
        c->GetInto(
            key, [&](const ObjectReader& reader) -> absl::StatusOr<bool> {
              EXPECT_TRUE(reader.prefix ==
                          absl::string_view(value).substr(0, kGetIntoPrefix));
              PROXYSTORE_RETURN_IF_ERROR(reader.read(buffer.data(), offset));
              return true;
            }));
    EXPECT_TRUE(result.found);
    EXPECT_TRUE(buffer == value.substr(offset));
  }
  PROXYSTORE_ASSERT_OK(c->Close());
}

// An object of up to kWholeReadMax bytes is read whole, checked, and
// offered in memory; a larger one is not.
TEST_F(FileConnectorTest, GetIntoOffersSmallObjectsInMemory) {
  constexpr size_t kMax = FileConnector::kWholeReadMax;
  for (const size_t size :
       {size_t{0}, size_t{1}, kGetIntoPrefix - 1, kGetIntoPrefix,
        kGetIntoPrefix + 1, kMax, kMax + 1}) {
    SCOPED_TRACE(size);
    const std::string value = Pattern(size);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                    connector().Put(SharedBytes::Copy(value)));
    std::optional<std::string> in_memory;
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        GetIntoResult result,
        connector().GetInto(key, [&](const ObjectReader& reader) {
          if (reader.in_memory.has_value())
            in_memory.emplace(*reader.in_memory);
          return absl::StatusOr<bool>(true);
        }));
    EXPECT_TRUE(result.found);
    if (size <= kMax) {
      ASSERT_TRUE(in_memory.has_value());
      EXPECT_TRUE(*in_memory == value);
    } else {
      EXPECT_FALSE(in_memory.has_value());
    }
  }
}

// GetInto shares Get's checks, messages and, when the fn declines, its read
// paths (a mapping for large objects).
TEST_F(FileConnectorTest, GetIntoChecksAndFallsBackLikeGet) {
  auto never = [](const ObjectReader&) -> absl::StatusOr<bool> {
    ADD_FAILURE() << "the fn ran";
    return true;
  };
  const std::string dir_id = NewObjectId();
  ASSERT_TRUE(fs::create_directory(absl::StrCat(dir_, "/", dir_id)));
  EXPECT_THAT(
      connector().GetInto(Key(dir_id), never),
      StatusIs(absl::StatusCode::kFailedPrecondition, "not a regular file"));
  ASSERT_TRUE(fs::remove(absl::StrCat(dir_, "/", dir_id)));
  EXPECT_THAT(connector().GetInto(Key("../etc/passwd"), never),
              StatusIs(absl::StatusCode::kInvalidArgument));

  ConnectorConfig config = FileConfig(FreshDir("limit"));
  config.options["max_object_size"] = "1000";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> limited,
                                  FileConnector::Create(config));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key big, limited->Put(SharedBytes::Copy(Pattern(1001))));
  EXPECT_THAT(limited->GetInto(big, never),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr(big.id()), HasSubstr("1001 bytes"),
                             HasSubstr("\"max_object_size\" (1000)"))));
  PROXYSTORE_ASSERT_OK(limited->Close());

  const std::string value = Pattern(3'000'000);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy(value)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      GetIntoResult result, connector().GetInto(key, [](const ObjectReader&) {
        return absl::StatusOr<bool>(false);
      }));
  ASSERT_TRUE(result.whole.has_value());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(result.whole->data()) %
                static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE)),
            0u);
  EXPECT_TRUE(result.whole->view() == value);

  PROXYSTORE_ASSERT_OK(connector().Close());
  EXPECT_THAT(connector().GetInto(key, never),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("after Close")));
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

  // A symbolic link under a key's name is not followed: nothing outside the
  // store is read, and Evict removes the link, not what it points to.
  const std::string outside = absl::StrCat(dir_, ".outside");
  {
    std::ofstream f(outside);
    f << "not the store's";
  }
  const std::string link_id = NewObjectId();
  ASSERT_EQ(
      ::symlink(outside.c_str(), absl::StrCat(dir_, "/", link_id).c_str()), 0);
  EXPECT_THAT(connector().Get(Key(link_id)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("a symbolic link")));
  EXPECT_THAT(connector().Exists(Key(link_id)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("not a regular file")));
  PROXYSTORE_EXPECT_OK(connector().Evict(Key(link_id)));
  EXPECT_TRUE(fs::exists(outside));
  EXPECT_EQ(ReadWholeFile(outside), "not the store's");
  ASSERT_TRUE(fs::remove(outside));

  // Clearing unlinks the FIFO (it has an object's name) and names the
  // directory it cannot remove; that directory keeps the store's.
  EXPECT_THAT(connector().Close(CloseOptions{.clear = true}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("cannot remove"), HasSubstr(id))));
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAre(id));
  ASSERT_TRUE(fs::remove(absl::StrCat(dir_, "/", id)));
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
                       AllOf(HasSubstr(dir_), HasSubstr("does not exist"))));
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

TEST_F(FileConnectorTest, ClearRemovesOnlyWhatIsOurs) {
  // Objects and an abandoned temporary (what a killed writer leaves) go;
  // everything else in the directory stays, and so does the directory.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key a,
                                  connector().Put(SharedBytes::Copy("a")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key b,
                                  connector().Put(SharedBytes::Copy("b")));
  std::ofstream(absl::StrCat(dir_, "/.", NewObjectId(), ".tmp")) << "t";
  std::string upper = NewObjectId();
  for (char& ch : upper) ch = static_cast<char>(std::toupper(ch));
  const std::vector<std::string> foreign = {
      "notes.txt",  ".bashrc", "x.tmp",
      ".stray.tmp", upper,     absl::StrCat(NewObjectId(), ".bak")};
  for (const std::string& name : foreign) {
    std::ofstream(absl::StrCat(dir_, "/", name)) << "keep " << name;
  }
  ASSERT_TRUE(fs::create_directories(absl::StrCat(dir_, "/sub/deeper")));
  std::ofstream(absl::StrCat(dir_, "/sub/deeper/f")) << "f";
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = true}));

  std::vector<std::string> expected = foreign;
  expected.push_back("sub");
  EXPECT_THAT(ListDir(dir_), ::testing::UnorderedElementsAreArray(expected));
  for (const std::string& name : foreign) {
    EXPECT_EQ(ReadWholeFile(absl::StrCat(dir_, "/", name)),
              absl::StrCat("keep ", name));
  }
  EXPECT_EQ(ReadWholeFile(absl::StrCat(dir_, "/sub/deeper/f")), "f");
  EXPECT_FALSE(fs::exists(ObjectPath(a)));
  EXPECT_FALSE(fs::exists(ObjectPath(b)));
  // Once the foreign entries are gone, clearing removes the directory too.
  fs::remove_all(absl::StrCat(dir_, "/sub"));
  for (const std::string& name : foreign) {
    fs::remove(absl::StrCat(dir_, "/", name));
  }
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

// Runs `child` in a forked process; returns its exit code (or 128 +
// signal). The child makes no gtest assertions: it reports through the code.
template <typename F>
int RunInChild(F child) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(child());
  if (pid < 0) return -1;
  int wstatus = 0;
  if (::waitpid(pid, &wstatus, 0) != pid) return -2;
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return WEXITSTATUS(wstatus);
}

// A sparse file of `size` bytes at `path`: no data blocks, any size.
void MakeSparseFile(const std::string& path, off_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::ftruncate(fd, size), 0) << path;
  ASSERT_EQ(::close(fd), 0);
}

// Limits this process's address space to what it has now plus `headroom`.
bool LimitAddressSpace(uint64_t headroom) {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  if (!(statm >> pages)) return false;
  const uint64_t limit =
      pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)) + headroom;
  const struct rlimit r = {limit, limit};
  return ::setrlimit(RLIMIT_AS, &r) == 0;
}

constexpr off_t kSparseSize = off_t{64} << 30;  // 64 GiB, no blocks.

TEST_F(FileConnectorTest, ReceiverConfigKeepsOnlyTheDirectory) {
  // What a serialized proxy may carry, whatever it says.
  const ConnectorConfig wire = {"file",
                                {{"directory", dir_},
                                 {"clear", "true"},
                                 {"create_directory", "true"},
                                 {"mmap_min_size", "9223372036854775807"},
                                 {"max_object_size", "9223372036854775807"},
                                 {"unknown", "x"}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig receiver,
                                  ReceiverConfig(wire, TrustPolicy::Default()));
  EXPECT_EQ(receiver, (ConnectorConfig{"file",
                                       {{"directory", dir_},
                                        {"clear", "false"},
                                        {"create_directory", "false"},
                                        {"max_object_size", "1073741824"}}}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig location,
                                  LocationConfig(wire));
  EXPECT_EQ(location, (ConnectorConfig{"file", {{"directory", dir_}}}));
  // The destination is the directory with links resolved and dots gone.
  const std::string link = absl::StrCat(dir_, "-link");
  ASSERT_EQ(::symlink(dir_.c_str(), link.c_str()), 0);
  EXPECT_THAT(
      ConnectorDestinations(
          {"file", {{"directory", absl::StrCat(link, "/a/../b/")}}}),
      IsOkAndHolds(::testing::ElementsAre(absl::StrCat("file:", dir_, "/b"))));
  ASSERT_EQ(::unlink(link.c_str()), 0);
  // A policy on destinations sees through "..".
  const TrustPolicy policy =
      TrustPolicy::DenyAll().AllowDestination(absl::StrCat("file:", dir_));
  EXPECT_THAT(ReceiverConfig(wire, policy), IsOk());
  EXPECT_THAT(
      ReceiverConfig({"file", {{"directory", absl::StrCat(dir_, "/../x")}}},
                     policy),
      StatusIs(
          absl::StatusCode::kPermissionDenied,
          absl::StrCat("file:", fs::path(dir_).parent_path().string(), "/x")));
  // A location that names no absolute directory is refused.
  EXPECT_THAT(ReceiverConfig({"file", {}}, TrustPolicy::Default()),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"directory\""));
  EXPECT_THAT(ReceiverConfig({"file", {{"directory", "rel/dir"}}},
                             TrustPolicy::Default()),
              StatusIs(absl::StatusCode::kInvalidArgument, "not absolute"));
  // A process may raise its own limits; they still come from it alone.
  PROXYSTORE_ASSERT_OK(
      SetReceiverOptions("file", {{"max_object_size", "8589934592"}}));
  EXPECT_THAT(
      ReceiverConfig(wire, TrustPolicy::Default()),
      IsOkAndHolds(::testing::Field(&ConnectorConfig::options,
                                    ::testing::Contains(::testing::Pair(
                                        "max_object_size", "8589934592")))));
  PROXYSTORE_ASSERT_OK(SetReceiverOptions("file", {}));
}

TEST_F(FileConnectorTest, ConnectorFromAProxyNeverCreatesClearsOrOverReads) {
  // 1. A proxy naming a directory that does not exist creates nothing,
  // even if it asks to.
  const std::string missing = absl::StrCat(FreshDir("absent"), "/a/b");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Connector> far,
      MakeConnectorFromWire({"file",
                             {{"directory", missing},
                              {"create_directory", "true"},
                              {"clear", "true"}}}));
  EXPECT_FALSE(fs::exists(fs::path(missing).parent_path()));
  EXPECT_THAT(far->Get(Key(NewObjectId())), IsOkAndHolds(std::nullopt));
  EXPECT_THAT(far->Exists(Key(NewObjectId())), IsOkAndHolds(false));
  EXPECT_THAT(far->Put(SharedBytes::Copy("x")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(missing), HasSubstr("does not exist"))));
  PROXYSTORE_ASSERT_OK(far->Close());
  EXPECT_FALSE(fs::exists(fs::path(missing).parent_path()));

  // 2. A proxy's config (clear=true, the user default) does not make the
  // receiver delete the data when it closes.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy("kept")));
  ASSERT_EQ(connector().Config().options.at("clear"), "true");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> near,
                                  MakeConnectorFromWire(connector().Config()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  near->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), "kept");
  PROXYSTORE_ASSERT_OK(near->Close());
  EXPECT_EQ(ReadWholeFile(ObjectPath(key)), "kept");

  // 3. A huge sparse file under a key's name, and a config that would read
  // it into memory whole: refused at the receiver's 1 GiB.
  const std::string id = NewObjectId();
  MakeSparseFile(ObjectPath(Key(id)), kSparseSize);
  ConnectorConfig greedy = connector().Config();
  greedy.options["mmap_min_size"] = "9223372036854775807";
  greedy.options["max_object_size"] = "9223372036854775807";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> reader,
                                  MakeConnectorFromWire(greedy));
  EXPECT_THAT(reader->Get(Key(id)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr(id), HasSubstr("68719476736"),
                             HasSubstr("1073741824"))));
  PROXYSTORE_ASSERT_OK(reader->Close());
}

TEST_F(FileConnectorTest, CreateDirectoryFalseCreatesNothing) {
  const std::string parent = FreshDir("nocreate");
  const std::string dir = absl::StrCat(parent, "/store");
  ConnectorConfig config = FileConfig(dir);
  config.options["create_directory"] = "false";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> c,
                                  FileConnector::Create(config));
  EXPECT_FALSE(fs::exists(parent));
  EXPECT_EQ(c->Config().options.at("create_directory"), "false");
  const Key key(NewObjectId());
  EXPECT_THAT(c->Get(key), IsOkAndHolds(std::nullopt));
  EXPECT_THAT(c->GetBatch({key, key}),
              IsOkAndHolds(::testing::ElementsAre(std::nullopt, std::nullopt)));
  EXPECT_THAT(c->Exists(key), IsOkAndHolds(false));
  EXPECT_THAT(c->Evict(key), IsOk());
  EXPECT_THAT(c->Put(SharedBytes::Copy("x")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(dir),
                             HasSubstr("\"create_directory\" is false"))));
  EXPECT_THAT(c->PutBatch({SharedBytes::Copy("x")}),
              StatusIs(absl::StatusCode::kFailedPrecondition, dir));
  PROXYSTORE_ASSERT_OK(c->Close(CloseOptions{.clear = true}));
  EXPECT_FALSE(fs::exists(parent));

  // Once someone else made the directory, the same connector works in it.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(c, FileConnector::Create(config));
  ASSERT_TRUE(fs::create_directories(dir));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key stored, c->Put(SharedBytes::Copy("y")));
  EXPECT_THAT(c->Exists(stored), IsOkAndHolds(true));
  // A path through a regular file reads as missing too.
  const std::string file = absl::StrCat(parent, "/file");
  std::ofstream(file) << "x";
  ConnectorConfig through = FileConfig(absl::StrCat(file, "/sub"));
  through.options["create_directory"] = "false";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> odd,
                                  FileConnector::Create(through));
  EXPECT_THAT(odd->Exists(key), IsOkAndHolds(false));
  PROXYSTORE_ASSERT_OK(c->Close(CloseOptions{.clear = true}));
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(FileConnectorTest, MaxObjectSizeBoundsGetOnBothReadPaths) {
  for (int64_t mmap_min_size : {int64_t{0}, int64_t{1} << 62}) {
    SCOPED_TRACE(mmap_min_size);
    ConnectorConfig config = FileConfig(FreshDir("limit"));
    config.options["mmap_min_size"] = absl::StrCat(mmap_min_size);
    config.options["max_object_size"] = "1000";
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> c,
                                    FileConnector::Create(config));
    EXPECT_EQ(c->Config().options.at("max_object_size"), "1000");
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key fits,
                                    c->Put(SharedBytes::Copy(Pattern(1000))));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key big,
                                    c->Put(SharedBytes::Copy(Pattern(1001))));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                    c->Get(fits));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->view(), Pattern(1000));
    const auto refused =
        StatusIs(absl::StatusCode::kResourceExhausted,
                 AllOf(HasSubstr(big.id()), HasSubstr("1001 bytes"),
                       HasSubstr("\"max_object_size\" (1000)")));
    EXPECT_THAT(c->Get(big), refused);
    EXPECT_THAT(c->GetBatch({fits, big}), refused);
    EXPECT_THAT(c->Exists(big), IsOkAndHolds(true));
    PROXYSTORE_ASSERT_OK(c->Close());
  }
}

TEST_F(FileConnectorTest, HugeSparseFileIsRefusedBeforeAllocatingOrMapping) {
  const std::string id = NewObjectId();
  MakeSparseFile(ObjectPath(Key(id)), kSparseSize);
  for (int64_t mmap_min_size :
       {int64_t{0}, FileConnector::kDefaultMmapMinSize, int64_t{1} << 62}) {
    SCOPED_TRACE(mmap_min_size);
    ConnectorConfig config = FileConfig(dir_);
    config.options["clear"] = "false";
    config.options["mmap_min_size"] = absl::StrCat(mmap_min_size);
    config.options["max_object_size"] =
        absl::StrCat(FileConnector::kReceiverMaxObjectSize);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> c,
                                    FileConnector::Create(config));
    EXPECT_THAT(c->Get(Key(id)),
                StatusIs(absl::StatusCode::kResourceExhausted,
                         AllOf(HasSubstr(id), HasSubstr("68719476736 bytes"),
                               HasSubstr("(1073741824)"))));
  }
}

TEST_F(FileConnectorTest, HugeFileWithoutALimitIsResourceExhaustedNotACrash) {
  // No limit, and not enough memory for the object: the read buffer is
  // allocated without throwing (it once threw bad_alloc and terminated).
  const std::string id = NewObjectId();
  MakeSparseFile(ObjectPath(Key(id)), kSparseSize);
  for (int64_t mmap_min_size :
       {FileConnector::kDefaultMmapMinSize, int64_t{1} << 62}) {
    SCOPED_TRACE(mmap_min_size);
    ConnectorConfig config = FileConfig(dir_);
    config.options["clear"] = "false";
    config.options["mmap_min_size"] = absl::StrCat(mmap_min_size);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> c,
                                    FileConnector::Create(config));
    const int code = RunInChild([&] {
      // 512 MiB more address space: neither a 64 GiB mapping nor a 64 GiB
      // buffer fits.
      if (!LimitAddressSpace(uint64_t{512} << 20)) return 10;
      absl::StatusOr<std::optional<SharedBytes>> got = c->Get(Key(id));
      if (got.ok()) return 11;
      if (got.status().code() != absl::StatusCode::kResourceExhausted) {
        return 12;
      }
      const std::string message(got.status().message());
      if (!absl::StrContains(message, "cannot allocate 68719476736 bytes")) {
        return 13;
      }
      if (!absl::StrContains(message, id)) return 14;
      return 0;
    });
    EXPECT_EQ(code, 0) << "child exit code (see the test's return codes)";
  }
}

TEST_F(FileConnectorTest, ObjectsAndTemporariesArePrivateToTheUser) {
  // Whatever the umask allows: 0600.
  const mode_t old_umask = ::umask(0);
  std::optional<mode_t> temp_mode;
  FileConnector::TestHooks hooks;
  hooks.after_write = [&](const Key&, const std::string& temp, size_t) {
    struct stat st;
    if (::stat(temp.c_str(), &st) == 0) temp_mode = st.st_mode & 07777;
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::CreateForTesting(FileConfig(dir_), std::move(hooks)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("x")));
  ::umask(old_umask);
  struct stat st;
  ASSERT_EQ(::stat(ObjectPath(key).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_TRUE(temp_mode.has_value());
  EXPECT_EQ(*temp_mode, 0600u);
  PROXYSTORE_ASSERT_OK(c->Close({.clear = false}));
}

TEST_F(FileConnectorTest, KilledWritersTemporaryIsReclaimedLiveOnesAreNot) {
  // A child process writes an object and parks in the middle of the write;
  // it is then killed with SIGKILL (no cleanup of any kind runs).
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(ready[0]);
    FileConnector::TestHooks hooks;
    hooks.max_io_chunk = 4096;
    hooks.after_write = [&](const Key&, const std::string&, size_t written) {
      if (written != 8192) return;
      (void)!::write(ready[1], "w", 1);
      while (true) ::pause();  // Mid-write until killed.
    };
    absl::StatusOr<std::unique_ptr<FileConnector>> c =
        FileConnector::CreateForTesting(FileConfig(dir_), std::move(hooks));
    if (c.ok()) (void)(*c)->Put(SharedBytes::Copy(Pattern(100'000)));
    ::_exit(1);  // Not reached.
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  const std::vector<std::string> left = ListDir(dir_);
  ASSERT_THAT(left, ::testing::SizeIs(1));
  const std::string temp = left[0];
  EXPECT_TRUE(absl::StartsWith(temp, ".") && absl::EndsWith(temp, ".tmp"))
      << temp;
  EXPECT_EQ(fs::file_size(absl::StrCat(dir_, "/", temp)), 8192u);

  // The writer lives: neither a new connector nor a clearing one touches its
  // temporary (and the directory stays for it).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> other,
                                  FileConnector::Create(FileConfig(dir_)));
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAre(temp));
  PROXYSTORE_ASSERT_OK(other->Close(CloseOptions{.clear = true}));
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAre(temp));

  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << wstatus;
  // Dead: the next connector made on the directory reclaims it.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(other,
                                  FileConnector::Create(FileConfig(dir_)));
  EXPECT_THAT(ListDir(dir_), IsEmpty());
  PROXYSTORE_ASSERT_OK(other->Close(CloseOptions{.clear = false}));
}

TEST_F(FileConnectorTest, ClearReclaimsADeadWritersTemporary) {
  // As above, reclaimed by the clearing Close instead: directory gone.
  const std::string dir = FreshDir("dead");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> c,
                                  FileConnector::Create(FileConfig(dir)));
  const int code = RunInChild([&] {
    FileConnector::TestHooks hooks;
    hooks.max_io_chunk = 4096;
    hooks.after_write = [](const Key&, const std::string&, size_t written) {
      if (written >= 8192) ::raise(SIGKILL);
    };
    absl::StatusOr<std::unique_ptr<FileConnector>> writer =
        FileConnector::CreateForTesting(FileConfig(dir), std::move(hooks));
    if (!writer.ok()) return 10;
    (void)(*writer)->Put(SharedBytes::Copy(Pattern(100'000)));
    return 11;
  });
  ASSERT_EQ(code, 128 + SIGKILL);
  EXPECT_THAT(ListDir(dir), ::testing::SizeIs(1));
  PROXYSTORE_ASSERT_OK(c->Close(CloseOptions{.clear = true}));
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(FileConnectorTest, ATemporarySweptBeforeItsLockIsRewrittenUnderANewKey) {
  // A sweep that runs between a writer's open and its lock cannot tell it
  // from a dead writer and removes the temporary; the writer notices and
  // starts over, so the Put still succeeds, with a new key.
  std::vector<std::string> temps;
  FileConnector::TestHooks hooks;
  hooks.before_lock = [&](const std::string& temp) {
    temps.push_back(temp);
    if (temps.size() > 1) return;
    SweepAndExpectGone(temp);
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::CreateForTesting(FileConfig(dir_), std::move(hooks)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("again")));
  ASSERT_EQ(temps.size(), 2u);
  EXPECT_NE(temps[0], temps[1]);
  EXPECT_TRUE(absl::StrContains(temps[1], key.id()));
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAre(key.id()));
  EXPECT_EQ(ReadWholeFile(ObjectPath(key)), "again");
  PROXYSTORE_ASSERT_OK(c->Close({.clear = false}));
}

TEST_F(FileConnectorTest, ConcurrentSweepsNeverBreakAPut) {
  // Writers, and a thread that keeps creating connectors on the same
  // directory, each of which sweeps it for abandoned temporaries.
  constexpr int kWriters = 2;
  constexpr int kPuts = 100;
  std::atomic<bool> writing{true};
  std::atomic<int> failures{0};
  std::thread sweeper([&] {
    while (writing.load()) {
      absl::StatusOr<std::unique_ptr<FileConnector>> c =
          FileConnector::Create(FileConfig(dir_));
      if (!c.ok() || !(*c)->Close({.clear = false}).ok()) failures++;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPuts; ++i) {
        const std::string value = absl::StrCat(t, ":", i);
        absl::StatusOr<Key> key = connector().Put(SharedBytes::Copy(value));
        if (!key.ok()) {
          ADD_FAILURE() << key.status();
          failures++;
          continue;
        }
        absl::StatusOr<std::optional<SharedBytes>> got = connector().Get(*key);
        if (!got.ok() || !got->has_value() || (*got)->view() != value) {
          failures++;
        }
      }
    });
  }
  for (std::thread& w : writers) w.join();
  writing.store(false);
  sweeper.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_THAT(ListDir(dir_), ::testing::SizeIs(kWriters * kPuts));
}

TEST_F(FileConnectorTest, PutBatchOverTheFileSizeLimitLeavesNothing) {
  // All or nothing: a batch whose second item hits RLIMIT_FSIZE (as a full
  // disk would) leaves neither its first item nor a temporary.
  const std::string dir = FreshDir("batch");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileConnector> c,
                                  FileConnector::Create(FileConfig(dir)));
  const std::vector<SharedBytes> batch = {SharedBytes::Copy("first"),
                                          SharedBytes::Copy(Pattern(1'000'000)),
                                          SharedBytes::Copy("third")};
  const int code = RunInChild([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    const struct rlimit limit = {64 * 1024, 64 * 1024};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 10;
    absl::StatusOr<std::vector<Key>> keys = c->PutBatch(batch);
    if (keys.ok()) return 11;
    if (keys.status().code() != absl::StatusCode::kResourceExhausted) {
      return 12;
    }
    // The connector is still usable after the failure.
    absl::StatusOr<std::vector<Key>> small =
        c->PutBatch({SharedBytes::Copy("a"), SharedBytes::Copy("b")});
    if (!small.ok() || small->size() != 2) return 13;
    for (const Key& k : *small) {
      if (!c->Evict(k).ok()) return 14;
    }
    return 0;
  });
  EXPECT_EQ(code, 0) << "child exit code (see the test's return codes)";
  EXPECT_THAT(ListDir(dir), IsEmpty());
  PROXYSTORE_ASSERT_OK(c->Close());
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(FileConnectorTest, AChildForkedDuringAPutUsesAndClosesTheConnector) {
  // The connector keeps no descriptor, mapping or lock between calls, and
  // Close waits only for Puts of its own process: a child forked while a
  // parent thread is in the middle of a Put uses the connector and closes
  // it without waiting for a Put that does not exist in the child.
  const pid_t parent = ::getpid();
  std::latch in_write(1);
  std::latch release(1);
  auto hook = [&](const Key&, const std::string&, size_t written) {
    if (::getpid() != parent || written != 4096) return;
    in_write.count_down();
    release.wait();
  };
  FileConnector::TestHooks hooks;
  hooks.max_io_chunk = 4096;
  hooks.after_write = hook;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> owned,
      FileConnector::CreateForTesting(FileConfig(dir_), std::move(hooks)));
  FileConnector* c = owned.get();
  std::thread writer([&] {
    absl::StatusOr<Key> key = c->Put(SharedBytes::Copy(Pattern(100'000)));
    EXPECT_THAT(key, IsOk());
  });
  in_write.wait();
  const int code = RunInChild([c] {
    absl::StatusOr<Key> key = c->Put(SharedBytes::Copy(Pattern(10'000)));
    if (!key.ok()) return 10;
    absl::StatusOr<std::optional<SharedBytes>> got = c->Get(*key);
    if (!got.ok() || !got->has_value() || (*got)->view() != Pattern(10'000)) {
      return 11;
    }
    if (!c->Evict(*key).ok()) return 12;
    if (!c->Close(CloseOptions{.clear = false}).ok()) return 13;
    if (c->Put(SharedBytes::Copy("late")).ok()) return 14;
    return 0;
  });
  EXPECT_EQ(code, 0) << "child exit code (see the test's return codes)";
  release.count_down();
  writer.join();
  // The parent's connector is still open, and its Put completed.
  EXPECT_THAT(ListDir(dir_), ::testing::SizeIs(1));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key last, c->Put(SharedBytes::Copy("x")));
  EXPECT_THAT(c->Exists(last), IsOkAndHolds(true));
  PROXYSTORE_ASSERT_OK(c->Close(CloseOptions{.clear = true}));
  EXPECT_THAT(ListDir(dir_), IsEmpty());
}

// --- Deferred writes (NewKey / Set) ---------------------------------------

TEST_F(FileConnectorTest, NewKeyCreatesNothingAndSetWritesTheKeysFile) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, connector().NewKey());
  EXPECT_TRUE(FileConnector::ValidateObjectName(key.id()).ok()) << key.id();
  EXPECT_THAT(ListDir(dir_), IsEmpty());
  PROXYSTORE_ASSERT_OK(connector().Set(key, SharedBytes::Copy("set")));
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAre(key.id()));
  EXPECT_EQ(ReadWholeFile(ObjectPath(key)), "set");
  struct stat st;
  ASSERT_EQ(::stat(ObjectPath(key).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_nlink, 1u);
}

TEST_F(FileConnectorTest, HalfWrittenSetIsInvisible) {
  const std::string value = Pattern(100'000);
  bool checked = false;
  FileConnector* self = nullptr;
  FileConnector::TestHooks hooks;
  hooks.max_io_chunk = 4096;
  hooks.after_write = [&](const Key& key, const std::string& temp,
                          size_t written) {
    if (written != 4096) return;  // Check once, mid-write.
    checked = true;
    EXPECT_EQ(ReadWholeFile(temp), value.substr(0, 4096));
    // Racing Sets of one key each write their own temporary: it is not
    // named after the key.
    EXPECT_FALSE(absl::StrContains(temp, key.id())) << temp;
    EXPECT_THAT(self->Exists(key), IsOkAndHolds(false));
    absl::StatusOr<std::optional<SharedBytes>> got = self->Get(key);
    ASSERT_THAT(got, IsOk());
    EXPECT_FALSE(got->has_value());
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::CreateForTesting(FileConfig(dir_), std::move(hooks)));
  self = c.get();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
  PROXYSTORE_ASSERT_OK(c->Set(key, SharedBytes::Copy(value)));
  EXPECT_TRUE(checked);
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAre(key.id()));
  EXPECT_EQ(ReadWholeFile(ObjectPath(key)), value);
  PROXYSTORE_ASSERT_OK(c->Close({.clear = false}));
}

TEST_F(FileConnectorTest, SetOfATakenNameLeavesItAndNoTemporary) {
  // Whatever holds the name (a file another writer made, a directory) is
  // left as it is, and the losing Set's temporary is gone.
  const Key file_key(NewObjectId());
  std::ofstream(ObjectPath(file_key)) << "outside";
  EXPECT_THAT(connector().Set(file_key, SharedBytes::Copy("mine")),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("Set"), HasSubstr(file_key.id()))));
  EXPECT_EQ(ReadWholeFile(ObjectPath(file_key)), "outside");
  const Key dir_key(NewObjectId());
  ASSERT_TRUE(fs::create_directory(ObjectPath(dir_key)));
  EXPECT_THAT(connector().Set(dir_key, SharedBytes::Copy("mine")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_TRUE(fs::is_directory(ObjectPath(dir_key)));
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAre(file_key.id(), dir_key.id()));
  fs::remove(ObjectPath(dir_key));
}

TEST_F(FileConnectorTest, SetRefusesInvalidKeysWithoutTouchingFiles) {
  for (const std::string& id :
       {std::string("../escape"), std::string("x.tmp"), std::string(""),
        absl::StrCat(".", NewObjectId(), ".tmp"), NewObjectId() + "0"}) {
    EXPECT_THAT(connector().Set(Key(id), SharedBytes::Copy("v")),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Set")))
        << id;
  }
  EXPECT_THAT(ListDir(dir_), IsEmpty());
}

TEST_F(FileConnectorTest, SetAndNewKeyAfterCloseAreFailedPreconditionAsPut) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, connector().NewKey());
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = false}));
  EXPECT_THAT(connector().Set(key, SharedBytes::Copy("late")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("Set after Close")));
  EXPECT_THAT(connector().NewKey(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("NewKey after Close")));
  EXPECT_FALSE(fs::exists(ObjectPath(key)));
}

TEST_F(FileConnectorTest, APutWhoseTemporaryIsAlwaysSweptGivesUp) {
  // A sweep before every lock: the Put starts over a bounded number of
  // times, then is Aborted, and leaves nothing behind.
  int attempts = 0;
  FileConnector::TestHooks hooks;
  hooks.before_lock = [&](const std::string& temp) {
    ++attempts;
    SweepAndExpectGone(temp);
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::CreateForTesting(FileConfig(dir_), std::move(hooks)));
  EXPECT_THAT(c->Put(SharedBytes::Copy("never")),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("removed by concurrent sweeps 16 times")));
  EXPECT_EQ(attempts, 16);
  EXPECT_THAT(ListDir(dir_), ::testing::IsEmpty());
  PROXYSTORE_ASSERT_OK(c->Close({.clear = false}));
}

TEST_F(FileConnectorTest, ATemporarySweptBeforeItsLockIsRewrittenForTheKey) {
  // As for Put, but a Set keeps its key: only the temporary is renamed.
  std::vector<std::string> temps;
  FileConnector::TestHooks hooks;
  hooks.before_lock = [&](const std::string& temp) {
    temps.push_back(temp);
    if (temps.size() > 1) return;
    SweepAndExpectGone(temp);
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::CreateForTesting(FileConfig(dir_), std::move(hooks)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
  PROXYSTORE_ASSERT_OK(c->Set(key, SharedBytes::Copy("again")));
  ASSERT_EQ(temps.size(), 2u);
  EXPECT_NE(temps[0], temps[1]);
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAre(key.id()));
  EXPECT_EQ(ReadWholeFile(ObjectPath(key)), "again");
  PROXYSTORE_ASSERT_OK(c->Close({.clear = false}));
}

TEST_F(FileConnectorTest, SetThroughLinkIsAsExclusiveAndLeavesNoTemporary) {
  // The path file systems without renameat2's RENAME_NOREPLACE take.
  FileConnector::TestHooks hooks;
  hooks.publish_with_link = true;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FileConnector> c,
      FileConnector::CreateForTesting(FileConfig(dir_), std::move(hooks)));
  constexpr int kWriters = 6;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->NewKey());
  std::vector<absl::Status> results(kWriters);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      results[w] = c->Set(key, SharedBytes::Copy(absl::StrCat("value ", w)));
    });
  }
  for (std::thread& t : writers) t.join();
  int winner = -1;
  for (int w = 0; w < kWriters; ++w) {
    if (results[w].ok()) {
      EXPECT_EQ(winner, -1) << "writers " << winner << " and " << w;
      winner = w;
    } else {
      EXPECT_THAT(results[w], StatusIs(absl::StatusCode::kAlreadyExists));
    }
  }
  ASSERT_NE(winner, -1);
  EXPECT_EQ(ReadWholeFile(ObjectPath(key)), absl::StrCat("value ", winner));
  // The temporaries' names are gone: the object has one link.
  EXPECT_THAT(ListDir(dir_), UnorderedElementsAre(key.id()));
  struct stat st;
  ASSERT_EQ(::stat(ObjectPath(key).c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  PROXYSTORE_ASSERT_OK(c->Close({.clear = false}));
}

}  // namespace
}  // namespace proxystore
