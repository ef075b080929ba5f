#include "proxystore/connectors/shm/shm_connector.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/testing/connector_conformance.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::ConnectorTestParams;
using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

std::string Prefix(absl::string_view ns) {
  return absl::StrCat("proxystore.", ns, ".");
}

// The /dev/shm entries of namespace `ns` (objects and temporaries).
std::vector<std::string> ListSegments(absl::string_view ns) {
  std::vector<std::string> names;
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return names;
  const std::string prefix = Prefix(ns);
  while (const struct dirent* e = ::readdir(d)) {
    if (absl::StartsWith(e->d_name, prefix)) names.emplace_back(e->d_name);
  }
  ::closedir(d);
  return names;
}

std::string ShmPath(absl::string_view ns, absl::string_view id) {
  return absl::StrCat("/dev/shm/", Prefix(ns), id);
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  }
  return s;
}

// Every namespace a connector of this test binary used; the environment
// below checks at the very end that none left a segment behind (the
// conformance suite's connectors included).
std::set<std::string>& UsedNamespaces() {
  static std::set<std::string>* used = new std::set<std::string>();
  return *used;
}

class NoLeftoverSegments : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const std::string& ns : UsedNamespaces()) {
      EXPECT_THAT(ListSegments(ns), IsEmpty()) << "namespace " << ns;
    }
  }
};
const ::testing::Environment* const kNoLeftovers =
    ::testing::AddGlobalTestEnvironment(new NoLeftoverSegments);

ConnectorTestParams ShmParams(std::string name, int64_t populate_min_size) {
  return {
      .name = std::move(name),
      .make =
          [populate_min_size]() -> absl::StatusOr<std::unique_ptr<Connector>> {
        PROXYSTORE_ASSIGN_OR_RETURN(
            std::unique_ptr<ShmConnector> c,
            ShmConnector::Create(
                {"shm",
                 {{"populate_min_size", absl::StrCat(populate_min_size)}}}));
        UsedNamespaces().insert(c->segment_namespace());
        return std::unique_ptr<Connector>(std::move(c));
      }};
}

// Conformance through both mapping paths (populated and lazily faulted).
PROXYSTORE_INSTANTIATE_CONNECTOR_CONFORMANCE(
    Shm, ShmParams("Default", ShmConnector::kDefaultPopulateMinSize),
    ShmParams("AlwaysPopulate", 0),
    ShmParams("PopulateFrom8MiB", int64_t{8} << 20));

// The /proc/self/maps line of the mapping containing `p` ("" if none).
std::string MapsLineOf(const void* p) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uintptr_t start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR, &start, &end) ==
            2 &&
        start <= addr && addr < end) {
      return line;
    }
  }
  return "";
}

// Resident (page-table mapped) kB of the mapping starting at `p`, from
// /proc/self/smaps; -1 if not found.
int64_t RssKbOfMappingAt(const void* p) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_mapping = false;
  while (std::getline(smaps, line)) {
    uintptr_t start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR, &start, &end) ==
            2 &&
        line.find(' ') != std::string::npos &&
        line.find('-') < line.find(' ')) {
      in_mapping = (start == addr);
      continue;
    }
    if (in_mapping && absl::StartsWith(line, "Rss:")) {
      int64_t kb = -1;
      std::vector<absl::string_view> parts =
          absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) return kb;
      return -1;
    }
  }
  return -1;
}

class ShmConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override { connector_ = Make(ConnectorConfig{"shm", {}}); }

  void TearDown() override {
    for (const std::unique_ptr<ShmConnector>& c : owned_) {
      EXPECT_THAT(c->Close(CloseOptions{.clear = true}), IsOk());
    }
    // Nothing of this test's namespaces remains in /dev/shm.
    for (const std::string& ns : namespaces_) {
      EXPECT_THAT(ListSegments(ns), IsEmpty()) << "namespace " << ns;
    }
  }

  // A connector owned (and finally cleared) by the fixture; nullptr after
  // an ADD_FAILURE if it cannot be created.
  ShmConnector* Make(const ConnectorConfig& config,
                     ShmConnector::TestHooks hooks = {}) {
    absl::StatusOr<std::unique_ptr<ShmConnector>> c =
        ShmConnector::CreateForTesting(config, std::move(hooks));
    if (!c.ok()) {
      ADD_FAILURE() << c.status();
      return nullptr;
    }
    Track((*c)->segment_namespace());
    owned_.push_back(*std::move(c));
    return owned_.back().get();
  }
  void Track(const std::string& ns) {
    namespaces_.insert(ns);
    UsedNamespaces().insert(ns);
  }
  ShmConnector& connector() { return *connector_; }
  const std::string& ns() { return connector_->segment_namespace(); }

  ShmConnector* connector_ = nullptr;
  std::vector<std::unique_ptr<ShmConnector>> owned_;
  std::set<std::string> namespaces_;
};

TEST_F(ShmConnectorTest, IsRegisteredAsShm) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector({"ShmConnector", {}}));
  EXPECT_EQ(c->kind(), "shm");
  Track(c->Config().options.at("namespace"));
  PROXYSTORE_ASSERT_OK(c->Close(CloseOptions{.clear = true}));
}

