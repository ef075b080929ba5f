// Fuzz target: the serializer envelope (serializer/serializer.h).
//
// The input is taken as serialized data from a connector: InspectEnvelope
// reads its header, Deserialize<T> decodes it as each codec under test
// (std::string, SharedBytes, std::vector<uint8_t>, bool, int32_t, double, a
// POD struct, std::vector<double>, FlatBuffer<Sample>), both from an aligned
// buffer and from an odd address, and FlatBuffer<Sample>::FromBytes verifies
// the raw bytes. Invariants checked:
//  - errors are DataLoss (corrupt) or InvalidArgument (another type), the
//    same at both addresses; a header error is the same for every T;
//  - what decodes survives Serialize -> Deserialize plain, lz4-compressed and
//    (for bytes and str) in ProxyStore Python format;
//  - an uncompressed envelope of exactly T's codec and type name re-serializes
//    to the very same bytes; so does Python "BS\n"/"US\n" data;
//  - InspectEnvelope's fields describe the buffer (sizes add up).
// The lz4 block of a compressed envelope (its own claim and others at the
// bounds), or else the input as [4-byte claim][lz4 block], is also wrapped in
// a well-formed compressed envelope and decoded under a 64 KiB
// max_decompressed_size, so that arbitrary claims meet real and arbitrary
// blocks without the fuzzer having to forge a whole header:
//  - every error is DataLoss (a claim above the limit names the limit);
//  - what decodes has exactly the claimed size, within the limit, and is
//    what lz4 makes of the block;
//  - internal::CheckLz4Block accepts whatever lz4 decodes to the claim.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proxystore/base/bytes.h"
#include "proxystore/fuzz/fuzz_util.h"
#include "proxystore/serializer/serializer.h"

