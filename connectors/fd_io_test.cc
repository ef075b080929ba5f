#include "proxystore/connectors/fd_io.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/status_matchers.h"

// Under the sanitizers a failed allocation returns null, as it does with the
// plain allocator: AllocateBuffer's tests check that it becomes a Status.
extern "C" const char* __asan_default_options() {
  return "allocator_may_return_null=1";
}
extern "C" const char* __tsan_default_options() {
  return "allocator_may_return_null=1";
}

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// A real temporary file, removed at the end.
class TempFile {
 public:
  TempFile() {
    path_ = ::proxystore::testing::TestTempDir() + "/fd_io_XXXXXX";
    fd_ = ::mkstemp(path_.data());
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  std::string Contents() const {
    std::string out;
    char buf[4096];
    const int fd = ::open(path_.c_str(), O_RDONLY);
    ssize_t r;
    while ((r = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, r);
    ::close(fd);
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7);
  return s;
}

TEST(WriteAll, WritesTheConcatenationOfThePartsInChunks) {
  const std::string a = Pattern(1000, 'a'), b = Pattern(3, 'b'),
                    c = Pattern(5000, 'c');
  const std::vector<absl::string_view> parts = {a, "", b, c, ""};
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{1000}, size_t{1003},
                       size_t{4096}, size_t{1} << 30}) {
    TempFile f;
    ASSERT_GE(f.fd(), 0);
    std::vector<size_t> progress;
    ASSERT_THAT(WriteAll(f.fd(), parts, chunk,
                         [&](size_t w) { progress.push_back(w); }),
                IsOk())
        << chunk;
    EXPECT_EQ(f.Contents(), a + b + c) << chunk;
    ASSERT_FALSE(progress.empty());
    EXPECT_EQ(progress.back(), a.size() + b.size() + c.size());
    // Each call wrote at most a chunk; progress only grows.
    size_t last = 0;
    for (size_t w : progress) {
      EXPECT_GT(w, last);
      EXPECT_LE(w - last, chunk);
      last = w;
    }
  }
}

TEST(WriteAll, NoPartsOrEmptyPartsWriteNothing) {
  TempFile f;
  int calls = 0;
  EXPECT_THAT(WriteAll(f.fd(), {}, 16, [&](size_t) { ++calls; }), IsOk());
  const std::vector<absl::string_view> empty = {"", ""};
  EXPECT_THAT(WriteAll(f.fd(), empty, 16, [&](size_t) { ++calls; }), IsOk());
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(f.Contents(), "");
}

TEST(WriteAll, ManyMorePartsThanIovMax) {
  // More parts than one writev takes (IOV_MAX = 1024 on Linux).
  std::vector<std::string> storage;
  for (int i = 0; i < 3000; ++i) storage.push_back(std::to_string(i) + ",");
  std::vector<absl::string_view> parts(storage.begin(), storage.end());
  std::string joined;
  for (const std::string& s : storage) joined += s;
  TempFile f;
  EXPECT_THAT(WriteAll(f.fd(), parts, size_t{1} << 30, [](size_t) {}), IsOk());
  EXPECT_EQ(f.Contents(), joined);
}

TEST(WriteAll, ErrorsSayHowFarTheWriteGot) {
  const std::string data = "0123456789";
  const std::vector<absl::string_view> parts = {data};
  const int fd = ::open("/dev/null", O_RDONLY);  // not writable: EBADF
  ASSERT_GE(fd, 0);
  EXPECT_THAT(WriteAll(fd, parts, 4, [](size_t) {}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("failed after 0 of 10 bytes")));
  ::close(fd);
  // /dev/full: every write fails with ENOSPC = ResourceExhausted.
  const int full = ::open("/dev/full", O_WRONLY);
  ASSERT_GE(full, 0);
  EXPECT_THAT(WriteAll(full, parts, 4, [](size_t) {}),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("No space left on device")));
  ::close(full);
}

TEST(ErrnoStatus, StorageExhaustionIsResourceExhausted) {
  for (int err : {EFBIG, ENOSPC, EDQUOT}) {
    EXPECT_THAT(ErrnoStatus(err, "writing x"),
                StatusIs(absl::StatusCode::kResourceExhausted,
                         HasSubstr("writing x: ")));
  }
  EXPECT_THAT(ErrnoStatus(ENOENT, "opening y"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("opening y")));
}

TEST(ScopedFd, ClosesOnScopeExitAndReportsClose) {
  int raw = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(raw, 0);
  { ScopedFd fd(raw); }
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
  ScopedFd fd(::open("/dev/null", O_RDONLY));
  EXPECT_EQ(fd.Close(), 0);
  EXPECT_EQ(fd.get(), -1);
}

