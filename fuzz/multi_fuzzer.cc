// Fuzz target: the text forms of the "multi" connector
// (connectors/multi/multi_connector.h), which travel inside every proxy of a
// multi-backed store: MultiKey::Decode (the input as a key id),
// Policy::Parse and MultiConnector::ParseChildConfig (the input as text).
// Invariants checked:
//  - errors are InvalidArgument;
//  - a decoded key re-encodes to exactly its input, with a name of 1 to
//    kMaxNameSize bytes and a non-empty child key;
//  - a parsed policy or child config round-trips through its Serialize,
//    which is deterministic; the child config also round-trips through
//    ConnectorConfig's FlatBuffers form;
//  - Policy::Validate (HostPattern::Compile of the host patterns) and the
//    matching functions return an answer for any parsed policy; a policy
//    with min_size_bytes > max_size_bytes never validates;
//  - the input as a host pattern: compiles or is InvalidArgument, within
//    HostPattern::kMaxProgramSize, and matching answers; the input with
//    every non-alphanumeric byte backslash-escaped matches exactly the
//    input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/multi/host_pattern.h"
#include "proxystore/connectors/multi/multi_connector.h"
#include "proxystore/fuzz/fuzz_util.h"

namespace proxystore::fuzz {
namespace {

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

void CheckPolicy(absl::string_view input) {
  absl::StatusOr<Policy> policy = Policy::Parse(input);
  if (!policy.ok()) {
    PROXYSTORE_FUZZ_CHECK(IsInvalid(policy.status()),
                          policy.status().ToString());
    return;
  }
  const std::string text = policy->Serialize();
  absl::StatusOr<Policy> again = Policy::Parse(text);
  PROXYSTORE_FUZZ_CHECK(again.ok(),
                        absl::StrCat(text, ": ", again.status().ToString()));
  PROXYSTORE_FUZZ_CHECK(*again == *policy, absl::StrCat("policy ", text));
  PROXYSTORE_FUZZ_CHECK(again->Serialize() == text,
                        "Policy::Serialize is not deterministic");
  (void)policy->DebugString();

  absl::Status valid = policy->Validate();
  PROXYSTORE_FUZZ_CHECK(valid.ok() || IsInvalid(valid), valid.ToString());
  if (policy->min_size_bytes > policy->max_size_bytes) {
    PROXYSTORE_FUZZ_CHECK(!valid.ok(), "an empty size range validated");
  }
  // Answers, whatever they are, for sizes at and around the bounds.
  const std::vector<std::string> tags = {"gpu", "large"};
  for (uint64_t size : {policy->min_size_bytes, policy->max_size_bytes,
                        uint64_t{0}, uint64_t{1024}}) {
    (void)policy->IsValidIgnoringHost(size, tags, tags);
    (void)policy->IsValidIgnoringHost(size, {}, {});
  }
  const bool on_host = policy->IsValidOnHost("node-12.cluster");
  if (policy->host_patterns.empty()) {
    PROXYSTORE_FUZZ_CHECK(on_host, "no host patterns must match any host");
  }
}

void CheckHostPattern(absl::string_view input) {
  absl::StatusOr<HostPattern> pattern = HostPattern::Compile(input);
  if (!pattern.ok()) {
    PROXYSTORE_FUZZ_CHECK(IsInvalid(pattern.status()),
                          pattern.status().ToString());
  } else {
    PROXYSTORE_FUZZ_CHECK(pattern->pattern() == input, "pattern() differs");
    PROXYSTORE_FUZZ_CHECK(
        pattern->program_size() <= HostPattern::kMaxProgramSize,
        "program over kMaxProgramSize");
    (void)pattern->FullMatch(input);
    (void)pattern->FullMatch("node-12.cluster");
  }
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

void CheckChildConfig(absl::string_view input) {
  absl::StatusOr<ConnectorConfig> config =
      MultiConnector::ParseChildConfig(input);
  if (!config.ok()) {
    PROXYSTORE_FUZZ_CHECK(IsInvalid(config.status()),
                          config.status().ToString());
    return;
  }
  PROXYSTORE_FUZZ_CHECK(!config->kind.empty(), "child config without kind");
  const std::string text = MultiConnector::SerializeChildConfig(*config);
  absl::StatusOr<ConnectorConfig> again =
      MultiConnector::ParseChildConfig(text);
  PROXYSTORE_FUZZ_CHECK(again.ok(),
                        absl::StrCat(text, ": ", again.status().ToString()));
  PROXYSTORE_FUZZ_CHECK(*again == *config, absl::StrCat("child config ", text));
  PROXYSTORE_FUZZ_CHECK(MultiConnector::SerializeChildConfig(*again) == text,
                        "SerializeChildConfig is not deterministic");
  absl::StatusOr<ConnectorConfig> binary =
      ConnectorConfig::Parse(config->Serialize());
  PROXYSTORE_FUZZ_CHECK(binary.ok() && *binary == *config,
                        absl::StrCat("FlatBuffers form of ", text, ": ",
                                     binary.status().ToString()));
}

void TestOneInput(absl::string_view input) {
  CheckMultiKey(input);
  CheckPolicy(input);
  CheckHostPattern(input);
  CheckChildConfig(input);
}

}  // namespace
}  // namespace proxystore::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  proxystore::fuzz::TestOneInput(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
