#include "proxystore/cache/cache.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::StatusIs;

// Int -> int caches in the style of leveldb's cache_test: Lookup() returns
// the cached value or -1 on a miss.
class LruCacheTest : public ::testing::Test {
 protected:
  using Cache = LruCache<int, int>;

  void Make(int64_t capacity) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(cache_, Cache::Create(capacity));
  }
  void Insert(int key, int value) { cache_->Set(key, value); }
  int Lookup(int key) {
    std::shared_ptr<const int> v = cache_->Get(key);
    return v == nullptr ? -1 : *v;
  }

  std::unique_ptr<Cache> cache_;
};

TEST_F(LruCacheTest, HitAndMiss) {
  Make(16);
  EXPECT_EQ(Lookup(100), -1);

  Insert(100, 101);
  EXPECT_EQ(Lookup(100), 101);
  EXPECT_EQ(Lookup(200), -1);
  EXPECT_EQ(Lookup(300), -1);

  Insert(200, 201);
  EXPECT_EQ(Lookup(100), 101);
  EXPECT_EQ(Lookup(200), 201);
  EXPECT_EQ(Lookup(300), -1);

  EXPECT_EQ(cache_->hits(), 3);
  EXPECT_EQ(cache_->misses(), 4);
}

TEST_F(LruCacheTest, StatsReportsCapacitySizeHitsAndMisses) {
  Make(2);
  EXPECT_EQ(cache_->Stats(), (CacheStats{.capacity = 2}));
  EXPECT_EQ(Lookup(1), -1);
  Insert(1, 10);
  EXPECT_EQ(Lookup(1), 10);
  Insert(2, 20);
  Insert(3, 30);  // Evicts 1: the size stays at the capacity.
  EXPECT_EQ(Lookup(1), -1);
  EXPECT_EQ(cache_->Stats(),
            (CacheStats{.capacity = 2, .size = 2, .hits = 1, .misses = 2}));
  EXPECT_EQ(::testing::PrintToString(cache_->Stats()),
            "CacheStats{capacity=2, size=2, hits=1, misses=2}");

  // Clear drops the entries, not the counts.
  cache_->Clear();
  EXPECT_EQ(cache_->Stats(),
            (CacheStats{.capacity = 2, .size = 0, .hits = 1, .misses = 2}));
}

TEST_F(LruCacheTest, StatsOfADisabledCache) {
  Make(0);
  Insert(1, 10);
  EXPECT_EQ(Lookup(1), -1);
  EXPECT_EQ(cache_->Stats(), (CacheStats{.capacity = 0, .misses = 1}));
}

TEST_F(LruCacheTest, EvictsLeastRecentlySetFirst) {
  Make(3);
  Insert(1, 10);
  Insert(2, 20);
  Insert(3, 30);
  Insert(4, 40);  // Full: 1 is the least recently used.
  EXPECT_EQ(Lookup(1), -1);
  EXPECT_EQ(Lookup(2), 20);
  EXPECT_EQ(Lookup(3), 30);
  EXPECT_EQ(Lookup(4), 40);
  EXPECT_EQ(cache_->size(), 3u);
}

TEST_F(LruCacheTest, GetHitMakesKeyMostRecent) {
  Make(3);
  Insert(1, 10);
  Insert(2, 20);
  Insert(3, 30);
  EXPECT_EQ(Lookup(1), 10);  // Order, most recent first: 1 3 2.
  Insert(4, 40);             // Evicts 2.
  EXPECT_EQ(Lookup(2), -1);
  EXPECT_EQ(Lookup(1), 10);
  EXPECT_EQ(Lookup(3), 30);
  EXPECT_EQ(Lookup(4), 40);
}

TEST_F(LruCacheTest, ExistsDoesNotTouchOrderOrCounters) {
  Make(2);
  Insert(1, 10);
  Insert(2, 20);
  EXPECT_TRUE(cache_->Exists(1));  // Would save 1 if it counted as a use.
  EXPECT_FALSE(cache_->Exists(3));
  EXPECT_EQ(cache_->hits(), 0);
  EXPECT_EQ(cache_->misses(), 0);
  Insert(3, 30);
  EXPECT_FALSE(cache_->Exists(1));
  EXPECT_TRUE(cache_->Exists(2));
  EXPECT_TRUE(cache_->Exists(3));
}

