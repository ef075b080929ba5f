#include "proxystore/interop/npy.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/status.h"

namespace proxystore::interop {
namespace {

constexpr absl::string_view kMagic("\x93NUMPY", 6);
// numpy pads the header so that the data starts at a multiple of this.
constexpr size_t kArrayAlign = 64;
// numpy leaves room for this many digits of the growth axis (the first
// dimension, the last in Fortran order) so that the file can be appended to.
constexpr size_t kGrowthAxisMaxDigits = 21;
constexpr uint64_t kMaxBytes = std::numeric_limits<int64_t>::max();
// How much of the header an error message quotes.
constexpr size_t kQuoteBytes = 80;

struct DtypeInfo {
  NpyDtype dtype;
  absl::string_view descr;
  absl::string_view name;
  size_t itemsize;
};

constexpr DtypeInfo kDtypes[] = {
    {NpyDtype::kBool, "|b1", "bool", 1},
    {NpyDtype::kInt8, "|i1", "int8_t", 1},
    {NpyDtype::kInt16, "<i2", "int16_t", 2},
    {NpyDtype::kInt32, "<i4", "int32_t", 4},
    {NpyDtype::kInt64, "<i8", "int64_t", 8},
    {NpyDtype::kUInt8, "|u1", "uint8_t", 1},
    {NpyDtype::kUInt16, "<u2", "uint16_t", 2},
    {NpyDtype::kUInt32, "<u4", "uint32_t", 4},
    {NpyDtype::kUInt64, "<u8", "uint64_t", 8},
    {NpyDtype::kFloat32, "<f4", "float", 4},
    {NpyDtype::kFloat64, "<f8", "double", 8},
};

const DtypeInfo& Info(NpyDtype dtype) {
  for (const DtypeInfo& info : kDtypes) {
    if (info.dtype == dtype) return info;
  }
  return kDtypes[0];  // unreachable: every enumerator is in the table
}

// The dtype of a descr string, std::nullopt if it is none of ours. Accepts
// numpy's dtype.str forms (an optional byte order char, a kind, an item size)
// in little-endian, native or not-applicable byte order, and '?' for bool.
std::optional<NpyDtype> DtypeFromDescr(absl::string_view descr) {
  if (descr == "?") return NpyDtype::kBool;
  char order = '=';
  if (!descr.empty() && (descr[0] == '<' || descr[0] == '>' ||
                         descr[0] == '=' || descr[0] == '|')) {
    order = descr[0];
    descr.remove_prefix(1);
  }
  if (descr.size() != 2) return std::nullopt;
  const char kind = descr[0];
  const char size = descr[1];
  if (size == '1') {
    // Byte order does not apply to one-byte items: numpy reads '>i1' as
    // '|i1'.
    switch (kind) {
      case 'b':
        return NpyDtype::kBool;
      case 'i':
        return NpyDtype::kInt8;
      case 'u':
        return NpyDtype::kUInt8;
      default:
        return std::nullopt;
    }
  }
  if (order != '<' && order != '=') return std::nullopt;
  switch (kind) {
    case 'i':
      if (size == '2') return NpyDtype::kInt16;
      if (size == '4') return NpyDtype::kInt32;
      if (size == '8') return NpyDtype::kInt64;
      return std::nullopt;
    case 'u':
      if (size == '2') return NpyDtype::kUInt16;
      if (size == '4') return NpyDtype::kUInt32;
      if (size == '8') return NpyDtype::kUInt64;
      return std::nullopt;
    case 'f':
      if (size == '4') return NpyDtype::kFloat32;
      if (size == '8') return NpyDtype::kFloat64;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

uint32_t ReadLe(const char* p, size_t n) {
  uint32_t v = 0;
  for (size_t i = n; i > 0; --i) {
    v = (v << 8) | static_cast<uint8_t>(p[i - 1]);
  }
  return v;
}

// The number of elements of `shape`, or `error`'s status if its byte count
// overflows int64. As numpy does, zero dimensions
// are skipped when checking for overflow: shape (0, 2**62) is a valid empty
// array of int64.
absl::StatusOr<uint64_t> ElementCount(
    absl::Span<const uint64_t> shape, size_t itemsize,
    absl::Status (*error)(absl::string_view)) {
  uint64_t nonzero_bytes = itemsize;
  bool empty = false;
  for (uint64_t dim : shape) {
    if (dim == 0) {
      empty = true;
      continue;
    }
    if (dim > kMaxBytes / nonzero_bytes) {
      return error(absl::StrCat("shape (", absl::StrJoin(shape, ", "), ") of ",
                                itemsize,
                                "-byte items is more than 2**63-1 bytes"));
    }
    nonzero_bytes *= dim;
  }
  return empty ? 0 : nonzero_bytes / itemsize;
}

// Header text for a status message: at most kQuoteBytes of it, bytes outside
// printable ASCII and backslashes escaped (quotes are kept as they are: the
// text is Python source).
std::string ForMessage(absl::string_view text) {
  const absl::string_view shown = text.substr(0, kQuoteBytes);
  std::string out;
  for (char c : shown) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "\\x",
                      absl::Hex(static_cast<uint8_t>(c), absl::kZeroPad2));
    }
  }
  if (shown.size() < text.size()) {
    absl::StrAppend(&out, "... (", text.size(), " bytes)");
  }
  return out;
}

// ----------------------------------------------------- header dict parser ---

// The parsed dict; descr_raw is the value's source text for messages.
struct HeaderDict {
  std::optional<std::string> descr;
  absl::string_view descr_raw;
  std::optional<bool> fortran_order;
  std::optional<std::vector<uint64_t>> shape;
};

// A hand-written parser of the subset of Python literal syntax that a .npy
// header dict uses. Works in place on the header text, in one pass and
// without recursion (the only nesting, a structured or sub-array descr, is
// skipped by counting brackets).
class DictParser {
 public:
  explicit DictParser(absl::string_view text) : text_(text) {}

