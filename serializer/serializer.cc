#include "proxystore/serializer/serializer.h"

#include <lz4.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace proxystore {
namespace internal {
namespace {

static_assert(kMaxLz4Input == LZ4_MAX_INPUT_SIZE);

constexpr const char (&kMagic)[4] = kEnvelopeMagic;
constexpr uint8_t kVersion = kEnvelopeVersion;
constexpr uint8_t kFlagCompressed = 0x01;
constexpr size_t kMaxHeaderSize = 0xFFFF - (kPayloadAlignment - 1);
// An lz4 block expands at most ~255x (a match length byte of 0xFF adds 255
// output bytes); the slack covers the fixed tail of a block.
constexpr uint64_t kLz4MaxRatio = 255;
constexpr uint64_t kLz4RatioSlack = 16;
// Realloc an over-sized output buffer when at least this much is unused.
constexpr size_t kShrinkSlack = 4096;

void Store16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v & 0xFF);
  p[1] = static_cast<char>(v >> 8);
}
void Store32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
void Store64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
// Little-endian loads (one instruction each on little-endian machines).
template <typename U>
U LoadLittle(const char* p) {
  U v;
  std::memcpy(&v, p, sizeof(v));
  if constexpr (std::endian::native == std::endian::big) {
    U r = 0;
    for (size_t i = 0; i < sizeof(U); ++i) {
      r = static_cast<U>((r << 8) | ((v >> (8 * i)) & 0xFF));
    }
    v = r;
  }
  return v;
}

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

struct PythonId {
  absl::string_view id;
  absl::string_view kind;
  PythonType type;
};

// ProxyStore's serializer identifiers: current (v0.7 and later) and v0.6.
constexpr PythonId kPythonIds[] = {
    {"BS", "bytes", PythonType::kBytes},
    {"US", "str", PythonType::kStr},
    {"01", "bytes", PythonType::kBytes},
    {"02", "str", PythonType::kStr},
    {"PK", "pickle", PythonType::kNone},
    {"CP", "cloudpickle", PythonType::kNone},
    {"03", "pickle", PythonType::kNone},
    {"04", "cloudpickle", PythonType::kNone},
    {"NP", "numpy.ndarray", PythonType::kNone},
    {"PD", "pandas.DataFrame", PythonType::kNone},
    {"PL", "polars.DataFrame", PythonType::kNone},
};

const PythonId* FindPythonId(absl::string_view data) {
  if (data.size() < kPythonIdSize || data[2] != '\n') return nullptr;
  for (const PythonId& id : kPythonIds) {
    if (data.substr(0, 2) == id.id) return &id;
  }
  return nullptr;
}

absl::Status HeaderPastPrefix(size_t prefix_size) {
  return absl::OutOfRangeError(absl::StrCat(
      "the envelope header is longer than the ", prefix_size, " bytes given"));
}

std::string Quote(absl::string_view s) {
  return absl::StrCat("'", absl::CHexEscape(s), "'");
}

constinit std::atomic<uint64_t> default_max_decompressed_size{
    kDefaultMaxDecompressedSize};

// Up to this many times its compressed size, a claimed decoded size is
// allocated without walking the lz4 block first: walking costs about half a
// decompression when sequences are short (ordinary data compresses 2-4x),
// and a false claim then costs at most this many times the bytes already
// read. Above it, where decompression bombs live (lz4 reaches 255x) and
// sequences are long, the walk is cheap.
constexpr uint64_t kUnwalkedRatio = 4;

bool ReadLengthBytes(const unsigned char*& p, const unsigned char* end,
                     uint64_t& length) {
  // A length field of 15 continues in bytes of 255 until a smaller one.
  unsigned char b;
  do {
    if (p == end) return false;
    b = *p++;
    length += b;
  } while (b == 255);
  return true;
}

}  // namespace

