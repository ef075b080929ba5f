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
// Create() returns a std::unique_ptr: the cache holds a mutex and is meant to
// be shared by reference, so it has a fixed address and is neither copyable
// nor movable.
//
// Thread-safety: every method may be called concurrently from any number of
// threads; each one takes a single internal lock and is O(1) on average
// (Clear() is O(size)). Hash and Eq are called with the lock held, so they
// must not call back into the cache. The returned values are shared, const
// objects: reading them concurrently is safe if V's const methods are.
#ifndef PROXYSTORE_CACHE_CACHE_H_
#define PROXYSTORE_CACHE_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <ostream>
#include <utility>

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
  LruCache(PrivateTag, int64_t capacity) : capacity_(capacity) {}

  LruCache(const LruCache&) = delete;
  LruCache& operator=(const LruCache&) = delete;

  // The value cached under `key` (making it the most recently used, and
  // counting a hit), or nullptr (counting a miss).
  std::shared_ptr<const V> Get(const K& key) {
    MutexLock lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    // Already the most recent entry (repeated gets of one key): the list
    // stays as it is.
    if (it->second != lru_.begin()) {
      lru_.splice(lru_.begin(), lru_, it->second);
    }
    return it->second->value;
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
    MutexLock lock(mu_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      it->second->value = std::move(value);
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    if (static_cast<int64_t>(lru_.size()) >= capacity_) {
      index_.erase(&lru_.back().key);
      lru_.pop_back();
    }
    lru_.push_front(Entry{std::move(key), std::move(value)});
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
    MutexLock lock(mu_);
    return index_.contains(key);
  }

  // Removes `key`; returns whether it was present.
  bool Evict(const K& key) {
    MutexLock lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    auto entry = it->second;
    index_.erase(it);
    lru_.erase(entry);
    return true;
  }

  // Removes every entry. The hit and miss counts are kept.
  void Clear() {
    MutexLock lock(mu_);
    index_.clear();
    lru_.clear();
  }

  // Capacity, size and hit/miss counts, read together under the lock. Use
  // this rather than the separate accessors below when the numbers are
  // compared with each other: between two separate reads another thread may
  // get or set.
  CacheStats Stats() const {
    MutexLock lock(mu_);
    return CacheStats{.capacity = capacity_,
                      .size = lru_.size(),
                      .hits = hits_,
                      .misses = misses_};
  }

  // Number of cached entries, <= capacity().
  size_t size() const {
    MutexLock lock(mu_);
    return lru_.size();
  }
  int64_t capacity() const { return capacity_; }
  // Get() calls that found / did not find their key, since creation.
  int64_t hits() const {
    MutexLock lock(mu_);
    return hits_;
  }
  int64_t misses() const {
    MutexLock lock(mu_);
    return misses_;
  }

 private:
  struct Entry {
    K key;
    std::shared_ptr<const V> value;
  };
  using List = std::list<Entry>;

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
  // Exclusive only: a hit reorders the list, so nearly every call writes.
  mutable ExclusiveMutex mu_;
  // Most recently used first. Invariant: index_ holds exactly one element
  // per node of lru_, keyed by &node.key, and lru_.size() <= capacity_.
  List lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<const K*, typename List::iterator, IndexHash, IndexEq>
      index_ ABSL_GUARDED_BY(mu_);
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace proxystore

#endif  // PROXYSTORE_CACHE_CACHE_H_
