// Serialization of C++ values to SharedBytes: a small self-describing
// envelope around a per-type payload written by a Codec<T>.
//
// Serialize<T> asks Codec<T> for the exact payload size, allocates ONE buffer
// of the final size (header + payload) and lets the codec write the payload
// into it once. (Compressing: one buffer of the lz4 bound, lz4 writes into it
// and it is shrunk in place with realloc; no temporary unless the codec lacks
// ContiguousView.) Deserialize<T> checks the envelope (magic, version, lengths,
// codec and C++ type) and hands the payload to Codec<T>::Decode as a zero-copy
// slice of the input: std::string decodes with one copy, SharedBytes and
// FlatBuffer<Table> with none. Optional lz4 compression (block format) is
// applied only when the payload is big enough and actually shrinks. Any input
// bytes are safe to deserialize: corrupt or truncated data gives
// absl::DataLossError, data of another type absl::InvalidArgumentError (with
// both type names), never a crash or undefined behaviour. No size read from
// the data is allocated unless the bytes present back it (a compressed
// payload's claimed size: up to 4x its compressed size, beyond that only if
// its lz4 block decodes to it); a compressed payload may also decode to no
// more than the receiver's limit (DeserializeOptions::max_decompressed_size,
// 1 GiB unless set).
//
//   PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes bytes,
//   Serialize(std::string("hi"))); PROXYSTORE_ASSIGN_OR_RETURN(std::string s,
//   Deserialize<std::string>(bytes));
//
//   flatbuffers::FlatBufferBuilder fbb;
//   fbb.Finish(CreatePoint(fbb, ...));
//   auto point = FlatBuffer<Point>::FromBuilder(std::move(fbb));  // no copy
//   PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes b, Serialize(point));
//   PROXYSTORE_ASSIGN_OR_RETURN(auto read, Deserialize<FlatBuffer<Point>>(b));
//   read->x();  // verified once, then read in place inside `b`
//
// Thread-safety: every function here is stateless and may be called from any
// number of threads. A FlatBuffer<Table> is immutable (shared like
// SharedBytes).
//
// Codecs shipped (Codec<T>::kName in quotes):
//   std::string                      "string"  (Python format: str, "US\n")
//   std::vector<uint8_t>, std::vector<std::byte>, std::vector<char>,
//   SharedBytes                      "bytes"   (Python format: bytes, "BS\n")
//       The five byte types read each other's data ("string" or "bytes").
//       Deserialize<SharedBytes> is a zero-copy slice of the input.
//   bool, integers, float, double    "bool", "int8".."int64",
//   "uint8".."uint64",
//       "float32", "float64": fixed little-endian layout. The codec name fixes
//       the layout, so e.g. `long` and `long long` (both int64) interoperate.
//       long double has no codec (its layout is not portable).
//   trivially copyable class/enum    "pod": the object's bytes (host layout;
//       the exact type name and sizeof are checked on decode). Pointers, views
//       (absl::string_view, std::string_view, std::span, absl::Span) and
//       FlatBuffers tables are excluded; a struct holding a pointer would be
//       serialized as the pointer value, so opt such types out with
//       `template <> inline constexpr bool kDisablePodCodec<MyType> = true;`.
//       Caveat: the bytes are trusted as an object representation; a struct
//       with bool or unscoped-enum members read from corrupted data may hold
//       out-of-range values. Write a Codec for such types if that matters.
//   std::vector<E>, E arithmetic (not bool) or "pod"-able and default
//       constructible               "vector": elements back to back (arithmetic
//       elements little-endian); payload size must be a multiple of sizeof(E).
//   FlatBuffer<Table>               "flatbuffer": the finished FlatBuffer;
//       Decode verifies it (flatbuffers::Verifier) and reads it in place.
//
// Writing a codec for your own type: specialize proxystore::Codec before the
// first use of Serialize/Deserialize/kHasCodec for that type:
//
//   template <> struct proxystore::Codec<Person> {
//     static constexpr absl::string_view kName = "person-v1";
//     static size_t EncodedSize(const Person& p);          // exact
//     static void EncodeTo(const Person& p, char* dst);    // writes exactly
//     that static absl::StatusOr<Person> Decode(const SharedBytes& payload);
//   };
//
// Decode receives exactly the payload bytes (never the header) and must treat
// them as untrusted. Optional members a codec may also provide:
//   static bool Accepts(absl::string_view codec, absl::string_view type_name);
//       Which stored (codec, type name) pairs Decode can read. Default: codec
//       == kName and type_name == TypeName<T>().
//   static absl::string_view ContiguousView(const T& v);
//       The payload bytes as they already sit in memory (lets compression run
//       without encoding into a temporary first).
//   static absl::StatusOr<T> DecodeFilled(
//       size_t payload_size, absl::FunctionRef<absl::Status(char*)> fill);
//       Decode by letting `fill` write payload_size bytes straight into the
//       value's own storage (used after decompression to skip a copy).
//       payload_size has been checked before the call: at most the
//       receiver's max_decompressed_size, and at most 4x the compressed
//       bytes unless the lz4 block decodes to it.
//   static absl::StatusOr<T> DecodeView(absl::string_view payload);
//       Decode for a codec that copies the payload anyway (the value keeps
//       no reference to it): the get path then hands it a view and skips
//       taking a reference on the buffer.
//   static constexpr PythonType kPythonType;  // kBytes or kStr
//       Enables SerializeOptions::Format::kProxyStorePython and reading
//       ProxyStore Python bytes/str data.
//
// ===== Native envelope byte layout (version 1; integers little-endian) =====
//
//   offset   size  field
//   0        4     magic 0x89 'P' 'S' 'C'. 0x89 is not ASCII, so an envelope
//                  is never mistaken for ProxyStore Python data ("XY\n").
//   4        1     version = 1
//   5        1     flags: bit 0 = payload is one lz4 block; bits 1..7 are 0
//   6        2     H = header size = offset of the payload
//                  = RoundUpTo16(32 + C + N), at most 65535 - 15
//   8        2     C = codec name length (>= 1)
//   10       2     N = C++ type name length
//   12       4     reserved, 0
//   16       8     S = stored payload size (bytes after the header)
//   24       8     P = payload size once decoded; P == S when not compressed;
//                  when compressed S < P <= min(kMaxLz4Input, 255 * S + 16)
//                  (and Deserialize also requires P <= the receiver's
//                  max_decompressed_size and, if P > 4 * S, the lz4 block's
//                  sequence lengths to add up to P, before it allocates)
//   32       C     codec name (Codec<T>::kName), e.g. "string"
//   32+C     N     type name (TypeName<T>()), e.g. "std::string"
//   32+C+N   ...   zero bytes up to H
//   H        S     payload (raw, or an lz4 block of P bytes)
//   The buffer is exactly H + S bytes long; all fields above are checked.
//   H is a multiple of 16, so the payload is 16-byte aligned whenever the
//   buffer is (malloc and mmap memory are): FlatBuffers read in place.
//   There is no checksum of the payload (connectors move bytes reliably);
//   FlatBuffers are verified structurally.
//
// ===== ProxyStore Python format (SerializeOptions::Format::kProxyStorePython)
//   "BS\n" + bytes   (byte types and SharedBytes)
//   "US\n" + UTF-8   (std::string; must be valid UTF-8, else InvalidArgument)
// These are exactly what Python ProxyStore's serialize() writes for bytes and
// str, so Python can read them. Deserialize of std::string, the byte vectors
// and SharedBytes accepts "BS\n"/"US\n" and the older "01\n" (bytes) /
// "02\n" (str) data: all four simply yield the bytes after the identifier
// (Python str data is UTF-8). Other Python identifiers (PK, CP, NP, PD, PL,
// 03, 04) give InvalidArgument: pickled Python objects cannot be read in C++.
#ifndef PROXYSTORE_SERIALIZER_SERIALIZER_H_
#define PROXYSTORE_SERIALIZER_SERIALIZER_H_