  absl::StatusOr<HeaderDict> Parse() {
    HeaderDict dict;
    SkipSpace();
    PROXYSTORE_RETURN_IF_ERROR(Expect('{'));
    SkipSpace();
    while (!AtEnd() && Peek() != '}') {
      PROXYSTORE_ASSIGN_OR_RETURN(absl::string_view key, ParseString());
      SkipSpace();
      PROXYSTORE_RETURN_IF_ERROR(Expect(':'));
      SkipSpace();
      if (key == "descr") {
        if (!dict.descr_raw.empty()) return Duplicate(key);
        PROXYSTORE_RETURN_IF_ERROR(ParseDescr(dict));
      } else if (key == "fortran_order") {
        if (dict.fortran_order.has_value()) return Duplicate(key);
        PROXYSTORE_ASSIGN_OR_RETURN(dict.fortran_order, ParseBool());
      } else if (key == "shape") {
        if (dict.shape.has_value()) return Duplicate(key);
        PROXYSTORE_ASSIGN_OR_RETURN(dict.shape, ParseShape());
      } else {
        return absl::DataLossError(
            absl::StrCat(".npy header has an unexpected key '", ForMessage(key),
                         "' (expected 'descr', 'fortran_order', 'shape')"));
      }
      SkipSpace();
      if (AtEnd() || Peek() != ',') break;
      ++pos_;
      SkipSpace();
    }
    PROXYSTORE_RETURN_IF_ERROR(Expect('}'));
    SkipSpace();
    if (!AtEnd()) return Error("text after the dict");
    const char* missing = dict.descr_raw.empty()            ? "'descr'"
                          : !dict.fortran_order.has_value() ? "'fortran_order'"
                          : !dict.shape.has_value()         ? "'shape'"
                                                            : nullptr;
    if (missing != nullptr) {
      return absl::DataLossError(absl::StrCat(
          ".npy header dict lacks ", missing, ": ", ForMessage(text_)));
    }
    return dict;
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }

  // Python's whitespace between tokens; newlines are allowed anywhere inside
  // the braces (implicit line joining).
  void SkipSpace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' ||
                        Peek() == '\r' || Peek() == '\f')) {
      ++pos_;
    }
  }

  absl::Status Error(absl::string_view what) const {
    return absl::DataLossError(
        absl::StrCat(".npy header is not a valid dict: ", what, " at offset ",
                     pos_, " of ", ForMessage(text_)));
  }
  absl::Status Duplicate(absl::string_view key) const {
    return absl::DataLossError(
        absl::StrCat(".npy header has key '", key, "' twice"));
  }

  absl::Status Expect(char c) {
    if (AtEnd() || Peek() != c) {
      return Error(absl::StrCat("expected '", absl::string_view(&c, 1), "'"));
    }
    ++pos_;
    return absl::OkStatus();
  }

  // A quoted string without escapes ('...' or "...").
  absl::StatusOr<absl::string_view> ParseString() {
    if (AtEnd() || (Peek() != '\'' && Peek() != '"')) {
      return Error("expected a quoted string");
    }
    const char quote = Peek();
    const size_t start = ++pos_;
    while (!AtEnd() && Peek() != quote) {
      if (Peek() == '\\' || Peek() == '\n' || Peek() == '\r') {
        return Error("escape or line break in a string");
      }
      ++pos_;
    }
    if (AtEnd()) return Error("unterminated string");
    absl::string_view s = text_.substr(start, pos_ - start);
    ++pos_;
    return s;
  }

  absl::StatusOr<bool> ParseBool() {
    static constexpr std::pair<absl::string_view, bool> kWords[] = {
        {"True", true}, {"False", false}};
    for (const auto& [word, value] : kWords) {
      if (text_.substr(pos_, word.size()) == word) {
        const size_t end = pos_ + word.size();
        if (end < text_.size() &&
            (absl::ascii_isalnum(static_cast<unsigned char>(text_[end])) ||
             text_[end] == '_')) {
          break;
        }
        pos_ = end;
        return value;
      }
    }
    return Error("'fortran_order' is not True or False");
  }

  // A string descr; a list (structured dtype) or tuple (sub-array dtype) is
  // skipped, bracket-balanced and quote-aware, and kept as raw text for the
  // Unimplemented error.
  absl::Status ParseDescr(HeaderDict& dict) {
    const size_t start = pos_;
    if (!AtEnd() && (Peek() == '\'' || Peek() == '"')) {
      PROXYSTORE_ASSIGN_OR_RETURN(absl::string_view s, ParseString());
      dict.descr = std::string(s);
      dict.descr_raw = text_.substr(start, pos_ - start);
      return absl::OkStatus();
    }
    if (AtEnd() || (Peek() != '[' && Peek() != '(')) {
      return Error("'descr' is not a string, list or tuple");
    }
    size_t depth = 0;
    char quote = 0;
    for (; !AtEnd(); ++pos_) {
      const char c = Peek();
      if (quote != 0) {
        if (c == '\\') return Error("escape in a string");
        if (c == quote) quote = 0;
      } else if (c == '\'' || c == '"') {
        quote = c;
      } else if (c == '[' || c == '(') {
        ++depth;
      } else if (c == ']' || c == ')') {
        if (--depth == 0) {
          ++pos_;
          dict.descr_raw = text_.substr(start, pos_ - start);
          return absl::OkStatus();
        }
      }
    }
    return Error("unbalanced brackets in 'descr'");
  }

  // A tuple of non-negative decimal integers: (), (n,), (a, b), (a, b,).
  // "(n)" is not a tuple in Python, so it is refused as numpy refuses it.
  absl::StatusOr<std::vector<uint64_t>> ParseShape() {
    if (AtEnd() || Peek() != '(') return Error("'shape' is not a tuple");
    ++pos_;
    std::vector<uint64_t> shape;
    bool comma_after_last = false;
    SkipSpace();
    while (!AtEnd() && Peek() != ')') {
      if (shape.size() == kMaxNpyDims) {
        return absl::DataLossError(absl::StrCat(
            ".npy header 'shape' has more than ", kMaxNpyDims, " dimensions"));
      }
      PROXYSTORE_ASSIGN_OR_RETURN(uint64_t dim, ParseDim());
      shape.push_back(dim);
      comma_after_last = false;
      SkipSpace();
      if (AtEnd() || Peek() != ',') break;
      ++pos_;
      comma_after_last = true;
      SkipSpace();
    }
    PROXYSTORE_RETURN_IF_ERROR(Expect(')'));
    if (shape.size() == 1 && !comma_after_last) {
      return Error("'shape' is a parenthesized integer, not a tuple");
    }
    return shape;
  }

  absl::StatusOr<uint64_t> ParseDim() {
    const size_t start = pos_;
    uint64_t v = 0;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
      const uint64_t digit = static_cast<uint64_t>(Peek() - '0');
      if (v > (kMaxBytes - digit) / 10) {
        return Error("a dimension larger than 2**63-1");
      }
      v = v * 10 + digit;
      ++pos_;
    }
    if (pos_ == start) {
      return Error("a dimension that is not a non-negative decimal integer");
    }
    if (text_[start] == '0' && pos_ - start > 1) {
      return Error("a dimension with a leading zero");
    }
    if (!AtEnd() && (absl::ascii_isalnum(static_cast<unsigned char>(Peek())) ||
                     Peek() == '_' || Peek() == '.')) {
      return Error("a dimension that is not a decimal integer");
    }
    return v;
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

