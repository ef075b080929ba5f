// ConnectorConfig <-> its FlatBuffers table (wire/wire.fbs), for the wire
// forms that embed a connector config: ConnectorConfig::Serialize/Parse and
// the store config (store/store_config.cc).
#ifndef PROXYSTORE_CONNECTORS_CONNECTOR_WIRE_H_
#define PROXYSTORE_CONNECTORS_CONNECTOR_WIRE_H_

#include "absl/status/statusor.h"
#include "flatbuffers/flatbuffers.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/wire/wire.h"

namespace proxystore::connector_internal {

// Writes `config` (children included) into `fbb`. `version` is written only
// for the root of a buffer (wire::kVersion), 0 (absent) for nested tables.
flatbuffers::Offset<fb::ConnectorConfig> WriteConnectorConfig(
    flatbuffers::FlatBufferBuilder& fbb, const ConnectorConfig& config,
    uint16_t version);

// Reads a verified table: InvalidArgument for an empty kind, children
// nested deeper than wire::kMaxNesting or a child without a name; DataLoss
// for a repeated option name.
absl::StatusOr<ConnectorConfig> ReadConnectorConfig(
    const fb::ConnectorConfig& table);

}  // namespace proxystore::connector_internal

#endif  // PROXYSTORE_CONNECTORS_CONNECTOR_WIRE_H_