#include <algorithm>
#include <array>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "flatbuffers/flatbuffers.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/status.h"

namespace proxystore {

// ---------------------------------------------------------------- Codec ---

// Per-type codec trait; see the file comment. The primary template is
// deliberately undefined: a type without a specialization has no codec, and
// Serialize/Deserialize report that with a static_assert.
template <typename T, typename Enable = void>
struct Codec;

// What a codec's payload is, seen from Python ProxyStore.
enum class PythonType { kNone, kBytes, kStr };

namespace internal {

template <typename T>
concept CompleteCodec = requires(const T& value, char* dst,
                                 const SharedBytes& payload) {
  { Codec<T>::kName } -> std::convertible_to<absl::string_view>;
  { Codec<T>::EncodedSize(value) } -> std::same_as<size_t>;
  Codec<T>::EncodeTo(value, dst);
  { Codec<T>::Decode(payload) } -> std::same_as<absl::StatusOr<T>>;
};

}  // namespace internal

// True if Codec<T> is defined and provides kName, EncodedSize, EncodeTo and
// Decode with the documented signatures. Like every trait, it must first be
// used after any user specialization of Codec<T> is visible.
template <typename T>
inline constexpr bool kHasCodec = internal::CompleteCodec<T>;

// Opt-out of the automatic "pod" codec for a trivially copyable type (e.g.
// one that holds pointers). Specialize to true.
template <typename T>
inline constexpr bool kDisablePodCodec = false;
template <>
inline constexpr bool kDisablePodCodec<absl::string_view> = true;
template <>
inline constexpr bool kDisablePodCodec<std::string_view> = true;
template <typename E, size_t N>
inline constexpr bool kDisablePodCodec<std::span<E, N>> = true;
template <typename E>
inline constexpr bool kDisablePodCodec<absl::Span<E>> = true;

// ------------------------------------------------------------- TypeName ---

namespace internal {

struct RawSignature {
  const char* data;
  size_t size;
};

// Returns its own signature, e.g. (g++) "constexpr
// proxystore::internal::RawSignature proxystore::internal::SignatureOf()
// [with T = int]". The return type is not a typedef, so g++ appends nothing
// after the type.
template <typename T>
constexpr RawSignature SignatureOf() {
  return {__PRETTY_FUNCTION__, sizeof(__PRETTY_FUNCTION__) - 1};
}

constexpr absl::string_view TypeFromSignature(RawSignature sig) {
  // g++: "... [with T = <type>]"; clang: "... [T = <type>]".
  constexpr char kMarker[] = "T = ";
  constexpr size_t kMarkerSize = sizeof(kMarker) - 1;
  size_t begin = 0;
  bool found = false;
  for (size_t i = 0; i + kMarkerSize <= sig.size; ++i) {
    bool match = true;
    for (size_t j = 0; j < kMarkerSize; ++j) {
      if (sig.data[i + j] != kMarker[j]) {
        match = false;
        break;
      }
    }
    if (match) {
      begin = i + kMarkerSize;
      found = true;
      break;
    }
  }
  if (!found) return absl::string_view(sig.data, sig.size);
  size_t end = sig.size;
  if (end > begin && sig.data[end - 1] == ']') --end;
  return absl::string_view(sig.data + begin, end - begin);
}

// Short, platform-independent names for the common types.
template <typename T>
constexpr absl::string_view BuiltinTypeName() {
  if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_same_v<T, char>)
    return "char";
  else if constexpr (std::is_same_v<T, int8_t>)
    return "int8_t";
  else if constexpr (std::is_same_v<T, uint8_t>)
    return "uint8_t";
  else if constexpr (std::is_same_v<T, int16_t>)
    return "int16_t";
  else if constexpr (std::is_same_v<T, uint16_t>)
    return "uint16_t";
  else if constexpr (std::is_same_v<T, int32_t>)
    return "int32_t";
  else if constexpr (std::is_same_v<T, uint32_t>)
    return "uint32_t";
  else if constexpr (std::is_same_v<T, int64_t>)
    return "int64_t";
  else if constexpr (std::is_same_v<T, uint64_t>)
    return "uint64_t";
  else if constexpr (std::is_same_v<T, float>)
    return "float";
  else if constexpr (std::is_same_v<T, double>)
    return "double";
  else if constexpr (std::is_same_v<T, std::string>)
    return "std::string";
  else if constexpr (std::is_same_v<T, SharedBytes>)
    return "proxystore::SharedBytes";
  else if constexpr (std::is_same_v<T, std::vector<uint8_t>>)
    return "std::vector<uint8_t>";
  else if constexpr (std::is_same_v<T, std::vector<std::byte>>)
    return "std::vector<std::byte>";
  else if constexpr (std::is_same_v<T, std::vector<char>>)
    return "std::vector<char>";
  else
    return absl::string_view();
}

template <typename T>
constexpr absl::string_view ComputeTypeName() {
  constexpr absl::string_view builtin = BuiltinTypeName<T>();
  if constexpr (!builtin.empty()) {
    return builtin;
  } else {
    return TypeFromSignature(SignatureOf<T>());
  }
}

template <typename T>
inline constexpr absl::string_view kTypeName = ComputeTypeName<T>();

}  // namespace internal