TEST_F(ShmConnectorTest, DefaultNamespaceIsFreshAndInConfig) {
  ShmConnector* other = Make({"shm", {}});
  ASSERT_NE(other, nullptr);
  EXPECT_NE(ns(), other->segment_namespace());
  EXPECT_THAT(ns(), SizeIs(32));
  EXPECT_THAT(ShmConnector::ValidateNamespace(ns()), IsOk());

  const ConnectorConfig config = connector().Config();
  EXPECT_EQ(config.kind, "shm");
  EXPECT_EQ(
      config.options,
      (std::map<std::string, std::string>{
          {"namespace", ns()},
          {"clear", "false"},
          {"populate_min_size",
           absl::StrCat(ShmConnector::kDefaultPopulateMinSize)},
          {"max_object_size", absl::StrCat(ShmConnector::kNoSizeLimit)}}));
  // A connector made from the config reaches the same segments.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy("hi")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> clone,
                                  ShmConnector::FromConfig(config));
  EXPECT_EQ(clone->Config(), config);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  clone->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), "hi");
  // The other namespace does not see it.
  EXPECT_THAT(other->Exists(key), IsOkAndHolds(false));
  PROXYSTORE_ASSERT_OK(clone->Close());
}

TEST_F(ShmConnectorTest, BadOptionsAreInvalidArgument) {
  auto create = [](std::map<std::string, std::string> options) {
    return ShmConnector::Create({"shm", std::move(options)});
  };
  EXPECT_THAT(create({{"typo", "1"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"typo\""));
  EXPECT_THAT(create({{"clear", "maybe"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"clear\""));
  EXPECT_THAT(
      create({{"populate_min_size", "-1"}}),
      StatusIs(absl::StatusCode::kInvalidArgument, "populate_min_size"));
  EXPECT_THAT(
      create({{"populate_min_size", "big"}}),
      StatusIs(absl::StatusCode::kInvalidArgument, "populate_min_size"));
  EXPECT_THAT(create({{"max_object_size", "-1"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "max_object_size"));
  for (const std::string& bad :
       {std::string(""), std::string("a.b"), std::string("a/b"),
        std::string("../x"), std::string(".."), std::string("a b"),
        std::string("a\0b", 3), std::string(65, 'n')}) {
    EXPECT_THAT(
        create({{"namespace", bad}}),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr("\"namespace\""), HasSubstr("is not valid"))))
        << bad;
  }
  // The longest and the odd-but-valid ones are accepted.
  for (const std::string& good :
       {std::string(64, 'n'), std::string("A_b-9"), std::string("-")}) {
    ShmConnector* c = Make({"shm", {{"namespace", good}}});
    ASSERT_NE(c, nullptr) << good;
    EXPECT_EQ(c->segment_namespace(), good);
  }
}

TEST_F(ShmConnectorTest, OneSegmentPerObjectReadableThroughShmOpen) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key a,
                                  connector().Put(SharedBytes::Copy("A")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key b,
                                  connector().Put(SharedBytes::Copy("BB")));
  EXPECT_THAT(ListSegments(ns()), UnorderedElementsAre(Prefix(ns()) + a.id(),
                                                       Prefix(ns()) + b.id()));
  // They are POSIX shm objects: shm_open() of SegmentName opens them.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string name, connector().SegmentName(b));
  EXPECT_EQ(name, absl::StrCat("/proxystore.", ns(), ".", b.id()));
  int fd = ::shm_open(name.c_str(), O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  struct stat st;
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // Private to this user.
  char buf[8] = {};
  EXPECT_EQ(::read(fd, buf, sizeof(buf)), 2);
  EXPECT_EQ(std::string(buf, 2), "BB");
  ::close(fd);
  PROXYSTORE_ASSERT_OK(connector().Evict(a));
  EXPECT_THAT(ListSegments(ns()), ElementsAre(Prefix(ns()) + b.id()));
}

TEST_F(ShmConnectorTest, GetIsAZeroCopyViewOfTheSegment) {
  const std::string value = Pattern(3'000'000);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy(value)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> first,
                                  connector().Get(key));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> second,
                                  connector().Get(key));
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(first->view() == value);
  EXPECT_TRUE(second->view() == value);
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first->data()) % page, 0u);
  // Each view is a read-only shared mapping of the segment's file.
  const std::string path = ShmPath(ns(), key.id());
  for (const SharedBytes* view : {&*first, &*second}) {
    const std::string line = MapsLineOf(view->data());
    EXPECT_THAT(line, AllOf(HasSubstr(path), HasSubstr(" r--s ")));
  }
  // Not a copy: bytes changed in the segment show through both views.
  // (Only a test writes into a published segment.)
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "Z", 1, 1'234'567), 1);
  ::close(fd);
  EXPECT_EQ(first->data()[1'234'567], 'Z');
  EXPECT_EQ(second->data()[1'234'567], 'Z');
  // A small object is mapped the same way.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key small,
                                  connector().Put(SharedBytes::Copy("tiny")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> tiny,
                                  connector().Get(small));
  ASSERT_TRUE(tiny.has_value());
  EXPECT_EQ(tiny->view(), "tiny");
  EXPECT_THAT(MapsLineOf(tiny->data()), HasSubstr(ShmPath(ns(), small.id())));
}

TEST_F(ShmConnectorTest, ViewsAreUnmappedWhenTheLastReferenceDies) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key key, connector().Put(SharedBytes::Copy(Pattern(100'000))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  connector().Get(key));
  ASSERT_TRUE(got.has_value());
  const void* addr = got->data();
  const std::string path = ShmPath(ns(), key.id());
  SharedBytes slice = *got->Slice(10, 10);
  got.reset();
  EXPECT_THAT(MapsLineOf(addr), HasSubstr(path));  // The slice holds it.
  slice = SharedBytes();
  EXPECT_THAT(MapsLineOf(addr), ::testing::Not(HasSubstr(path)));
}

TEST_F(ShmConnectorTest, PopulateMinSizeDecidesWhetherPagesArePremapped) {
  const std::string value = Pattern(1'000'000);
  for (int64_t threshold :
       {int64_t{0}, int64_t{1'000'000}, int64_t{1'000'001}, int64_t{1} << 62}) {
    ShmConnector* c =
        Make({"shm", {{"populate_min_size", absl::StrCat(threshold)}}});
    ASSERT_NE(c, nullptr);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy(value)));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                    c->Get(key));
    ASSERT_TRUE(got.has_value());
    const int64_t rss_kb = RssKbOfMappingAt(got->data());
    if (threshold <= 1'000'000) {
      // Every page already in the page table.
      EXPECT_GE(rss_kb, 976) << threshold;
    } else {
      // Nothing touched yet, nothing mapped.
      EXPECT_EQ(rss_kb, 0) << threshold;
    }
    EXPECT_TRUE(got->view() == value);
  }
}