absl::Status CheckLz4Block(absl::string_view block, uint64_t claim) {
  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(
        "corrupt lz4 payload of ", block.size(), " bytes claiming ", claim,
        " decoded bytes: ", what, "; refusing to allocate"));
  };
  const auto* p = reinterpret_cast<const unsigned char*>(block.data());
  const unsigned char* const end = p + block.size();
  uint64_t size = 0;  // decoded so far
  while (true) {
    if (p == end) return corrupt("it ends where a sequence should start");
    const unsigned token = *p++;
    uint64_t literals = token >> 4;
    if (literals == 15 && !ReadLengthBytes(p, end, literals)) {
      return corrupt("it ends inside a literal length");
    }
    if (literals > static_cast<uint64_t>(end - p)) {
      return corrupt("a literal run goes past its end");
    }
    p += literals;
    size += literals;
    if (p == end) break;  // the last sequence has literals only
    if (end - p < 2) return corrupt("it ends inside a match offset");
    const uint64_t offset = p[0] | (uint64_t{p[1]} << 8);
    p += 2;
    if (offset > size) {
      return corrupt("a match refers to bytes before the start");
    }
    uint64_t match = token & 15;
    if (match == 15 && !ReadLengthBytes(p, end, match)) {
      return corrupt("it ends inside a match length");
    }
    size += match + 4;  // the shortest match is 4 bytes
    if (size > claim) return corrupt("it decodes to more than that");
  }
  if (size != claim) return corrupt(absl::StrCat("it decodes to ", size));
  return absl::OkStatus();
}

absl::Status CheckDecompressedSize(absl::string_view block, uint64_t claim,
                                   const DeserializeOptions& options) {
  const uint64_t limit = options.max_decompressed_size.value_or(
      default_max_decompressed_size.load(std::memory_order_relaxed));
  if (claim > limit) {
    return absl::DataLossError(absl::StrCat(
        "lz4 payload of ", block.size(), " bytes claims to decompress to ",
        claim, " bytes, more than this process accepts (", limit,
        " bytes: DeserializeOptions::max_decompressed_size, "
        "SetDefaultMaxDecompressedSize); refusing to allocate"));
  }
  if (claim <= kUnwalkedRatio * block.size()) return absl::OkStatus();
  return CheckLz4Block(block, claim);
}

absl::StatusOr<OutputBuffer> OutputBuffer::Allocate(size_t capacity) {
  if (capacity <= kSharedBlockMax) {
    return OutputBuffer(
        std::make_shared_for_overwrite<Block[]>(BlocksFor(capacity)), capacity);
  }
  char* p = static_cast<char*>(std::malloc(capacity));
  if (p == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", capacity, " bytes"));
  }
  return OutputBuffer(std::unique_ptr<char, Free>(p), capacity);
}

SharedBytes OutputBuffer::Finish(size_t size) && {
  const bool shrink = capacity_ - size >= kShrinkSlack;
  if (small_ != nullptr) {
    if (shrink) {
      absl::StatusOr<OutputBuffer> exact = Allocate(size);
      if (exact.ok()) {
        std::memcpy(exact->data(), data_, size);
        return std::move(*exact).Finish(size);
      }
    }
    const absl::string_view view(data_, size);
    return SharedBytes::FromOwner(std::move(small_), view);
  }
  if (shrink) {
    // Shrinking realloc stays in place with glibc (no copy); if it ever
    // fails, keep the bigger buffer.
    char* p = static_cast<char*>(
        std::realloc(large_.get(), std::max<size_t>(size, 1)));
    if (p != nullptr) {
      (void)large_.release();
      large_.reset(p);
      data_ = p;
      capacity_ = size;
    }
  }
  const absl::string_view view(data_, size);
  std::shared_ptr<const void> owner(std::move(large_));
  return SharedBytes::FromOwner(std::move(owner), view);
}

absl::StatusOr<ParsedData> ParseData(absl::string_view data) {
  return ParseHeader(data, data.size());
}

