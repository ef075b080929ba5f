// Fuzz target: the configuration decoders that read bytes from another
// process: Key::Parse, ConnectorConfig::Parse (connectors/connector.h) and
// StoreConfig::Parse (store/store_config.h). The whole input goes to each.
// Invariants checked:
//  - errors are DataLoss (not a valid buffer) or InvalidArgument (a valid
//    buffer with bad values); the same from an aligned and an odd address;
//  - a parsed value round-trips: Parse(Serialize(v)) == v, and Serialize is
//    deterministic (Serialize(Parse(Serialize(v))) == Serialize(v));
//  - a key re-serializes to exactly its input; a parsed store config passes
//    Validate(); a parsed connector config has a kind;
//  - the typed option accessors (GetString/GetInt/GetBool) on parsed options
//    return a value or InvalidArgument, never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/fuzz/fuzz_util.h"
#include "proxystore/store/store_config.h"

namespace proxystore::fuzz {
namespace {

bool IsParseError(const absl::Status& s) {
  return HasCode(
      s, {absl::StatusCode::kDataLoss, absl::StatusCode::kInvalidArgument});
}

void CheckKey(absl::string_view input) {
  absl::StatusOr<Key> key = Key::Parse(input);
  if (!key.ok()) {
    PROXYSTORE_FUZZ_CHECK(
        HasCode(key.status(), {absl::StatusCode::kInvalidArgument}) &&
            (input.empty() || input.size() > Key::kMaxIdSize),
        key.status().ToString());
    return;
  }
  PROXYSTORE_FUZZ_CHECK(key->Serialize() == input, "key changed");
  absl::StatusOr<Key> again = Key::Parse(key->Serialize());
  PROXYSTORE_FUZZ_CHECK(again.ok() && *again == *key, "key round trip");
}

void CheckOptions(const ConnectorConfig& config) {
  for (const auto& [name, value] : config.options) {
    absl::StatusOr<std::string> s = config.GetString(name);
    PROXYSTORE_FUZZ_CHECK(s.ok() && *s == value, s.status().ToString());
    absl::StatusOr<int64_t> i = config.GetInt(name, 0);
    PROXYSTORE_FUZZ_CHECK(
        i.ok() || HasCode(i.status(), {absl::StatusCode::kInvalidArgument}),
        i.status().ToString());
    absl::StatusOr<bool> b = config.GetBool(name, false);
    PROXYSTORE_FUZZ_CHECK(
        b.ok() || HasCode(b.status(), {absl::StatusCode::kInvalidArgument}),
        b.status().ToString());
  }
  absl::Status known = config.CheckKnownOptions({"directory", "clear"});
  PROXYSTORE_FUZZ_CHECK(
      known.ok() || HasCode(known, {absl::StatusCode::kInvalidArgument}),
      known.ToString());
  (void)config.DebugString();
}

void CheckConnectorConfig(absl::string_view input, absl::string_view odd) {
  absl::StatusOr<ConnectorConfig> config = ConnectorConfig::Parse(input);
  absl::StatusOr<ConnectorConfig> config_odd = ConnectorConfig::Parse(odd);
  PROXYSTORE_FUZZ_CHECK(config.status() == config_odd.status(),
                        absl::StrCat(config.status().ToString(), " vs ",
                                     config_odd.status().ToString()));
  if (!config.ok()) {
    PROXYSTORE_FUZZ_CHECK(IsParseError(config.status()),
                          config.status().ToString());
    return;
  }
  PROXYSTORE_FUZZ_CHECK(*config == *config_odd, "address changed the config");
  PROXYSTORE_FUZZ_CHECK(!config->kind.empty(), "parsed a config without kind");
  const std::string wire = config->Serialize();
  absl::StatusOr<ConnectorConfig> again = ConnectorConfig::Parse(wire);
  PROXYSTORE_FUZZ_CHECK(again.ok(), again.status().ToString());
  PROXYSTORE_FUZZ_CHECK(*again == *config, "connector config round trip");
  PROXYSTORE_FUZZ_CHECK(again->Serialize() == wire,
                        "ConnectorConfig::Serialize is not deterministic");
  CheckOptions(*config);
}

void CheckStoreConfig(absl::string_view input, absl::string_view odd) {
  absl::StatusOr<StoreConfig> config = StoreConfig::Parse(input);
  absl::StatusOr<StoreConfig> config_odd = StoreConfig::Parse(odd);
  PROXYSTORE_FUZZ_CHECK(config.status() == config_odd.status(),
                        absl::StrCat(config.status().ToString(), " vs ",
                                     config_odd.status().ToString()));
  if (!config.ok()) {
    PROXYSTORE_FUZZ_CHECK(IsParseError(config.status()),
                          config.status().ToString());
    return;
  }
  PROXYSTORE_FUZZ_CHECK(*config == *config_odd, "address changed the config");
  absl::Status valid = config->Validate();
  PROXYSTORE_FUZZ_CHECK(valid.ok(), valid.ToString());
  const std::string wire = config->Serialize();
  absl::StatusOr<StoreConfig> again = StoreConfig::Parse(wire);
  PROXYSTORE_FUZZ_CHECK(again.ok(), again.status().ToString());
  PROXYSTORE_FUZZ_CHECK(*again == *config, "store config round trip");
  PROXYSTORE_FUZZ_CHECK(again->Serialize() == wire,
                        "StoreConfig::Serialize is not deterministic");
  (void)config->DebugString();
  CheckOptions(config->connector);
}

void TestOneInput(absl::string_view input) {
  const MisalignedCopy odd(input);
  CheckKey(input);
  CheckConnectorConfig(input, odd.view());
  CheckStoreConfig(input, odd.view());
}

}  // namespace
}  // namespace proxystore::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  proxystore::fuzz::TestOneInput(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