TEST_F(LruCacheTest, SetExistingKeyUpdatesValueAndMakesItMostRecent) {
  Make(3);
  Insert(1, 10);
  Insert(2, 20);
  Insert(3, 30);
  Insert(1, 11);  // Update; order: 1 3 2.
  EXPECT_EQ(cache_->size(), 3u);
  Insert(4, 40);  // Evicts 2, not 1.
  EXPECT_EQ(Lookup(1), 11);
  EXPECT_EQ(Lookup(2), -1);
  EXPECT_EQ(Lookup(3), 30);
  EXPECT_EQ(Lookup(4), 40);
}

// The sequence that makes ProxyStore's Python LRUCache raise KeyError('a'):
// its set() of an existing key leaves a stale duplicate in the LRU list.
TEST(LruCacheStringTest, SetExistingKeyThenEvictDoesNotCorruptOrder) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto cache,
                                  (LruCache<std::string, int>::Create(3)));
  cache->Set("a", 1);
  cache->Set("b", 2);
  cache->Set("a", 3);
  EXPECT_TRUE(cache->Evict("a"));
  cache->Set("c", 4);
  cache->Set("d", 5);
  cache->Set("e", 6);  // Full (b c d): evicts b.

  EXPECT_EQ(cache->size(), 3u);
  EXPECT_FALSE(cache->Exists("a"));
  EXPECT_FALSE(cache->Exists("b"));
  EXPECT_EQ(*cache->Get("c"), 4);
  EXPECT_EQ(*cache->Get("d"), 5);
  EXPECT_EQ(*cache->Get("e"), 6);
}

TEST_F(LruCacheTest, EvictRemovesOnlyThatKey) {
  Make(4);
  Insert(1, 10);
  Insert(2, 20);
  EXPECT_TRUE(cache_->Evict(1));
  EXPECT_EQ(Lookup(1), -1);
  EXPECT_EQ(Lookup(2), 20);
  EXPECT_EQ(cache_->size(), 1u);
}

TEST_F(LruCacheTest, EvictMissingKeyIsANoOp) {
  Make(4);
  Insert(1, 10);
  EXPECT_FALSE(cache_->Evict(2));
  EXPECT_EQ(cache_->size(), 1u);
  EXPECT_EQ(Lookup(1), 10);
}

TEST_F(LruCacheTest, EvictFreesASlot) {
  Make(2);
  Insert(1, 10);
  Insert(2, 20);
  cache_->Evict(2);
  Insert(3, 30);  // Fits without evicting 1.
  EXPECT_EQ(Lookup(1), 10);
  EXPECT_EQ(Lookup(3), 30);
}

TEST_F(LruCacheTest, SettingNullIsEvict) {
  Make(2);
  Insert(1, 10);
  cache_->Set(1, std::shared_ptr<const int>());
  EXPECT_FALSE(cache_->Exists(1));
  EXPECT_EQ(cache_->size(), 0u);
}

TEST_F(LruCacheTest, CapacityZeroDisablesTheCache) {
  Make(0);
  EXPECT_EQ(cache_->capacity(), 0);
  Insert(1, 10);
  cache_->Set(2, std::make_shared<const int>(20));
  EXPECT_EQ(cache_->size(), 0u);
  EXPECT_FALSE(cache_->Exists(1));
  EXPECT_EQ(Lookup(1), -1);
  EXPECT_EQ(cache_->misses(), 1);
  EXPECT_FALSE(cache_->Evict(1));
}

TEST_F(LruCacheTest, CapacityOneKeepsTheLatest) {
  Make(1);
  Insert(1, 10);
  Insert(2, 20);
  EXPECT_EQ(Lookup(1), -1);
  EXPECT_EQ(Lookup(2), 20);
}

TEST(LruCacheCreateTest, NegativeCapacityIsInvalidArgument) {
  EXPECT_THAT((LruCache<int, int>::Create(-3)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "cache size must be >= 0, got -3"));
}