absl::Status UnsupportedDescr(absl::string_view raw) {
  return absl::UnimplementedError(absl::StrCat(
      ".npy dtype descr ", ForMessage(raw),
      " is not supported (supported: little-endian or native bool, int8..64, "
      "uint8..64, float32, float64)"));
}

absl::Status MakeDataLoss(absl::string_view message) {
  return absl::DataLossError(message);
}
absl::Status MakeInvalidArgument(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

std::string ShapeRepr(absl::Span<const uint64_t> shape) {
  if (shape.size() == 1) return absl::StrCat("(", shape[0], ",)");
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

// True if the array's element order differs between C and Fortran order: at
// least two dimensions longer than 1, and no zero one (numpy's
// f_contiguous-and-not-c_contiguous).
bool OrderMatters(absl::Span<const uint64_t> shape) {
  size_t long_dims = 0;
  for (uint64_t dim : shape) {
    if (dim == 0) return false;
    if (dim > 1) ++long_dims;
  }
  return long_dims >= 2;
}

}  // namespace

absl::string_view NpyDescr(NpyDtype dtype) { return Info(dtype).descr; }
absl::string_view NpyDtypeName(NpyDtype dtype) { return Info(dtype).name; }
size_t NpyItemSize(NpyDtype dtype) { return Info(dtype).itemsize; }

absl::StatusOr<NpyArray> NpyArray::Parse(const SharedBytes& npy) {
  const absl::string_view in = npy.view();
  if (in.size() < kMagic.size() + 2 || in.substr(0, kMagic.size()) != kMagic) {
    return absl::DataLossError(
        absl::StrCat("not a .npy array: it does not start with \\x93NUMPY: ",
                     QuoteForMessage(in.substr(0, 8))));
  }
  const uint8_t major = static_cast<uint8_t>(in[6]);
  const uint8_t minor = static_cast<uint8_t>(in[7]);
  if (major < 1 || major > 3 || minor != 0) {
    return absl::UnimplementedError(
        absl::StrCat(".npy format version ", major, ".", minor,
                     " is not supported (only 1.0, 2.0 and 3.0)"));
  }
  const size_t length_size = major == 1 ? 2 : 4;
  const size_t preamble = kMagic.size() + 2 + length_size;
  if (in.size() < preamble) {
    return absl::DataLossError(
        absl::StrCat(".npy array of ", in.size(),
                     " bytes is truncated inside its header length"));
  }
  const uint32_t header_size = ReadLe(in.data() + 8, length_size);
  if (header_size > kMaxNpyHeaderSize) {
    return absl::DataLossError(
        absl::StrCat(".npy header of ", header_size,
                     " bytes is longer than the limit of ", kMaxNpyHeaderSize));
  }
  if (in.size() - preamble < header_size) {
    return absl::DataLossError(absl::StrCat(
        ".npy header of ", header_size, " bytes is truncated: only ",
        in.size() - preamble, " bytes follow the header length"));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      HeaderDict dict, DictParser(in.substr(preamble, header_size)).Parse());

  std::optional<NpyDtype> dtype;
  if (dict.descr.has_value()) dtype = DtypeFromDescr(*dict.descr);
  if (!dtype.has_value()) return UnsupportedDescr(dict.descr_raw);

  const size_t itemsize = NpyItemSize(*dtype);
  PROXYSTORE_ASSIGN_OR_RETURN(
      uint64_t count, ElementCount(*dict.shape, itemsize, &MakeDataLoss));
  const size_t data_offset = preamble + header_size;
  const uint64_t want = count * itemsize;
  if (in.size() - data_offset != want) {
    return absl::DataLossError(absl::StrCat(
        ".npy array of ", NpyDescr(*dtype), " shape ", ShapeRepr(*dict.shape),
        " needs ", want, " data bytes, but ", in.size() - data_offset,
        " follow the header"));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes data, npy.Suffix(data_offset));
  return NpyArray(*dtype, *std::move(dict.shape), count, *dict.fortran_order,
                  major, std::move(data));
}

absl::StatusOr<NpyArray> NpyArray::Create(NpyDtype dtype,
                                          std::vector<uint64_t> shape,
                                          bool fortran_order,
                                          SharedBytes data) {
  if (shape.size() > kMaxNpyDims) {
    return absl::InvalidArgumentError(absl::StrCat("an array of ", shape.size(),
                                                   " dimensions has more than ",
                                                   kMaxNpyDims));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      uint64_t count,
      ElementCount(shape, NpyItemSize(dtype), &MakeInvalidArgument));
  if (data.size() != count * NpyItemSize(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an array of ", NpyDescr(dtype), " shape ", ShapeRepr(shape), " is ",
        count * NpyItemSize(dtype), " bytes, not ", data.size()));
  }
  return NpyArray(dtype, std::move(shape), count, fortran_order, 1,
                  std::move(data));
}