absl::StatusOr<ParsedData> ParseHeader(absl::string_view data,
                                       uint64_t total_size) {
  if (data.size() > total_size) {
    return absl::InternalError("ParseHeader: prefix longer than the data");
  }
  if (total_size == 0) {
    return absl::DataLossError("cannot deserialize an empty buffer");
  }
  ParsedData parsed;
  // The native magic first: it is what the get path reads nearly always.
  const bool native = data.size() >= sizeof(kMagic) &&
                      std::memcmp(data.data(), kMagic, sizeof(kMagic)) == 0;
  if (const PythonId* id = native ? nullptr : FindPythonId(data)) {
    parsed.format = SerializeOptions::Format::kProxyStorePython;
    parsed.python_id = id->id;
    parsed.python_kind = id->kind;
    parsed.python_type = id->type;
    parsed.header_size = kPythonIdSize;
    parsed.stored_size = parsed.payload_size = total_size - kPythonIdSize;
    return parsed;
  }
  // Shorter than the magic but its start: a truncated envelope (below).
  const bool magic_start =
      data.size() < sizeof(kMagic) &&
      data == absl::string_view(kMagic, sizeof(kMagic)).substr(0, data.size());
  if (!native && !magic_start) {
    return absl::DataLossError(absl::StrCat(
        "not serialized data: starts with ", Quote(data.substr(0, 4)),
        ", neither the proxystore-cpp envelope magic '\\x89PSC' nor a "
        "ProxyStore Python identifier such as 'BS\\n'"));
  }
  if (total_size < kFixedHeaderSize) {
    return absl::DataLossError(absl::StrCat(
        "truncated envelope: ", total_size,
        " bytes, the fixed header alone needs ", kFixedHeaderSize));
  }
  if (data.size() < kFixedHeaderSize) return HeaderPastPrefix(data.size());
  const char* p = data.data();
  const auto version = static_cast<uint8_t>(p[4]);
  if (version != kVersion) {
    return absl::DataLossError(
        absl::StrCat("unsupported envelope version ", version,
                     " (this build reads version ", kVersion, ")"));
  }
  const auto flags = static_cast<uint8_t>(p[5]);
  if ((flags & ~kFlagCompressed) != 0) {
    return absl::DataLossError(
        absl::StrCat("unknown envelope flags 0x", absl::Hex(flags)));
  }
  const size_t header_size = LoadLittle<uint16_t>(p + 6);
  const size_t codec_size = LoadLittle<uint16_t>(p + 8);
  const size_t type_size = LoadLittle<uint16_t>(p + 10);
  const uint64_t reserved = LoadLittle<uint32_t>(p + 12);
  const uint64_t stored_size = LoadLittle<uint64_t>(p + 16);
  const uint64_t payload_size = LoadLittle<uint64_t>(p + 24);
  if (reserved != 0) {
    return absl::DataLossError(
        absl::StrCat("corrupt envelope: reserved field is ", reserved));
  }
  if (codec_size == 0) {
    return absl::DataLossError("corrupt envelope: empty codec name");
  }
  const size_t expected_header =
      RoundUp(kFixedHeaderSize + codec_size + type_size, kPayloadAlignment);
  if (header_size != expected_header) {
    return absl::DataLossError(
        absl::StrCat("corrupt envelope: header size field is ", header_size,
                     " but names of ", codec_size, " + ", type_size,
                     " bytes need ", expected_header));
  }
  if (total_size < header_size) {
    return absl::DataLossError(absl::StrCat("truncated envelope: ", total_size,
                                            " bytes, the header needs ",
                                            header_size));
  }
  if (data.size() < header_size) return HeaderPastPrefix(data.size());
  const size_t names_end = kFixedHeaderSize + codec_size + type_size;
  // The padding is shorter than the alignment (header_size was checked
  // against RoundUp above): one compare with zeros.
  static constexpr char kZeros[kPayloadAlignment] = {};
  if (std::memcmp(p + names_end, kZeros, header_size - names_end) != 0) {
    size_t i = names_end;
    while (p[i] == 0) ++i;
    return absl::DataLossError(absl::StrCat(
        "corrupt envelope: non-zero header padding at offset ", i));
  }
  const uint64_t available = total_size - header_size;
  if (stored_size != available) {
    return absl::DataLossError(
        absl::StrCat(stored_size > available ? "truncated" : "corrupt",
                     " envelope: the payload length field says ", stored_size,
                     " bytes but ", available, " follow the header"));
  }
  const bool compressed = (flags & kFlagCompressed) != 0;
  if (!compressed) {
    if (payload_size != stored_size) {
      return absl::DataLossError(absl::StrCat(
          "corrupt envelope: uncompressed payload of ", stored_size,
          " bytes claims a decoded size of ", payload_size));
    }
  } else {
    if (payload_size <= stored_size) {
      return absl::DataLossError(
          absl::StrCat("corrupt envelope: compressed payload of ", stored_size,
                       " bytes claims a decoded size of only ", payload_size));
    }
    const uint64_t ratio_limit =
        stored_size > (std::numeric_limits<uint64_t>::max() - kLz4RatioSlack) /
                          kLz4MaxRatio
            ? std::numeric_limits<uint64_t>::max()
            : stored_size * kLz4MaxRatio + kLz4RatioSlack;
    if (payload_size > kMaxLz4Input || payload_size > ratio_limit) {
      return absl::DataLossError(
          absl::StrCat("corrupt envelope: lz4 payload of ", stored_size,
                       " bytes claims to decompress to ", payload_size,
                       " bytes, more than lz4 can produce (limit ",
                       std::min<uint64_t>(kMaxLz4Input, ratio_limit),
                       "); refusing to allocate"));
    }
  }
  parsed.codec = data.substr(kFixedHeaderSize, codec_size);
  parsed.type_name = data.substr(kFixedHeaderSize + codec_size, type_size);
  parsed.compressed = compressed;
  parsed.header_size = header_size;
  parsed.stored_size = stored_size;
  parsed.payload_size = payload_size;
  return parsed;
}

