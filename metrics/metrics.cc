#include "proxystore/metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace proxystore {
namespace {

int64_t SystemNowUnixNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- JSON writing -------------------------------------------------------

// Length of the valid UTF-8 sequence starting at s[i], or 0 if there is none
// (bad lead byte, truncated, overlong, surrogate or above U+10FFFF).
size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const auto byte = [&](size_t j) { return static_cast<unsigned char>(s[j]); };
  const unsigned char c = byte(i);
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (size_t j = 1; j < len; ++j) {
    if ((byte(i + j) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + j) & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
    return 0;
  }
  return len;
}

// A JSON string literal. Quotes, backslashes and control characters are
// escaped; bytes that are not valid UTF-8 become U+FFFD, so the output is
// always valid JSON whatever the key ids and attribute strings hold.
void AppendJsonString(std::string& out, absl::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(s, i);
      if (len == 0) {
        out.append("\\ufffd");
        ++i;
      } else {
        out.append(s.substr(i, len).data(), len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (c < 0x20) {
          out.append("\\u00");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

// Shortest text that reads back as the same double; `null` for NaN and
// infinities, which JSON cannot express.
void AppendJsonDouble(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out.append("null");
    return;
  }
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), d);
  out.append(buf, r.ptr);
}

void AppendJsonAttribute(std::string& out, const MetricAttribute& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) {
    absl::StrAppend(&out, *i);
  } else if (const auto* d = std::get_if<double>(&value)) {
    AppendJsonDouble(out, *d);
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    AppendJsonString(out, *s);
  } else {
    const auto& list = std::get<std::vector<int64_t>>(value);
    out.push_back('[');
    for (size_t i = 0; i < list.size(); ++i) {
      if (i > 0) out.push_back(',');
      absl::StrAppend(&out, list[i]);
    }
    out.push_back(']');
  }
}

void AppendJsonTimeStats(std::string& out, const TimeStats& t) {
  absl::StrAppend(&out, "{\"count\":", t.count, ",\"avg_ns\":");
  AppendJsonDouble(out, t.avg_ns());
  absl::StrAppend(&out, ",\"total_ns\":", t.total_ns, ",\"min_ns\":", t.min_ns,
                  ",\"max_ns\":", t.max_ns, ",\"last_ns\":", t.last_ns,
                  ",\"last_timestamp_unix_ns\":", t.last_timestamp_unix_ns,
                  "}");
}

// {"name":<value>,...} over a std::map (so names come out sorted).
template <typename Map, typename AppendValue>
void AppendJsonObject(std::string& out, const Map& map,
                      AppendValue append_value) {
  out.push_back('{');
  bool first = true;
  for (const auto& [name, value] : map) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(out, name);
    out.push_back(':');
    append_value(out, value);
  }
  out.push_back('}');
}

void AppendJsonMetrics(std::string& out, const Metrics& m) {
  out.append("{\"attributes\":");
  AppendJsonObject(out, m.attributes, AppendJsonAttribute);
  out.append(",\"counters\":");
  AppendJsonObject(out, m.counters,
                   [](std::string& o, int64_t v) { absl::StrAppend(&o, v); });
  out.append(",\"times\":");
  AppendJsonObject(out, m.times, AppendJsonTimeStats);
  out.push_back('}');
}

}  // namespace

// ---- TimeStats ----------------------------------------------------------

void TimeStats::AddTime(int64_t elapsed_ns) {
  AddTime(elapsed_ns, absl::ToUnixNanos(absl::Now()));
}

void TimeStats::AddTime(int64_t elapsed_ns, int64_t timestamp_unix_ns) {
  if (count == 0) {
    min_ns = elapsed_ns;
    max_ns = elapsed_ns;
  } else {
    min_ns = std::min(min_ns, elapsed_ns);
    max_ns = std::max(max_ns, elapsed_ns);
  }
  ++count;
  total_ns += elapsed_ns;
  last_ns = elapsed_ns;
  last_timestamp_unix_ns = timestamp_unix_ns;
}

TimeStats& TimeStats::operator+=(const TimeStats& other) {
  if (other.count == 0) return *this;
  if (count == 0) {
    *this = other;
    return *this;
  }
  count += other.count;
  total_ns += other.total_ns;
  min_ns = std::min(min_ns, other.min_ns);
  max_ns = std::max(max_ns, other.max_ns);
  if (other.last_timestamp_unix_ns >= last_timestamp_unix_ns) {
    last_ns = other.last_ns;
    last_timestamp_unix_ns = other.last_timestamp_unix_ns;
  }
  return *this;
}

std::string Metrics::ToJson() const {
  std::string out;
  AppendJsonMetrics(out, *this);
  return out;
}

// ---- StoreMetrics -------------------------------------------------------

size_t StoreMetrics::BatchHash::operator()(absl::Span<const Key> keys) const {
  return absl::Hash<absl::Span<const Key>>{}(keys);
}

StoreMetrics::StoreMetrics() = default;

StoreMetrics::StoreMetrics(Clock now_unix_ns)
    : now_unix_ns_(std::move(now_unix_ns)) {}

absl::string_view StoreMetrics::Intern(absl::string_view name) {
  auto it = names_.find(name);
  if (it == names_.end()) it = names_.emplace(name).first;
  return *it;
}

StoreMetrics::Record& StoreMetrics::RecordFor(const Key& key) {
  auto it = keys_.find(key);
  if (it == keys_.end()) it = keys_.try_emplace(key).first;
  return it->second;
}

