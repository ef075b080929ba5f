// The FlatBuffers formats proxystore-cpp sends to other processes (wire.fbs:
// connector configs, store configs, serialized proxies) and the one helper
// that writes and the one that verifies them. docs/wire_format.md documents
// every byte format, these and the others (object envelope, signed proxy,
// keys, storage layouts).
//
// Every buffer here carries a file identifier (bytes 4..7 of the buffer,
// after the size prefix where there is one) and writes its `version`
// explicitly. A reader checks, in order: the size against the format's
// limit (before anything is copied or allocated), the size prefix, the
// identifier, flatbuffers::Verifier, then the version. Everything it then
// reads from the root is verified memory.
//
//   flatbuffers::FlatBufferBuilder fbb;
//   ... build a fb::StoreConfig with version wire::kVersion ...
//   std::string bytes = wire::Finish(fbb, root, wire::kStoreConfig);
//
//   PROXYSTORE_RETURN_IF_ERROR(wire::CheckSize(bytes, wire::kStoreConfig));
//   AlignedView aligned(bytes);
//   PROXYSTORE_ASSIGN_OR_RETURN(
//       const fb::StoreConfig* root,
//       wire::ReadRoot<fb::StoreConfig>(aligned, wire::kStoreConfig));
//
// Thread-safety: stateless functions.
#ifndef PROXYSTORE_WIRE_WIRE_H_
#define PROXYSTORE_WIRE_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "flatbuffers/flatbuffers.h"
#include "proxystore/base/bytes.h"
#include "proxystore/wire/wire_generated.h"

namespace proxystore::wire {

// The version every format of wire.fbs is written with and the only one
// read. (Version 1 was the unversioned layout without file identifiers.)
inline constexpr uint16_t kVersion = 2;

// Depth limit for configs nested in configs ("multi" children): a reader
// refuses deeper ones, so the bytes cannot make it recurse without bound.
inline constexpr int kMaxNesting = 8;

struct Format {
  // For messages: "serialized proxy", ...
  absl::string_view name;
  // The 4-byte file identifier.
  const char* identifier;
  // Whether the buffer starts with a 32-bit size prefix.
  bool size_prefixed;
  // The largest buffer a reader accepts.
  size_t max_size;
};

// A serialized proxy is at most 1 MiB. With the size prefix below 2^24, its
// first byte-quad can never read as a signed proxy's "PSG1" magic
// (store/signing.h), so the two forms cannot be mistaken for each other.
inline constexpr Format kProxy{"serialized proxy", "PSPX", true, 1 << 20};
inline constexpr Format kStoreConfig{"serialized store config", "PSSC", false,
                                     1 << 20};
inline constexpr Format kConnectorConfig{"serialized connector config", "PSCC",
                                         false, 1 << 20};

// DataLoss naming `format` if `bytes` is larger than it may be.
absl::Status CheckSize(absl::string_view bytes, const Format& format);

// Finishes `fbb` with `root` as `format` says (identifier, size prefix) and
// copies the buffer out. The root must have been given version kVersion.
template <typename Root>
std::string Finish(flatbuffers::FlatBufferBuilder& fbb,
                   flatbuffers::Offset<Root> root, const Format& format) {
  if (format.size_prefixed) {
    fbb.FinishSizePrefixed(root, format.identifier);
  } else {
    fbb.Finish(root, format.identifier);
  }
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
                     fbb.GetSize());
}

namespace wire_internal {
// Every check of ReadRoot before the FlatBuffers verifier: size, size prefix
// and identifier.
absl::Status CheckFrame(const AlignedView& bytes, const Format& format);
absl::Status NotVerified(const AlignedView& bytes, const Format& format);
absl::Status BadVersion(uint16_t version, const Format& format);
}  // namespace wire_internal

// The verified root table of `bytes`: DataLoss if the bytes are too large,
// truncated or extended (size-prefixed formats), lack the identifier or fail
// flatbuffers::Verifier; InvalidArgument for a version other than kVersion.
// The result points into `bytes`.
template <typename Root>
absl::StatusOr<const Root*> ReadRoot(const AlignedView& bytes,
                                     const Format& format) {
  absl::Status frame = wire_internal::CheckFrame(bytes, format);
  if (!frame.ok()) return frame;
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  const bool verified =
      format.size_prefixed
          ? verifier.VerifySizePrefixedBuffer<Root>(format.identifier)
          : verifier.VerifyBuffer<Root>(format.identifier);
  if (!verified) return wire_internal::NotVerified(bytes, format);
  const Root* root = format.size_prefixed
                         ? flatbuffers::GetSizePrefixedRoot<Root>(bytes.data())
                         : flatbuffers::GetRoot<Root>(bytes.data());
  if (root->version() != kVersion) {
    return wire_internal::BadVersion(root->version(), format);
  }
  return root;
}

// A verified string field as a string_view ("" if absent).
inline absl::string_view View(const flatbuffers::String* s) {
  return s == nullptr ? absl::string_view()
                      : absl::string_view(s->data(), s->size());
}

}  // namespace proxystore::wire

#endif  // PROXYSTORE_WIRE_WIRE_H_
