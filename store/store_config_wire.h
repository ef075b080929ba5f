// StoreConfig <-> its FlatBuffers table (wire/wire.fbs), for the wire forms
// that embed a store config: StoreConfig::Serialize/Parse and serialized
// proxies (store/factory.cc).
#ifndef PROXYSTORE_STORE_STORE_CONFIG_WIRE_H_
#define PROXYSTORE_STORE_STORE_CONFIG_WIRE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "flatbuffers/flatbuffers.h"
#include "proxystore/store/store_config.h"
#include "proxystore/wire/wire.h"

namespace proxystore::store_internal {

// Writes `config` into `fbb`; `version` is wire::kVersion for the root of a
// buffer, 0 (absent) when nested in a proxy.
flatbuffers::Offset<fb::StoreConfig> WriteStoreConfig(
    flatbuffers::FlatBufferBuilder& fbb, const StoreConfig& config,
    uint16_t version);

// Reads a verified table; the result passes StoreConfig::Validate().
absl::StatusOr<StoreConfig> ReadStoreConfig(const fb::StoreConfig& table);

}  // namespace proxystore::store_internal

#endif  // PROXYSTORE_STORE_STORE_CONFIG_WIRE_H_
