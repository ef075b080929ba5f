#include "proxystore/store/store_config.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "flatbuffers/flatbuffers.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/connector_wire.h"
#include "proxystore/store/store_config_wire.h"
#include "proxystore/wire/wire.h"

namespace proxystore {

absl::Status StoreConfig::Validate() const {
  if (name.empty()) {
    return absl::InvalidArgumentError("store config: name must not be empty");
  }
  if (cache_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("store config \"", name,
                     "\": cache size cannot be negative, got ", cache_size));
  }
  if (connector.kind.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "store config \"", name, "\": connector kind must not be empty"));
  }
  return absl::OkStatus();
}

namespace store_internal {

flatbuffers::Offset<fb::StoreConfig> WriteStoreConfig(
    flatbuffers::FlatBufferBuilder& fbb, const StoreConfig& config,
    uint16_t version) {
  auto conn_off = connector_internal::WriteConnectorConfig(
      fbb, config.connector, /*version=*/0);
  auto name_off = fbb.CreateString(config.name);
  auto ser_off = fbb.CreateString(config.serializer);
  auto deser_off = fbb.CreateString(config.deserializer);
  fb::StoreConfigBuilder b(fbb);
  b.add_version(version);
  b.add_name(name_off);
  b.add_connector(conn_off);
  b.add_cache_size(config.cache_size);
  b.add_metrics(config.metrics);
  b.add_serializer(ser_off);
  b.add_deserializer(deser_off);
  b.add_compress(config.compress);
  b.add_compress_threshold(config.compress_threshold);
  b.add_python_format(config.python_format);
  b.add_populate_target(config.populate_target);
  b.add_auto_register(config.auto_register);
  return b.Finish();
}

absl::StatusOr<StoreConfig> ReadStoreConfig(const fb::StoreConfig& table) {
  StoreConfig out;
  out.name = std::string(wire::View(table.name()));
  PROXYSTORE_ASSIGN_OR_RETURN(
      out.connector,
      connector_internal::ReadConnectorConfig(*table.connector()));
  out.cache_size = table.cache_size();
  out.metrics = table.metrics();
  out.serializer = std::string(wire::View(table.serializer()));
  out.deserializer = std::string(wire::View(table.deserializer()));
  out.compress = table.compress();
  out.compress_threshold = table.compress_threshold();
  out.python_format = table.python_format();
  out.populate_target = table.populate_target();
  out.auto_register = table.auto_register();
  PROXYSTORE_RETURN_IF_ERROR(out.Validate());
  return out;
}

}  // namespace store_internal

std::string StoreConfig::Serialize() const {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto root = store_internal::WriteStoreConfig(fbb, *this, wire::kVersion);
  return wire::Finish(fbb, root, wire::kStoreConfig);
}

absl::StatusOr<StoreConfig> StoreConfig::Parse(absl::string_view unaligned) {
  PROXYSTORE_RETURN_IF_ERROR(Annotate(
      wire::CheckSize(unaligned, wire::kStoreConfig), "StoreConfig::Parse"));
  AlignedView bytes(unaligned);
  absl::StatusOr<const fb::StoreConfig*> root =
      wire::ReadRoot<fb::StoreConfig>(bytes, wire::kStoreConfig);
  if (!root.ok()) return Annotate(root.status(), "StoreConfig::Parse");
  absl::StatusOr<StoreConfig> out = store_internal::ReadStoreConfig(**root);
  if (!out.ok()) return Annotate(out.status(), "StoreConfig::Parse");
  return out;
}

std::string StoreConfig::DebugString() const {
  return absl::StrCat(
      "StoreConfig(name=\"", name, "\", connector=", connector.DebugString(),
      ", cache_size=", cache_size, ", metrics=", metrics ? "true" : "false",
      ", serializer=", serializer.empty() ? "default" : serializer,
      ", deserializer=", deserializer.empty() ? "default" : deserializer,
      ", compress=", compress ? "true" : "false", ")");
}

}  // namespace proxystore