namespace proxystore::fuzz {
namespace {

using Format = SerializeOptions::Format;

template <typename T>
bool Same(const T& a, const T& b) {
  if constexpr (std::is_same_v<T, SharedBytes>) {
    return a.view() == b.view();
  } else if constexpr (std::is_same_v<T, SampleBuffer>) {
    return a.bytes().view() == b.bytes().view();
  } else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, Pod>) {
    // Bitwise: NaN payloads and -0.0 must survive too.
    return std::memcmp(&a, &b, sizeof(T)) == 0;
  } else if constexpr (std::is_same_v<T, std::vector<double>>) {
    return a.size() == b.size() &&
           (a.empty() ||
            std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
  } else {
    return a == b;
  }
}

template <typename T>
void Touch(const T& value) {
  if constexpr (std::is_same_v<T, SampleBuffer>) {
    volatile uint64_t sink = TouchSample(value.root());
    (void)sink;
  } else {
    (void)value;
  }
}

// The codes Deserialize may return for bad input (ResourceExhausted: an
// allocation the data asked for failed).
bool IsDecodeError(const absl::Status& s) {
  return HasCode(
      s, {absl::StatusCode::kDataLoss, absl::StatusCode::kInvalidArgument,
          absl::StatusCode::kResourceExhausted});
}

void CheckInfo(const absl::StatusOr<EnvelopeInfo>& info, size_t size) {
  if (!info.ok()) {
    PROXYSTORE_FUZZ_CHECK(HasCode(info.status(), {absl::StatusCode::kDataLoss}),
                          info.status().ToString());
    return;
  }
  const std::string detail =
      absl::StrCat("header ", info->header_size, " stored ", info->stored_size,
                   " payload ", info->payload_size, " size ", size);
  PROXYSTORE_FUZZ_CHECK(info->header_size + info->stored_size == size, detail);
  if (info->format == Format::kProxyStorePython) {
    PROXYSTORE_FUZZ_CHECK(info->version == 0 && info->header_size == 3 &&
                              !info->compressed && info->codec.size() == 2 &&
                              info->stored_size == info->payload_size,
                          detail);
    return;
  }
  PROXYSTORE_FUZZ_CHECK(info->version == 1 && info->header_size % 16 == 0 &&
                            info->header_size >= 32 && !info->codec.empty(),
                        detail);
  if (info->compressed) {
    PROXYSTORE_FUZZ_CHECK(
        info->stored_size < info->payload_size &&
            info->payload_size <= kMaxLz4Input &&
            info->payload_size <= 255 * info->stored_size + 16,
        detail);
  } else {
    PROXYSTORE_FUZZ_CHECK(info->stored_size == info->payload_size, detail);
  }
}

template <typename T>
void CheckReserialized(const T& value, const SerializeOptions& options,
                       const char* how) {
  absl::StatusOr<SharedBytes> wire = Serialize(value, options);
  PROXYSTORE_FUZZ_CHECK(wire.ok(),
                        absl::StrCat(how, " Serialize<", TypeName<T>(),
                                     ">: ", wire.status().ToString()));
  absl::StatusOr<T> back = Deserialize<T>(*wire);
  PROXYSTORE_FUZZ_CHECK(
      back.ok(), absl::StrCat(how, " round trip of ", TypeName<T>(), ": ",
                              back.status().ToString()));
  PROXYSTORE_FUZZ_CHECK(Same(value, *back),
                        absl::StrCat(how, " round trip of ", TypeName<T>(),
                                     " changed the value"));
}

template <typename T>
void CheckType(const SharedBytes& in, const SharedBytes& odd,
               const absl::StatusOr<EnvelopeInfo>& info) {
  absl::StatusOr<T> got = Deserialize<T>(in);
  absl::StatusOr<T> got_odd = Deserialize<T>(odd);
  const std::string type(TypeName<T>());
  PROXYSTORE_FUZZ_CHECK(
      got.ok() == got_odd.ok(),
      absl::StrCat(type, ": aligned ", got.status().ToString(), " vs odd ",
                   got_odd.status().ToString()));
  if (!info.ok()) {
    // A bad header is the same error whatever T is.
    PROXYSTORE_FUZZ_CHECK(!got.ok() && got.status() == info.status(),
                          absl::StrCat(type, ": ", got.status().ToString()));
  }
  if (!got.ok()) {
    PROXYSTORE_FUZZ_CHECK(IsDecodeError(got.status()),
                          absl::StrCat(type, ": ", got.status().ToString()));
    PROXYSTORE_FUZZ_CHECK(got.status().code() == got_odd.status().code(),
                          absl::StrCat(type, ": ", got.status().ToString(),
                                       " vs ", got_odd.status().ToString()));
    return;
  }
  PROXYSTORE_FUZZ_CHECK(info.ok(), type);
  PROXYSTORE_FUZZ_CHECK(Same(*got, *got_odd),
                        absl::StrCat(type, ": the address changed the value"));
  Touch(*got);

  // Plain: an uncompressed envelope of exactly this codec and type name is
  // canonical (every header field and the padding are checked on read).
  absl::StatusOr<SharedBytes> plain = Serialize(*got);
  PROXYSTORE_FUZZ_CHECK(plain.ok(), plain.status().ToString());
  if (info->format == Format::kNative && !info->compressed &&
      info->codec == Codec<T>::kName && info->type_name == TypeName<T>()) {
    PROXYSTORE_FUZZ_CHECK(plain->view() == in.view(),
                          absl::StrCat(type, ": re-serialized bytes differ"));
  }
  CheckReserialized(*got, SerializeOptions{}, "plain");
  SerializeOptions lz4;
  lz4.compress = true;
  lz4.compress_threshold = 1;
  CheckReserialized(*got, lz4, "lz4");

  if constexpr (internal::PythonTypeOf<T>() != PythonType::kNone) {
    SerializeOptions python;
    python.format = Format::kProxyStorePython;
    absl::StatusOr<SharedBytes> py = Serialize(*got, python);
    if (!py.ok()) {
      // Only a std::string that is not UTF-8 cannot be a Python str.
      PROXYSTORE_FUZZ_CHECK(
          internal::PythonTypeOf<T>() == PythonType::kStr &&
              py.status().code() == absl::StatusCode::kInvalidArgument,
          py.status().ToString());
    } else {
      CheckReserialized(*got, python, "python");
      const absl::string_view id =
          internal::PythonTypeOf<T>() == PythonType::kStr ? "US" : "BS";
      if (info->format == Format::kProxyStorePython && info->codec == id) {
        PROXYSTORE_FUZZ_CHECK(
            py->view() == in.view(),
            absl::StrCat(type, ": re-serialized Python data differs"));
      }
    }
  }
}

void CheckFromBytes(const SharedBytes& in, const SharedBytes& odd) {
  absl::StatusOr<SampleBuffer> fb = SampleBuffer::FromBytes(in);
  absl::StatusOr<SampleBuffer> fb_odd = SampleBuffer::FromBytes(odd);
  PROXYSTORE_FUZZ_CHECK(
      fb.ok() == fb_odd.ok(),
      absl::StrCat(fb.status().ToString(), " vs ", fb_odd.status().ToString()));
  if (!fb.ok()) {
    PROXYSTORE_FUZZ_CHECK(HasCode(fb.status(), {absl::StatusCode::kDataLoss}),
                          fb.status().ToString());
    return;
  }
  PROXYSTORE_FUZZ_CHECK(
      fb->bytes().view() == in.view() && fb_odd->bytes().view() == in.view(),
      "FromBytes changed the bytes");
  PROXYSTORE_FUZZ_CHECK(
      reinterpret_cast<uintptr_t>(fb_odd->bytes().data()) % 8 == 0,
      "FromBytes of misaligned bytes is not aligned");
  Touch(*fb_odd);
}

constexpr uint64_t kFuzzLimit = 64 << 10;

template <typename T>
SharedBytes CompressedEnvelope(absl::string_view block, uint64_t claim) {
  const size_t header =
      *internal::EnvelopeHeaderSize(Codec<T>::kName, TypeName<T>());
  std::string out(header + block.size(), '\0');
  internal::WriteEnvelopeHeader(out.data(), header, Codec<T>::kName,
                                TypeName<T>(), /*compressed=*/true,
                                block.size(), claim);
  if (!block.empty()) {
    std::memcpy(out.data() + header, block.data(), block.size());
  }
  return SharedBytes::FromString(std::move(out));
}

template <typename T>
size_t DecodedSize(const T& value) {
  if constexpr (std::is_same_v<T, SampleBuffer>) {
    return value.bytes().size();
  } else if constexpr (std::is_same_v<T, std::vector<double>>) {
    return value.size() * sizeof(double);
  } else {
    return value.size();
  }
}

// `decoded`: what lz4 makes of the block at exactly the claim, if anything.
template <typename T>
void CheckClaim(absl::string_view block, uint64_t claim,
                const std::optional<std::string>& decoded) {
  DeserializeOptions options;
  options.max_decompressed_size = kFuzzLimit;
  absl::StatusOr<T> got =
      Deserialize<T>(CompressedEnvelope<T>(block, claim), options);
  const std::string what =
      absl::StrCat(TypeName<T>(), " claiming ", claim, " from ", block.size(),
                   ": ", got.status().ToString());
  if (!got.ok()) {
    PROXYSTORE_FUZZ_CHECK(HasCode(got.status(), {absl::StatusCode::kDataLoss}),
                          what);
    if (claim > kFuzzLimit && claim > block.size() &&
        claim <= 255 * block.size() + 16 && claim <= kMaxLz4Input) {
      PROXYSTORE_FUZZ_CHECK(
          absl::StrContains(got.status().message(), "max_decompressed_size"),
          what);
    }
    return;
  }
  PROXYSTORE_FUZZ_CHECK(
      claim <= kFuzzLimit && decoded.has_value() && DecodedSize(*got) == claim,
      what);
  if constexpr (std::is_same_v<T, std::string>) {
    PROXYSTORE_FUZZ_CHECK(*got == *decoded, what);
  } else if constexpr (std::is_same_v<T, SharedBytes>) {
    PROXYSTORE_FUZZ_CHECK(got->view() == *decoded, what);
  }
  Touch(*got);
}

void CheckClaims(absl::string_view block, uint64_t claim) {
  std::optional<std::string> decoded;
  if (claim <= kFuzzLimit) {
    std::string out(claim, '\0');
    if (internal::DecompressTo(block, out.data(), claim).ok()) {
      decoded = std::move(out);
      const absl::Status walk = internal::CheckLz4Block(block, claim);
      PROXYSTORE_FUZZ_CHECK(walk.ok(), walk.ToString());
    }
  }
  // One of each decode path: DecodeFilled, a zero-copy slice of our own
  // buffer, a size check, a verifier.
  CheckClaim<std::string>(block, claim, decoded);
  CheckClaim<SharedBytes>(block, claim, decoded);
  CheckClaim<std::vector<double>>(block, claim, decoded);
  CheckClaim<SampleBuffer>(block, claim, decoded);
}

// A compressed envelope's block with its own claim (the header's bit flips
// vary it), the smallest claim the walk checks and one above the limit; any
// other input as [4-byte little-endian claim][block].
void CheckCompressedClaims(absl::string_view input,
                           const absl::StatusOr<EnvelopeInfo>& info) {
  if (info.ok() && info->compressed) {
    const absl::string_view block = input.substr(info->header_size);
    const uint64_t s = block.size();
    const uint64_t p = info->payload_size;
    for (uint64_t claim : {p, 4 * s + 1, kFuzzLimit + 1}) {
      CheckClaims(block, claim);
    }
    return;
  }
  if (input.size() < 4) return;
  uint64_t claim = 0;
  for (int i = 3; i >= 0; --i) {
    claim = (claim << 8) | static_cast<uint8_t>(input[i]);
  }
  CheckClaims(input.substr(4), claim);
}

void TestOneInput(absl::string_view input) {
  // No owner: the decoded values do not outlive this call.
  const SharedBytes in = SharedBytes::FromOwner(nullptr, input);
  const MisalignedCopy copy(input);
  const SharedBytes odd = copy.bytes();

  const absl::StatusOr<EnvelopeInfo> info = InspectEnvelope(in);
  CheckInfo(info, input.size());
  const absl::StatusOr<EnvelopeInfo> info_odd = InspectEnvelope(odd);
  PROXYSTORE_FUZZ_CHECK(info.status() == info_odd.status(),
                        info_odd.status().ToString());

  CheckType<std::string>(in, odd, info);
  CheckType<SharedBytes>(in, odd, info);
  CheckType<std::vector<uint8_t>>(in, odd, info);
  CheckType<bool>(in, odd, info);
  CheckType<int32_t>(in, odd, info);
  CheckType<double>(in, odd, info);
  CheckType<Pod>(in, odd, info);
  CheckType<std::vector<double>>(in, odd, info);
  CheckType<SampleBuffer>(in, odd, info);
  CheckFromBytes(in, odd);
  CheckCompressedClaims(input, info);
}

}  // namespace
}  // namespace proxystore::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  proxystore::fuzz::TestOneInput(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
