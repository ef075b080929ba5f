// Fuzz target: what the "multi" connector (connectors/multi/
// multi_connector.h) reads from outside, inside every proxy of a
// multi-backed store: MultiKey::Decode (the input as a key id), host
// patterns (the input as one pattern of a Policy) and multi configs (the
// input as a ConnectorConfig wire form, its children made local).
// Invariants checked:
//  - a decoded key re-encodes to exactly its input, with a name of 1 to
//    kMaxNameSize bytes and a non-empty child key; other keys are
//    InvalidArgument;
//  - the input as a host pattern: compiles or is InvalidArgument, within
//    HostPattern::kMaxProgramSize, and matching answers; the input with
//    every non-alphanumeric byte backslash-escaped matches exactly the
//    input. A Policy with the input as its host pattern validates exactly
//    when the pattern compiles, and matches a host exactly when the
//    compiled pattern does;
//  - ConnectorConfig::Parse of the input is OK or InvalidArgument/DataLoss,
//    and a parsed config round-trips through Serialize, which is
//    deterministic;
//  - MultiConnector::FromConfig of a parsed "multi" config whose children
//    are all replaced by "local" ones (names and policies kept) is OK or
//    InvalidArgument; a connector it makes lists the same names and
//    policies in Config(), which round-trips through the wire form.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/host_pattern.h"
#include "proxystore/connectors/multi/multi_connector.h"
#include "proxystore/connectors/policy.h"
#include "proxystore/fuzz/fuzz_util.h"

namespace proxystore::fuzz {
namespace {

constexpr absl::string_view kHost = "node-12.cluster";

bool IsInvalid(const absl::Status& s) {
  return HasCode(s, {absl::StatusCode::kInvalidArgument});
}

void CheckMultiKey(absl::string_view input) {
  const Key key{std::string(input)};
  absl::StatusOr<MultiKey> decoded = MultiKey::Decode(key);
  if (!decoded.ok()) {
    PROXYSTORE_FUZZ_CHECK(IsInvalid(decoded.status()),
                          decoded.status().ToString());
    return;
  }
  PROXYSTORE_FUZZ_CHECK(
      !decoded->connector_name.empty() &&
          decoded->connector_name.size() <= MultiKey::kMaxNameSize &&
          !decoded->connector_key.empty(),
      "decoded multi key has a bad part");
  PROXYSTORE_FUZZ_CHECK(decoded->Encode() == key, "multi key re-encoding");
  absl::StatusOr<MultiKey> again = MultiKey::Decode(decoded->Encode());
  PROXYSTORE_FUZZ_CHECK(again.ok() && *again == *decoded, "multi key again");
}

void CheckHostPattern(absl::string_view input) {
  absl::StatusOr<HostPattern> pattern = HostPattern::Compile(input);
  Policy policy;
  policy.host_patterns = {std::string(input)};
  const absl::Status valid = policy.Validate();
  const bool on_host = policy.IsValidOnHost(kHost);
  if (!pattern.ok()) {
    PROXYSTORE_FUZZ_CHECK(IsInvalid(pattern.status()),
                          pattern.status().ToString());
    PROXYSTORE_FUZZ_CHECK(IsInvalid(valid),
                          "a policy with a bad pattern validated");
    PROXYSTORE_FUZZ_CHECK(!on_host, "a bad pattern matched");
  } else {
    PROXYSTORE_FUZZ_CHECK(pattern->pattern() == input, "pattern() differs");
    PROXYSTORE_FUZZ_CHECK(
        pattern->program_size() <= HostPattern::kMaxProgramSize,
        "program over kMaxProgramSize");
    (void)pattern->FullMatch(input);
    PROXYSTORE_FUZZ_CHECK(valid.ok(), valid.ToString());
    PROXYSTORE_FUZZ_CHECK(on_host == pattern->FullMatch(kHost),
                          "Policy::IsValidOnHost differs from FullMatch");
  }
  (void)policy.DebugString();
  // An empty size range never validates, whatever the pattern.
  policy.min_size_bytes = 2;
  policy.max_size_bytes = 1;
  PROXYSTORE_FUZZ_CHECK(!policy.Validate().ok(),
                        "an empty size range validated");

  // A literal pattern for the input matches it and nothing longer.
  std::string literal;
  for (char c : input) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) literal += '\\';
    literal += c;
  }
  if (input.find('\0') != absl::string_view::npos ||
      literal.size() > HostPattern::kMaxPatternSize) {
    return;
  }
  absl::StatusOr<HostPattern> exact = HostPattern::Compile(literal);
  PROXYSTORE_FUZZ_CHECK(exact.ok(), exact.status().ToString());
  PROXYSTORE_FUZZ_CHECK(exact->FullMatch(input), "escaped input must match");
  PROXYSTORE_FUZZ_CHECK(!exact->FullMatch(absl::StrCat(input, "x")),
                        "escaped input must match only the input");
}

