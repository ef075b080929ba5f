// NumPy .npy arrays: a strict reader and a writer of exactly what numpy.save
// writes, for the dtypes that have a plain C++ counterpart.
//
// A .npy file is
//   "\x93NUMPY" major minor   magic and format version (1.0, 2.0 or 3.0)
//   HLEN                      header length: uint16 LE (1.0), uint32 LE (2.0,
//                             3.0)
//   header (HLEN bytes)       a Python dict literal, padded with spaces and a
//                             final '\n' so that the data starts at a multiple
//                             of 64 bytes from the file's start; latin-1 text
//                             in 1.0/2.0, UTF-8 in 3.0
//   data                      the elements back to back, in C (row-major) or,
//                             if fortran_order, column-major order
// for example (numpy.save of numpy.arange(6, dtype='<i4').reshape(2, 3)):
//   \x93NUMPY \x01\x00 \x76\x00
//   {'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }   ...  \n
//   00 00 00 00 01 00 00 00 ... 05 00 00 00
//
// Reading (NpyArray::Parse) treats every byte as untrusted. The header must be
// at most kMaxNpyHeaderSize bytes, and is parsed by hand (no Python literal
// evaluation): the dict must have exactly the keys 'descr', 'fortran_order'
// and 'shape' (any order, either quote style, optional trailing comma, free
// whitespace), 'fortran_order' True or False, and 'shape' a tuple of at most
// kMaxNpyDims non-negative decimal integers. The shape's byte count must fit
// in int64 (as numpy requires) and the data must be exactly count * itemsize
// bytes. Corrupt data is DataLoss; a well-formed array of a dtype without a
// C++ counterpart here (big-endian, float16, complex, unicode, bytes, object,
// datetime, structured or sub-array dtypes) or of an unknown format version is
// Unimplemented, naming the descr.
//
// Supported dtypes (NpyDtype), with the descr numpy writes for each and the
// forms also read:
//   bool                '|b1'   ('<b1', '=b1', '>b1', 'b1', '?')
//   int8, uint8         '|i1', '|u1'   (any byte order char, or none)
//   int16..int64        '<i2', '<i4', '<i8'   ('=' or no byte order char:
//   uint16..uint64      '<u2', '<u4', '<u8'    native, which is little-endian
//   float32, float64    '<f4', '<f8'           on every host we build for)
//
//   PROXYSTORE_ASSIGN_OR_RETURN(NpyArray a, NpyArray::Parse(bytes));
//   // a.shape() == {2, 3}, a.dtype() == NpyDtype::kInt32
//   PROXYSTORE_ASSIGN_OR_RETURN(std::vector<int32_t> v, a.ToVector<int32_t>());
//   PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes npy,
//                               WriteNpy<int32_t>(v, /*shape=*/{2, 3}));
//
// Element data is never copied by Parse: NpyArray::data() is a slice of the
// parsed buffer and As<T>() views it in place when it is aligned for T.
// Elements are in storage order (column-major when fortran_order()).
//
// Thread-safety: NpyArray is an immutable value (shared like SharedBytes);
// every function here may be called from any number of threads.
#ifndef PROXYSTORE_INTEROP_NPY_H_
#define PROXYSTORE_INTEROP_NPY_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "proxystore/base/bytes.h"

