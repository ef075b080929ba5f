// Fault injection under a Store over the shm connector: a segment removed by
// another process while a view of it is mapped, and a segment replaced with
// one of the wrong size or with garbage.
//
// What the connector's own tests already prove (shm_connector_test.cc) and
// is not repeated here: views survive Evict and a clearing Close by another
// connector object (ViewsSurviveEvictAndClearingClose), a segment that
// changes size between fstat and mmap is DataLoss
// (SizeChangeWhileMappingIsDataLoss), whatever bytes a segment holds are
// returned as they are (SegmentBytesAreReturnedAsTheyAre), and non-segments
// under a key's name are errors, not hangs
// (NonSegmentsUnderAKeyNameAreErrorsNotHangs). These tests go one level up:
// the Store, its cache, its serializer envelope, and proxies, with the
// segment removed by a separate process. docs/faults.md has the table.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/shm/shm_connector.h"
#include "proxystore/serializer/serializer.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// The /dev/shm entries of namespace `ns` (objects and temporaries).
std::vector<std::string> ListSegments(absl::string_view ns) {
  std::vector<std::string> names;
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return names;
  const std::string prefix = absl::StrCat("proxystore.", ns, ".");
  while (const struct dirent* e = ::readdir(d)) {
    if (absl::StartsWith(e->d_name, prefix)) names.emplace_back(e->d_name);
  }
  ::closedir(d);
  return names;
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  }
  return s;
}

// shm_unlink(name) in a separate process; its exit code (0 = removed).
int UnlinkInAnotherProcess(const std::string& name) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) ::_exit(::shm_unlink(name.c_str()) == 0 ? 0 : 1);
  int wstatus = 0;
  if (::waitpid(pid, &wstatus, 0) != pid || !WIFEXITED(wstatus)) return -1;
  return WEXITSTATUS(wstatus);
}

class ShmFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShmConnector> c,
                                    ShmConnector::Create({"shm", {}}));
    shm_ = c.get();
    ns_ = c->segment_namespace();
    // No cache: every Get maps the segment afresh.
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        store_, Store::Create("shm-fault", std::move(c),
                              StoreOptions{.cache_size = 0}));
  }
  void TearDown() override {
    EXPECT_THAT(store_->Close({.clear = true}), IsOk());
    EXPECT_THAT(ListSegments(ns_), IsEmpty());
  }

  // Replaces `key`'s segment with one holding `bytes`, the way another
  // writer would: a new segment renamed over the old one. Views of the old
  // segment keep its inode, so they stay valid. (Truncating a segment in
  // place under a live view would make touching it raise SIGBUS; the
  // connector documents that outside writers must not do that.)
  void Replace(const Key& key, absl::string_view bytes) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string name, shm_->SegmentName(key));
    const std::string path = absl::StrCat("/dev/shm", name);
    // Inside the namespace, so a clearing Close would remove a leftover.
    const std::string temp = absl::StrCat("/dev/shm/proxystore.", ns_,
                                          "..replacement-", key.id(), ".tmp");
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0) << temp;
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
      ASSERT_GT(w, 0);
      done += static_cast<size_t>(w);
    }
    ASSERT_EQ(::close(fd), 0);
    ASSERT_EQ(::rename(temp.c_str(), path.c_str()), 0) << path;
  }

  ShmConnector* shm_ = nullptr;  // Owned by store_.
  std::string ns_;
  std::shared_ptr<Store> store_;
};