TEST_F(LruCacheTest, ClearRemovesEntriesAndKeepsCounters) {
  Make(4);
  Insert(1, 10);
  Insert(2, 20);
  EXPECT_EQ(Lookup(1), 10);
  EXPECT_EQ(Lookup(5), -1);
  cache_->Clear();
  EXPECT_EQ(cache_->size(), 0u);
  EXPECT_FALSE(cache_->Exists(1));
  EXPECT_EQ(cache_->hits(), 1);
  EXPECT_EQ(cache_->misses(), 1);
  Insert(3, 30);  // Still usable.
  EXPECT_EQ(Lookup(3), 30);
}

TEST_F(LruCacheTest, SizeNeverExceedsCapacity) {
  Make(5);
  for (int i = 0; i < 100; ++i) {
    Insert(i, i);
    EXPECT_LE(cache_->size(), 5u);
  }
  // Exactly the five most recent remain.
  for (int i = 0; i < 95; ++i) EXPECT_FALSE(cache_->Exists(i)) << i;
  for (int i = 95; i < 100; ++i) EXPECT_EQ(Lookup(i), i);
}

// Counts copies, so tests can prove the cache never copies a value.
struct CopyCounted {
  explicit CopyCounted(int* copies) : copies(copies) {}
  CopyCounted(const CopyCounted& other) : copies(other.copies) { ++*copies; }
  CopyCounted(CopyCounted&& other) = default;
  CopyCounted& operator=(const CopyCounted& other) {
    copies = other.copies;
    ++*copies;
    return *this;
  }
  CopyCounted& operator=(CopyCounted&&) = default;
  int* copies;
};

TEST(LruCacheValueTest, HitsShareOneObjectAndNeverCopy) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto cache,
                                  (LruCache<int, CopyCounted>::Create(2)));
  int copies = 0;
  cache->Set(1, CopyCounted(&copies));  // Moved in.
  std::shared_ptr<const CopyCounted> a = cache->Get(1);
  std::shared_ptr<const CopyCounted> b = cache->Get(1);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(copies, 0);
}

TEST(LruCacheValueTest, SetSharedPointerStoresThatObject) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto cache,
                                  (LruCache<int, std::string>::Create(2)));
  auto value = std::make_shared<const std::string>(1000, 'x');
  cache->Set(1, value);
  EXPECT_EQ(cache->Get(1).get(), value.get());
}

TEST(LruCacheValueTest, EvictedValueOutlivesTheEntryWhileHeld) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto cache,
                                  (LruCache<int, std::string>::Create(1)));
  cache->Set(1, std::string("first"));
  std::shared_ptr<const std::string> held = cache->Get(1);
  cache->Set(2, std::string("second"));  // Evicts 1.
  EXPECT_FALSE(cache->Exists(1));
  EXPECT_EQ(*held, "first");
}

// A hash that sends every key to one bucket still gives correct results:
// the cache relies on Eq, not on distinct hashes.
struct CollidingHash {
  size_t operator()(int) const { return 42; }
};

TEST(LruCacheCustomHashTest, CollisionsAreResolvedByEq) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto cache, (LruCache<int, int, CollidingHash>::Create(3)));
  cache->Set(1, 10);
  cache->Set(2, 20);
  cache->Set(3, 30);
  cache->Set(4, 40);
  EXPECT_EQ(cache->Get(1), nullptr);
  EXPECT_EQ(*cache->Get(2), 20);
  EXPECT_EQ(*cache->Get(3), 30);
  EXPECT_EQ(*cache->Get(4), 40);
}