// Reading in place: by default even a large Get maps no page until the
// reader touches it, so reading one field costs one fault, not 4096.
TEST_F(ShmConnectorTest, DefaultGetOfALargeObjectTouchesNoPage) {
  ShmConnector* c = Make({"shm", {}});
  ASSERT_NE(c, nullptr);
  const std::string value = Pattern(16 << 20);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy(value)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got, c->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(RssKbOfMappingAt(got->data()), 0);
  EXPECT_EQ(got->data()[(16 << 20) - 1], value.back());
  EXPECT_GT(RssKbOfMappingAt(got->data()), 0);
  EXPECT_LT(RssKbOfMappingAt(got->data()), 16 << 10);
}

TEST_F(ShmConnectorTest, EmptyObjectIsAnEmptyViewWithoutAMapping) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, connector().Put(SharedBytes()));
  EXPECT_THAT(connector().Exists(key), IsOkAndHolds(true));
  EXPECT_THAT(ListSegments(ns()), ElementsAre(Prefix(ns()) + key.id()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  connector().Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->empty());
  EXPECT_EQ(got->owner(), nullptr);
}

TEST_F(ShmConnectorTest, InvalidKeyIdsAreRejectedWithoutTouchingSegments) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key real,
                                  connector().Put(SharedBytes::Copy("real")));
  // Another namespace's segment must stay unreachable through this one.
  ShmConnector* neighbour = Make({"shm", {}});
  ASSERT_NE(neighbour, nullptr);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key theirs,
                                  neighbour->Put(SharedBytes::Copy("theirs")));
  const size_t max_id = 255 - Prefix(ns()).size();
  std::string upper = real.id();
  for (char& ch : upper) ch = static_cast<char>(std::toupper(ch));
  // Only the names the connector mints (32 lowercase hex digits) pass.
  const std::vector<Key> bad = {
      Key("../etc/passwd"),
      Key(".bashrc"),
      Key("x.tmp"),
      Key(upper),
      Key(real.id().substr(1)),
      Key(absl::StrCat(real.id(), "a")),
      Key("not-hex-but-32-characters-long-x"),
      Key(std::string(max_id, 'a')),
      Key(""),
      Key("."),
      Key(".."),
      Key("../x"),
      Key("a/b"),
      Key("/"),
      Key(std::string("ab\0cd", 5)),
      Key(".hidden"),
      Key("a.b"),
      Key(absl::StrCat(".", real.id(), ".tmp")),  // A temporary's suffix.
      Key(absl::StrCat("../", Prefix(neighbour->segment_namespace()),
                       theirs.id())),
      Key(absl::StrCat(neighbour->segment_namespace(), ".", theirs.id())),
      Key(std::string(max_id + 1, 'a')),
  };
  for (const Key& key : bad) {
    EXPECT_THAT(connector().Get(key),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "not a valid shm object name"))
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
    EXPECT_THAT(connector().SegmentName(key),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << key;
  }
  EXPECT_THAT(connector().Exists(real), IsOkAndHolds(true));
  EXPECT_THAT(neighbour->Exists(theirs), IsOkAndHolds(true));
  // An id of the minted form is fine (and simply missing).
  EXPECT_THAT(connector().Exists(Key(NewObjectId())), IsOkAndHolds(false));
}

TEST_F(ShmConnectorTest, SegmentBytesAreReturnedAsTheyAre) {
  // Whatever a segment under a key's name holds is the object: corruption is
  // the serializer's to detect.
  const std::string id = NewObjectId();
  const std::string name = absl::StrCat("/", Prefix(ns()), id);
  int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "garbage", 7), 7);
  ::close(fd);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  connector().Get(Key(id)));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), "garbage");
}

