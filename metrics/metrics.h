// StoreMetrics: per-key performance records of a Store.
//
// ProxyStore's `StoreMetrics` / `Metrics` / `TimeStats` in C++. A Store that
// has metrics enabled records, for each key it touches, named attributes
// (last value wins), counters (summed) and timings (count / total / min /
// max / last). An operation on a batch of keys (put_batch, proxy_batch) is
// recorded once, under the whole ordered list of keys (the batch's "super
// key"), not under each key.
//
// Units: every duration is integer nanoseconds (`*_ns`), exactly what
// Timer::Stop() returns, and the time of the last record is UNIX time in
// nanoseconds (`last_timestamp_unix_ns`). Nothing is stored in milliseconds,
// so nothing can be off by a factor of 1000 (ProxyStore bug #535).
//
//   StoreMetrics metrics;
//   metrics.AddTime("store.get", key, timer.Stop());
//   metrics.AddCounter("store.get.cache_hits", key, 1);
//   metrics.AddAttribute("store.put.object_size", key, int64_t{1024});
//   metrics.AddTime("store.put_batch", absl::MakeConstSpan(keys), ns);
//   std::optional<Metrics> m = metrics.GetMetrics(key);
//   std::map<std::string, TimeStats> all = metrics.AggregateTimes();
//   std::string json = metrics.ToJson();
//
// Cost: each Add*() takes the lock once and performs two hash lookups (key,
// then name); names are absl::string_view, looked up without building a
// std::string, and interned once per StoreMetrics, so recording under a key
// and name seen before allocates nothing. Records are kept for the life of
// the StoreMetrics (as in ProxyStore); call Clear() to drop them.
//
// Thread-safety: StoreMetrics may be used from any number of threads at once.
// TimeStats and Metrics are plain values.
#ifndef PROXYSTORE_METRICS_METRICS_H_
#define PROXYSTORE_METRICS_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "proxystore/base/key.h"
#include "proxystore/base/mutex.h"

namespace proxystore {

// Statistics of one named timing. All durations in nanoseconds. An empty
// TimeStats (count == 0) has every field 0; it is the identity of `+`.
struct TimeStats {
  int64_t count = 0;
  // Sum of all recorded durations; avg_ns() is total_ns / count.
  int64_t total_ns = 0;
  int64_t min_ns = 0;
  int64_t max_ns = 0;
  // The most recent duration and when it was recorded (UNIX time, ns).
  int64_t last_ns = 0;
  int64_t last_timestamp_unix_ns = 0;

  // Mean duration; 0 for an empty TimeStats.
  double avg_ns() const {
    return count == 0
               ? 0.0
               : static_cast<double>(total_ns) / static_cast<double>(count);
  }

  // Records one duration, observed at `timestamp_unix_ns`. The "last" fields
  // always take this record, even if an earlier call had a later timestamp.
  void AddTime(int64_t elapsed_ns, int64_t timestamp_unix_ns);
  // The same, observed now (the system clock).
  void AddTime(int64_t elapsed_ns);

  // "TimeStats{count=2, avg_ns=1.5, min_ns=1, max_ns=2, last_ns=2}", for
  // messages and test failures.
  friend std::ostream& operator<<(std::ostream& os, const TimeStats& t) {
    return os << "TimeStats{count=" << t.count << ", avg_ns=" << t.avg_ns()
              << ", min_ns=" << t.min_ns << ", max_ns=" << t.max_ns
              << ", last_ns=" << t.last_ns << "}";
  }

  // Merges `other` in: counts and totals add (so the average is the
  // count-weighted average), min/max combine, and last_ns /
  // last_timestamp_unix_ns come from the side with the later timestamp (the
  // right-hand side on a tie, as in ProxyStore). Merging an empty TimeStats
  // changes nothing; empty + empty is empty.
  TimeStats& operator+=(const TimeStats& other);
  friend TimeStats operator+(TimeStats a, const TimeStats& b) {
    a += b;
    return a;
  }

  friend bool operator==(const TimeStats&, const TimeStats&) = default;
};

// An attribute value. Cast sizes to int64_t: `int64_t{data.size()}` is
// rejected as narrowing, `static_cast<int64_t>(data.size())` works.
using MetricAttribute =
    std::variant<int64_t, double, std::string, std::vector<int64_t>>;

// Everything recorded under one key (or one batch of keys).
struct Metrics {
  std::map<std::string, MetricAttribute> attributes;
  std::map<std::string, int64_t> counters;
  std::map<std::string, TimeStats> times;