// FromConfig of `config` (kind "multi") with every child made a plain
// "local": what a multi config from outside makes this process do, short of
// the children's own kinds (each has its own fuzzing).
void CheckMultiConfig(const ConnectorConfig& parsed) {
  ConnectorConfig config = parsed;
  for (ConnectorChild& child : config.children) {
    child.config = ConnectorConfig{"local", {}, {}};
  }
  absl::StatusOr<std::unique_ptr<Connector>> made =
      MultiConnector::FromConfig(config);
  if (!made.ok()) {
    PROXYSTORE_FUZZ_CHECK(IsInvalid(made.status()), made.status().ToString());
    return;
  }
  const ConnectorConfig out = (*made)->Config();
  PROXYSTORE_FUZZ_CHECK(out.kind == "multi" && out.options.empty(),
                        out.DebugString());
  PROXYSTORE_FUZZ_CHECK(out.children.size() == config.children.size(),
                        "Config() lost or added children");
  for (size_t i = 0; i < out.children.size(); ++i) {
    PROXYSTORE_FUZZ_CHECK(
        out.children[i].name == config.children[i].name &&
            out.children[i].policy == config.children[i].policy,
        absl::StrCat("child ", i, " changed in Config()"));
  }
  absl::StatusOr<ConnectorConfig> again =
      ConnectorConfig::Parse(out.Serialize());
  PROXYSTORE_FUZZ_CHECK(
      again.ok() && *again == out,
      absl::StrCat("multi Config() wire form: ", again.status().ToString()));
  absl::Status closed = (*made)->Close();
  PROXYSTORE_FUZZ_CHECK(closed.ok(), closed.ToString());
}

void CheckConfig(absl::string_view input) {
  absl::StatusOr<ConnectorConfig> config = ConnectorConfig::Parse(input);
  if (!config.ok()) {
    PROXYSTORE_FUZZ_CHECK(
        HasCode(config.status(), {absl::StatusCode::kInvalidArgument,
                                  absl::StatusCode::kDataLoss}),
        config.status().ToString());
    return;
  }
  const std::string bytes = config->Serialize();
  absl::StatusOr<ConnectorConfig> again = ConnectorConfig::Parse(bytes);
  PROXYSTORE_FUZZ_CHECK(again.ok(), again.status().ToString());
  PROXYSTORE_FUZZ_CHECK(*again == *config,
                        absl::StrCat("config ", config->DebugString()));
  PROXYSTORE_FUZZ_CHECK(again->Serialize() == bytes,
                        "ConnectorConfig::Serialize is not deterministic");
  if (connector_internal::NormalizeKind(config->kind) == "multi") {
    CheckMultiConfig(*config);
  }
}

void TestOneInput(absl::string_view input) {
  CheckMultiKey(input);
  CheckHostPattern(input);
  CheckConfig(input);
}

}  // namespace
}  // namespace proxystore::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  proxystore::fuzz::TestOneInput(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