TEST(LruCacheConcurrencyTest, CountersAddUpAcrossThreads) {
  constexpr int kThreads = 4;
  constexpr int kOpsPerThread = 2000;
  constexpr int kKeys = 64;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto cache,
                                  (LruCache<int, int>::Create(kKeys / 2)));
  std::vector<std::thread> threads;
  std::vector<int64_t> observed_hits(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&cache, &observed_hits, t] {
      for (int i = 0; i < kOpsPerThread; ++i) {
        const int key = (i * 7 + t) % kKeys;
        std::shared_ptr<const int> v = cache->Get(key);
        if (v != nullptr) {
          // A key always maps to the same value, whoever set it.
          EXPECT_EQ(*v, key * 10);
          ++observed_hits[t];
        } else {
          cache->Set(key, key * 10);
        }
        if (i % 97 == 0) cache->Evict((key + 1) % kKeys);
        EXPECT_LE(cache->size(), static_cast<size_t>(kKeys / 2));
      }
    });
  }
  for (std::thread& th : threads) th.join();

  int64_t total_hits = 0;
  for (int64_t h : observed_hits) total_hits += h;
  EXPECT_EQ(cache->hits(), total_hits);
  EXPECT_EQ(cache->hits() + cache->misses(), kThreads * kOpsPerThread);
  EXPECT_LE(cache->size(), static_cast<size_t>(kKeys / 2));
}

TEST(LruCacheConcurrencyTest, DisjointKeysFromEachThreadAllHit) {
  constexpr int kThreads = 4;
  constexpr int kKeysPerThread = 100;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto cache,
      (LruCache<std::string, int>::Create(kThreads * kKeysPerThread)));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < kKeysPerThread; ++i) {
        cache->Set(std::to_string(t) + "/" + std::to_string(i), i);
      }
      for (int i = 0; i < kKeysPerThread; ++i) {
        std::shared_ptr<const int> v =
            cache->Get(std::to_string(t) + "/" + std::to_string(i));
        ASSERT_NE(v, nullptr);
        EXPECT_EQ(*v, i);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(cache->size(), static_cast<size_t>(kThreads * kKeysPerThread));
  EXPECT_EQ(cache->hits(), kThreads * kKeysPerThread);
  EXPECT_EQ(cache->misses(), 0);
}

TEST(LruCacheConcurrencyTest, StatsIsOneConsistentSnapshot) {
  // Each writer misses a key of its own, then sets it, so at any instant
  // size <= misses <= size + kWriters (a writer between its Get and its Set),
  // and nothing ever hits. Separate reads of size and misses could see a
  // size from after some Sets and misses from before the Gets that led to
  // them; one snapshot cannot.
  constexpr int kWriters = 4;
  constexpr int kKeysPerWriter = 500;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto cache, (LruCache<int, int>::Create(kWriters * kKeysPerWriter)));
  std::atomic<int> writers_done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&cache, &writers_done, t] {
      for (int i = 0; i < kKeysPerWriter; ++i) {
        const int key = t * kKeysPerWriter + i;
        EXPECT_EQ(cache->Get(key), nullptr);
        cache->Set(key, key);
      }
      writers_done.fetch_add(1);
    });
  }
  int64_t snapshots = 0;
  for (;;) {
    const bool done = writers_done.load() == kWriters;
    const CacheStats stats = cache->Stats();
    ++snapshots;
    EXPECT_EQ(stats.capacity, kWriters * kKeysPerWriter);
    EXPECT_EQ(stats.hits, 0);
    EXPECT_LE(static_cast<int64_t>(stats.size), stats.misses) << stats;
    EXPECT_LE(stats.misses, static_cast<int64_t>(stats.size) + kWriters)
        << stats;
    if (done) break;
  }
  for (std::thread& th : threads) th.join();
  EXPECT_GE(snapshots, 1);
  EXPECT_EQ(cache->Stats(), (CacheStats{.capacity = kWriters * kKeysPerWriter,
                                        .size = kWriters * kKeysPerWriter,
                                        .hits = 0,
                                        .misses = kWriters * kKeysPerWriter}));
}

// Runs `fn` on a thread pinned to the i-th CPU this process may use (any CPU
// where pinning is not allowed), and waits for it: hits from different CPUs
// are noted in different slots.
void OnCpu(int i, const std::function<void()>& fn) {
  std::thread t([i, &fn] {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
      const int count = CPU_COUNT(&allowed);
      for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        if (seen++ == i % count) {
          cpu_set_t one;
          CPU_ZERO(&one);
          CPU_SET(cpu, &one);
          pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
          break;
        }
      }
    }
    fn();
  });
  t.join();
}

