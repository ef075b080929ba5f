// LruCache: a thread-safe, fixed-capacity cache with least-recently-used
// eviction.
//
// ProxyStore's `LRUCache` in C++, used by a Store to keep deserialized
// objects, and usable on its own (it depends on Abseil and
// base/mutex.h only). Capacity counts entries, not bytes. When a new key is
// set in a full cache, the least recently used entry is evicted first. A hit
// in Get() and a Set() (of a new or an existing key) make the key the most
// recently used; Exists() does not. Setting a key that is already present
// replaces its value (ProxyStore's Python class corrupts its LRU order there).
// Capacity 0 disables the cache: Set() does nothing and Get() always misses.
//
// Values are held as std::shared_ptr<const V>: a hit hands out another
// reference to the cached object, never a copy, and an entry evicted while a
// caller still holds its value stays alive until that caller lets go.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(auto cache,
//                               (LruCache<std::string, Image>::Create(16)));
//   cache->Set("cat", LoadImage("cat.png"));         // moves the Image in
//   std::shared_ptr<const Image> img = cache->Get("cat");
//   if (img == nullptr) { /* miss */ }
//   CacheStats stats = cache->Stats();              // one consistent snapshot
//
// Create() returns a std::unique_ptr: the cache holds mutexes and is meant to
// be shared by reference, so it has a fixed address and is neither copyable
// nor movable.
//
// Thread-safety: every method may be called concurrently from any number of
// threads, and is O(1) on average (Clear() is O(size)). Hash and Eq are
// called with a lock held, so they must not call back into the cache. The
// returned values are shared, const objects: reading them concurrently is
// safe if V's const methods are.
//
// Concurrency design: threads that hit the cache at once (workers of one
// workflow resolving the same proxies) must not queue behind one lock, nor
// move one counter's cache line between cores on every hit. The cache keeps
// one lock per CPU (a "slot", with its own hit and miss counts); Get(),
// Exists() and size() take only the slot of the CPU they run on, so hits on
// different CPUs share no written memory. Everything that changes the
// entries (Set(), Evict(), Clear()) and Stats() take every slot.
//
// The LRU order stays exact without a hit writing the shared list: every
// entry carries a stamp from one clock, which a Set() or a hit advances. A
// hit of the entry that already holds the latest stamp (the most recently
// used: repeated hits of one key, from any number of threads) changes
// nothing shared. Any other hit takes the next stamp and notes (entry,
// stamp) in its slot; the next change of the entries first moves the noted
// entries to the front of the list in stamp order, so that the list is in
// exact recency order whenever an entry is evicted. A slot that has noted
// kTouchesPerSlot hits applies them at once.
#ifndef PROXYSTORE_CACHE_CACHE_H_
#define PROXYSTORE_CACHE_CACHE_H_

#include <sched.h>
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <ostream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "proxystore/base/mutex.h"

namespace proxystore {

// A snapshot of an LruCache (LruCache::Stats()): all four fields are read at
// one instant, so hits + misses counts exactly the Get() calls that led to
// `size` entries, even while other threads use the cache.
struct CacheStats {
  int64_t capacity = 0;  // entries; 0 = caching disabled
  size_t size = 0;       // entries cached now
  int64_t hits = 0;      // Get() calls that found their key
  int64_t misses = 0;    // Get() calls that did not
  friend bool operator==(const CacheStats&, const CacheStats&) = default;
  friend std::ostream& operator<<(std::ostream& os, const CacheStats& s) {
    return os << "CacheStats{capacity=" << s.capacity << ", size=" << s.size
              << ", hits=" << s.hits << ", misses=" << s.misses << "}";
  }
};

// K must be copyable (the cache keeps its own copy of each key); Hash and Eq
// must be default-constructible.
template <typename K, typename V, typename Hash = absl::Hash<K>,
          typename Eq = std::equal_to<K>>
class LruCache {
  struct PrivateTag {};