TEST_F(ShmConnectorTest, SizeChangeWhileMappingIsDataLoss) {
  for (const bool shrink : {true, false}) {
    for (int64_t populate : {int64_t{0}, int64_t{1} << 62}) {
      ShmConnector::TestHooks hooks;
      hooks.before_map = [shrink](const std::string& path) {
        int fd = ::open(path.c_str(), O_RDWR);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, shrink ? 1000 : 500'000), 0);
        ::close(fd);
      };
      ShmConnector* c =
          Make({"shm", {{"populate_min_size", absl::StrCat(populate)}}},
               std::move(hooks));
      ASSERT_NE(c, nullptr);
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(
          Key key, c->Put(SharedBytes::Copy(Pattern(300'000))));
      EXPECT_THAT(c->Get(key),
                  StatusIs(absl::StatusCode::kDataLoss,
                           AllOf(HasSubstr(key.id()),
                                 HasSubstr("changed size from 300000"))));
    }
  }
}

TEST_F(ShmConnectorTest, NonSegmentsUnderAKeyNameAreErrorsNotHangs) {
  const std::string dir_id = NewObjectId();
  ASSERT_EQ(::mkdir(ShmPath(ns(), dir_id).c_str(), 0700), 0);
  EXPECT_THAT(connector().Get(Key(dir_id)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "not a shared memory segment"));
  EXPECT_THAT(connector().Exists(Key(dir_id)),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  const std::string fifo_id = NewObjectId();
  ASSERT_EQ(::mkfifo(ShmPath(ns(), fifo_id).c_str(), 0600), 0);
  EXPECT_THAT(connector().Get(Key(fifo_id)),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  // A symlink is not followed.
  const std::string target = absl::StrCat(::testing::TempDir(), "/target");
  std::ofstream(target) << "outside";
  const std::string link_id = NewObjectId();
  ASSERT_EQ(::symlink(target.c_str(), ShmPath(ns(), link_id).c_str()), 0);
  EXPECT_FALSE(connector().Get(Key(link_id)).ok());
  EXPECT_THAT(connector().Exists(Key(link_id)),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  // Clearing removes the FIFO and the link, and names what it cannot remove.
  EXPECT_THAT(connector().Close(CloseOptions{.clear = true}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("cannot remove"),
                             HasSubstr(ShmPath(ns(), dir_id)))));
  EXPECT_THAT(ListSegments(ns()), ElementsAre(Prefix(ns()) + dir_id));
  ASSERT_EQ(::rmdir(ShmPath(ns(), dir_id).c_str()), 0);
  std::ifstream in(target);
  std::string kept;
  std::getline(in, kept);
  EXPECT_EQ(kept, "outside");
}

TEST_F(ShmConnectorTest, HalfWrittenObjectIsInvisible) {
  const std::string value = Pattern(100'000);
  bool checked = false;
  std::unique_ptr<Connector> reader;
  ShmConnector::TestHooks hooks;
  hooks.max_io_chunk = 4096;
  hooks.after_write = [&](const Key& key, const std::string& temp,
                          size_t written) {
    if (written != 4096) return;  // Check once, mid-write.
    checked = true;
    // The temporary segment holds a prefix; the key is not yet visible.
    std::ifstream in(temp, std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}),
              value.substr(0, 4096));
    EXPECT_EQ(temp,
              absl::StrCat("/dev/shm/", Prefix(ns()), ".", key.id(), ".tmp"));
    EXPECT_THAT(ListSegments(ns()),
                ElementsAre(absl::StrCat(Prefix(ns()), ".", key.id(), ".tmp")));
    EXPECT_THAT(reader->Exists(key), IsOkAndHolds(false));
    absl::StatusOr<std::optional<SharedBytes>> got = reader->Get(key);
    ASSERT_THAT(got, IsOk());
    EXPECT_FALSE(got->has_value());
    // Temporary names cannot be addressed as keys.
    EXPECT_THAT(reader->Get(Key(absl::StrCat(".", key.id(), ".tmp"))),
                StatusIs(absl::StatusCode::kInvalidArgument));
  };
  ShmConnector* writer = Make({"shm", {{"namespace", ns()}}}, std::move(hooks));
  ASSERT_NE(writer, nullptr);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(reader,
                                  ShmConnector::FromConfig(writer->Config()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  writer->Put(SharedBytes::Copy(value)));
  EXPECT_TRUE(checked);
  // Published whole, and no temporary segment left behind.
  EXPECT_THAT(ListSegments(ns()), ElementsAre(Prefix(ns()) + key.id()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  reader->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->view() == value);
  PROXYSTORE_ASSERT_OK(reader->Close());
}

TEST_F(ShmConnectorTest, TinyChunksExerciseThePartialWriteLoop) {
  const std::string value = Pattern(300'007);
  size_t writes = 0;
  ShmConnector::TestHooks hooks;
  hooks.max_io_chunk = 7;
  hooks.after_write = [&](const Key&, const std::string&, size_t written) {
    ++writes;
    EXPECT_EQ(written, std::min(writes * 7, value.size()));
  };
  ShmConnector* c = Make({"shm", {}}, std::move(hooks));
  ASSERT_NE(c, nullptr);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy(value)));
  EXPECT_EQ(writes, (value.size() + 6) / 7);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got, c->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->view() == value);
  EXPECT_LE(ShmConnector::kDefaultMaxIoChunk, size_t{0x7ffff000});
}

// Runs `child` in a forked process; returns its exit code (or 128 + signal).
// The child must not use gtest assertions: it reports through the code.
template <typename F>
int RunInChild(F child) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(child());
  if (pid < 0) return -1;
  int wstatus = 0;
  if (::waitpid(pid, &wstatus, 0) != pid) return -2;
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return WEXITSTATUS(wstatus);
}

TEST_F(ShmConnectorTest, CrashedWriterLeavesAnInvisibleTempThatClearRemoves) {
  // A child process dies in the middle of a Put.
  const ConnectorConfig config = connector().Config();
  const int code = RunInChild([&] {
    ShmConnector::TestHooks hooks;
    hooks.max_io_chunk = 4096;
    hooks.after_write = [](const Key&, const std::string&, size_t written) {
      if (written >= 8192) ::_exit(0);  // "Crash" mid-write.
    };
    absl::StatusOr<std::unique_ptr<ShmConnector>> c =
        ShmConnector::CreateForTesting(config, std::move(hooks));
    if (!c.ok()) return 10;
    (void)(*c)->Put(SharedBytes::Copy(Pattern(100'000)));
    return 11;  // Not reached.
  });
  ASSERT_EQ(code, 0);
  std::vector<std::string> left = ListSegments(ns());
  ASSERT_THAT(left, SizeIs(1));
  const std::string& temp = left[0];
  ASSERT_TRUE(absl::StartsWith(temp, Prefix(ns()) + "."));
  ASSERT_TRUE(absl::EndsWith(temp, ".tmp"));
  const std::string id = temp.substr(Prefix(ns()).size() + 1,
                                     temp.size() - Prefix(ns()).size() - 1 - 4);
  EXPECT_THAT(id, SizeIs(32));
  EXPECT_THAT(connector().Exists(Key(id)), IsOkAndHolds(false));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  connector().Get(Key(id)));
  EXPECT_FALSE(got.has_value());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key live,
                                  connector().Put(SharedBytes::Copy("live")));
  EXPECT_THAT(ListSegments(ns()), SizeIs(2));
  (void)live;
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = true}));
  EXPECT_THAT(ListSegments(ns()), IsEmpty());
}

TEST_F(ShmConnectorTest, FailedWriteRemovesTheTempAndNamesTheKey) {
  // RLIMIT_FSIZE applies to tmpfs writes: a child with a 64 KiB limit fails
  // a 1 MB Put with EFBIG, like a full /dev/shm fails with ENOSPC.
  ShmConnector* c = connector_;
  const int code = RunInChild([c] {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = {64 * 1024, 64 * 1024};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 10;
    absl::StatusOr<Key> ok_key = c->Put(SharedBytes::Copy("small"));
    if (!ok_key.ok()) return 11;
    if (!c->Evict(*ok_key).ok()) return 12;
    absl::StatusOr<Key> key = c->Put(SharedBytes::Copy(Pattern(1'000'000)));
    if (key.ok()) return 13;  // Must fail.
    if (key.status().code() != absl::StatusCode::kResourceExhausted) return 14;
    const std::string message(key.status().message());
    if (!absl::StrContains(message, "Put of key \"")) return 15;
    if (!absl::StrContains(message, "of 1000000 bytes")) return 16;
    if (!absl::StrContains(message, c->segment_namespace())) return 17;
    return 0;
  });
  EXPECT_EQ(code, 0) << "child exit code (see the test's return codes)";
  // Neither a visible object nor a temporary segment is left.
  EXPECT_THAT(ListSegments(ns()), IsEmpty());
}

TEST_F(ShmConnectorTest, AnotherProcessPutsAndGetsThroughTheConfig) {
  const ConnectorConfig config = connector().Config();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Key from_parent, connector().Put(SharedBytes::Copy("from the parent")));
  const std::vector<std::string> values = {"one", std::string(), "three",
                                           Pattern(2'000'000)};
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: a connector of its own from the config; key ids to the pipe.
    ::close(fds[0]);
    absl::StatusOr<std::unique_ptr<Connector>> c = MakeConnector(config);
    if (!c.ok()) ::_exit(10);
    absl::StatusOr<std::optional<SharedBytes>> got = (*c)->Get(from_parent);
    if (!got.ok() || !got->has_value() || (*got)->view() != "from the parent") {
      ::_exit(11);
    }
    for (const std::string& v : values) {
      absl::StatusOr<Key> key = (*c)->Put(SharedBytes::Copy(v));
      if (!key.ok()) ::_exit(12);
      const std::string line = absl::StrCat(key->id(), "\n");
      if (::write(fds[1], line.data(), line.size()) !=
          static_cast<ssize_t>(line.size())) {
        ::_exit(13);
      }
    }
    if (!(*c)->Close().ok()) ::_exit(14);  // Keeps the segments.
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string ids;
  char buf[256];
  ssize_t r;
  while ((r = ::read(fds[0], buf, sizeof(buf))) > 0) ids.append(buf, r);
  ::close(fds[0]);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus)) << wstatus;
  ASSERT_EQ(WEXITSTATUS(wstatus), 0) << "child exit code";

  std::vector<std::string> lines = absl::StrSplit(ids, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                    connector().Get(Key(lines[i])));
    ASSERT_TRUE(got.has_value()) << i;
    EXPECT_TRUE(got->view() == values[i]) << i;
  }
  EXPECT_THAT(ListSegments(ns()), SizeIs(values.size() + 1));
}