// A name for T, stable across processes built by the same compiler: a short
// builtin name for common types ("int32_t", "std::string", ...), else the
// compiler's spelling (e.g. "std::vector<double>"). A compile-time constant.
template <typename T>
constexpr absl::string_view TypeName() {
  return internal::kTypeName<T>;
}

// ----------------------------------------------------------- Serialize ---

struct SerializeOptions {
  enum class Format {
    kNative,  // the envelope described in the file comment
    // ProxyStore Python's own "BS\n"/"US\n" data, readable by Python
    // ProxyStore. Only std::string (str) and the byte types (bytes);
    // other types give InvalidArgument. `compress` is ignored (Python
    // ProxyStore has no compressed form).
    kProxyStorePython,
  };
  Format format = Format::kNative;
  // lz4 (block format, default level) when the payload has at least
  // compress_threshold bytes, at most kMaxLz4Input bytes, and shrinks.
  bool compress = false;
  size_t compress_threshold = 4096;
};

// Largest payload that is ever compressed (LZ4_MAX_INPUT_SIZE); larger ones
// are stored uncompressed. Also the largest decompressed size accepted.
inline constexpr uint64_t kMaxLz4Input = 0x7E000000;

// ---------------------------------------------------------- Deserialize ---

// The initial process-wide max_decompressed_size: 1 GiB.
inline constexpr uint64_t kDefaultMaxDecompressedSize = uint64_t{1} << 30;

struct DeserializeOptions {
  // The largest size a compressed payload may decompress to (the receiver's
  // limit; the data says how large it claims to be). Unset: the process-wide
  // DefaultMaxDecompressedSize(). Uncompressed payloads are not limited here:
  // their bytes are already in memory and decoding them allocates at most
  // that much.
  std::optional<uint64_t> max_decompressed_size;
};

// The process-wide max_decompressed_size (initially
// kDefaultMaxDecompressedSize). Nothing above kMaxLz4Input is ever
// decompressed, whatever the limit. Thread-safe; affects later calls.
void SetDefaultMaxDecompressedSize(uint64_t bytes);
uint64_t DefaultMaxDecompressedSize();

// What an envelope says about itself (InspectEnvelope).
struct EnvelopeInfo {
  SerializeOptions::Format format = SerializeOptions::Format::kNative;
  int version = 0;        // envelope version (0 for Python data)
  std::string codec;      // codec name, or the Python identifier ("BS", ...)
  std::string type_name;  // C++ type name, or the Python kind ("bytes", ...)
  bool compressed = false;
  uint64_t header_size = 0;   // bytes before the payload (3 for Python data)
  uint64_t payload_size = 0;  // payload bytes once decoded
  uint64_t stored_size = 0;   // payload bytes as stored
};

// Parses and checks the header of serialized data (native envelope or
// ProxyStore Python data) without decoding the payload.
absl::StatusOr<EnvelopeInfo> InspectEnvelope(const SharedBytes& data);

// ----------------------------------------------------------- internals ---

namespace internal {

inline constexpr size_t kFixedHeaderSize = 32;
inline constexpr size_t kPayloadAlignment = 16;
inline constexpr size_t kPythonIdSize = 3;

// A 16-byte-aligned buffer that becomes a SharedBytes without a copy.
// Buffers up to kSharedBlockMax share one allocation with their reference
// count (std::make_shared_for_overwrite: a put of a small object allocates
// once, not twice); larger ones are malloc'd, so that a failed allocation is
// a ResourceExhausted rather than the end of the process, and so that Finish
// can give back an unused tail in place with realloc.
class OutputBuffer {
 public:
  static constexpr size_t kSharedBlockMax = 64 << 10;

  // ResourceExhausted if the memory cannot be allocated.
  static absl::StatusOr<OutputBuffer> Allocate(size_t capacity);

  char* data() { return data_; }
  size_t capacity() const { return capacity_; }

  // Wraps the first `size` (<= capacity) bytes; gives back the unused tail
  // when it is large (a small buffer's bytes move to an exact one).
  SharedBytes Finish(size_t size) &&;

  // A buffer of exactly `size` bytes that `fill(char* data)` writes, as a
  // SharedBytes: Allocate(size), fill, Finish(size), with a small buffer's
  // whole path inline (the put of a small object spends most of its time
  // here, not in the copy).
  template <typename Fill>
  static absl::StatusOr<SharedBytes> Build(size_t size, Fill&& fill) {
    if (size <= kSharedBlockMax) {
      std::shared_ptr<Block[]> small =
          std::make_shared_for_overwrite<Block[]>(BlocksFor(size));
      char* const data = small[0].bytes;
      fill(data);
      return SharedBytes::FromOwner(std::move(small),
                                    absl::string_view(data, size));
    }
    absl::StatusOr<OutputBuffer> out = Allocate(size);
    if (!out.ok()) return out.status();
    fill(out->data());
    return std::move(*out).Finish(size);
  }

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  struct alignas(kPayloadAlignment) Block {
    char bytes[kPayloadAlignment];
  };
  // At least one block: a zero-length array would have no bytes to point at.
  static size_t BlocksFor(size_t capacity) {
    return std::max<size_t>(1, (capacity + sizeof(Block) - 1) / sizeof(Block));
  }
  OutputBuffer(std::shared_ptr<Block[]> small, size_t capacity)
      : small_(std::move(small)), data_(small_[0].bytes), capacity_(capacity) {}
  OutputBuffer(std::unique_ptr<char, Free> large, size_t capacity)
      : large_(std::move(large)), data_(large_.get()), capacity_(capacity) {}