 public:
  using key_type = K;
  using value_type = V;

  // Hits of entries other than the most recent one that a slot notes before
  // it applies them to the LRU list itself.
  static constexpr size_t kTouchesPerSlot = 32;

  // A cache holding at most `capacity` entries; 0 disables caching.
  // InvalidArgument for a negative capacity.
  static absl::StatusOr<std::unique_ptr<LruCache>> Create(int64_t capacity) {
    if (capacity < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cache size must be >= 0, got ", capacity));
    }
    return std::make_unique<LruCache>(PrivateTag{}, capacity);
  }

  // For Create() only (std::make_unique needs a public constructor).
  LruCache(PrivateTag, int64_t capacity)
      : capacity_(capacity),
        num_slots_(SlotCount()),
        slots_(std::make_unique<Slot[]>(num_slots_)),
        all_slots_(slots_.get(), num_slots_) {}

  LruCache(const LruCache&) = delete;
  LruCache& operator=(const LruCache&) = delete;

  // The value cached under `key` (making it the most recently used, and
  // counting a hit), or nullptr (counting a miss).
  std::shared_ptr<const V> Get(const K& key) {
    bool slot_full = false;
    std::shared_ptr<const V> value = GetInSlot(key, slot_full);
    if (slot_full) {
      // Applies the slot's notes and this hit (unless the entry went away
      // meanwhile) with every slot locked.
      MutexLock<AllSlots> lock(all_slots_);
      ApplyTouches(&key);
    }
    return value;
  }

