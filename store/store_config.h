// StoreConfig: everything needed to re-create a Store in another process.
//
// ProxyStore's `Store.config()` / `Store.from_config()` dictionary in C++ form.
// It travels inside every serialized proxy (so keep it small) and is
// FlatBuffers-encoded; Parse verifies the bytes before reading them.
//
//   StoreConfig config = store->Config();
//   std::string wire = config.Serialize();
//   PROXYSTORE_ASSIGN_OR_RETURN(StoreConfig back, StoreConfig::Parse(wire));
//
// Thread-safety: a plain value type.
#ifndef PROXYSTORE_STORE_STORE_CONFIG_H_
#define PROXYSTORE_STORE_STORE_CONFIG_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proxystore/connectors/connector.h"

namespace proxystore {

struct StoreConfig {
  std::string name;
  ConnectorConfig connector;
  // LRU cache capacity in objects; 0 disables the cache; < 0 is invalid.
  int64_t cache_size = 16;
  bool metrics = false;
  // Names of serializer/deserializer functions registered with
  // RegisterSerializer (store.h); empty selects the type's Codec.
  std::string serializer;
  std::string deserializer;
  // lz4-compress serialized objects of at least compress_threshold bytes.
  bool compress = false;
  uint64_t compress_threshold = 4096;
  // Write strings and bytes the way Python ProxyStore does ("US\n", "BS\n").
  bool python_format = false;
  // Proxies made by Store::Proxy start resolved with the object put.
  bool populate_target = false;
  // Store::Create registers the store in the process-wide registry.
  bool auto_register = false;

  friend bool operator==(const StoreConfig&, const StoreConfig&) = default;

  // InvalidArgument naming the field if the config cannot make a store.
  absl::Status Validate() const;

  std::string Serialize() const;
  static absl::StatusOr<StoreConfig> Parse(absl::string_view bytes);

  // For messages and logs.
  std::string DebugString() const;
  friend std::ostream& operator<<(std::ostream& os, const StoreConfig& c) {
    return os << c.DebugString();
  }
};

}  // namespace proxystore

#endif  // PROXYSTORE_STORE_STORE_CONFIG_H_
