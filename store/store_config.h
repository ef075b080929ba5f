// StoreOptions: a Store's options; StoreConfig: those options with the
// store's name and connector, everything needed to re-create the Store in
// another process.
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

// A store's options: everything Store::Create takes beyond its name and
// connector. Declared once, here; StoreConfig carries them as its base, so
// `config.cache_size` and `options.cache_size` are the same field. Adding an
// option means adding its field here, to the StoreConfig table of the
// FlatBuffers schema (wire/wire.fbs), and to the code that writes and reads
// that table (store_config.cc).
struct StoreOptions {
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

  friend bool operator==(const StoreOptions&, const StoreOptions&) = default;
};

// What a store re-created from a serialized proxy uses in this process
// instead of two of the producer's StoreOptions: a proxy's cache_size and
// metrics are the producer's choices for its own process, so a receiver
// takes these (set with SetReceiverStoreOptions, store.h) and never
// auto-registers; every other option comes from the proxy's config.
// (connectors/trust.h does the same for connector options.)
struct ReceiverStoreOptions {
  int64_t cache_size = 16;  // >= 0
  bool metrics = false;
};

// A store's options with its name and connector: what re-creates the store.
struct StoreConfig : StoreOptions {
  std::string name;
  ConnectorConfig connector;

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