  // Caches `value` under `key` as the most recently used entry, replacing
  // the value if `key` is present and evicting the least recently used entry
  // if a new key finds the cache full. No-op when capacity() == 0. A null
  // `value` is the same as Evict(key).
  void Set(K key, std::shared_ptr<const V> value) {
    if (capacity_ == 0) return;
    if (value == nullptr) {
      Evict(key);
      return;
    }
    MutexLock<AllSlots> lock(all_slots_);
    ApplyTouches();
    auto it = index_.find(key);
    if (it != index_.end()) {
      it->second->value = std::move(value);
      it->second->stamp.store(NextStamp(), std::memory_order_relaxed);
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    if (static_cast<int64_t>(lru_.size()) >= capacity_) {
      index_.erase(&lru_.back().key);
      lru_.pop_back();
    }
    lru_.emplace_front(std::move(key), std::move(value), NextStamp());
    index_.emplace(&lru_.front().key, lru_.begin());
  }

  // Moves `value` into a new shared object and caches it (see above).
  // Nothing is allocated when capacity() == 0.
  void Set(K key, V value) {
    if (capacity_ == 0) return;
    Set(std::move(key), std::make_shared<const V>(std::move(value)));
  }

  // Whether `key` is cached. Neither changes the LRU order nor counts a hit
  // or a miss.
  bool Exists(const K& key) const {
    Slot& slot = SlotOfThisCpu();
    MutexLock<ExclusiveMutex> lock(slot.mu);
    all_slots_.AssertReaderHeld();
    return index_.contains(key);
  }

  // Removes `key`; returns whether it was present.
  bool Evict(const K& key) {
    MutexLock<AllSlots> lock(all_slots_);
    ApplyTouches();
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    auto entry = it->second;
    index_.erase(it);
    lru_.erase(entry);
    return true;
  }

  // Removes every entry. The hit and miss counts are kept.
  void Clear() {
    MutexLock<AllSlots> lock(all_slots_);
    ApplyTouches();
    index_.clear();
    lru_.clear();
  }

  // Capacity, size and hit/miss counts, read together with every slot
  // locked. Use this rather than the separate accessors below when the
  // numbers are compared with each other: between two separate reads another
  // thread may get or set.
  CacheStats Stats() const {
    MutexLock<AllSlots> lock(all_slots_);
    CacheStats stats{.capacity = capacity_, .size = lru_.size()};
    for (size_t i = 0; i < num_slots_; ++i) {
      const Slot& slot = slots_[i];
      slot.mu.AssertHeld();
      stats.hits += slot.hits;
      stats.misses += slot.misses;
    }
    return stats;
  }

  // Number of cached entries, <= capacity().
  size_t size() const {
    Slot& slot = SlotOfThisCpu();
    MutexLock<ExclusiveMutex> lock(slot.mu);
    all_slots_.AssertReaderHeld();
    return lru_.size();
  }
  int64_t capacity() const { return capacity_; }
  // Get() calls that found / did not find their key, since creation.
  int64_t hits() const { return Stats().hits; }
  int64_t misses() const { return Stats().misses; }

 private:
  struct Entry {
    Entry(K k, std::shared_ptr<const V> v, uint64_t s)
        : key(std::move(k)), value(std::move(v)), stamp(s) {}
    const K key;
    std::shared_ptr<const V> value;
    // The clock's value when this entry was last used (set or hit).
    std::atomic<uint64_t> stamp;
  };
  using List = std::list<Entry>;

  // A hit noted by a slot: `entry` became the most recently used at `stamp`.
  struct Touch {
    typename List::iterator entry;
    uint64_t stamp = 0;
  };

  // One CPU's lock, counters and noted hits, on cache lines of its own.
  struct alignas(64) Slot {
    mutable ExclusiveMutex mu;
    int64_t hits ABSL_GUARDED_BY(mu) = 0;
    int64_t misses ABSL_GUARDED_BY(mu) = 0;
    size_t num_touches ABSL_GUARDED_BY(mu) = 0;
    std::array<Touch, kTouchesPerSlot> touches ABSL_GUARDED_BY(mu);
  };

  // Every slot's lock as one capability: held exclusively, it is every
  // slot's lock; one slot's lock is the shared side (AssertReaderHeld).
  class ABSL_LOCKABLE AllSlots {
   public:
    AllSlots(Slot* slots, size_t n) : slots_(slots), n_(n) {}
    // In slot order, so that two writers cannot deadlock.
    void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      for (size_t i = 0; i < n_; ++i) slots_[i].mu.Lock();
    }
    void Unlock() ABSL_UNLOCK_FUNCTION() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      for (size_t i = n_; i > 0; --i) slots_[i - 1].mu.Unlock();
    }
    // The caller holds one slot's lock: no writer can hold them all.
    void AssertReaderHeld() const ABSL_ASSERT_SHARED_LOCK() {}

   private:
    Slot* const slots_;
    const size_t n_;
  };

  // A power of two >= the CPU count, at most 64.
  static size_t SlotCount() {
    const unsigned cpus = std::thread::hardware_concurrency();
    size_t n = 1;
    while (n < cpus && n < 64) n <<= 1;
    return n;
  }

  // The CPU this thread runs on. The kernel keeps it in the thread's rseq
  // area (registered by glibc >= 2.35), one load away; sched_getcpu() where
  // there is none (-1 where not even that works).
  static int CurrentCpu() {
#if defined(RSEQ_SIG) && (defined(__x86_64__) || defined(__aarch64__))
    if (__rseq_size > 0) {
      const auto* area = reinterpret_cast<const volatile struct rseq*>(
          static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset);
      const int cpu = static_cast<int>(area->cpu_id);
      if (cpu >= 0) return cpu;
    }
#endif
    return sched_getcpu();
  }

  Slot& SlotOfThisCpu() const {
    const int cpu = CurrentCpu();
    const size_t i =
        cpu >= 0 ? static_cast<size_t>(cpu) : ThreadOrdinal();  // no getcpu
    return slots_[i & (num_slots_ - 1)];
  }
  static size_t ThreadOrdinal() {
    static std::atomic<size_t> next{0};
    thread_local const size_t ordinal =
        next.fetch_add(1, std::memory_order_relaxed);
    return ordinal;
  }