  std::shared_ptr<Block[]> small_;
  std::unique_ptr<char, Free> large_;
  char* data_ = nullptr;
  size_t capacity_ = 0;
};

// A parsed, fully checked header.
struct ParsedData {
  SerializeOptions::Format format = SerializeOptions::Format::kNative;
  // Native envelope:
  absl::string_view codec;
  absl::string_view type_name;
  bool compressed = false;
  size_t header_size = 0;
  uint64_t stored_size = 0;
  uint64_t payload_size = 0;
  // Python data:
  absl::string_view python_id;                 // e.g. "BS"
  absl::string_view python_kind;               // e.g. "bytes", "pickle"
  PythonType python_type = PythonType::kNone;  // kNone: not bytes/str
};

absl::StatusOr<ParsedData> ParseData(absl::string_view data);
// The same checks for data of `total_size` bytes of which `prefix` holds the
// first ones: OutOfRange if the header does not fit in the prefix (read
// more), otherwise what ParseData would return for the whole data.
absl::StatusOr<ParsedData> ParseHeader(absl::string_view prefix,
                                       uint64_t total_size);

// Header size for these names, or InvalidArgument if they do not fit.
absl::StatusOr<size_t> EnvelopeHeaderSize(absl::string_view codec,
                                          absl::string_view type_name);
void WriteEnvelopeHeader(char* dst, size_t header_size, absl::string_view codec,
                         absl::string_view type_name, bool compressed,
                         uint64_t stored_size, uint64_t payload_size);

inline bool ShouldCompress(const SerializeOptions& options,
                           size_t payload_size) {
  return options.compress && payload_size > 0 &&
         payload_size >= options.compress_threshold &&
         payload_size <= kMaxLz4Input;
}

// The envelope's first bytes and version (see the file comment).
inline constexpr char kEnvelopeMagic[4] = {'\x89', 'P', 'S', 'C'};
inline constexpr uint8_t kEnvelopeVersion = 1;

// Codec<T>'s name and TypeName<T>() are compile-time constants, so the
// uncompressed envelope header of T's data is too, but for its two size
// fields: Serialize copies it and stores the sizes (WriteEnvelopeHeader
// writes the same bytes field by field). Codecs whose kName is not a
// constant expression, or whose names make a header of more than
// kStaticHeaderMax bytes, take the general path.
inline constexpr size_t kStaticHeaderMax = 256;

template <typename T>
concept CodecNameIsConstant = requires {
  typename std::integral_constant<size_t,
                                  absl::string_view(Codec<T>::kName).size()>;
};

template <typename T>
constexpr size_t StaticHeaderSize() {
  constexpr size_t names =
      absl::string_view(Codec<T>::kName).size() + TypeName<T>().size();
  return (kFixedHeaderSize + names + kPayloadAlignment - 1) /
         kPayloadAlignment * kPayloadAlignment;
}

template <typename T>
constexpr bool HasStaticHeader() {
  if constexpr (CodecNameIsConstant<T>) {
    return !absl::string_view(Codec<T>::kName).empty() &&
           StaticHeaderSize<T>() <= kStaticHeaderMax;
  } else {
    return false;
  }
}

template <typename T>
constexpr std::array<char, StaticHeaderSize<T>()> MakeStaticHeader() {
  constexpr absl::string_view codec = Codec<T>::kName;
  constexpr absl::string_view type_name = TypeName<T>();
  constexpr size_t size = StaticHeaderSize<T>();
  std::array<char, size> h{};  // every byte not set below is 0
  for (size_t i = 0; i < sizeof(kEnvelopeMagic); ++i) h[i] = kEnvelopeMagic[i];
  h[4] = static_cast<char>(kEnvelopeVersion);
  const auto store16 = [&h](size_t at, size_t v) {
    h[at] = static_cast<char>(v & 0xFF);
    h[at + 1] = static_cast<char>((v >> 8) & 0xFF);
  };
  store16(6, size);
  store16(8, codec.size());
  store16(10, type_name.size());
  for (size_t i = 0; i < codec.size(); ++i) h[kFixedHeaderSize + i] = codec[i];
  for (size_t i = 0; i < type_name.size(); ++i) {
    h[kFixedHeaderSize + codec.size() + i] = type_name[i];
  }
  return h;
}

template <typename T>
inline constexpr std::array<char, StaticHeaderSize<T>()> kStaticHeader =
    MakeStaticHeader<T>();

// Stores v at p, little-endian.
inline void StoreLittle64(char* p, uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(p, &v, sizeof(v));
  } else {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  }
}

// Builds a whole envelope around `payload`, lz4-compressed if that shrinks it.
absl::StatusOr<SharedBytes> SerializeCompressed(absl::string_view codec,
                                                absl::string_view type_name,
                                                size_t header_size,
                                                absl::string_view payload);
// Before anything is allocated for a compressed payload: DataLoss unless
// `claim` (the envelope's decoded size) is within the receiver's limit and,
// when it is more than 4x the block's size, CheckLz4Block passes.
absl::Status CheckDecompressedSize(absl::string_view block, uint64_t claim,
                                   const DeserializeOptions& options);
// Walks the sequences of an lz4 `block` without decoding it (no allocation,
// time linear in its size): DataLoss unless it is well formed and decodes to
// exactly `claim` bytes. Whatever LZ4_decompress_safe decodes to `claim`
// bytes passes.
absl::Status CheckLz4Block(absl::string_view block, uint64_t claim);
// Decompresses an lz4 block into exactly payload_size bytes at dst.
absl::Status DecompressTo(absl::string_view stored, char* dst,
                          size_t payload_size);
absl::StatusOr<SharedBytes> Decompress(absl::string_view stored,
                                       size_t payload_size);
// A copy of `data` in a 16-byte aligned buffer.
absl::StatusOr<SharedBytes> CopyAligned(absl::string_view data);

bool IsValidUtf8(absl::string_view s);

absl::Status TypeMismatchError(const ParsedData& parsed,
                               absl::string_view want_codec,
                               absl::string_view want_type);
absl::Status PythonDataError(const ParsedData& parsed,
                             absl::string_view want_type);
absl::Status PythonFormatUnsupportedError(absl::string_view type_name);
absl::Status PayloadTooLargeError(size_t payload_size);
absl::Status PayloadSizeError(absl::string_view what, size_t got,
                              size_t expected);
absl::Status FlatBufferError(absl::string_view what, absl::string_view table,
                             size_t size);

template <typename T>
bool CodecAccepts(absl::string_view codec, absl::string_view type_name) {
  if constexpr (requires {
                  { Codec<T>::Accepts(codec, type_name) } -> std::same_as<bool>;
                }) {
    return Codec<T>::Accepts(codec, type_name);
  } else {
    return codec == Codec<T>::kName && type_name == TypeName<T>();
  }
}

template <typename T>
concept HasContiguousView = requires(const T& value) {
  { Codec<T>::ContiguousView(value) } -> std::same_as<absl::string_view>;
};

template <typename T>
concept HasDecodeView = requires(absl::string_view payload) {
  { Codec<T>::DecodeView(payload) } -> std::same_as<absl::StatusOr<T>>;
};

template <typename T>
concept HasDecodeFilled =
    requires(size_t n, absl::FunctionRef<absl::Status(char*)> fill) {
  { Codec<T>::DecodeFilled(n, fill) } -> std::same_as<absl::StatusOr<T>>;
};

