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

#include "absl/hash/hash.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace proxystore {

// Identifies one object inside one connector. Minted by the connector that
// stored the object; opaque to everyone else. Copyable, hashable, ordered,
// printable and serializable (as its id bytes).
//
// A Key hashes its id once, when it is made, and keeps the hash: every hash
// table on the get path (the store's cache, the local connector's shards and
// maps, metrics) then costs a few instructions per lookup instead of a pass
// over the id. The hash is the process's absl::Hash of the id (randomly
// seeded per process), so it never travels.
class Key {
 public:
  // Largest id a key may carry; longer ids are rejected by Parse.
  static constexpr size_t kMaxIdSize = 4096;

  Key() : hash_(EmptyHash()) {}
  explicit Key(std::string id) : id_(std::move(id)), hash_(HashId(id_)) {}
  Key(const Key&) = default;
  Key& operator=(const Key&) = default;
  // A moved-from Key is the empty key, hash included.
  Key(Key&& other) noexcept
      : id_(std::move(other.id_)),
        hash_(std::exchange(other.hash_, EmptyHash())) {
    other.id_.clear();
  }
  Key& operator=(Key&& other) noexcept {
    id_ = std::move(other.id_);
    other.id_.clear();
    hash_ = std::exchange(other.hash_, EmptyHash());
    return *this;
  }

  // Validates a serialized key (from another process or a file).
  static absl::StatusOr<Key> Parse(absl::string_view serialized);

  const std::string& id() const { return id_; }
  bool empty() const { return id_.empty(); }
  // The serialized form, accepted by Parse.
  const std::string& Serialize() const { return id_; }

  // The id's hash in this process (absl::Hash of the id bytes).
  size_t hash() const { return hash_; }

  friend bool operator==(const Key& a, const Key& b) {
    return a.hash_ == b.hash_ && a.id_ == b.id_;
  }
  friend std::strong_ordering operator<=>(const Key& a, const Key& b) {
    return a.id_ <=> b.id_;
  }
  template <typename H>
  friend H AbslHashValue(H h, const Key& k) {
    return H::combine(std::move(h), k.hash_);
  }
  friend std::ostream& operator<<(std::ostream& os, const Key& k) {
    return os << "Key(\"" << k.id_ << "\")";
  }

 private:
  static size_t HashId(absl::string_view id) { return absl::HashOf(id); }
  static size_t EmptyHash() {
    static const size_t empty = HashId("");
    return empty;
  }

  std::string id_;
  size_t hash_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_BASE_KEY_H_