  // Get() with this CPU's slot locked. Sets `slot_full` for a hit that
  // changed the order when the slot had no room left to note it.
  std::shared_ptr<const V> GetInSlot(const K& key, bool& slot_full) {
    Slot& slot = SlotOfThisCpu();
    MutexLock<ExclusiveMutex> lock(slot.mu);
    all_slots_.AssertReaderHeld();
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++slot.misses;
      return nullptr;
    }
    ++slot.hits;
    Entry& entry = *it->second;
    // Only a hit of an entry other than the latest-stamped one changes the
    // order (and writes memory that other threads read).
    if (entry.stamp.load(std::memory_order_relaxed) !=
        clock_.load(std::memory_order_relaxed)) {
      const uint64_t stamp = NextStamp();
      entry.stamp.store(stamp, std::memory_order_relaxed);
      if (slot.num_touches < kTouchesPerSlot) {
        slot.touches[slot.num_touches++] = Touch{it->second, stamp};
      } else {
        slot_full = true;
      }
    }
    return entry.value;
  }

  uint64_t NextStamp() {
    return clock_.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  // Moves every noted hit's entry to the front, oldest stamp first, so the
  // list ends in exact recency order; also the entry of `unnoted` if it is
  // cached (a hit its full slot could not note). Entries are erased only by
  // writers, which call this first, so every noted entry is in the list.
  void ApplyTouches(const K* unnoted = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(all_slots_) {
    touches_.clear();
    for (size_t i = 0; i < num_slots_; ++i) {
      Slot& slot = slots_[i];
      slot.mu.AssertHeld();
      touches_.insert(touches_.end(), slot.touches.begin(),
                      slot.touches.begin() + slot.num_touches);
      slot.num_touches = 0;
    }
    if (unnoted != nullptr) {
      auto it = index_.find(*unnoted);
      if (it != index_.end()) {
        touches_.push_back(Touch{
            it->second, it->second->stamp.load(std::memory_order_relaxed)});
      }
    }
    if (touches_.empty()) return;
    std::sort(touches_.begin(), touches_.end(),
              [](const Touch& a, const Touch& b) { return a.stamp < b.stamp; });
    for (const Touch& touch : touches_) {
      lru_.splice(lru_.begin(), lru_, touch.entry);
    }
  }

  // The index is keyed by a pointer to the key inside its list node (list
  // nodes never move), so each key is stored once. Lookups by `const K&` go
  // through heterogeneous lookup, so they build nothing.
  struct IndexHash {
    using is_transparent = void;
    size_t operator()(const K& k) const { return hash(k); }
    size_t operator()(const K* k) const { return hash(*k); }
    Hash hash;
  };
  struct IndexEq {
    using is_transparent = void;
    bool operator()(const K* a, const K* b) const { return eq(*a, *b); }
    bool operator()(const K* a, const K& b) const { return eq(*a, b); }
    bool operator()(const K& a, const K* b) const { return eq(a, *b); }
    Eq eq;
  };

  const int64_t capacity_;
  const size_t num_slots_;
  const std::unique_ptr<Slot[]> slots_;
  mutable AllSlots all_slots_;
  // Read by every hit, written by Set() and hits that change the order: on a
  // cache line of its own.
  alignas(64) std::atomic<uint64_t> clock_{0};
  // Most recently used first, up to the hits noted in the slots.
  // Invariant: index_ holds exactly one element per node of lru_, keyed by
  // &node.key, and lru_.size() <= capacity_.
  alignas(64) List lru_ ABSL_GUARDED_BY(all_slots_);
  absl::flat_hash_map<const K*, typename List::iterator, IndexHash, IndexEq>
      index_ ABSL_GUARDED_BY(all_slots_);
  std::vector<Touch> touches_ ABSL_GUARDED_BY(all_slots_);  // ApplyTouches
};

}  // namespace proxystore

#endif  // PROXYSTORE_CACHE_CACHE_H_