namespace proxystore::interop {

static_assert(std::endian::native == std::endian::little,
              "the .npy reader and writer assume a little-endian host");

// The longest header Parse accepts (version 1.0 headers are at most 65535
// bytes; numpy writes fewer than 1 KiB for any shape it supports).
inline constexpr size_t kMaxNpyHeaderSize = 64 << 10;
// The most dimensions Parse and WriteNpy accept (numpy 2's limit; numpy 1's
// is 32).
inline constexpr size_t kMaxNpyDims = 64;

enum class NpyDtype {
  kBool,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kUInt8,
  kUInt16,
  kUInt32,
  kUInt64,
  kFloat32,
  kFloat64,
};

// The descr numpy writes for `dtype` (numpy's dtype.str): "|b1", "<i4", ...
absl::string_view NpyDescr(NpyDtype dtype);
// The C++ name of the element type: "bool", "int32_t", "double", ...
absl::string_view NpyDtypeName(NpyDtype dtype);
// Bytes per element: 1, 2, 4 or 8.
size_t NpyItemSize(NpyDtype dtype);

// The C++ types with an NpyDtype. (long long, char and the like are not:
// their numpy counterparts are spelled by the fixed-width types.)
template <typename T>
concept NpyElement = std::is_same_v<T, bool> || std::is_same_v<T, int8_t> ||
    std::is_same_v<T, int16_t> || std::is_same_v<T, int32_t> ||
    std::is_same_v<T, int64_t> || std::is_same_v<T, uint8_t> ||
    std::is_same_v<T, uint16_t> || std::is_same_v<T, uint32_t> ||
    std::is_same_v<T, uint64_t> || std::is_same_v<T, float> ||
    std::is_same_v<T, double>;

template <NpyElement T>
constexpr NpyDtype NpyDtypeOf() {
  if constexpr (std::is_same_v<T, bool>) return NpyDtype::kBool;
  if constexpr (std::is_same_v<T, int8_t>) return NpyDtype::kInt8;
  if constexpr (std::is_same_v<T, int16_t>) return NpyDtype::kInt16;
  if constexpr (std::is_same_v<T, int32_t>) return NpyDtype::kInt32;
  if constexpr (std::is_same_v<T, int64_t>) return NpyDtype::kInt64;
  if constexpr (std::is_same_v<T, uint8_t>) return NpyDtype::kUInt8;
  if constexpr (std::is_same_v<T, uint16_t>) return NpyDtype::kUInt16;
  if constexpr (std::is_same_v<T, uint32_t>) return NpyDtype::kUInt32;
  if constexpr (std::is_same_v<T, uint64_t>) return NpyDtype::kUInt64;
  if constexpr (std::is_same_v<T, float>) return NpyDtype::kFloat32;
  if constexpr (std::is_same_v<T, double>) return NpyDtype::kFloat64;
}

// A parsed (or assembled) n-dimensional array: dtype, shape, order, and the
// element bytes as a SharedBytes that keeps its buffer alive.
class NpyArray {
 public:
  // Parses a whole .npy buffer (see the file comment for what is checked).
  // The result's data() is a slice of `npy`, sharing its owner.
  static absl::StatusOr<NpyArray> Parse(const SharedBytes& npy);

  // An array over `data` (element bytes in storage order); InvalidArgument
  // unless the shape has at most kMaxNpyDims dimensions, its byte count fits
  // in int64 and `data` is exactly that many bytes.
  static absl::StatusOr<NpyArray> Create(NpyDtype dtype,
                                         std::vector<uint64_t> shape,
                                         bool fortran_order, SharedBytes data);

  NpyDtype dtype() const { return dtype_; }
  const std::vector<uint64_t>& shape() const { return shape_; }
  size_t ndim() const { return shape_.size(); }
  // Number of elements: the product of shape() (1 for a 0-d array).
  uint64_t size() const { return size_; }
  bool fortran_order() const { return fortran_order_; }
  // The .npy format version the array was read from (1, 2 or 3; 1 when made
  // by Create).
  int format_version() const { return format_version_; }
  // size() * NpyItemSize(dtype()) bytes, little-endian, in storage order.
  const SharedBytes& data() const { return data_; }

  // The elements in place, without a copy. InvalidArgument if T is not
  // exactly the array's dtype; FailedPrecondition if the data is not aligned
  // for T inside its buffer (ProxyStore's "NP\n" framing puts it 3 bytes past
  // a 64-byte boundary: use ToVector() or Aligned() for such data). For bool,
  // DataLoss if a byte is neither 0 nor 1 (C++ bool has no other values).
  template <NpyElement T>
  absl::StatusOr<absl::Span<const T>> As() const;

  // The elements copied into a vector, whatever the alignment. Errors as
  // As() minus FailedPrecondition.
  template <NpyElement T>
  absl::StatusOr<std::vector<T>> ToVector() const;

  // This array if its data is 8-byte aligned (enough for every dtype), else
  // a copy of it in a fresh buffer that is. ResourceExhausted if the copy
  // cannot be allocated.
  absl::StatusOr<NpyArray> Aligned() const;

 private:
  NpyArray(NpyDtype dtype, std::vector<uint64_t> shape, uint64_t size,
           bool fortran_order, int format_version, SharedBytes data)
      : dtype_(dtype),
        shape_(std::move(shape)),
        size_(size),
        fortran_order_(fortran_order),
        format_version_(format_version),
        data_(std::move(data)) {}