template <typename T>
constexpr PythonType PythonTypeOf() {
  if constexpr (requires { Codec<T>::kPythonType; }) {
    return Codec<T>::kPythonType;
  } else {
    return PythonType::kNone;
  }
}

// ---- arithmetic ----

template <typename T>
inline constexpr bool kIsCodecArithmetic =
    std::is_arithmetic_v<T>&& std::is_same_v<T, std::remove_cv_t<T>> &&
    !std::is_same_v<T, long double> &&
    (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);

static_assert(std::endian::native == std::endian::little ||
                  std::endian::native == std::endian::big,
              "mixed-endian hosts are not supported");

template <typename T>
void StoreLittleEndian(const T* src, size_t count, char* dst) {
  if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
    if (count != 0) std::memcpy(dst, src, count * sizeof(T));
  } else {
    for (size_t i = 0; i < count; ++i) {
      char tmp[sizeof(T)];
      std::memcpy(tmp, &src[i], sizeof(T));
      for (size_t b = 0; b < sizeof(T); ++b) {
        dst[i * sizeof(T) + b] = tmp[sizeof(T) - 1 - b];
      }
    }
  }
}

template <typename T>
void LoadLittleEndian(const char* src, size_t count, T* dst) {
  if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
    if (count != 0) std::memcpy(dst, src, count * sizeof(T));
  } else {
    for (size_t i = 0; i < count; ++i) {
      char tmp[sizeof(T)];
      for (size_t b = 0; b < sizeof(T); ++b) {
        tmp[b] = src[i * sizeof(T) + sizeof(T) - 1 - b];
      }
      std::memcpy(&dst[i], tmp, sizeof(T));
    }
  }
}

template <typename T>
constexpr absl::string_view ArithmeticCodecName() {
  if constexpr (std::is_same_v<T, bool>) {
    return "bool";
  } else if constexpr (std::is_floating_point_v<T>) {
    static_assert(std::numeric_limits<T>::is_iec559,
                  "floating-point codecs need IEEE 754 types");
    static_assert(sizeof(T) == 4 || sizeof(T) == 8);
    return sizeof(T) == 4 ? "float32" : "float64";
  } else if constexpr (std::is_signed_v<T>) {
    return sizeof(T) == 1   ? "int8"
           : sizeof(T) == 2 ? "int16"
           : sizeof(T) == 4 ? "int32"
                            : "int64";
  } else {
    return sizeof(T) == 1   ? "uint8"
           : sizeof(T) == 2 ? "uint16"
           : sizeof(T) == 4 ? "uint32"
                            : "uint64";
  }
}

// ---- pod ----

template <typename T>
inline constexpr bool kIsPodCodecType =
    std::is_trivially_copyable_v<T>&& std::is_same_v<T, std::remove_cv_t<T>> &&
    (std::is_class_v<T> || std::is_union_v<T> ||
     std::is_enum_v<T>)&&!std::is_base_of_v<flatbuffers::Table, T> &&
    !kDisablePodCodec<T>;

template <typename E>
inline constexpr bool kIsByteLike =
    std::is_same_v<E, uint8_t> || std::is_same_v<E, char> ||
    std::is_same_v<E, std::byte>;

template <typename E>
inline constexpr bool kIsVectorElement =
    ((kIsCodecArithmetic<E> && !std::is_same_v<E, bool>) ||
     kIsPodCodecType<E>)&&std::is_default_constructible_v<E> &&
    !kIsByteLike<E>;

// Elements whose in-memory bytes are the payload (no byte swapping).
template <typename E>
inline constexpr bool kRawLayout = kIsPodCodecType<E> ||
                                   std::endian::native == std::endian::little ||
                                   sizeof(E) == 1;

// ---- raw bytes (std::string, byte vectors, SharedBytes) ----

inline bool AcceptsRawBytes(absl::string_view codec, absl::string_view) {
  return codec == "bytes" || codec == "string";
}

template <typename V>
struct ByteVectorCodec {
  static constexpr absl::string_view kName = "bytes";
  static constexpr PythonType kPythonType = PythonType::kBytes;
  static bool Accepts(absl::string_view codec, absl::string_view type_name) {
    return AcceptsRawBytes(codec, type_name);
  }
  static size_t EncodedSize(const V& v) { return v.size(); }
  static void EncodeTo(const V& v, char* dst) {
    if (!v.empty()) std::memcpy(dst, v.data(), v.size());
  }
  static absl::string_view ContiguousView(const V& v) {
    return absl::string_view(reinterpret_cast<const char*>(v.data()), v.size());
  }
  static absl::StatusOr<V> Decode(const SharedBytes& payload) {
    return DecodeView(payload.view());
  }
  static absl::StatusOr<V> DecodeView(absl::string_view payload) {
    const auto* p =
        reinterpret_cast<const typename V::value_type*>(payload.data());
    return V(p, p + payload.size());
  }
  static absl::StatusOr<V> DecodeFilled(
      size_t size, absl::FunctionRef<absl::Status(char*)> fill) {
    V v(size);
    PROXYSTORE_RETURN_IF_ERROR(fill(reinterpret_cast<char*>(v.data())));
    return v;
  }
};

}  // namespace internal

// ----------------------------------------------------------- codecs ---

template <>
struct Codec<std::string> {
  static constexpr absl::string_view kName = "string";
  static constexpr PythonType kPythonType = PythonType::kStr;
  static bool Accepts(absl::string_view codec, absl::string_view type_name) {
    return internal::AcceptsRawBytes(codec, type_name);
  }
  static size_t EncodedSize(const std::string& s) { return s.size(); }
  static void EncodeTo(const std::string& s, char* dst) {
    if (!s.empty()) std::memcpy(dst, s.data(), s.size());
  }
  static absl::string_view ContiguousView(const std::string& s) { return s; }
  static absl::StatusOr<std::string> Decode(const SharedBytes& payload) {
    return std::string(payload.view());
  }
  static absl::StatusOr<std::string> DecodeView(absl::string_view payload) {
    return std::string(payload);
  }
  static absl::StatusOr<std::string> DecodeFilled(
      size_t size, absl::FunctionRef<absl::Status(char*)> fill) {
    std::string s;
    s.resize(size);
    PROXYSTORE_RETURN_IF_ERROR(fill(s.data()));
    return s;
  }
};

template <>
struct Codec<std::vector<uint8_t>>
    : internal::ByteVectorCodec<std::vector<uint8_t>> {};
template <>
struct Codec<std::vector<std::byte>>
    : internal::ByteVectorCodec<std::vector<std::byte>> {};
template <>
struct Codec<std::vector<char>> : internal::ByteVectorCodec<std::vector<char>> {
};

