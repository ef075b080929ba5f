#include "proxystore/stream/event.h"

#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace proxystore {
namespace {

constexpr absl::string_view kMetaPrefix = "m:";

std::string Shown(absl::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, 64)),
                      s.size() > 64 ? "...\"" : "\"");
}

}  // namespace

std::vector<std::pair<std::string, std::string>> StreamEntryFields(
    const StreamEvent& event) {
  std::vector<std::pair<std::string, std::string>> fields;
  fields.reserve(2 + event.metadata.size());
  const char* kind = event.kind == StreamEvent::Kind::kObject  ? "o"
                     : event.kind == StreamEvent::Kind::kProxy ? "p"
                                                               : "e";
  fields.emplace_back("k", kind);
  if (event.kind != StreamEvent::Kind::kEnd) {
    fields.emplace_back("d", event.payload);
  }
  for (const auto& [name, value] : event.metadata) {
    fields.emplace_back(absl::StrCat(kMetaPrefix, name), value);
  }
  return fields;
}

absl::StatusOr<StreamEvent> ParseStreamEntry(
    const std::vector<std::pair<std::string, std::string>>& fields,
    const StreamEventLimits& limits) {
  StreamEvent event;
  std::optional<StreamEvent::Kind> kind;
  bool has_payload = false;
  size_t metadata_bytes = 0;
  for (const auto& [name, value] : fields) {
    if (name == "k") {
      if (kind.has_value())
        return absl::DataLossError("stream event: two kinds");
      if (value == "o") {
        kind = StreamEvent::Kind::kObject;
      } else if (value == "p") {
        kind = StreamEvent::Kind::kProxy;
      } else if (value == "e") {
        kind = StreamEvent::Kind::kEnd;
      } else {
        return absl::DataLossError(
            absl::StrCat("stream event: unknown kind ", Shown(value)));
      }
    } else if (name == "d") {
      if (has_payload) return absl::DataLossError("stream event: two payloads");
      if (value.size() > limits.max_payload) {
        return absl::DataLossError(absl::StrCat(
            "stream event: payload of ", value.size(),
            " bytes is larger than this consumer accepts (", limits.max_payload,
            ": StreamEventLimits::max_payload)"));
      }
      has_payload = true;
      event.payload = value;
    } else if (name == "n") {
      // The publisher's nonce (redis_broker.h): not part of the event.
    } else if (absl::StartsWith(name, kMetaPrefix)) {
      metadata_bytes += name.size() + value.size();
      if (event.metadata.size() >= limits.max_metadata_entries ||
          metadata_bytes > limits.max_metadata_bytes) {
        return absl::DataLossError(
            absl::StrCat("stream event: metadata past this consumer's limits (",
                         limits.max_metadata_entries, " entries, ",
                         limits.max_metadata_bytes, " bytes)"));
      }
      if (!event.metadata.emplace(name.substr(kMetaPrefix.size()), value)
               .second) {
        return absl::DataLossError(
            absl::StrCat("stream event: metadata ", Shown(name), " twice"));
      }
    } else {
      return absl::DataLossError(
          absl::StrCat("stream event: unknown field ", Shown(name)));
    }
  }
  if (!kind.has_value()) return absl::DataLossError("stream event: no kind");
  event.kind = *kind;
  if (event.kind != StreamEvent::Kind::kEnd && !has_payload) {
    return absl::DataLossError("stream event: no payload");
  }
  return event;
}

}  // namespace proxystore
