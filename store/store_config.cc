#include "proxystore/store/store_config.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "flatbuffers/flatbuffers.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/status.h"
#include "proxystore/store/store_config_generated.h"

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

std::string StoreConfig::Serialize() const {
  flatbuffers::FlatBufferBuilder fbb(256);
  std::string connector_bytes = connector.Serialize();
  auto name_off = fbb.CreateString(name);
  // A nested FlatBuffer: keep it 8-aligned so Parse needs no copy.
  fbb.ForceVectorAlignment(connector_bytes.size(), sizeof(uint8_t), 8);
  auto conn_off =
      fbb.CreateVector(reinterpret_cast<const uint8_t*>(connector_bytes.data()),
                       connector_bytes.size());
  auto ser_off = fbb.CreateString(serializer);
  auto deser_off = fbb.CreateString(deserializer);
  fb::StoreConfigBuilder b(fbb);
  b.add_name(name_off);
  b.add_connector(conn_off);
  b.add_cache_size(cache_size);
  b.add_metrics(metrics);
  b.add_serializer(ser_off);
  b.add_deserializer(deser_off);
  b.add_compress(compress);
  b.add_compress_threshold(compress_threshold);
  b.add_python_format(python_format);
  b.add_populate_target(populate_target);
  b.add_auto_register(auto_register);
  fbb.Finish(b.Finish());
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
                     fbb.GetSize());
}

absl::StatusOr<StoreConfig> StoreConfig::Parse(absl::string_view unaligned) {
  // The FlatBuffers verifier asserts on buffers this large: refuse them first
  // (and before AlignedView could copy them).
  if (unaligned.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return absl::DataLossError(
        absl::StrCat("StoreConfig::Parse: ", unaligned.size(),
                     " bytes are too large for a serialized store config"));
  }
  AlignedView bytes(unaligned);
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  if (!fb::VerifyStoreConfigBuffer(verifier)) {
    return absl::DataLossError(
        absl::StrCat("StoreConfig::Parse: ", bytes.size(),
                     " bytes are not a valid serialized store config"));
  }
  const fb::StoreConfig* root = fb::GetStoreConfig(bytes.data());
  if (root->version() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("StoreConfig::Parse: unsupported version ",
                     root->version(), " (this build reads version 1)"));
  }
  if (root->connector() == nullptr) {
    return absl::DataLossError("StoreConfig::Parse: no connector config");
  }
  StoreConfig out;
  out.name = root->name() ? root->name()->str() : "";
  PROXYSTORE_ASSIGN_OR_RETURN(
      out.connector,
      ConnectorConfig::Parse(absl::string_view(
          reinterpret_cast<const char*>(root->connector()->data()),
          root->connector()->size())));
  out.cache_size = root->cache_size();
  out.metrics = root->metrics();
  out.serializer = root->serializer() ? root->serializer()->str() : "";
  out.deserializer = root->deserializer() ? root->deserializer()->str() : "";
  out.compress = root->compress();
  out.compress_threshold = root->compress_threshold();
  out.python_format = root->python_format();
  out.populate_target = root->populate_target();
  out.auto_register = root->auto_register();
  PROXYSTORE_RETURN_IF_ERROR(Annotate(out.Validate(), "StoreConfig::Parse"));
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