TEST(LruCacheConcurrencyTest, HitsOnDifferentCpusKeepExactLruOrder) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto cache, (LruCache<int, int>::Create(3)));
  cache->Set(1, 10);
  cache->Set(2, 20);
  cache->Set(3, 30);
  // Hits alternate between CPUs; recency is 1 (last), 3, 2.
  OnCpu(1, [&] { EXPECT_NE(cache->Get(1), nullptr); });
  OnCpu(0, [&] { EXPECT_NE(cache->Get(2), nullptr); });
  OnCpu(1, [&] { EXPECT_NE(cache->Get(3), nullptr); });
  OnCpu(0, [&] { EXPECT_NE(cache->Get(1), nullptr); });
  cache->Set(4, 40);
  EXPECT_FALSE(cache->Exists(2));
  EXPECT_TRUE(cache->Exists(1));
  EXPECT_TRUE(cache->Exists(3));
  cache->Set(5, 50);
  EXPECT_FALSE(cache->Exists(3));
  EXPECT_TRUE(cache->Exists(1));
  EXPECT_EQ(cache->hits(), 4);
}

TEST(LruCacheConcurrencyTest, MoreHitsThanASlotNotesKeepExactLruOrder) {
  // 200 hits of different entries, alternating CPUs in runs of 7, overflow
  // every slot's notes many times; eviction order is still the hit order.
  constexpr int kKeys = 200;
  static_assert(kKeys > 4 * LruCache<int, int>::kTouchesPerSlot);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto cache,
                                  (LruCache<int, int>::Create(kKeys)));
  for (int k = 0; k < kKeys; ++k) cache->Set(k, k);
  std::vector<int> order;
  for (int i = 0; i < kKeys; ++i) order.push_back((i * 37 + 11) % kKeys);
  for (int run = 0; run * 7 < kKeys; ++run) {
    OnCpu(run, [&] {
      for (int i = run * 7; i < std::min(kKeys, run * 7 + 7); ++i) {
        ASSERT_NE(cache->Get(order[i]), nullptr);
      }
    });
  }
  for (int i = 0; i < kKeys; ++i) {
    cache->Set(kKeys + i, 0);
    ASSERT_FALSE(cache->Exists(order[i])) << "set " << i;
    if (i + 1 < kKeys) {
      ASSERT_TRUE(cache->Exists(order[i + 1])) << "set " << i;
    }
  }
  EXPECT_EQ(cache->size(), static_cast<size_t>(kKeys));
}

TEST(LruCacheConcurrencyTest, ConcurrentHitsOfManyKeysLeaveAConsistentList) {
  // Threads hit 64 keys in different orders (notes overflow their slots
  // while other threads apply theirs), a writer replaces values and evicts;
  // afterwards every count adds up and the order is exact again.
  constexpr int kThreads = 4;
  constexpr int kHitsPerThread = 5000;
  constexpr int kKeys = 64;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto cache,
                                  (LruCache<int, int>::Create(kKeys)));
  for (int k = 0; k < kKeys; ++k) cache->Set(k, k);
  std::vector<int64_t> found(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&cache, &found, t] {
      for (int i = 0; i < kHitsPerThread; ++i) {
        const int key = (i * (2 * t + 1)) % kKeys;
        if (std::shared_ptr<const int> v = cache->Get(key)) {
          EXPECT_EQ(*v % kKeys, key);
          ++found[t];
        }
        if (t == 0 && i % 50 == 0) {
          cache->Set(key, key + kKeys);  // same key, new value
          cache->Evict((key + 1) % kKeys);
          cache->Set((key + 1) % kKeys, (key + 1) % kKeys);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  int64_t total = 0;
  for (int64_t f : found) total += f;
  const CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.hits, total);
  EXPECT_EQ(stats.hits + stats.misses, kThreads * kHitsPerThread);
  ASSERT_EQ(stats.size, static_cast<size_t>(kKeys));
  for (int k = kKeys - 1; k >= 0; --k) ASSERT_NE(cache->Get(k), nullptr);
  for (int k = kKeys - 1; k >= 0; --k) {
    cache->Set(kKeys + k, 0);
    ASSERT_FALSE(cache->Exists(k));
  }
}

}  // namespace
}  // namespace proxystore