TEST_F(ShmFaultTest, SegmentRemovedByAnotherProcessWhileMapped) {
  const std::string value = Pattern(1'000'000);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  store_->Put(SharedBytes::Copy(value)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string name, shm_->SegmentName(key));
  // A zero-copy view (a slice of the mapping) taken before the removal.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const SharedBytes> view,
                                  store_->Get<SharedBytes>(key));
  ASSERT_NE(view, nullptr);
  // A second store on the same namespace, with a cache, that read it too.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> other,
                                  MakeConnector(shm_->Config()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> cached,
      Store::Create("shm-fault-cached", std::move(other)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<const SharedBytes> cached_view,
      cached->Get<SharedBytes>(key));
  ASSERT_NE(cached_view, nullptr);
  Proxy<SharedBytes> proxy = store_->ProxyFromKey<SharedBytes>(key);

  ASSERT_EQ(UnlinkInAnotherProcess(name), 0);
  EXPECT_THAT(ListSegments(ns_), IsEmpty());

  // Views taken before stay mapped and intact (every byte is compared).
  EXPECT_TRUE(view->view() == value);
  EXPECT_TRUE(cached_view->view() == value);
  // A new Get finds nothing, cleanly: the default (nullptr), or the
  // caller's default; Exists is false; a proxy is NotFound naming the key;
  // evicting the missing object is OK.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const SharedBytes> gone,
                                  store_->Get<SharedBytes>(key));
  EXPECT_EQ(gone, nullptr);
  StoreGetOptions<SharedBytes> with_default;
  with_default.default_value =
      std::make_shared<const SharedBytes>(SharedBytes::Copy("default"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(gone,
                                  store_->Get<SharedBytes>(key, with_default));
  ASSERT_NE(gone, nullptr);
  EXPECT_EQ(gone->view(), "default");
  EXPECT_THAT(store_->Exists(key), IsOkAndHolds(false));
  EXPECT_THAT(proxy.Get(),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(key.id()),
                             HasSubstr("no object associated with the key"))));
  const std::vector<Key> keys = {key};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::vector<std::shared_ptr<const SharedBytes>> batch,
      store_->GetBatch<SharedBytes>(keys));
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0], nullptr);
  EXPECT_THAT(store_->Evict(key), IsOk());

  // The store with a cache still answers from it (ProxyStore's rule:
  // Get and Exists look in the cache first) until it evicts the key.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const SharedBytes> hit,
                                  cached->Get<SharedBytes>(key));
  EXPECT_EQ(hit, cached_view);
  EXPECT_THAT(cached->Exists(key), IsOkAndHolds(true));
  EXPECT_THAT(cached->Evict(key), IsOk());
  EXPECT_THAT(cached->Exists(key), IsOkAndHolds(false));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(hit, cached->Get<SharedBytes>(key));
  EXPECT_EQ(hit, nullptr);
  EXPECT_THAT(cached->Close(), IsOk());  // Keeps segments (default).

  // The views outlive both the segment and the stores' connectors.
  EXPECT_TRUE(view->view() == value);
  EXPECT_TRUE(cached_view->view() == value);
}

TEST_F(ShmFaultTest, SegmentReplacedWithWrongSizeOrGarbageIsACleanError) {
  const std::string value = Pattern(5000);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, store_->Put(value));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string name, shm_->SegmentName(key));
  // The bytes as stored, and a view of them taken before any replacement.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> stored,
                                  store_->connector().Get(key));
  ASSERT_TRUE(stored.has_value());
  const std::string original = stored->ToString();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes int_envelope,
                                  Serialize(int64_t{42}));

  struct Case {
    const char* what;
    std::string bytes;
    absl::StatusCode code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"shorter", original.substr(0, original.size() / 2),
       absl::StatusCode::kDataLoss, "truncated envelope"},
      {"header only", original.substr(0, 64), absl::StatusCode::kDataLoss,
       "truncated envelope"},
      {"longer", original + std::string(4096, '\0'),
       absl::StatusCode::kDataLoss, "corrupt envelope"},
      {"empty", "", absl::StatusCode::kDataLoss, "empty buffer"},
      {"garbage of the right size", Pattern(original.size()),
       absl::StatusCode::kDataLoss, "not serialized data"},
      {"a page of 0xff", std::string(4096, '\xff'), absl::StatusCode::kDataLoss,
       "not serialized data"},
      {"another type's object", int_envelope.ToString(),
       absl::StatusCode::kInvalidArgument, "int64"},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.what);
    Replace(key, tc.bytes);
    EXPECT_THAT(
        store_->Get<std::string>(key),
        StatusIs(tc.code, AllOf(HasSubstr(key.id()), HasSubstr(tc.message))));
    const std::vector<Key> keys = {key};
    EXPECT_THAT(store_->GetBatch<std::string>(keys), StatusIs(tc.code));
    EXPECT_THAT(store_->ProxyFromKey<std::string>(key).Get(),
                StatusIs(tc.code));
    // The store is unharmed: the raw bytes are there, as replaced.
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> raw,
                                    store_->connector().Get(key));
    ASSERT_TRUE(raw.has_value());
    EXPECT_TRUE(raw->view() == tc.bytes);
  }
  // The view taken before the first replacement still holds the original.
  EXPECT_TRUE(stored->view() == original);
  // Whole again: readable again.
  Replace(key, original);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const std::string> got,
                                  store_->Get<std::string>(key));
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(*got, value);
}

}  // namespace
}  // namespace proxystore