template <>
struct Codec<SharedBytes> {
  static constexpr absl::string_view kName = "bytes";
  static constexpr PythonType kPythonType = PythonType::kBytes;
  static bool Accepts(absl::string_view codec, absl::string_view type_name) {
    return internal::AcceptsRawBytes(codec, type_name);
  }
  static size_t EncodedSize(const SharedBytes& b) { return b.size(); }
  static void EncodeTo(const SharedBytes& b, char* dst) {
    if (!b.empty()) std::memcpy(dst, b.data(), b.size());
  }
  static absl::string_view ContiguousView(const SharedBytes& b) {
    return b.view();
  }
  // Zero-copy: the payload slice shares the input's buffer.
  static absl::StatusOr<SharedBytes> Decode(const SharedBytes& payload) {
    return payload;
  }
};

template <typename T>
struct Codec<T, std::enable_if_t<internal::kIsCodecArithmetic<T>>> {
  static constexpr absl::string_view kName = internal::ArithmeticCodecName<T>();
  // The codec name fixes the layout; the C++ spelling does not matter.
  static bool Accepts(absl::string_view codec, absl::string_view) {
    return codec == kName;
  }
  static size_t EncodedSize(const T&) { return sizeof(T); }
  static void EncodeTo(const T& v, char* dst) {
    internal::StoreLittleEndian(&v, 1, dst);
  }
  static absl::StatusOr<T> Decode(const SharedBytes& payload) {
    if (payload.size() != sizeof(T)) {
      return internal::PayloadSizeError(kName, payload.size(), sizeof(T));
    }
    if constexpr (std::is_same_v<T, bool>) {
      const auto byte = static_cast<unsigned char>(payload.data()[0]);
      if (byte > 1) {
        return absl::DataLossError(
            absl::StrCat("bool payload byte is ", byte, ", not 0 or 1"));
      }
      return byte == 1;
    } else {
      T v;
      internal::LoadLittleEndian(payload.data(), 1, &v);
      return v;
    }
  }
};