absl::StatusOr<size_t> EnvelopeHeaderSize(absl::string_view codec,
                                          absl::string_view type_name) {
  if (codec.empty()) {
    return absl::InvalidArgumentError("codec name must not be empty");
  }
  const size_t size = RoundUp(
      kFixedHeaderSize + codec.size() + type_name.size(), kPayloadAlignment);
  if (codec.size() > 0xFFFF || type_name.size() > 0xFFFF ||
      size > kMaxHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "codec name (", codec.size(), " bytes) and type name (",
        type_name.size(), " bytes) do not fit in an envelope header"));
  }
  return size;
}

void WriteEnvelopeHeader(char* dst, size_t header_size, absl::string_view codec,
                         absl::string_view type_name, bool compressed,
                         uint64_t stored_size, uint64_t payload_size) {
  std::memcpy(dst, kMagic, sizeof(kMagic));
  dst[4] = static_cast<char>(kVersion);
  dst[5] = static_cast<char>(compressed ? kFlagCompressed : 0);
  Store16(dst + 6, static_cast<uint16_t>(header_size));
  Store16(dst + 8, static_cast<uint16_t>(codec.size()));
  Store16(dst + 10, static_cast<uint16_t>(type_name.size()));
  Store32(dst + 12, 0);
  Store64(dst + 16, stored_size);
  Store64(dst + 24, payload_size);
  std::memcpy(dst + kFixedHeaderSize, codec.data(), codec.size());
  if (!type_name.empty()) {
    std::memcpy(dst + kFixedHeaderSize + codec.size(), type_name.data(),
                type_name.size());
  }
  const size_t names_end = kFixedHeaderSize + codec.size() + type_name.size();
  std::memset(dst + names_end, 0, header_size - names_end);
}