TEST(TotalSize, SumsThePartSizes) {
  const std::vector<absl::string_view> parts = {"ab", "", "cde"};
  EXPECT_EQ(TotalSize(parts), 5u);
  EXPECT_EQ(TotalSize({}), 0u);
}

TEST(ScopedFd, MovesOwnership) {
  ScopedFd a(::open("/dev/null", O_RDONLY));
  const int raw = a.get();
  ASSERT_GE(raw, 0);
  ScopedFd b(std::move(a));
  EXPECT_EQ(a.get(), -1);  // NOLINT(bugprone-use-after-move): the contract.
  EXPECT_EQ(b.get(), raw);
  ScopedFd c;
  c = std::move(b);
  EXPECT_EQ(c.get(), raw);
  EXPECT_NE(::fcntl(raw, F_GETFD), -1);  // Still open.
  c = ScopedFd();
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
}

TEST(AllocateBuffer, SizesFromStorageNeverThrow) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<char[]> none,
                                  AllocateBuffer(0, "x"));
  EXPECT_EQ(none, nullptr);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<char[]> some,
                                  AllocateBuffer(4096, "x"));
  ASSERT_NE(some, nullptr);
  std::fill_n(some.get(), 4096, 'a');
  // 4 EiB: no allocator has that. A Status, not std::bad_alloc.
  EXPECT_THAT(AllocateBuffer(size_t{1} << 62, "reading key k"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("cannot allocate 4611686018427387904 bytes "
                                 "for reading key k")));
}

TEST(IsObjectId, AcceptsExactlyTheMintedForm) {
  EXPECT_TRUE(IsObjectId("0123456789abcdef0123456789abcdef"));
  EXPECT_TRUE(IsObjectId(std::string(32, 'f')));
  for (absl::string_view bad :
       {"", "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0", "0123456789ABCDEF0123456789abcdef",
        "0123456789abcdeg0123456789abcdef", "../etc/passwd", ".bashrc", "x.tmp",
        "a/b", ".0123456789abcdef0123456789abcde"}) {
    EXPECT_FALSE(IsObjectId(bad)) << bad;
  }
  EXPECT_FALSE(
      IsObjectId(absl::string_view("0123456789abcdef0123456789abcde\0", 32)));
}

TEST(IsTemporaryName, AcceptsExactlyAWritersTemporary) {
  EXPECT_TRUE(IsTemporaryName(".0123456789abcdef0123456789abcdef.tmp"));
  for (absl::string_view bad :
       {"", ".tmp", "0123456789abcdef0123456789abcdef.tmp",
        ".0123456789abcdef0123456789abcdef.tmpx",
        ".0123456789abcdef0123456789abcdef.TMP",
        "..0123456789abcdef0123456789abcde.tmp",
        ".0123456789ABCDEF0123456789abcdef.tmp", "x.tmp", ".stray.tmp"}) {
    EXPECT_FALSE(IsTemporaryName(bad)) << bad;
  }
}

