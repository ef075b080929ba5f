#include "proxystore/proxy/proxy.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;

// A factory that counts its calls and can be told to fail.
class CountingFactory : public Factory<std::string> {
 public:
  explicit CountingFactory(std::string value) : value_(std::move(value)) {}
  absl::StatusOr<std::shared_ptr<const std::string>> Resolve() override {
    calls_.fetch_add(1);
    if (fail_.load()) return absl::UnavailableError("backend down");
    return std::make_shared<const std::string>(value_);
  }
  void ResolveAsync() override { async_calls_.fetch_add(1); }
  int calls() const { return calls_.load(); }
  int async_calls() const { return async_calls_.load(); }
  void set_fail(bool f) { fail_.store(f); }

 private:
  std::string value_;
  std::atomic<int> calls_{0};
  std::atomic<int> async_calls_{0};
  std::atomic<bool> fail_{false};
};

TEST(Proxy, ResolvesLazilyOnFirstAccess) {
  auto f = std::make_shared<CountingFactory>("hello");
  Proxy<std::string> p(f);
  EXPECT_FALSE(p.IsResolved());
  EXPECT_EQ(f->calls(), 0);
  EXPECT_EQ(p->size(), 5u);
  EXPECT_TRUE(p.IsResolved());
  EXPECT_EQ(*p, "hello");
  EXPECT_EQ(f->calls(), 1);
}

TEST(Proxy, CheckedAccessReturnsTheTarget) {
  Proxy<std::string> p(std::make_shared<SimpleFactory<std::string>>("x"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto v, p.Get());
  EXPECT_EQ(*v, "x");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto e, Extract(p));
  EXPECT_EQ(e.get(), v.get());  // The same object, not a copy.
  EXPECT_THAT(Resolve(p), IsOk());
  EXPECT_TRUE(IsResolved(p));
}

TEST(Proxy, ConcurrentFirstAccessResolvesExactlyOnce) {
  auto f = std::make_shared<CountingFactory>("shared");
  Proxy<std::string> p(f);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    // Each thread gets its own copy of the handle; copies share the state.
    threads.emplace_back([q = p, &ok] {
      for (int j = 0; j < 100; ++j) {
        if (q.Get().ok() && *q == "shared") ok.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 800);
  EXPECT_EQ(f->calls(), 1);
}

TEST(Proxy, FailedResolutionIsReportedAndRetried) {
  auto f = std::make_shared<CountingFactory>("later");
  f->set_fail(true);
  Proxy<std::string> p(f);
  EXPECT_THAT(p.Get(),
              StatusIs(absl::StatusCode::kUnavailable, "backend down"));
  EXPECT_FALSE(p.IsResolved());
  f->set_fail(false);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto v, p.Get());
  EXPECT_EQ(*v, "later");
  EXPECT_EQ(f->calls(), 2);
}

TEST(ProxyDeathTest, UncheckedAccessOfAFailedProxyAbortsWithTheError) {
  auto f = std::make_shared<CountingFactory>("x");
  f->set_fail(true);
  Proxy<std::string> p(f);
  EXPECT_DEATH({ (void)p->size(); }, "resolution failed.*backend down");
}

TEST(Proxy, CopiesShareOneResolution) {
  auto f = std::make_shared<CountingFactory>("v");
  Proxy<std::string> a(f);
  Proxy<std::string> b = a;
  EXPECT_TRUE(a.SharesStateWith(b));
  ASSERT_THAT(b.Resolve(), IsOk());
  EXPECT_TRUE(a.IsResolved());
  EXPECT_EQ(f->calls(), 1);
}

TEST(Proxy, PopulatedProxyStartsResolvedAndNeverCallsTheFactory) {
  auto f = std::make_shared<CountingFactory>("from factory");
  Proxy<std::string> p(f, std::make_shared<const std::string>("populated"));
  EXPECT_TRUE(p.IsResolved());
  EXPECT_EQ(*p, "populated");
  EXPECT_EQ(f->calls(), 0);
}

TEST(Proxy, ResolveAsyncDelegatesUntilResolved) {
  auto f = std::make_shared<CountingFactory>("a");
  Proxy<std::string> p(f);
  p.ResolveAsync();
  EXPECT_EQ(f->async_calls(), 1);
  ASSERT_THAT(p.Resolve(), IsOk());
  p.ResolveAsync();  // No-op once resolved.
  EXPECT_EQ(f->async_calls(), 1);
}

TEST(Proxy, NullFactoryIsAnErrorNotACrash) {
  Proxy<std::string> p(nullptr);
  EXPECT_THAT(p.Get(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                "not initialized"));
  EXPECT_THAT(p.Serialize(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(Proxy, NullObjectFromFactoryIsAnError) {
  Proxy<int> p(std::make_shared<LambdaFactory<int>>(
      []() -> absl::StatusOr<std::shared_ptr<const int>> { return nullptr; }));
  EXPECT_THAT(p.Get(), StatusIs(absl::StatusCode::kInternal, "null object"));
}

TEST(Proxy, LocalFactoriesDoNotSerialize) {
  Proxy<int> p(std::make_shared<SimpleFactory<int>>(3));
  EXPECT_THAT(p.Serialize(), StatusIs(absl::StatusCode::kUnimplemented));
}

TEST(ProxyLocker, UnlockReturnsTheStillUnresolvedProxy) {
  auto f = std::make_shared<CountingFactory>("locked");
  ProxyLocker<std::string> locker{Proxy<std::string>(f)};
  Proxy<std::string> p = locker.Unlock();
  EXPECT_FALSE(p.IsResolved());
  EXPECT_EQ(f->calls(), 0);
  EXPECT_EQ(*p, "locked");
}

TEST(LambdaFactory, CallsTheFunction) {
  int calls = 0;
  Proxy<int> p(std::make_shared<LambdaFactory<int>>(
      [&calls]() -> absl::StatusOr<std::shared_ptr<const int>> {
        ++calls;
        return std::make_shared<const int>(42);
      }));
  EXPECT_EQ(*p, 42);
  EXPECT_EQ(*p, 42);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace proxystore