  absl::Status CheckType(NpyDtype want, absl::string_view want_name) const;
  absl::Status CheckBoolBytes() const;

  NpyDtype dtype_ = NpyDtype::kUInt8;
  std::vector<uint64_t> shape_;
  uint64_t size_ = 0;
  bool fortran_order_ = false;
  int format_version_ = 1;
  SharedBytes data_;
};

// A .npy buffer of `data` (shape.product() * NpyItemSize(dtype) element
// bytes in storage order), byte for byte what numpy.save writes for such an
// array: version 1.0 when the header fits in it (always, for shapes numpy
// supports), else 2.0; 'fortran_order' is written True only when it changes
// the element order (two or more dimensions longer than 1, no zero one), as
// numpy does. InvalidArgument if the shape has more than kMaxNpyDims
// dimensions, its byte count overflows int64, or `data` is not that size.
absl::StatusOr<SharedBytes> WriteNpy(NpyDtype dtype,
                                     absl::Span<const uint64_t> shape,
                                     bool fortran_order,
                                     absl::string_view data);

// The same for a typed array of `shape`: WriteNpy<float>(v, {2, 3}).
template <NpyElement T>
absl::StatusOr<SharedBytes> WriteNpy(absl::Span<const T> values,
                                     absl::Span<const uint64_t> shape,
                                     bool fortran_order = false) {
  return WriteNpy(
      NpyDtypeOf<T>(), shape, fortran_order,
      absl::string_view(reinterpret_cast<const char*>(values.data()),
                        values.size() * sizeof(T)));
}

// A 1-D array of `values`.
template <NpyElement T>
absl::StatusOr<SharedBytes> WriteNpy(absl::Span<const T> values) {
  const uint64_t shape[1] = {values.size()};
  return WriteNpy<T>(values, shape);
}

// `array` as numpy.save would write it.
absl::StatusOr<SharedBytes> WriteNpy(const NpyArray& array);

// ----------------------------------------------------------- internals ---

namespace npy_internal {

// WriteNpy with `prefix` written before the .npy bytes in the same buffer
// (the ProxyStore framing writes "NP\n" so, without a second copy).
absl::StatusOr<SharedBytes> WriteWithPrefix(absl::string_view prefix,
                                            NpyDtype dtype,
                                            absl::Span<const uint64_t> shape,
                                            bool fortran_order,
                                            absl::string_view data);

// The magic, version, length and padded header numpy writes for the dict
// text `dict` (without the padding numpy adds for growth): version 1.0 if
// its length fits in 16 bits, else 2.0.
std::string WrapHeader(absl::string_view dict);

}  // namespace npy_internal

template <NpyElement T>
absl::StatusOr<absl::Span<const T>> NpyArray::As() const {
  if (absl::Status s =
          CheckType(NpyDtypeOf<T>(), NpyDtypeName(NpyDtypeOf<T>()));
      !s.ok()) {
    return s;
  }
  if (reinterpret_cast<uintptr_t>(data_.data()) % alignof(T) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the ", NpyDescr(dtype_), " array's data is not ", alignof(T),
        "-byte aligned in its buffer, so it cannot be viewed in place as ",
        NpyDtypeName(dtype_), ": use ToVector() or Aligned()"));
  }
  if constexpr (std::is_same_v<T, bool>) {
    if (absl::Status s = CheckBoolBytes(); !s.ok()) return s;
  }
  if (size_ == 0) return absl::Span<const T>();
  return absl::Span<const T>(reinterpret_cast<const T*>(data_.data()),
                             static_cast<size_t>(size_));
}

template <NpyElement T>
absl::StatusOr<std::vector<T>> NpyArray::ToVector() const {
  if (absl::Status s =
          CheckType(NpyDtypeOf<T>(), NpyDtypeName(NpyDtypeOf<T>()));
      !s.ok()) {
    return s;
  }
  if constexpr (std::is_same_v<T, bool>) {
    if (absl::Status s = CheckBoolBytes(); !s.ok()) return s;
    std::vector<bool> out(static_cast<size_t>(size_));
    for (size_t i = 0; i < out.size(); ++i) out[i] = data_.data()[i] != 0;
    return out;
  } else {
    std::vector<T> out(static_cast<size_t>(size_));
    if (!out.empty()) std::memcpy(out.data(), data_.data(), data_.size());
    return out;
  }
}

}  // namespace proxystore::interop

#endif  // PROXYSTORE_INTEROP_NPY_H_