absl::StatusOr<SharedBytes> SerializeCompressed(absl::string_view codec,
                                                absl::string_view type_name,
                                                size_t header_size,
                                                absl::string_view payload) {
  const int bound = LZ4_compressBound(static_cast<int>(payload.size()));
  if (bound <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "payload of ", payload.size(), " bytes is too large for lz4"));
  }
  // One buffer that fits the compressed block and, should the data not
  // shrink, the raw payload: no second allocation either way.
  PROXYSTORE_ASSIGN_OR_RETURN(
      OutputBuffer out,
      OutputBuffer::Allocate(header_size +
                             std::max<size_t>(bound, payload.size())));
  char* const dst = out.data() + header_size;
  const int compressed = LZ4_compress_default(
      payload.data(), dst, static_cast<int>(payload.size()), bound);
  if (compressed > 0 && static_cast<size_t>(compressed) < payload.size()) {
    WriteEnvelopeHeader(out.data(), header_size, codec, type_name,
                        /*compressed=*/true, compressed, payload.size());
    return std::move(out).Finish(header_size + compressed);
  }
  std::memcpy(dst, payload.data(), payload.size());
  WriteEnvelopeHeader(out.data(), header_size, codec, type_name,
                      /*compressed=*/false, payload.size(), payload.size());
  return std::move(out).Finish(header_size + payload.size());
}

