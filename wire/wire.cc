#include "proxystore/wire/wire.h"

#include "absl/strings/str_cat.h"

namespace proxystore::wire {

absl::Status CheckSize(absl::string_view bytes, const Format& format) {
  if (bytes.size() > format.max_size) {
    return absl::DataLossError(
        absl::StrCat(bytes.size(), " bytes are too large for a ", format.name,
                     " (at most ", format.max_size, ")"));
  }
  return absl::OkStatus();
}

namespace wire_internal {

absl::Status CheckFrame(const AlignedView& bytes, const Format& format) {
  absl::Status size = CheckSize(bytes.view(), format);
  if (!size.ok()) return size;
  const size_t prefix =
      format.size_prefixed ? sizeof(flatbuffers::uoffset_t) : 0;
  // Root offset and identifier, after the prefix.
  const size_t header = prefix + sizeof(flatbuffers::uoffset_t) +
                        flatbuffers::kFileIdentifierLength;
  if (format.size_prefixed &&
      (bytes.size() < prefix ||
       flatbuffers::GetPrefixedSize(bytes.data()) != bytes.size() - prefix)) {
    return absl::DataLossError(absl::StrCat(bytes.size(), " bytes are not a ",
                                            format.name,
                                            " (truncated or extended)"));
  }
  if (bytes.size() < header) {
    return absl::DataLossError(
        absl::StrCat(bytes.size(), " bytes are too short for a ", format.name));
  }
  if (!flatbuffers::BufferHasIdentifier(bytes.data(), format.identifier,
                                        format.size_prefixed)) {
    return absl::DataLossError(absl::StrCat(
        bytes.size(), " bytes are not a ", format.name, ": no \"",
        format.identifier,
        "\" identifier (other data, or an older unversioned layout)"));
  }
  return absl::OkStatus();
}

absl::Status NotVerified(const AlignedView& bytes, const Format& format) {
  return absl::DataLossError(
      absl::StrCat(bytes.size(), " bytes are not a ", format.name,
                   " (FlatBuffers verification failed)"));
}

absl::Status BadVersion(uint16_t version, const Format& format) {
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported ", format.name, " version ", version,
                   " (this build reads version ", kVersion, ")"));
}

}  // namespace wire_internal
}  // namespace proxystore::wire
