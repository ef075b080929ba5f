// Python ProxyStore 1.0's serialize()/deserialize() byte format, for the
// values with a plain C++ counterpart: bytes, str and NumPy arrays.
//
// proxystore.serialize.serialize(obj) writes a two-letter identifier of the
// serializer it used, a '\n', then that serializer's output:
//   "BS\n" + the bytes                     bytes
//   "US\n" + UTF-8 text                    str
//   "NP\n" + numpy.save(obj) (.npy)        numpy.ndarray (see npy.h)
//   "PD\n" + pickle                        pandas.DataFrame
//   "PL\n" + Arrow IPC                     polars.DataFrame
//   "PK\n" + pickle (protocol 5)           anything else
//   "CP\n" + cloudpickle                   what pickle cannot serialize
// deserialize() reads the first line (through the first '\n', or all of the
// buffer if there is none), strips ASCII whitespace from it, and looks the
// rest up among those identifiers; ReadPythonHeader does exactly that, so
// what Python reads, this reads. For example:
//   serialize(b"hi")                        "BS\nhi"
//   serialize("\u00e9")                     "US\n\xc3\xa9"
//   serialize(numpy.arange(3, dtype='<i8'))
//       "NP\n\x93NUMPY\x01\x00v\x00" (magic, version 1.0, header length 118)
//       "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }"
//       + 60 spaces + "\n" (the data at 128 bytes into the .npy)
//       + 0, 1, 2 as 8-byte little-endian integers
//
// Pandas, polars, pickle and cloudpickle data are Python objects: decoding
// them is Unimplemented (naming the format), and nothing here ever looks
// inside them. The encoders write exactly what Python's serialize() writes for
// the same value (the tests hold them to golden files Python wrote).
//
//   PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes wire,
//                               EncodePythonNumpy<double>(v, {2, 3}));
//   // ... Python: deserialize(wire) is a 2x3 float64 ndarray.
//   switch (IdentifyPythonFormat(data.view())) {
//     case PythonFormat::kStr: {
//       PROXYSTORE_ASSIGN_OR_RETURN(std::string s,
//                                   DecodePythonStr(data.view()));
//       ...
//
// Thread-safety: stateless; every function may be called from any number of
// threads.
#ifndef PROXYSTORE_INTEROP_PYTHON_FORMAT_H_
#define PROXYSTORE_INTEROP_PYTHON_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "proxystore/base/bytes.h"
#include "proxystore/interop/npy.h"

namespace proxystore::interop {

// Which of ProxyStore 1.0's serializers wrote a buffer.
enum class PythonFormat {
  kBytes,        // "BS"
  kStr,          // "US"
  kNumpy,        // "NP"
  kPandas,       // "PD"
  kPolars,       // "PL"
  kPickle,       // "PK"
  kCloudpickle,  // "CP"
  kUnknown,      // anything else: Python's deserialize() refuses it
};

// "bytes", "str", "numpy", "pandas", "polars", "pickle", "cloudpickle",
// "unknown".
absl::string_view PythonFormatName(PythonFormat format);
// "BS", "US", "NP", "PD", "PL", "PK", "CP"; "" for kUnknown.
absl::string_view PythonFormatIdentifier(PythonFormat format);

struct PythonHeader {
  PythonFormat format = PythonFormat::kUnknown;
  // The identifier line without the whitespace Python strips (its '\n'
  // included): a view into the data passed to ReadPythonHeader.
  absl::string_view identifier;
  // Bytes before the serializer's output: 3 for what serialize() writes.
  size_t payload_offset = 0;
};

// The identifier line of `data`, read as Python's deserialize() reads it.
// Never fails: data Python would refuse is kUnknown.
PythonHeader ReadPythonHeader(absl::string_view data);
inline PythonFormat IdentifyPythonFormat(absl::string_view data) {
  return ReadPythonHeader(data).format;
}

// Decoders. Each returns DataLoss for kUnknown data, Unimplemented for
// pandas, polars, pickle and cloudpickle data, and InvalidArgument for data
// of another decodable format (e.g. DecodePythonStr of bytes data).

// Python bytes: the payload, a zero-copy slice of `data`.
absl::StatusOr<SharedBytes> DecodePythonBytes(const SharedBytes& data);
// Python str: the UTF-8 payload, copied. DataLoss if it is not valid UTF-8
// (Python's str.encode() never writes such; surrogates are refused too).
absl::StatusOr<std::string> DecodePythonStr(absl::string_view data);
// A NumPy array (NpyArray::Parse of the payload; its errors). The array's
// data is a slice of `data`; the framing leaves it misaligned for items
// wider than a byte (see NpyArray::As).
absl::StatusOr<NpyArray> DecodePythonNumpy(const SharedBytes& data);

// Whatever of the three `data` holds.
using PythonValue = std::variant<SharedBytes, std::string, NpyArray>;
absl::StatusOr<PythonValue> DecodePython(const SharedBytes& data);

// Encoders: byte for byte what Python's serialize() writes for the value.
SharedBytes EncodePythonBytes(absl::string_view bytes);
// InvalidArgument if `utf8` is not valid UTF-8 (Python could not decode it).
absl::StatusOr<SharedBytes> EncodePythonStr(absl::string_view utf8);
// A NumPy array; errors as WriteNpy's.
absl::StatusOr<SharedBytes> EncodePythonNumpy(NpyDtype dtype,
                                              absl::Span<const uint64_t> shape,
                                              bool fortran_order,
                                              absl::string_view data);
absl::StatusOr<SharedBytes> EncodePythonNumpy(const NpyArray& array);
template <NpyElement T>
absl::StatusOr<SharedBytes> EncodePythonNumpy(absl::Span<const T> values,
                                              absl::Span<const uint64_t> shape,
                                              bool fortran_order = false) {
  return EncodePythonNumpy(
      NpyDtypeOf<T>(), shape, fortran_order,
      absl::string_view(reinterpret_cast<const char*>(values.data()),
                        values.size() * sizeof(T)));
}
// A 1-D array.
template <NpyElement T>
absl::StatusOr<SharedBytes> EncodePythonNumpy(absl::Span<const T> values) {
  const uint64_t shape[1] = {values.size()};
  return EncodePythonNumpy<T>(values, shape);
}

// The byte offset of the first invalid UTF-8 sequence in `s` (overlong
// forms, surrogates and code points above U+10FFFF are invalid, as for
// Python's decoder), or s.size() if it is all valid.
size_t FirstInvalidUtf8(absl::string_view s);

}  // namespace proxystore::interop

#endif  // PROXYSTORE_INTEROP_PYTHON_FORMAT_H_