absl::Status DecompressTo(absl::string_view stored, char* dst,
                          size_t payload_size) {
  // ParseData bounded both sizes by kMaxLz4Input (< INT_MAX).
  if (stored.size() > kMaxLz4Input || payload_size > kMaxLz4Input) {
    return absl::DataLossError("lz4 block too large");
  }
  const int got =
      LZ4_decompress_safe(stored.data(), dst, static_cast<int>(stored.size()),
                          static_cast<int>(payload_size));
  if (got < 0 || static_cast<size_t>(got) != payload_size) {
    return absl::DataLossError(
        absl::StrCat("corrupt lz4 payload: ", stored.size(),
                     " compressed bytes did not decode to the claimed ",
                     payload_size, " bytes (lz4 returned ", got, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<SharedBytes> Decompress(absl::string_view stored,
                                       size_t payload_size) {
  PROXYSTORE_ASSIGN_OR_RETURN(OutputBuffer out,
                              OutputBuffer::Allocate(payload_size));
  PROXYSTORE_RETURN_IF_ERROR(DecompressTo(stored, out.data(), payload_size));
  return std::move(out).Finish(payload_size);
}

absl::StatusOr<SharedBytes> CopyAligned(absl::string_view data) {
  PROXYSTORE_ASSIGN_OR_RETURN(OutputBuffer out,
                              OutputBuffer::Allocate(data.size()));
  if (!data.empty()) std::memcpy(out.data(), data.data(), data.size());
  return std::move(out).Finish(data.size());
}

bool IsValidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    if (i + 8 <= n) {
      uint64_t chunk;
      std::memcpy(&chunk, p + i, 8);
      if ((chunk & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlongs
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // no overlongs
      if (c == 0xF4) hi = 0x8F;  // <= U+10FFFF
    } else {
      return false;
    }
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

absl::Status TypeMismatchError(const ParsedData& parsed,
                               absl::string_view want_codec,
                               absl::string_view want_type) {
  return absl::InvalidArgumentError(
      absl::StrCat("type mismatch: the data holds ", Quote(parsed.type_name),
                   " (codec ", Quote(parsed.codec), ") but was read as '",
                   want_type, "' (codec '", want_codec, "')"));
}

absl::Status PythonDataError(const ParsedData& parsed,
                             absl::string_view want_type) {
  if (parsed.python_type != PythonType::kNone) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the data is Python ", parsed.python_kind,
        " written by ProxyStore (identifier '", parsed.python_id,
        "\\n'); read it as std::string, std::vector<uint8_t>, "
        "std::vector<std::byte>, std::vector<char> or proxystore::SharedBytes, "
        "not as '",
        want_type, "'"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "the data is a Python object serialized by ProxyStore's ",
      parsed.python_kind, " serializer (identifier '", parsed.python_id,
      "\\n'); pickled Python objects cannot be read in C++ (requested '",
      want_type, "'); only Python bytes and str can"));
}

absl::Status PythonFormatUnsupportedError(absl::string_view type_name) {
  return absl::InvalidArgumentError(absl::StrCat(
      "the ProxyStore Python format holds only bytes and str: cannot write '",
      type_name,
      "' in it (use std::string, a byte vector or SharedBytes, or the "
      "native format)"));
}

absl::Status PayloadTooLargeError(size_t payload_size) {
  return absl::InvalidArgumentError(
      absl::StrCat("payload of ", payload_size, " bytes is too large"));
}

absl::Status PayloadSizeError(absl::string_view what, size_t got,
                              size_t expected) {
  return absl::DataLossError(absl::StrCat("payload for '", what, "' is ", got,
                                          " bytes, expected ", expected));
}

absl::Status FlatBufferError(absl::string_view what, absl::string_view table,
                             size_t size) {
  return absl::DataLossError(absl::StrCat(
      "FlatBuffer of ", size, " bytes for table '", table, "' ", what));
}

}  // namespace internal

void SetDefaultMaxDecompressedSize(uint64_t bytes) {
  internal::default_max_decompressed_size.store(bytes,
                                                std::memory_order_relaxed);
}

uint64_t DefaultMaxDecompressedSize() {
  return internal::default_max_decompressed_size.load(
      std::memory_order_relaxed);
}

absl::StatusOr<EnvelopeInfo> InspectEnvelope(const SharedBytes& data) {
  PROXYSTORE_ASSIGN_OR_RETURN(const internal::ParsedData parsed,
                              internal::ParseData(data.view()));
  EnvelopeInfo info;
  info.format = parsed.format;
  if (parsed.format == SerializeOptions::Format::kProxyStorePython) {
    info.version = 0;
    info.codec = std::string(parsed.python_id);
    info.type_name = std::string(parsed.python_kind);
  } else {
    info.version = internal::kVersion;
    info.codec = std::string(parsed.codec);
    info.type_name = std::string(parsed.type_name);
  }
  info.compressed = parsed.compressed;
  info.header_size = parsed.header_size;
  info.payload_size = parsed.payload_size;
  info.stored_size = parsed.stored_size;
  return info;
}

absl::StatusOr<SharedBytes> SerializeInPlace(PayloadBuffer&& buffer,
                                             const SerializeOptions& options) {
  if (buffer.buffer_ == nullptr) {
    return absl::InvalidArgumentError(
        "SerializeInPlace: the PayloadBuffer was moved from");
  }
  const size_t size = buffer.size_;
  std::shared_ptr<char[]> owner(std::move(buffer.buffer_));
  buffer.size_ = 0;
  char* payload = owner.get() + PayloadBuffer::kReserve;
  if (options.format == SerializeOptions::Format::kProxyStorePython) {
    char* start = payload - internal::kPythonIdSize;
    std::memcpy(start, "BS\n", internal::kPythonIdSize);
    return SharedBytes::FromOwner(
        std::move(owner),
        absl::string_view(start, internal::kPythonIdSize + size));
  }
  if (internal::ShouldCompress(options, size)) {
    // Compression writes a new buffer anyway: take the ordinary path.
    SharedBytes view =
        SharedBytes::FromOwner(owner, absl::string_view(payload, size));
    return Serialize(view, options);
  }
  PROXYSTORE_ASSIGN_OR_RETURN(size_t header_size, internal::EnvelopeHeaderSize(
                                                      Codec<SharedBytes>::kName,
                                                      TypeName<SharedBytes>()));
  if (header_size > PayloadBuffer::kReserve) {
    return absl::InternalError(
        absl::StrCat("SerializeInPlace: envelope header of ", header_size,
                     " bytes exceeds PayloadBuffer::kReserve"));
  }
  char* start = payload - header_size;
  internal::WriteEnvelopeHeader(start, header_size, Codec<SharedBytes>::kName,
                                TypeName<SharedBytes>(), /*compressed=*/false,
                                size, size);
  return SharedBytes::FromOwner(std::move(owner),
                                absl::string_view(start, header_size + size));
}

}  // namespace proxystore