StoreMetrics::Record& StoreMetrics::RecordFor(absl::Span<const Key> keys) {
  auto it = batches_.find(keys);
  if (it == batches_.end()) {
    it = batches_.try_emplace(std::vector<Key>(keys.begin(), keys.end())).first;
  }
  return it->second;
}

template <typename KeyOrKeys>
void StoreMetrics::DoAddAttribute(absl::string_view name, const KeyOrKeys& key,
                                  MetricAttribute value) {
  MutexLock lock(mu_);
  Record& record = RecordFor(key);
  auto it = record.attributes.find(name);
  if (it == record.attributes.end()) {
    record.attributes.try_emplace(Intern(name), std::move(value));
  } else {
    it->second = std::move(value);
  }
}

template <typename KeyOrKeys>
void StoreMetrics::DoAddCounter(absl::string_view name, const KeyOrKeys& key,
                                int64_t delta) {
  MutexLock lock(mu_);
  Record& record = RecordFor(key);
  auto it = record.counters.find(name);
  if (it == record.counters.end()) {
    record.counters.try_emplace(Intern(name), delta);
  } else {
    it->second += delta;
  }
}

template <typename KeyOrKeys>
void StoreMetrics::DoAddTime(absl::string_view name, const KeyOrKeys& key,
                             int64_t elapsed_ns) {
  const int64_t now = now_unix_ns_ ? now_unix_ns_() : SystemNowUnixNs();
  MutexLock lock(mu_);
  Record& record = RecordFor(key);
  auto it = record.times.find(name);
  if (it == record.times.end()) {
    it = record.times.try_emplace(Intern(name)).first;
  }
  it->second.AddTime(elapsed_ns, now);
}

void StoreMetrics::AddAttribute(absl::string_view name, const Key& key,
                                MetricAttribute value) {
  DoAddAttribute(name, key, std::move(value));
}
void StoreMetrics::AddAttribute(absl::string_view name,
                                absl::Span<const Key> keys,
                                MetricAttribute value) {
  DoAddAttribute(name, keys, std::move(value));
}
void StoreMetrics::AddCounter(absl::string_view name, const Key& key,
                              int64_t delta) {
  DoAddCounter(name, key, delta);
}
void StoreMetrics::AddCounter(absl::string_view name,
                              absl::Span<const Key> keys, int64_t delta) {
  DoAddCounter(name, keys, delta);
}
void StoreMetrics::AddTime(absl::string_view name, const Key& key,
                           int64_t elapsed_ns) {
  DoAddTime(name, key, elapsed_ns);
}
void StoreMetrics::AddTime(absl::string_view name, absl::Span<const Key> keys,
                           int64_t elapsed_ns) {
  DoAddTime(name, keys, elapsed_ns);
}

Metrics StoreMetrics::ToMetrics(const Record& record) {
  Metrics m;
  for (const auto& [name, value] : record.attributes) {
    m.attributes.emplace(std::string(name), value);
  }
  for (const auto& [name, value] : record.counters) {
    m.counters.emplace(std::string(name), value);
  }
  for (const auto& [name, value] : record.times) {
    m.times.emplace(std::string(name), value);
  }
  return m;
}

std::optional<Metrics> StoreMetrics::GetMetrics(const Key& key) const {
  ReaderMutexLock lock(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end()) return std::nullopt;
  return ToMetrics(it->second);
}

std::optional<Metrics> StoreMetrics::GetMetrics(
    absl::Span<const Key> keys) const {
  ReaderMutexLock lock(mu_);
  auto it = batches_.find(keys);
  if (it == batches_.end()) return std::nullopt;
  return ToMetrics(it->second);
}

std::map<std::string, TimeStats> StoreMetrics::AggregateTimes() const {
  std::map<std::string, TimeStats> out;
  const auto add = [&out](const Record& record) {
    for (const auto& [name, stats] : record.times) {
      out[std::string(name)] += stats;
    }
  };
  ReaderMutexLock lock(mu_);
  for (const auto& [key, record] : keys_) add(record);
  for (const auto& [keys, record] : batches_) add(record);
  return out;
}

std::string StoreMetrics::ToJson() const {
  ReaderMutexLock lock(mu_);
  // Sorted views, so the output does not depend on hash order.
  std::vector<const std::pair<const Key, Record>*> keys;
  keys.reserve(keys_.size());
  for (const auto& entry : keys_) keys.push_back(&entry);
  std::sort(keys.begin(), keys.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  std::vector<const std::pair<const std::vector<Key>, Record>*> batches;
  batches.reserve(batches_.size());
  for (const auto& entry : batches_) batches.push_back(&entry);
  std::sort(batches.begin(), batches.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });

  std::string out = "{\"keys\":{";
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendJsonString(out, keys[i]->first.id());
    out.push_back(':');
    AppendJsonMetrics(out, ToMetrics(keys[i]->second));
  }
  out.append("},\"batches\":[");
  for (size_t i = 0; i < batches.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append("{\"keys\":[");
    const std::vector<Key>& batch = batches[i]->first;
    for (size_t j = 0; j < batch.size(); ++j) {
      if (j > 0) out.push_back(',');
      AppendJsonString(out, batch[j].id());
    }
    out.append("],\"metrics\":");
    AppendJsonMetrics(out, ToMetrics(batches[i]->second));
    out.push_back('}');
  }
  out.append("]}");
  return out;
}

void StoreMetrics::Clear() {
  MutexLock lock(mu_);
  keys_.clear();
  batches_.clear();
}

}  // namespace proxystore
