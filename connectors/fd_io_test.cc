#include "connectors/fd_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/child_process.h"
#include "testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

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

}  // namespace
}  // namespace proxystore