  bool empty() const {
    return attributes.empty() && counters.empty() && times.empty();
  }
  // {"attributes": {...}, "counters": {...}, "times": {"name": {"count": ..,
  // "avg_ns": .., "total_ns": .., "min_ns": .., "max_ns": .., "last_ns": ..,
  // "last_timestamp_unix_ns": ..}}}, names sorted.
  std::string ToJson() const;

  friend bool operator==(const Metrics&, const Metrics&) = default;
};

class StoreMetrics {
 public:
  // Returns the current UNIX time in nanoseconds.
  using Clock = std::function<int64_t()>;

  // Timestamps from the system clock.
  StoreMetrics();
  // Timestamps from `now_unix_ns` (tests use a fake). It is called once per
  // AddTime(), outside the lock, possibly from several threads at once.
  explicit StoreMetrics(Clock now_unix_ns);

  StoreMetrics(const StoreMetrics&) = delete;
  StoreMetrics& operator=(const StoreMetrics&) = delete;

  // Sets attribute `name` of `key` (or of the batch `keys`); the last value
  // set wins.
  void AddAttribute(absl::string_view name, const Key& key,
                    MetricAttribute value);
  void AddAttribute(absl::string_view name, absl::Span<const Key> keys,
                    MetricAttribute value);

  // Adds `delta` to counter `name` of `key` / of the batch `keys`.
  void AddCounter(absl::string_view name, const Key& key, int64_t delta);
  void AddCounter(absl::string_view name, absl::Span<const Key> keys,
                  int64_t delta);

  // Records a duration (nanoseconds) in timing `name` of `key` / of the
  // batch `keys`, timestamped with the clock.
  void AddTime(absl::string_view name, const Key& key, int64_t elapsed_ns);
  void AddTime(absl::string_view name, absl::Span<const Key> keys,
               int64_t elapsed_ns);

  // A copy of what was recorded under `key`, or std::nullopt if nothing was.
  std::optional<Metrics> GetMetrics(const Key& key) const;
  // A copy of what was recorded under the batch `keys`. A batch is
  // identified by its keys in order: {a, b} and {b, a} are different batches,
  // and the batch {a} is not the key a.
  std::optional<Metrics> GetMetrics(absl::Span<const Key> keys) const;

  // Each timing name merged (TimeStats::operator+=) over every key and batch.
  std::map<std::string, TimeStats> AggregateTimes() const;

  // Everything, as one JSON object, keys and batches sorted by key id:
  // {"keys": {"<key id>": <Metrics::ToJson()>, ...},
  //  "batches": [{"keys": ["<id>", ...], "metrics": <Metrics::ToJson()>}, ...]}
  std::string ToJson() const;

  // Drops every record.
  void Clear();

 private:
  // Internal form of Metrics: names point into names_, so recording never
  // copies a name it has seen before.
  struct Record {
    absl::flat_hash_map<absl::string_view, MetricAttribute> attributes;
    absl::flat_hash_map<absl::string_view, int64_t> counters;
    absl::flat_hash_map<absl::string_view, TimeStats> times;
  };
  // Batch map hashing and equality that accept both the stored
  // std::vector<Key> and a lookup-only absl::Span<const Key>.
  struct BatchHash {
    using is_transparent = void;
    size_t operator()(absl::Span<const Key> keys) const;
    size_t operator()(const std::vector<Key>& keys) const {
      return (*this)(absl::MakeConstSpan(keys));
    }
  };
  struct BatchEq {
    using is_transparent = void;
    bool operator()(absl::Span<const Key> a, absl::Span<const Key> b) const {
      return a == b;
    }
  };

  absl::string_view Intern(absl::string_view name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Record& RecordFor(const Key& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Record& RecordFor(absl::Span<const Key> keys)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  template <typename KeyOrKeys>
  void DoAddAttribute(absl::string_view name, const KeyOrKeys& key,
                      MetricAttribute value);
  template <typename KeyOrKeys>
  void DoAddCounter(absl::string_view name, const KeyOrKeys& key,
                    int64_t delta);
  template <typename KeyOrKeys>
  void DoAddTime(absl::string_view name, const KeyOrKeys& key,
                 int64_t elapsed_ns);
  static Metrics ToMetrics(const Record& record);

  const Clock now_unix_ns_;
  mutable Mutex mu_;
  // Every metric name seen; node-based so the strings never move.
  absl::node_hash_set<std::string> names_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, Record> keys_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::vector<Key>, Record, BatchHash, BatchEq> batches_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace proxystore

#endif  // PROXYSTORE_METRICS_METRICS_H_