template <typename T>
struct Codec<T, std::enable_if_t<internal::kIsPodCodecType<T>>> {
  static constexpr absl::string_view kName = "pod";
  static size_t EncodedSize(const T&) { return sizeof(T); }
  static void EncodeTo(const T& v, char* dst) {
    std::memcpy(dst, &v, sizeof(T));
  }
  static absl::string_view ContiguousView(const T& v) {
    return absl::string_view(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  static absl::StatusOr<T> Decode(const SharedBytes& payload) {
    if (payload.size() != sizeof(T)) {
      return internal::PayloadSizeError(TypeName<T>(), payload.size(),
                                        sizeof(T));
    }
    // memcpy into raw storage + bit_cast: no alignment requirement on the
    // payload and no default constructor needed.
    struct Raw {
      unsigned char bytes[sizeof(T)];
    } raw;
    std::memcpy(raw.bytes, payload.data(), sizeof(T));
    return std::bit_cast<T>(raw);
  }
};

template <typename E>
struct Codec<std::vector<E>, std::enable_if_t<internal::kIsVectorElement<E>>> {
  static constexpr absl::string_view kName = "vector";
  static size_t EncodedSize(const std::vector<E>& v) {
    return v.size() * sizeof(E);
  }
  static void EncodeTo(const std::vector<E>& v, char* dst) {
    if constexpr (internal::kRawLayout<E>) {
      if (!v.empty()) std::memcpy(dst, v.data(), v.size() * sizeof(E));
    } else {
      internal::StoreLittleEndian(v.data(), v.size(), dst);
    }
  }
  static absl::string_view ContiguousView(
      const std::vector<E>& v) requires internal::kRawLayout<E> {
    return absl::string_view(reinterpret_cast<const char*>(v.data()),
                             v.size() * sizeof(E));
  }
  static absl::StatusOr<std::vector<E>> Decode(const SharedBytes& payload) {
    PROXYSTORE_RETURN_IF_ERROR(CheckSize(payload.size()));
    std::vector<E> v(payload.size() / sizeof(E));
    if constexpr (internal::kRawLayout<E>) {
      if (!v.empty()) std::memcpy(v.data(), payload.data(), payload.size());
    } else {
      internal::LoadLittleEndian(payload.data(), v.size(), v.data());
    }
    return v;
  }
  static absl::StatusOr<std::vector<E>> DecodeFilled(
      size_t size, absl::FunctionRef<absl::Status(char*)> fill) requires
      internal::kRawLayout<E> {
    PROXYSTORE_RETURN_IF_ERROR(CheckSize(size));
    std::vector<E> v(size / sizeof(E));
    PROXYSTORE_RETURN_IF_ERROR(fill(reinterpret_cast<char*>(v.data())));
    return v;
  }

 private:
  static absl::Status CheckSize(size_t size) {
    if (size % sizeof(E) != 0) {
      return absl::DataLossError(absl::StrCat(
          "payload of ", size, " bytes for ", TypeName<std::vector<E>>(),
          " is not a multiple of the element size ", sizeof(E)));
    }
    return absl::OkStatus();
  }
};

// ---------------------------------------------------------- FlatBuffer ---

// A finished FlatBuffer whose root table is a `Table`, held in SharedBytes and
// read in place. Buffers from outside (FromBytes, Deserialize) are verified
// with flatbuffers::Verifier before the first access; buffers built here
// (FromBuilder, FromDetachedBuffer) are trusted. Copying shares the bytes.
// Alignment: FromBytes copies the bytes once into aligned memory if they do
// not start at a 16-byte aligned address (never the case for buffers from
// Serialize placed in malloc'd or mmap'd memory), so reads are never
// misaligned.
template <typename Table>
class FlatBuffer {
 public:
  // Takes the finished buffer out of `builder` (which must have been
  // Finish()ed) without copying it.
  static FlatBuffer FromBuilder(flatbuffers::FlatBufferBuilder&& builder) {
    return FromDetachedBuffer(builder.Release());
  }
  // Takes ownership of a finished buffer without copying it.
  static FlatBuffer FromDetachedBuffer(flatbuffers::DetachedBuffer&& buffer) {
    auto owner =
        std::make_shared<const flatbuffers::DetachedBuffer>(std::move(buffer));
    absl::string_view view(reinterpret_cast<const char*>(owner->data()),
                           owner->size());
    return FlatBuffer(SharedBytes::FromOwner(std::move(owner), view));
  }
  // Verifies untrusted bytes; DataLoss if they are not a valid `Table`
  // buffer. Zero-copy unless misaligned (see the class comment).
  static absl::StatusOr<FlatBuffer> FromBytes(const SharedBytes& bytes) {
    if (bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
      return internal::FlatBufferError("is too large for a FlatBuffer",
                                       TypeName<Table>(), bytes.size());
    }
    SharedBytes aligned = bytes;
    if (reinterpret_cast<uintptr_t>(bytes.data()) %
            internal::kPayloadAlignment !=
        0) {
      PROXYSTORE_ASSIGN_OR_RETURN(aligned, internal::CopyAligned(bytes.view()));
    }
    flatbuffers::Verifier verifier(
        reinterpret_cast<const uint8_t*>(aligned.data()), aligned.size());
    if (!verifier.VerifyBuffer<Table>(nullptr)) {
      return internal::FlatBufferError("failed verification", TypeName<Table>(),
                                       bytes.size());
    }
    return FlatBuffer(std::move(aligned));
  }

  const Table* root() const { return flatbuffers::GetRoot<Table>(data()); }
  const Table* operator->() const { return root(); }
  const Table& operator*() const { return *root(); }

  // The whole finished buffer.
  const SharedBytes& bytes() const { return bytes_; }

 private:
  explicit FlatBuffer(SharedBytes bytes) : bytes_(std::move(bytes)) {}
  const uint8_t* data() const {
    return reinterpret_cast<const uint8_t*>(bytes_.data());
  }

  SharedBytes bytes_;
};

template <typename Table>
struct Codec<FlatBuffer<Table>> {
  static constexpr absl::string_view kName = "flatbuffer";
  static size_t EncodedSize(const FlatBuffer<Table>& fb) {
    return fb.bytes().size();
  }
  static void EncodeTo(const FlatBuffer<Table>& fb, char* dst) {
    if (!fb.bytes().empty()) {
      std::memcpy(dst, fb.bytes().data(), fb.bytes().size());
    }
  }
  static absl::string_view ContiguousView(const FlatBuffer<Table>& fb) {
    return fb.bytes().view();
  }
  static absl::StatusOr<FlatBuffer<Table>> Decode(const SharedBytes& payload) {
    return FlatBuffer<Table>::FromBytes(payload);
  }
};

// -------------------------------------------------- Serialize/Deserialize ---

// Serializes `value` with Codec<T> into one freshly allocated buffer.
// InvalidArgument for the Python format with a type other than std::string
// and the byte types, or a std::string that is not valid UTF-8 there.
template <typename T>
absl::StatusOr<SharedBytes> Serialize(const T& value,
                                      const SerializeOptions& options = {}) {
  static_assert(kHasCodec<T>,
                "proxystore::Codec<T> is not defined for this T (or lacks "
                "kName/EncodedSize/EncodeTo/Decode): specialize "
                "proxystore::Codec<T>, see serializer/serializer.h");
  using C = Codec<T>;
  const size_t payload_size = C::EncodedSize(value);

  if (options.format == SerializeOptions::Format::kProxyStorePython) {
    constexpr PythonType kPython = internal::PythonTypeOf<T>();
    if constexpr (kPython == PythonType::kNone) {
      return internal::PythonFormatUnsupportedError(TypeName<T>());
    } else {
      if constexpr (kPython == PythonType::kStr) {
        static_assert(internal::HasContiguousView<T>,
                      "a codec with kPythonType == kStr must provide "
                      "ContiguousView (for the UTF-8 check)");
        if (!internal::IsValidUtf8(C::ContiguousView(value))) {
          return absl::InvalidArgumentError(absl::StrCat(
              "cannot write ", TypeName<T>(),
              " in ProxyStore Python format: it is not valid UTF-8 (Python "
              "str); serialize the bytes as std::vector<uint8_t> or "
              "SharedBytes instead"));
        }
      }
      PROXYSTORE_ASSIGN_OR_RETURN(internal::OutputBuffer out,
                                  internal::OutputBuffer::Allocate(
                                      internal::kPythonIdSize + payload_size));
      std::memcpy(out.data(), kPython == PythonType::kStr ? "US\n" : "BS\n",
                  internal::kPythonIdSize);
      C::EncodeTo(value, out.data() + internal::kPythonIdSize);
      return std::move(out).Finish(internal::kPythonIdSize + payload_size);
    }
  }

  if constexpr (internal::HasStaticHeader<T>()) {
    if (!internal::ShouldCompress(options, payload_size)) {
      constexpr auto& header = internal::kStaticHeader<T>;
      if (payload_size > std::numeric_limits<size_t>::max() - header.size()) {
        return internal::PayloadTooLargeError(payload_size);
      }
      return internal::OutputBuffer::Build(
          header.size() + payload_size, [&value, payload_size](char* dst) {
            std::memcpy(dst, header.data(), header.size());
            internal::StoreLittle64(dst + 16, payload_size);  // stored size
            internal::StoreLittle64(dst + 24, payload_size);  // decoded size
            C::EncodeTo(value, dst + header.size());
          });
    }
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      const size_t header_size,
      internal::EnvelopeHeaderSize(C::kName, TypeName<T>()));
  if (internal::ShouldCompress(options, payload_size)) {
    if constexpr (internal::HasContiguousView<T>) {
      return internal::SerializeCompressed(C::kName, TypeName<T>(), header_size,
                                           C::ContiguousView(value));
    } else {
      PROXYSTORE_ASSIGN_OR_RETURN(
          internal::OutputBuffer temp,
          internal::OutputBuffer::Allocate(payload_size));
      C::EncodeTo(value, temp.data());
      return internal::SerializeCompressed(
          C::kName, TypeName<T>(), header_size,
          absl::string_view(temp.data(), payload_size));
    }
  }
  if (payload_size > std::numeric_limits<size_t>::max() - header_size) {
    return internal::PayloadTooLargeError(payload_size);
  }
  return internal::OutputBuffer::Build(
      header_size + payload_size,
      [&value, header_size, payload_size](char* dst) {
        internal::WriteEnvelopeHeader(dst, header_size, C::kName, TypeName<T>(),
                                      /*compressed=*/false, payload_size,
                                      payload_size);
        C::EncodeTo(value, dst + header_size);
      });
}

// The serialized form of a value as a header and the value's own bytes:
// header + payload is exactly what Serialize returns, but the payload is a
// view of the value, not a copy. For Store::Put to hand to
// Connector::PutParts, so that a large object's bytes move once, from the
// object to the storage. `payload` is valid while the value lives unchanged.
struct SerializedParts {
  std::string header;
  absl::string_view payload;
};

// The SerializedParts of `value` when Serialize would copy the value's bytes
// verbatim after a header: a codec with ContiguousView, not compressed
// (native envelope or ProxyStore Python bytes/str). std::nullopt when the
// value has to be encoded or compressed, or Serialize would fail (call
// Serialize for that result).
template <typename T>
std::optional<SerializedParts> SerializeParts(
    const T& value, const SerializeOptions& options = {}) {
  if constexpr (!kHasCodec<T> || !internal::HasContiguousView<T>) {
    return std::nullopt;
  } else {
    using C = Codec<T>;
    const absl::string_view payload = C::ContiguousView(value);
    if (options.format == SerializeOptions::Format::kProxyStorePython) {
      constexpr PythonType kPython = internal::PythonTypeOf<T>();
      if constexpr (kPython == PythonType::kNone) {
        return std::nullopt;
      } else {
        if (kPython == PythonType::kStr && !internal::IsValidUtf8(payload)) {
          return std::nullopt;
        }
        return SerializedParts{
            std::string(kPython == PythonType::kStr ? "US\n" : "BS\n"),
            payload};
      }
    }
    if (internal::ShouldCompress(options, payload.size())) return std::nullopt;
    absl::StatusOr<size_t> header_size =
        internal::EnvelopeHeaderSize(C::kName, TypeName<T>());
    if (!header_size.ok()) return std::nullopt;
    SerializedParts parts{std::string(*header_size, '\0'), payload};
    internal::WriteEnvelopeHeader(parts.header.data(), *header_size, C::kName,
                                  TypeName<T>(), /*compressed=*/false,
                                  payload.size(), payload.size());
    return parts;
  }
}

// Reads a T from `data` (a native envelope, or ProxyStore Python bytes/str
// data for std::string and the byte types). DataLoss for corrupt or truncated
// data and for a compressed payload that claims more than
// options.max_decompressed_size (or more than its bytes decode to),
// InvalidArgument for data of another type/codec, ResourceExhausted if
// memory for a decompressed payload cannot be allocated. Safe on any input.
template <typename T>
absl::StatusOr<T> Deserialize(const SharedBytes& data,
                              const DeserializeOptions& options = {}) {
  static_assert(kHasCodec<T>,
                "proxystore::Codec<T> is not defined for this T (or lacks "
                "kName/EncodedSize/EncodeTo/Decode): specialize "
                "proxystore::Codec<T>, see serializer/serializer.h");
  using C = Codec<T>;
  PROXYSTORE_ASSIGN_OR_RETURN(const internal::ParsedData parsed,
                              internal::ParseData(data.view()));

  if (parsed.format == SerializeOptions::Format::kProxyStorePython) {
    if constexpr (internal::PythonTypeOf<T>() != PythonType::kNone) {
      if (parsed.python_type != PythonType::kNone) {
        if constexpr (internal::HasDecodeView<T>) {
          return C::DecodeView(data.view().substr(internal::kPythonIdSize));
        }
        PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes payload,
                                    data.Suffix(internal::kPythonIdSize));
        return C::Decode(payload);
      }
    }
    return internal::PythonDataError(parsed, TypeName<T>());
  }

  if (!internal::CodecAccepts<T>(parsed.codec, parsed.type_name)) {
    return internal::TypeMismatchError(parsed, C::kName, TypeName<T>());
  }
  if (!parsed.compressed) {
    if constexpr (internal::HasDecodeView<T>) {
      return C::DecodeView(data.view().substr(
          parsed.header_size, static_cast<size_t>(parsed.stored_size)));
    }
    PROXYSTORE_ASSIGN_OR_RETURN(
        SharedBytes payload,
        data.Slice(parsed.header_size,
                   static_cast<size_t>(parsed.stored_size)));
    return C::Decode(payload);
  }
  const absl::string_view stored = data.view().substr(parsed.header_size);
  PROXYSTORE_RETURN_IF_ERROR(
      internal::CheckDecompressedSize(stored, parsed.payload_size, options));
  const size_t payload_size = static_cast<size_t>(parsed.payload_size);
  if constexpr (internal::HasDecodeFilled<T>) {
    return C::DecodeFilled(payload_size, [stored, payload_size](char* dst) {
      return internal::DecompressTo(stored, dst, payload_size);
    });
  } else {
    PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes payload,
                                internal::Decompress(stored, payload_size));
    return C::Decode(payload);
  }
}