TEST_F(ShmConnectorTest, NamespacesAreIsolated) {
  // ns2 starts with ns1: prefix matching must still tell them apart.
  const std::string ns1 = NewObjectId();
  const std::string ns2 = ns1 + "-x";
  ShmConnector* one = Make({"shm", {{"namespace", ns1}}});
  ShmConnector* two = Make({"shm", {{"namespace", ns2}}});
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k1, one->Put(SharedBytes::Copy("1")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k2, two->Put(SharedBytes::Copy("2")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key k0,
                                  connector().Put(SharedBytes::Copy("0")));
  // Keys do not cross namespaces.
  EXPECT_THAT(two->Exists(k1), IsOkAndHolds(false));
  EXPECT_THAT(one->Exists(k2), IsOkAndHolds(false));
  // A leftover temporary of ns1 goes with ns1.
  const std::string stray =
      absl::StrCat("/dev/shm/", Prefix(ns1), ".", NewObjectId(), ".tmp");
  std::ofstream(stray) << "partial";
  EXPECT_THAT(ListSegments(ns1), SizeIs(2));

  PROXYSTORE_ASSERT_OK(one->Close(CloseOptions{.clear = true}));
  EXPECT_THAT(ListSegments(ns1), IsEmpty());
  EXPECT_THAT(ListSegments(ns2), ElementsAre(Prefix(ns2) + k2.id()));
  EXPECT_THAT(two->Exists(k2), IsOkAndHolds(true));
  EXPECT_THAT(connector().Exists(k0), IsOkAndHolds(true));
}

TEST_F(ShmConnectorTest, ViewsSurviveEvictAndClearingClose) {
  const std::string value = Pattern(1'000'000);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key a,
                                  connector().Put(SharedBytes::Copy(value)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key b,
                                  connector().Put(SharedBytes::Copy(value)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Connector> other,
      ShmConnector::FromConfig(connector().Config()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> va,
                                  connector().Get(a));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> vb, other->Get(b));
  ASSERT_TRUE(va.has_value());
  ASSERT_TRUE(vb.has_value());
  PROXYSTORE_ASSERT_OK(connector().Evict(a));
  EXPECT_THAT(connector().Exists(a), IsOkAndHolds(false));
  EXPECT_TRUE(va->view() == value);
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = true}));
  EXPECT_THAT(ListSegments(ns()), IsEmpty());
  EXPECT_THAT(other->Exists(b), IsOkAndHolds(false));
  EXPECT_TRUE(vb->view() == value);
  other.reset();  // The views outlive the connectors too.
  EXPECT_TRUE(va->view() == value);
  EXPECT_TRUE(vb->view() == value);
}

