// StreamEvent: what a proxy stream's broker carries (ProxyStore's
// NewObjectEvent, NewObjectKeyEvent and EndOfStreamEvent). The bulk data
// of a store-backed topic goes through the store; its event carries only the
// serialized proxy.
//
// On a Redis stream an event is one entry whose fields are
//   "k"  "o" (object), "p" (proxy) or "e" (end of stream)
//   "d"  the serialized object (k=o) or the serialized proxy (k=p)
//   "m:<name>"  one field per metadata entry
//   "n"  a nonce the Redis publisher adds (ignored here)
// readable with redis-cli (XRANGE). Entries come from the broker, which
// anyone with access may write: ParseStreamEntry checks every field
// against bounds before anything else happens.
//
// Thread-safety: plain values.
#ifndef PROXYSTORE_STREAM_EVENT_H_
#define PROXYSTORE_STREAM_EVENT_H_

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace proxystore {

// User metadata sent with an object (ProxyStore's `metadata` dict, as text).
using StreamMetadata = std::map<std::string, std::string>;

struct StreamEvent {
  enum class Kind { kObject, kProxy, kEnd };
  Kind kind = Kind::kObject;
  std::string payload;  // the serialized object (kObject) or proxy (kProxy)
  StreamMetadata metadata;
};

// Bounds on what an entry from the broker may hold.
struct StreamEventLimits {
  size_t max_payload = size_t{512} << 20;  // an inline object's bytes
  size_t max_metadata_entries = 256;
  size_t max_metadata_bytes = size_t{1} << 20;  // names and values together
};

// The entry's fields, in order (name, value, name, value, ...).
std::vector<std::pair<std::string, std::string>> StreamEntryFields(
    const StreamEvent& event);

// DataLoss naming what is wrong: an unknown kind, a missing or repeated
// field, a field of an unknown name, a proxy event without a payload, or a
// size past `limits`.
absl::StatusOr<StreamEvent> ParseStreamEntry(
    const std::vector<std::pair<std::string, std::string>>& fields,
    const StreamEventLimits& limits = {});

}  // namespace proxystore

#endif  // PROXYSTORE_STREAM_EVENT_H_