// A writable payload buffer with room reserved in front for the envelope
// header: SerializeInPlace wraps it as serialized byte data WITHOUT copying
// the payload, so a caller that builds a large object's bytes itself can put
// it with no copy at all (Store::PutBuffer).
//
//   PayloadBuffer buf = PayloadBuffer::Allocate(n);   // uninitialized
//   FillSomehow(buf.data(), buf.size());
//   PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes wire,
//                               SerializeInPlace(std::move(buf)));
//
// The data reads back as any byte type (Deserialize<SharedBytes>,
// std::string, std::vector<uint8_t>, ...). Move-only.
class PayloadBuffer {
 public:
  // Room in front of the payload: a multiple of 16 (so the payload stays
  // 16-byte aligned) that holds the "bytes" envelope header or the Python
  // "BS\n" prefix.
  static constexpr size_t kReserve = 64;

  static PayloadBuffer Allocate(size_t size) {
    return PayloadBuffer(
        std::make_unique_for_overwrite<char[]>(kReserve + size), size);
  }
  PayloadBuffer(PayloadBuffer&&) = default;
  PayloadBuffer& operator=(PayloadBuffer&&) = default;

  char* data() { return buffer_.get() + kReserve; }
  const char* data() const { return buffer_.get() + kReserve; }
  size_t size() const { return size_; }

 private:
  friend absl::StatusOr<SharedBytes> SerializeInPlace(
      PayloadBuffer&& buffer, const SerializeOptions& options);
  PayloadBuffer(std::unique_ptr<char[]> buffer, size_t size)
      : buffer_(std::move(buffer)), size_(size) {}

  std::unique_ptr<char[]> buffer_;
  size_t size_ = 0;
};

// The same bytes as Serialize(SharedBytes over buffer's payload, options),
// sharing `buffer` instead of copying it. With options.compress the payload
// may be compressed, which needs a new buffer (and is what the caller asked
// for); otherwise nothing is copied. A moved-from buffer is InvalidArgument.
absl::StatusOr<SharedBytes> SerializeInPlace(
    PayloadBuffer&& buffer, const SerializeOptions& options = {});

}  // namespace proxystore

#endif  // PROXYSTORE_SERIALIZER_SERIALIZER_H_