// A fresh directory under the test's temporary directory, open.
class TempDir {
 public:
  TempDir() {
    path_ = ::proxystore::testing::TestTempDir() + "/fd_io_dir_XXXXXX";
    if (::mkdtemp(path_.data()) != nullptr) {
      fd_ = ScopedFd(::open(path_.c_str(), O_RDONLY | O_DIRECTORY));
    }
  }
  ~TempDir() {
    for (const std::string& name : Names()) {
      ::unlinkat(fd_.get(), name.c_str(), 0);
      ::unlinkat(fd_.get(), name.c_str(), AT_REMOVEDIR);
    }
    ::rmdir(path_.c_str());
  }
  int fd() const { return fd_.get(); }
  std::string Path(absl::string_view name) const {
    return absl::StrCat(path_, "/", name);
  }
  std::vector<std::string> Names() const {
    absl::StatusOr<std::vector<std::string>> names = ListDirectory(fd());
    return names.ok() ? *names : std::vector<std::string>{};
  }
  // Creates `name` as a new 0600 file, open for writing.
  ScopedFd Create(absl::string_view name) const {
    return ScopedFd(::open(Path(name).c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  }

 private:
  std::string path_;
  ScopedFd fd_;
};

TEST(ListDirectory, NamesEveryEntryButDots) {
  TempDir dir;
  ASSERT_GE(dir.fd(), 0);
  EXPECT_THAT(ListDirectory(dir.fd()), IsOkAndHolds(IsEmpty()));
  ASSERT_GE(dir.Create("a").get(), 0);
  ASSERT_GE(dir.Create(".b").get(), 0);
  ASSERT_EQ(::mkdir(dir.Path("c").c_str(), 0700), 0);
  EXPECT_THAT(ListDirectory(dir.fd()),
              IsOkAndHolds(UnorderedElementsAre("a", ".b", "c")));
  // Again: listing rewinds.
  EXPECT_THAT(ListDirectory(dir.fd()),
              IsOkAndHolds(UnorderedElementsAre("a", ".b", "c")));
  EXPECT_FALSE(ListDirectory(-1).ok());
}

TEST(Temporaries, ALiveWritersTemporaryIsNeverRemoved) {
  TempDir dir;
  ScopedFd writer = dir.Create("t");
  ASSERT_GE(writer.get(), 0);
  EXPECT_THAT(LockTemporary(writer.get(), dir.Path("t")), IsOkAndHolds(true));
  EXPECT_THAT(RemoveIfAbandoned(dir.fd(), "t"), IsOkAndHolds(false));
  EXPECT_THAT(dir.Names(), UnorderedElementsAre("t"));
  // Its writer gone (every descriptor closed, as when a process dies), it
  // is abandoned and removed.
  writer = ScopedFd();
  EXPECT_THAT(RemoveIfAbandoned(dir.fd(), "t"), IsOkAndHolds(true));
  EXPECT_THAT(dir.Names(), IsEmpty());
  EXPECT_THAT(RemoveIfAbandoned(dir.fd(), "t"), IsOkAndHolds(false));
}

TEST(Temporaries, OnlyRegularFilesAreRemoved) {
  TempDir dir;
  ASSERT_EQ(::mkdir(dir.Path("d").c_str(), 0700), 0);
  ASSERT_EQ(::mkfifo(dir.Path("p").c_str(), 0600), 0);
  ASSERT_GE(dir.Create("target").get(), 0);
  ASSERT_EQ(::symlink(dir.Path("target").c_str(), dir.Path("l").c_str()), 0);
  for (const char* name : {"d", "p", "l"}) {
    EXPECT_THAT(RemoveIfAbandoned(dir.fd(), name), IsOkAndHolds(false)) << name;
  }
  EXPECT_THAT(dir.Names(), UnorderedElementsAre("d", "p", "l", "target"));
}

TEST(Temporaries, AWriterSweptBeforeItsLockIsTold) {
  // A sweep between a writer's open and its lock removes the temporary
  // (nothing tells it from a dead writer's); the writer's lock then reports
  // false, and the writer starts over under a new name.
  TempDir dir;
  ScopedFd writer = dir.Create("t");
  ASSERT_GE(writer.get(), 0);
  EXPECT_THAT(RemoveIfAbandoned(dir.fd(), "t"), IsOkAndHolds(true));
  EXPECT_THAT(LockTemporary(writer.get(), dir.Path("t")), IsOkAndHolds(false));
  // A new file under the same name is not the writer's either.
  ASSERT_GE(dir.Create("t").get(), 0);
  EXPECT_THAT(LockTemporary(writer.get(), dir.Path("t")), IsOkAndHolds(false));
}

TEST(Temporaries, PublishRenamesTheTemporaryAndReleasesItsLock) {
  TempDir dir;
  ScopedFd writer = dir.Create("t");
  ASSERT_GE(writer.get(), 0);
  ASSERT_THAT(LockTemporary(writer.get(), dir.Path("t")), IsOkAndHolds(true));
  ASSERT_EQ(::write(writer.get(), "data", 4), 4);
  // A sweeper's descriptor, opened before the publication.
  ScopedFd sweeper(::open(dir.Path("t").c_str(), O_RDONLY));
  ASSERT_GE(sweeper.get(), 0);
  EXPECT_THAT(
      PublishTemporary(std::move(writer), dir.Path("t"), dir.Path("object")),
      IsOk());
  EXPECT_THAT(dir.Names(), UnorderedElementsAre("object"));
  // The lock went with the last descriptor: the sweeper may take it now,
  // but the temporary's name is gone, so nothing is removed.
  EXPECT_EQ(::flock(sweeper.get(), LOCK_EX | LOCK_NB), 0);
  EXPECT_THAT(RemoveIfAbandoned(dir.fd(), "t"), IsOkAndHolds(false));

  // A temporary removed under its writer: Aborted, nothing published.
  writer = dir.Create("u");
  ASSERT_GE(writer.get(), 0);
  ASSERT_EQ(::unlink(dir.Path("u").c_str()), 0);
  EXPECT_THAT(
      PublishTemporary(std::move(writer), dir.Path("u"), dir.Path("other")),
      StatusIs(absl::StatusCode::kAborted,
               HasSubstr("removed before it was published")));
  EXPECT_THAT(dir.Names(), UnorderedElementsAre("object"));
}

}  // namespace
}  // namespace proxystore