TEST_F(ShmConnectorTest, CloseKeepsSegmentsByDefault) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  connector().Put(SharedBytes::Copy("kept")));
  PROXYSTORE_ASSERT_OK(connector().Close());  // "clear" defaults to false.
  EXPECT_THAT(ListSegments(ns()), ElementsAre(Prefix(ns()) + key.id()));
  PROXYSTORE_ASSERT_OK(connector().Close());
  // The per-call override wins; clearing after a plain Close still works.
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = true}));
  EXPECT_THAT(ListSegments(ns()), IsEmpty());
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = true}));
}

TEST_F(ShmConnectorTest, ClearOptionTrueClearsOnPlainClose) {
  ShmConnector* c = Make({"shm", {{"clear", "true"}}});
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->Config().options.at("clear"), "true");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("x")));
  (void)key;
  EXPECT_THAT(ListSegments(c->segment_namespace()), SizeIs(1));
  PROXYSTORE_ASSERT_OK(c->Close());
  EXPECT_THAT(ListSegments(c->segment_namespace()), IsEmpty());
}

TEST_F(ShmConnectorTest, OperationsAfterCloseAreFailedPrecondition) {
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
  EXPECT_THAT(ListSegments(ns()), ElementsAre(Prefix(ns()) + key.id()));
}

TEST_F(ShmConnectorTest, NoPutPublishesAfterAClearingClose) {
  // Writers run until Close stops them; whatever they managed to publish,
  // the clearing Close removes: it waits for Puts in flight.
  constexpr int kThreads = 4;
  std::latch warmed_up(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> unexpected{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0;; ++i) {
        absl::StatusOr<Key> key =
            connector().Put(SharedBytes::Copy(Pattern(1000 + i)));
        if (i == 4) warmed_up.count_down();
        if (!key.ok()) {
          if (key.status().code() != absl::StatusCode::kFailedPrecondition) {
            unexpected.fetch_add(1);
          }
          if (i < 4) warmed_up.count_down();
          return;
        }
      }
    });
  }
  warmed_up.wait();
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = true}));
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_THAT(ListSegments(ns()), IsEmpty());
}

TEST_F(ShmConnectorTest, ManyConnectorsAndThreadsOnOneNamespace) {
  constexpr int kThreads = 4;
  std::vector<ShmConnector*> connectors;
  for (int t = 0; t < kThreads; ++t) {
    ShmConnector* c = Make({"shm", {{"namespace", ns()}}});
    ASSERT_NE(c, nullptr);
    connectors.push_back(c);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const std::string value = absl::StrCat(t, ":", i);
        absl::StatusOr<Key> k = connectors[t]->Put(SharedBytes::Copy(value));
        ASSERT_THAT(k, IsOk());
        // Read it through a different connector object, then evict every
        // other one through a third.
        absl::StatusOr<std::optional<SharedBytes>> got =
            connectors[(t + 1) % kThreads]->Get(*k);
        ASSERT_THAT(got, IsOk());
        ASSERT_TRUE(got->has_value());
        EXPECT_EQ((*got)->view(), value);
        if (i % 2 == 0) {
          EXPECT_THAT(connectors[(t + 2) % kThreads]->Evict(*k), IsOk());
          EXPECT_EQ((*got)->view(), value);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_THAT(ListSegments(ns()), SizeIs(kThreads * 10));
}

// A sparse segment of `size` bytes named `/dev/shm/<name>`.
void MakeSparseSegment(const std::string& path, off_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::ftruncate(fd, size), 0) << path;
  ASSERT_EQ(::close(fd), 0);
}

constexpr off_t kSparseSize = off_t{64} << 30;  // 64 GiB, no pages.

TEST_F(ShmConnectorTest, ReceiverConfigKeepsOnlyTheNamespace) {
  const ConnectorConfig wire = {"shm",
                                {{"namespace", ns()},
                                 {"clear", "true"},
                                 {"populate_min_size", "0"},
                                 {"max_object_size", "9223372036854775807"},
                                 {"unknown", "x"}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig receiver,
                                  ReceiverConfig(wire, TrustPolicy::Default()));
  EXPECT_EQ(receiver, (ConnectorConfig{"shm",
                                       {{"namespace", ns()},
                                        {"clear", "false"},
                                        {"max_object_size", "1073741824"}}}));
  EXPECT_THAT(LocationConfig(wire),
              IsOkAndHolds(ConnectorConfig{"shm", {{"namespace", ns()}}}));
  EXPECT_THAT(ConnectorDestinations(wire),
              IsOkAndHolds(ElementsAre(absl::StrCat("shm:", ns()))));
  const TrustPolicy policy =
      TrustPolicy::DenyAll().AllowDestination(absl::StrCat("shm:", ns()));
  EXPECT_THAT(ReceiverConfig(wire, policy), IsOk());
  EXPECT_THAT(ReceiverConfig({"shm", {{"namespace", "other"}}}, policy),
              StatusIs(absl::StatusCode::kPermissionDenied, "shm:other"));
  // A namespace that is not one is refused before anything is opened.
  EXPECT_THAT(
      ReceiverConfig({"shm", {{"namespace", "../x"}}}, TrustPolicy::Default()),
      StatusIs(absl::StatusCode::kInvalidArgument, "\"namespace\""));
  EXPECT_THAT(ReceiverConfig({"shm", {}}, TrustPolicy::Default()),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"namespace\""));
}

TEST_F(ShmConnectorTest, ConnectorFromAProxyNeverClearsOrOverReads) {
  ShmConnector* owner = Make({"shm", {{"clear", "true"}}});
  ASSERT_NE(owner, nullptr);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, owner->Put(SharedBytes::Copy("k")));
  // The owner's config says clear=true: the receiver does not clear.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> receiver,
                                  MakeConnectorFromWire(owner->Config()));
  PROXYSTORE_ASSERT_OK(receiver->Close());
  EXPECT_THAT(owner->Exists(key), IsOkAndHolds(true));
  // A huge sparse segment under a key's name: refused at 1 GiB.
  const std::string id = NewObjectId();
  MakeSparseSegment(ShmPath(owner->segment_namespace(), id), kSparseSize);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(receiver,
                                  MakeConnectorFromWire(owner->Config()));
  EXPECT_THAT(receiver->Get(Key(id)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr(id), HasSubstr("68719476736 bytes"),
                             HasSubstr("(1073741824)"))));
  PROXYSTORE_ASSERT_OK(receiver->Close());
}

