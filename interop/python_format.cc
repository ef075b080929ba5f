#include "proxystore/interop/python_format.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/status.h"
#include "proxystore/interop/npy.h"

namespace proxystore::interop {
namespace {

struct FormatInfo {
  PythonFormat format;
  absl::string_view identifier;
  absl::string_view name;
};

constexpr FormatInfo kFormats[] = {
    {PythonFormat::kBytes, "BS", "bytes"},
    {PythonFormat::kStr, "US", "str"},
    {PythonFormat::kNumpy, "NP", "numpy"},
    {PythonFormat::kPandas, "PD", "pandas"},
    {PythonFormat::kPolars, "PL", "polars"},
    {PythonFormat::kPickle, "PK", "pickle"},
    {PythonFormat::kCloudpickle, "CP", "cloudpickle"},
};

// How much of an unknown identifier line an error message quotes.
constexpr size_t kQuoteBytes = 32;

// Python's bytes.strip() whitespace.
bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' ||
         c == '\x0c';
}

// The payload of `data` if it is of `want`, else the error the file comment
// of the header promises.
absl::StatusOr<size_t> PayloadOffset(absl::string_view data,
                                     PythonFormat want) {
  const PythonHeader header = ReadPythonHeader(data);
  if (header.format == want) return header.payload_offset;
  switch (header.format) {
    case PythonFormat::kUnknown:
      return absl::DataLossError(absl::StrCat(
          "not data from Python ProxyStore's serialize(): its first line ",
          QuoteForMessage(header.identifier, kQuoteBytes),
          " is not a serializer identifier (BS, US, NP, PD, PL, PK, CP)"));
    case PythonFormat::kPandas:
    case PythonFormat::kPolars:
    case PythonFormat::kPickle:
    case PythonFormat::kCloudpickle:
      return absl::UnimplementedError(absl::StrCat(
          "the data is a Python object serialized by ProxyStore's ",
          PythonFormatName(header.format), " serializer (identifier '",
          header.identifier, "'), which cannot be read in C++ (wanted ",
          PythonFormatName(want), "); only bytes, str and numpy can"));
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("the data is Python ", PythonFormatName(header.format),
                       " (identifier '", header.identifier, "'), not ",
                       PythonFormatName(want), " (identifier '",
                       PythonFormatIdentifier(want), "')"));
  }
}

SharedBytes WithPrefix(PythonFormat format, absl::string_view payload) {
  std::string out;
  out.reserve(3 + payload.size());
  out.append(PythonFormatIdentifier(format).data(), 2);
  out.push_back('\n');
  out.append(payload.data(), payload.size());
  return SharedBytes::FromString(std::move(out));
}

}  // namespace

absl::string_view PythonFormatName(PythonFormat format) {
  for (const FormatInfo& info : kFormats) {
    if (info.format == format) return info.name;
  }
  return "unknown";
}

absl::string_view PythonFormatIdentifier(PythonFormat format) {
  for (const FormatInfo& info : kFormats) {
    if (info.format == format) return info.identifier;
  }
  return "";
}

PythonHeader ReadPythonHeader(absl::string_view data) {
  // io.BytesIO(data).readline().strip()
  const size_t newline = data.find('\n');
  const size_t line_end =
      newline == absl::string_view::npos ? data.size() : newline + 1;
  absl::string_view id = data.substr(0, line_end);
  while (!id.empty() && IsAsciiSpace(id.front())) id.remove_prefix(1);
  while (!id.empty() && IsAsciiSpace(id.back())) id.remove_suffix(1);
  PythonHeader header;
  header.identifier = id;
  header.payload_offset = line_end;
  for (const FormatInfo& info : kFormats) {
    if (info.identifier == id) {
      header.format = info.format;
      break;
    }
  }
  return header;
}

size_t FirstInvalidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlong forms
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // no overlong forms
      if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return i;
    }
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return n;
}

absl::StatusOr<SharedBytes> DecodePythonBytes(const SharedBytes& data) {
  PROXYSTORE_ASSIGN_OR_RETURN(size_t offset,
                              PayloadOffset(data.view(), PythonFormat::kBytes));
  return data.Suffix(offset);
}

absl::StatusOr<std::string> DecodePythonStr(absl::string_view data) {
  PROXYSTORE_ASSIGN_OR_RETURN(size_t offset,
                              PayloadOffset(data, PythonFormat::kStr));
  const absl::string_view text = data.substr(offset);
  if (const size_t bad = FirstInvalidUtf8(text); bad != text.size()) {
    return absl::DataLossError(
        absl::StrCat("Python str data of ", text.size(),
                     " bytes is not valid UTF-8 at byte ", bad, ": ",
                     QuoteForMessage(text.substr(bad, 4))));
  }
  return std::string(text);
}

absl::StatusOr<NpyArray> DecodePythonNumpy(const SharedBytes& data) {
  PROXYSTORE_ASSIGN_OR_RETURN(size_t offset,
                              PayloadOffset(data.view(), PythonFormat::kNumpy));
  PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes npy, data.Suffix(offset));
  absl::StatusOr<NpyArray> array = NpyArray::Parse(npy);
  if (!array.ok()) return Annotate(array.status(), "Python numpy data");
  return array;
}

absl::StatusOr<PythonValue> DecodePython(const SharedBytes& data) {
  switch (IdentifyPythonFormat(data.view())) {
    case PythonFormat::kBytes: {
      PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes bytes, DecodePythonBytes(data));
      return PythonValue(std::move(bytes));
    }
    case PythonFormat::kStr: {
      PROXYSTORE_ASSIGN_OR_RETURN(std::string s, DecodePythonStr(data.view()));
      return PythonValue(std::move(s));
    }
    case PythonFormat::kNumpy: {
      PROXYSTORE_ASSIGN_OR_RETURN(NpyArray array, DecodePythonNumpy(data));
      return PythonValue(std::move(array));
    }
    default:
      // Unknown or a Python object: the error of any decoder.
      return DecodePythonBytes(data).status();
  }
}

SharedBytes EncodePythonBytes(absl::string_view bytes) {
  return WithPrefix(PythonFormat::kBytes, bytes);
}

absl::StatusOr<SharedBytes> EncodePythonStr(absl::string_view utf8) {
  if (const size_t bad = FirstInvalidUtf8(utf8); bad != utf8.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot write a Python str: the text is not valid UTF-8 at byte ", bad,
        ": ", QuoteForMessage(utf8.substr(bad, 4))));
  }
  return WithPrefix(PythonFormat::kStr, utf8);
}

absl::StatusOr<SharedBytes> EncodePythonNumpy(NpyDtype dtype,
                                              absl::Span<const uint64_t> shape,
                                              bool fortran_order,
                                              absl::string_view data) {
  return npy_internal::WriteWithPrefix("NP\n", dtype, shape, fortran_order,
                                       data);
}

absl::StatusOr<SharedBytes> EncodePythonNumpy(const NpyArray& array) {
  return EncodePythonNumpy(array.dtype(), array.shape(), array.fortran_order(),
                           array.data().view());
}

}  // namespace proxystore::interop
