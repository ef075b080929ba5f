// The stress harness must catch what it claims to: objects lost, corrupted or
// not evicted by a faulty connector, and metrics that do not add up.
#include "proxystore/testing/stress.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/local/local_connector.h"
#include "proxystore/metrics/metrics.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::testing {
namespace {

// A "local" connector that misbehaves on every `every`-th call of one kind.
// Its Config() is the inner connector's, so the harness's fresh verifying
// store sees exactly what was really stored.
class FaultyConnector : public Connector {
 public:
  enum class Fault { kNone, kDropPut, kCorruptPut, kIgnoreEvict, kBadMetric };

  FaultyConnector(std::unique_ptr<Connector> inner, Fault fault, int every)
      : inner_(std::move(inner)), fault_(fault), every_(every) {}

  absl::string_view kind() const override { return inner_->kind(); }
  ConnectorConfig Config() const override { return inner_->Config(); }
  void set_metrics(StoreMetrics* m) { metrics_.store(m); }

 protected:
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override {
    if (Hit(Fault::kDropPut)) return Key(NewObjectId());  // Acknowledged only.
    if (Hit(Fault::kCorruptPut) && !data.empty()) {
      std::string bytes = data.ToString();
      bytes.back() = static_cast<char>(bytes.back() ^ 0x5a);
      data = SharedBytes::FromString(std::move(bytes));
    }
    return inner_->Put(std::move(data), options);
  }
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override {
    if (Hit(Fault::kBadMetric)) {
      if (StoreMetrics* m = metrics_.load()) m->AddTime("store.evict", key, 1);
    }
    return inner_->Get(key);
  }
  absl::StatusOr<bool> DoExists(const Key& key) override {
    return inner_->Exists(key);
  }
  absl::Status DoEvict(const Key& key) override {
    if (Hit(Fault::kIgnoreEvict)) return absl::OkStatus();
    return inner_->Evict(key);
  }
  absl::Status DoClose(const CloseOptions& options) override {
    return inner_->Close(options);
  }

 private:
  bool Hit(Fault f) { return fault_ == f && ++calls_ % every_ == 0; }

  const std::unique_ptr<Connector> inner_;
  const Fault fault_;
  const int every_;
  std::atomic<int64_t> calls_{0};
  std::atomic<StoreMetrics*> metrics_{nullptr};
};

StressSummary RunWithFault(FaultyConnector::Fault fault,
                           const std::string& name) {
  absl::StatusOr<std::unique_ptr<LocalConnector>> local =
      LocalConnector::Create();
  EXPECT_THAT(local.status(), IsOk());
  auto faulty =
      std::make_unique<FaultyConnector>(*std::move(local), fault, /*every=*/7);
  FaultyConnector* raw = faulty.get();
  absl::StatusOr<std::shared_ptr<Store>> store =
      Store::Create(name, std::move(faulty), {.metrics = true});
  EXPECT_THAT(store.status(), IsOk());
  raw->set_metrics((*store)->metrics());
  StressOptions options;
  options.ops_per_thread = 100;
  absl::StatusOr<StressSummary> s = RunStoreStress(*store, options);
  EXPECT_THAT(s.status(), IsOk());
  EXPECT_THAT((*store)->Close(CloseOptions{.clear = true}), IsOk());
  return s.ok() ? *s : StressSummary{};
}

TEST(StressHarness, AHealthyConnectorPasses) {
  StressSummary s = RunWithFault(FaultyConnector::Fault::kNone, "stress-ok");
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(s.threads, 8);
  EXPECT_EQ(s.ops, 800);
  EXPECT_EQ(s.objects_verified + s.evictions_verified, s.puts);
  EXPECT_GT(s.proxies_resolved, 0);
  EXPECT_TRUE(s.failures.empty());
  EXPECT_THAT(s.ToString(), ::testing::HasSubstr("lost 0"));
}

TEST(StressHarness, CatchesDroppedPuts) {
  StressSummary s =
      RunWithFault(FaultyConnector::Fault::kDropPut, "stress-drop");
  EXPECT_FALSE(s.ok());
  EXPECT_GT(s.lost, 0) << s.ToString();
  EXPECT_FALSE(s.failures.empty());
}

TEST(StressHarness, CatchesCorruptedObjects) {
  StressSummary s =
      RunWithFault(FaultyConnector::Fault::kCorruptPut, "stress-corrupt");
  EXPECT_FALSE(s.ok());
  EXPECT_GT(s.corrupt, 0) << s.ToString();
}

TEST(StressHarness, CatchesEvictionsThatDidNotHappen) {
  StressSummary s =
      RunWithFault(FaultyConnector::Fault::kIgnoreEvict, "stress-noevict");
  EXPECT_FALSE(s.ok());
  EXPECT_GT(s.resurrected, 0) << s.ToString();
}

TEST(StressHarness, CatchesMetricsThatDoNotAddUp) {
  StressSummary s =
      RunWithFault(FaultyConnector::Fault::kBadMetric, "stress-metric");
  EXPECT_FALSE(s.ok());
  EXPECT_GT(s.metric_mismatches, 0) << s.ToString();
  EXPECT_THAT(s.ToString(), ::testing::HasSubstr("store.evict.count"));
}

TEST(StressHarness, RefusesBadArguments) {
  EXPECT_THAT(RunStoreStress(nullptr).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "null"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> a,
                                  LocalConnector::Create());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                                  Store::Create("stress-args", std::move(a)));
  StressOptions zero_threads;
  zero_threads.threads = 0;
  EXPECT_THAT(RunStoreStress(store, zero_threads).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "threads"));
  // Another store under the same name would serve parsed proxies.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> b,
                                  LocalConnector::Create());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> other,
                                  Store::Create("stress-args", std::move(b)));
  PROXYSTORE_ASSERT_OK(RegisterStore(other));
  EXPECT_THAT(RunStoreStress(store).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "another store"));
  UnregisterStore("stress-args");
}

// The harness registers an unregistered store for the run only.
TEST(StressHarness, LeavesTheRegistryAsItFoundIt) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> c,
                                  LocalConnector::Create());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                                  Store::Create("stress-reg", std::move(c)));
  StressOptions options;
  options.ops_per_thread = 20;
  options.print = false;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(StressSummary s,
                                  RunStoreStress(store, options));
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(s.metrics_checked);
  EXPECT_EQ(GetStore("stress-reg"), nullptr);
}

TEST(StressHarness, ChecksumsAndBytesAreStable) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(RandomBytes(7, 100), RandomBytes(7, 100));
  EXPECT_NE(RandomBytes(7, 100), RandomBytes(8, 100));
  EXPECT_EQ(RandomBytes(7, 100).substr(0, 50), RandomBytes(7, 50));
}

}  // namespace
}  // namespace proxystore::testing