TEST_F(ShmConnectorTest, MaxObjectSizeBoundsGetBeforeMapping) {
  bool mapped = false;
  ShmConnector::TestHooks hooks;
  hooks.before_map = [&](const std::string&) { mapped = true; };
  ShmConnector* c = Make({"shm", {{"max_object_size", "1000"}}}, hooks);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->Config().options.at("max_object_size"), "1000");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key fits,
                                  c->Put(SharedBytes::Copy(Pattern(1000))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key big,
                                  c->Put(SharedBytes::Copy(Pattern(1001))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got, c->Get(fits));
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->view() == Pattern(1000));
  const auto refused =
      StatusIs(absl::StatusCode::kResourceExhausted,
               AllOf(HasSubstr(big.id()), HasSubstr("1001 bytes"),
                     HasSubstr("\"max_object_size\" (1000)")));
  mapped = false;
  EXPECT_THAT(c->Get(big), refused);
  EXPECT_FALSE(mapped);  // Refused before mmap.
  EXPECT_THAT(c->GetBatch({fits, big}), refused);
  EXPECT_THAT(c->Exists(big), IsOkAndHolds(true));
  mapped = false;
  // A huge sparse segment too.
  const std::string id = NewObjectId();
  MakeSparseSegment(ShmPath(c->segment_namespace(), id), kSparseSize);
  EXPECT_THAT(c->Get(Key(id)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr(id), HasSubstr("68719476736 bytes"))));
  EXPECT_FALSE(mapped);
}

TEST_F(ShmConnectorTest, ClearRemovesOnlyThisConnectorsNames) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key a,
                                  connector().Put(SharedBytes::Copy("a")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key b,
                                  connector().Put(SharedBytes::Copy("b")));
  // An abandoned temporary goes; other names in the namespace stay.
  std::ofstream(ShmPath(ns(), absl::StrCat(".", NewObjectId(), ".tmp")))
      << "dead writer";
  std::string upper = NewObjectId();
  for (char& ch : upper) ch = static_cast<char>(std::toupper(ch));
  const std::vector<std::string> foreign = {
      "notes", upper, "x.tmp", absl::StrCat(".", NewObjectId(), ".tmp.bak"),
      absl::StrCat(NewObjectId(), "-copy")};
  for (const std::string& name : foreign) {
    std::ofstream(ShmPath(ns(), name)) << "keep " << name;
  }
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = true}));
  std::vector<std::string> expected;
  for (const std::string& name : foreign) {
    expected.push_back(Prefix(ns()) + name);
    std::ifstream in(ShmPath(ns(), name));
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, absl::StrCat("keep ", name));
  }
  EXPECT_THAT(ListSegments(ns()),
              ::testing::UnorderedElementsAreArray(expected));
  (void)a;
  (void)b;
  for (const std::string& name : foreign) {
    ASSERT_EQ(::unlink(ShmPath(ns(), name).c_str()), 0);
  }
}

