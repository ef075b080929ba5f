// Key: names one object inside one connector.
//
// Minted by the connector that stored the object and opaque to everyone else;
// the vocabulary type shared by connectors, the store and metrics.
#ifndef PROXYSTORE_BASE_KEY_H_
#define PROXYSTORE_BASE_KEY_H_

#include <compare>
#include <cstddef>
#include <ostream>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace proxystore {

// Identifies one object inside one connector. Minted by the connector that
// stored the object; opaque to everyone else. Copyable, hashable, ordered,
// printable and serializable (as its id bytes).
class Key {
 public:
  // Largest id a key may carry; longer ids are rejected by Parse.
  static constexpr size_t kMaxIdSize = 4096;

  Key() = default;
  explicit Key(std::string id) : id_(std::move(id)) {}

  // Validates a serialized key (from another process or a file).
  static absl::StatusOr<Key> Parse(absl::string_view serialized);

  const std::string& id() const { return id_; }
  bool empty() const { return id_.empty(); }
  // The serialized form, accepted by Parse.
  const std::string& Serialize() const { return id_; }

  friend bool operator==(const Key&, const Key&) = default;
  friend auto operator<=>(const Key&, const Key&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const Key& k) {
    return H::combine(std::move(h), k.id_);
  }
  friend std::ostream& operator<<(std::ostream& os, const Key& k) {
    return os << "Key(\"" << k.id_ << "\")";
  }

 private:
  std::string id_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_BASE_KEY_H_