absl::Status NpyArray::CheckType(NpyDtype want,
                                 absl::string_view want_name) const {
  if (want == dtype_) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the array's dtype is ", NpyDescr(dtype_), " (", NpyDtypeName(dtype_),
      "), not ", NpyDescr(want), " (", want_name, ")"));
}

absl::Status NpyArray::CheckBoolBytes() const {
  const absl::string_view bytes = data_.view();
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (static_cast<uint8_t>(bytes[i]) > 1) {
      return absl::DataLossError(
          absl::StrCat("bool array element ", i, " is byte ",
                       static_cast<int>(static_cast<uint8_t>(bytes[i])),
                       ", neither 0 nor 1"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<NpyArray> NpyArray::Aligned() const {
  if (reinterpret_cast<uintptr_t>(data_.data()) % 8 == 0) return *this;
  // malloc aligns to alignof(max_align_t) >= 8.
  static_assert(alignof(std::max_align_t) >= 8);
  const size_t n = data_.size();
  std::shared_ptr<char> copy(static_cast<char*>(std::malloc(n == 0 ? 1 : n)),
                             [](char* p) { std::free(p); });
  if (copy == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", n, " bytes for an aligned copy"));
  }
  if (n > 0) std::memcpy(copy.get(), data_.data(), n);
  const absl::string_view view(copy.get(), n);
  return NpyArray(dtype_, shape_, size_, fortran_order_, format_version_,
                  SharedBytes::FromOwner(std::move(copy), view));
}

namespace npy_internal {

std::string WrapHeader(absl::string_view dict) {
  // numpy's _wrap_header: the dict, then spaces and '\n' up to a multiple of
  // kArrayAlign counted from the file's start (a full kArrayAlign of padding
  // when already aligned).
  const size_t hlen = dict.size() + 1;
  size_t length_size = 2;
  size_t pad =
      kArrayAlign - (kMagic.size() + 2 + length_size + hlen) % kArrayAlign;
  if (hlen + pad > std::numeric_limits<uint16_t>::max()) {
    length_size = 4;
    pad = kArrayAlign - (kMagic.size() + 2 + length_size + hlen) % kArrayAlign;
  }
  const size_t header_size = hlen + pad;
  std::string out;
  out.reserve(kMagic.size() + 2 + length_size + header_size);
  out.append(kMagic.data(), kMagic.size());
  out.push_back(length_size == 2 ? '\x01' : '\x02');
  out.push_back('\0');
  for (size_t i = 0; i < length_size; ++i) {
    out.push_back(static_cast<char>((header_size >> (8 * i)) & 0xff));
  }
  out.append(dict.data(), dict.size());
  out.append(pad, ' ');
  out.push_back('\n');
  return out;
}

absl::StatusOr<SharedBytes> WriteWithPrefix(absl::string_view prefix,
                                            NpyDtype dtype,
                                            absl::Span<const uint64_t> shape,
                                            bool fortran_order,
                                            absl::string_view data) {
  if (shape.size() > kMaxNpyDims) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write an array of ", shape.size(),
                     " dimensions: the limit is ", kMaxNpyDims));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      uint64_t count,
      ElementCount(shape, NpyItemSize(dtype), &MakeInvalidArgument));
  if (data.size() != count * NpyItemSize(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot write an array of shape ", ShapeRepr(shape), ": it needs ",
        count, " ", NpyDtypeName(dtype), " elements (",
        count * NpyItemSize(dtype), " bytes), not ", data.size(), " bytes"));
  }
  fortran_order = fortran_order && OrderMatters(shape);
  // numpy's _write_array_header: the sorted keys with repr() values, then
  // room for the growth axis to reach kGrowthAxisMaxDigits digits.
  std::string dict =
      absl::StrCat("{'descr': '", NpyDescr(dtype),
                   "', 'fortran_order': ", fortran_order ? "True" : "False",
                   ", 'shape': ", ShapeRepr(shape), ", }");
  if (!shape.empty()) {
    const size_t digits =
        absl::StrCat(fortran_order ? shape.back() : shape.front()).size();
    if (digits < kGrowthAxisMaxDigits) {
      dict.append(kGrowthAxisMaxDigits - digits, ' ');
    }
  }
  const std::string header = WrapHeader(dict);
  std::string out;
  out.reserve(prefix.size() + header.size() + data.size());
  out.append(prefix.data(), prefix.size());
  out.append(header);
  out.append(data.data(), data.size());
  return SharedBytes::FromString(std::move(out));
}

}  // namespace npy_internal

absl::StatusOr<SharedBytes> WriteNpy(NpyDtype dtype,
                                     absl::Span<const uint64_t> shape,
                                     bool fortran_order,
                                     absl::string_view data) {
  return npy_internal::WriteWithPrefix("", dtype, shape, fortran_order, data);
}

absl::StatusOr<SharedBytes> WriteNpy(const NpyArray& array) {
  return WriteNpy(array.dtype(), array.shape(), array.fortran_order(),
                  array.data().view());
}

}  // namespace proxystore::interop