TEST_F(ShmConnectorTest, KilledWritersTemporaryIsReclaimedLiveOnesAreNot) {
  // A child process writes an object and parks in the middle of the write;
  // it is then killed with SIGKILL (no cleanup of any kind runs).
  const ConnectorConfig config = connector().Config();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(ready[0]);
    ShmConnector::TestHooks hooks;
    hooks.max_io_chunk = 4096;
    hooks.after_write = [&](const Key&, const std::string&, size_t written) {
      if (written != 8192) return;
      (void)!::write(ready[1], "w", 1);
      while (true) ::pause();  // Mid-write until killed.
    };
    absl::StatusOr<std::unique_ptr<ShmConnector>> c =
        ShmConnector::CreateForTesting(config, std::move(hooks));
    if (c.ok()) (void)(*c)->Put(SharedBytes::Copy(Pattern(100'000)));
    ::_exit(1);  // Not reached.
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  const std::vector<std::string> left = ListSegments(ns());
  ASSERT_THAT(left, SizeIs(1));
  const std::string temp = left[0];
  EXPECT_TRUE(absl::StartsWith(temp, Prefix(ns()) + ".") &&
              absl::EndsWith(temp, ".tmp"))
      << temp;
  struct stat st;
  ASSERT_EQ(::stat(absl::StrCat("/dev/shm/", temp).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8192);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  // The writer lives: neither a new connector nor a clearing one touches
  // its temporary.
  ShmConnector* other = Make(config);
  ASSERT_NE(other, nullptr);
  EXPECT_THAT(ListSegments(ns()), ElementsAre(temp));
  PROXYSTORE_ASSERT_OK(other->Close(CloseOptions{.clear = true}));
  EXPECT_THAT(ListSegments(ns()), ElementsAre(temp));

  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << wstatus;
  // Dead: the next connector made on the namespace reclaims the RAM.
  ASSERT_NE(Make(config), nullptr);
  EXPECT_THAT(ListSegments(ns()), IsEmpty());
}

TEST_F(ShmConnectorTest, PutBatchOverTheFileSizeLimitLeavesNothing) {
  // All or nothing: a batch whose second item fails to write (EFBIG here,
  // ENOSPC on a full /dev/shm) leaves neither its first item nor a
  // temporary.
  ShmConnector* c = connector_;
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
    absl::StatusOr<std::vector<Key>> small =
        c->PutBatch({SharedBytes::Copy("a"), SharedBytes::Copy("b")});
    if (!small.ok() || small->size() != 2) return 13;
    for (const Key& k : *small) {
      if (!c->Evict(k).ok()) return 14;
    }
    return 0;
  });
  EXPECT_EQ(code, 0) << "child exit code (see the test's return codes)";
  EXPECT_THAT(ListSegments(ns()), IsEmpty());
}

TEST_F(ShmConnectorTest, AChildForkedDuringAPutUsesAndClosesTheConnector) {
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
  ShmConnector::TestHooks hooks;
  hooks.max_io_chunk = 4096;
  hooks.after_write = hook;
  ShmConnector* c = Make({"shm", {{"namespace", ns()}}}, std::move(hooks));
  ASSERT_NE(c, nullptr);
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
  EXPECT_THAT(ListSegments(ns()), ::testing::SizeIs(1));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key last, c->Put(SharedBytes::Copy("x")));
  EXPECT_THAT(c->Exists(last), IsOkAndHolds(true));
  PROXYSTORE_ASSERT_OK(c->Close(CloseOptions{.clear = true}));
  EXPECT_THAT(ListSegments(ns()), IsEmpty());
}

// --- Deferred writes (NewKey / Set) ---------------------------------------

std::string ReadSegment(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(ShmConnectorTest, NewKeyCreatesNothingAndSetWritesTheKeysSegment) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, connector().NewKey());
  EXPECT_THAT(connector().SegmentName(key), IsOk());
  EXPECT_THAT(ListSegments(ns()), IsEmpty());
  PROXYSTORE_ASSERT_OK(connector().Set(key, SharedBytes::Copy("set")));
  EXPECT_THAT(ListSegments(ns()), ElementsAre(Prefix(ns()) + key.id()));
  EXPECT_EQ(ReadSegment(ShmPath(ns(), key.id())), "set");
  struct stat st;
  ASSERT_EQ(::stat(ShmPath(ns(), key.id()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ShmConnectorTest, HalfWrittenSetIsInvisible) {
  const std::string value = Pattern(100'000);
  bool checked = false;
  std::unique_ptr<Connector> reader;
  ShmConnector::TestHooks hooks;
  hooks.max_io_chunk = 4096;
  hooks.after_write = [&](const Key& key, const std::string& temp,
                          size_t written) {
    if (written != 4096) return;  // Check once, mid-write.
    checked = true;
    EXPECT_EQ(ReadSegment(temp), value.substr(0, 4096));
    // Racing Sets of one key each write their own temporary: it is not
    // named after the key.
    EXPECT_TRUE(absl::StartsWith(temp, "/dev/shm/" + Prefix(ns()) + "."))
        << temp;
    EXPECT_FALSE(absl::StrContains(temp, key.id())) << temp;
    EXPECT_THAT(reader->Exists(key), IsOkAndHolds(false));
    absl::StatusOr<std::optional<SharedBytes>> got = reader->Get(key);
    ASSERT_THAT(got, IsOk());
    EXPECT_FALSE(got->has_value());
  };
  ShmConnector* writer = Make({"shm", {{"namespace", ns()}}}, std::move(hooks));
  ASSERT_NE(writer, nullptr);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(reader,
                                  ShmConnector::FromConfig(writer->Config()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, reader->NewKey());
  PROXYSTORE_ASSERT_OK(writer->Set(key, SharedBytes::Copy(value)));
  EXPECT_TRUE(checked);
  EXPECT_THAT(ListSegments(ns()), ElementsAre(Prefix(ns()) + key.id()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  reader->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->view() == value);
  PROXYSTORE_ASSERT_OK(reader->Close());
}

TEST_F(ShmConnectorTest, SetOfATakenNameLeavesItAndNoTemporary) {
  // A segment another writer made under the name is left as it is, and the
  // losing Set's temporary is gone.
  const Key key(NewObjectId());
  std::ofstream(ShmPath(ns(), key.id())) << "outside";
  EXPECT_THAT(connector().Set(key, SharedBytes::Copy("mine")),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("Set"), HasSubstr(key.id()))));
  EXPECT_EQ(ReadSegment(ShmPath(ns(), key.id())), "outside");
  EXPECT_THAT(ListSegments(ns()), ElementsAre(Prefix(ns()) + key.id()));
}

TEST_F(ShmConnectorTest, SetRefusesInvalidKeysWithoutTouchingSegments) {
  for (const std::string& id :
       {std::string("../escape"), std::string("x.tmp"), std::string(""),
        absl::StrCat(".", NewObjectId(), ".tmp"), NewObjectId() + "0"}) {
    EXPECT_THAT(connector().Set(Key(id), SharedBytes::Copy("v")),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Set")))
        << id;
  }
  EXPECT_THAT(ListSegments(ns()), IsEmpty());
}

TEST_F(ShmConnectorTest, SetAndNewKeyAfterCloseAreFailedPreconditionAsPut) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, connector().NewKey());
  PROXYSTORE_ASSERT_OK(connector().Close(CloseOptions{.clear = false}));
  EXPECT_THAT(connector().Set(key, SharedBytes::Copy("late")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("Set after Close")));
  EXPECT_THAT(connector().NewKey(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("NewKey after Close")));
  EXPECT_THAT(ListSegments(ns()), IsEmpty());
}

}  // namespace
}  // namespace proxystore
