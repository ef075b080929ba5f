// Fuzz target: the NumPy .npy reader (interop/npy.h) and Python ProxyStore's
// serialize() framing (interop/python_format.h).
//
// The input is read three ways, each at an aligned and at an odd address:
// as a .npy buffer (NpyArray::Parse), as serialize() output (DecodePython),
// and with "NP\n" in front (a .npy inside the framing). Invariants checked:
//  - errors are DataLoss or Unimplemented (and for the typed accessors
//    InvalidArgument/FailedPrecondition/DataLoss as documented), the same at
//    both addresses;
//  - a parsed array is consistent: at most kMaxNpyDims dimensions, size() is
//    the product of the shape, data() is size() * itemsize bytes and the
//    input's tail;
//  - ToVector of the array's own type succeeds (bool: unless a byte is
//    neither 0 nor 1) and As agrees with it where it can view in place;
//  - WriteNpy of a parsed array parses back to the same dtype, shape and
//    data, and is canonical (writing that again gives the same bytes); an
//    input that is already what WriteNpy writes is reproduced exactly;
//  - ReadPythonHeader stays inside the input; a decoded bytes/str/array
//    value re-encodes to data that decodes to the same value, and to the very
//    input when the input was canonical.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proxystore/base/bytes.h"
#include "proxystore/fuzz/fuzz_util.h"
#include "proxystore/interop/npy.h"
#include "proxystore/interop/python_format.h"

namespace proxystore::fuzz {
namespace {

using interop::NpyArray;
using interop::NpyDtype;
using interop::PythonFormat;
using interop::PythonValue;

bool SameArray(const NpyArray& a, const NpyArray& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         a.data().view() == b.data().view();
}

std::string Describe(const NpyArray& a) {
  return absl::StrCat(interop::NpyDescr(a.dtype()), " ndim ", a.ndim(),
                      " size ", a.size(), " fortran ", a.fortran_order());
}

template <typename T>
void CheckAccess(const NpyArray& a) {
  absl::StatusOr<std::vector<T>> copy = a.ToVector<T>();
  absl::StatusOr<absl::Span<const T>> view = a.As<T>();
  if (a.dtype() != interop::NpyDtypeOf<T>()) {
    PROXYSTORE_FUZZ_CHECK(
        HasCode(copy.status(), {absl::StatusCode::kInvalidArgument}) &&
            HasCode(view.status(), {absl::StatusCode::kInvalidArgument}),
        copy.status().ToString());
    return;
  }
  if (!copy.ok()) {
    constexpr bool kBool = std::is_same_v<T, bool>;
    PROXYSTORE_FUZZ_CHECK(
        kBool && HasCode(copy.status(), {absl::StatusCode::kDataLoss}),
        copy.status().ToString());
    PROXYSTORE_FUZZ_CHECK(view.status() == copy.status(),
                          view.status().ToString());
    return;
  }
  PROXYSTORE_FUZZ_CHECK(copy->size() == a.size(), Describe(a));
  if (!view.ok()) {
    PROXYSTORE_FUZZ_CHECK(
        HasCode(view.status(), {absl::StatusCode::kFailedPrecondition}) &&
            alignof(T) > 1,
        view.status().ToString());
    return;
  }
  PROXYSTORE_FUZZ_CHECK(view->size() == copy->size(), Describe(a));
  for (size_t i = 0; i < view->size(); ++i) {
    if constexpr (std::is_same_v<T, bool>) {
      PROXYSTORE_FUZZ_CHECK((*view)[i] == (*copy)[i], Describe(a));
    } else {
      // Bitwise for floats: NaN != NaN.
      PROXYSTORE_FUZZ_CHECK(
          std::memcmp(&(*view)[i], &(*copy)[i], sizeof(T)) == 0, Describe(a));
    }
  }
}

void CheckAllAccess(const NpyArray& a) {
  CheckAccess<bool>(a);
  CheckAccess<int8_t>(a);
  CheckAccess<int16_t>(a);
  CheckAccess<int32_t>(a);
  CheckAccess<int64_t>(a);
  CheckAccess<uint8_t>(a);
  CheckAccess<uint16_t>(a);
  CheckAccess<uint32_t>(a);
  CheckAccess<uint64_t>(a);
  CheckAccess<float>(a);
  CheckAccess<double>(a);
}

// Parse at both addresses; returns the aligned result.
absl::StatusOr<NpyArray> CheckParse(absl::string_view input) {
  const SharedBytes in = SharedBytes::FromOwner(nullptr, input);
  const MisalignedCopy copy(input);
  absl::StatusOr<NpyArray> a = NpyArray::Parse(in);
  absl::StatusOr<NpyArray> odd = NpyArray::Parse(copy.bytes());
  PROXYSTORE_FUZZ_CHECK(
      a.status() == odd.status(),
      absl::StrCat(a.status().ToString(), " vs ", odd.status().ToString()));
  if (!a.ok()) {
    PROXYSTORE_FUZZ_CHECK(
        HasCode(a.status(), {absl::StatusCode::kDataLoss,
                             absl::StatusCode::kUnimplemented}),
        a.status().ToString());
    return a;
  }
  PROXYSTORE_FUZZ_CHECK(
      SameArray(*a, *odd) && a->fortran_order() == odd->fortran_order(),
      Describe(*a));
  PROXYSTORE_FUZZ_CHECK(a->ndim() <= interop::kMaxNpyDims, Describe(*a));
  uint64_t product = 1;
  for (uint64_t dim : a->shape()) product *= dim;  // checked not to overflow
  PROXYSTORE_FUZZ_CHECK(product == a->size(), Describe(*a));
  PROXYSTORE_FUZZ_CHECK(
      a->data().size() == a->size() * interop::NpyItemSize(a->dtype()),
      Describe(*a));
  PROXYSTORE_FUZZ_CHECK(
      a->data().data() + a->data().size() == input.data() + input.size(),
      Describe(*a));
  CheckAllAccess(*a);
  CheckAllAccess(*odd);
  absl::StatusOr<NpyArray> aligned = odd->Aligned();
  PROXYSTORE_FUZZ_CHECK(aligned.ok() && SameArray(*aligned, *a),
                        aligned.status().ToString());
  CheckAllAccess(*aligned);

  absl::StatusOr<SharedBytes> written = interop::WriteNpy(*a);
  PROXYSTORE_FUZZ_CHECK(written.ok(), written.status().ToString());
  absl::StatusOr<NpyArray> back = NpyArray::Parse(*written);
  PROXYSTORE_FUZZ_CHECK(
      back.ok() && SameArray(*back, *a),
      absl::StrCat(Describe(*a), ": ", back.status().ToString()));
  absl::StatusOr<SharedBytes> again = interop::WriteNpy(*back);
  PROXYSTORE_FUZZ_CHECK(again.ok() && again->view() == written->view(),
                        "WriteNpy is not canonical");
  // An input whose header is what WriteNpy writes is reproduced exactly.
  const size_t header = written->size() - a->data().size();
  if (input.substr(0, header) == written->view().substr(0, header)) {
    PROXYSTORE_FUZZ_CHECK(input == written->view(),
                          "canonical input not reproduced");
  }
  return a;
}

void CheckPython(absl::string_view input) {
  const interop::PythonHeader header = interop::ReadPythonHeader(input);
  PROXYSTORE_FUZZ_CHECK(
      header.payload_offset <= input.size() &&
          header.identifier.data() >= input.data() &&
          header.identifier.data() + header.identifier.size() <=
              input.data() + header.payload_offset,
      "header outside the input");
  PROXYSTORE_FUZZ_CHECK(
      (header.format == PythonFormat::kUnknown) ==
          interop::PythonFormatIdentifier(header.format).empty(),
      "format");
  const SharedBytes in = SharedBytes::FromOwner(nullptr, input);
  const MisalignedCopy copy(input);
  absl::StatusOr<PythonValue> v = interop::DecodePython(in);
  absl::StatusOr<PythonValue> odd = interop::DecodePython(copy.bytes());
  PROXYSTORE_FUZZ_CHECK(
      v.status() == odd.status(),
      absl::StrCat(v.status().ToString(), " vs ", odd.status().ToString()));
  if (!v.ok()) {
    PROXYSTORE_FUZZ_CHECK(
        HasCode(v.status(), {absl::StatusCode::kDataLoss,
                             absl::StatusCode::kUnimplemented}),
        v.status().ToString());
    return;
  }
  absl::StatusOr<SharedBytes> encoded;
  size_t payload_size = 0;
  if (const auto* bytes = std::get_if<SharedBytes>(&*v)) {
    PROXYSTORE_FUZZ_CHECK(header.format == PythonFormat::kBytes, "bytes");
    PROXYSTORE_FUZZ_CHECK(bytes->view() == input.substr(header.payload_offset),
                          "bytes payload");
    encoded = interop::EncodePythonBytes(bytes->view());
    payload_size = bytes->size();
  } else if (const auto* str = std::get_if<std::string>(&*v)) {
    PROXYSTORE_FUZZ_CHECK(header.format == PythonFormat::kStr, "str");
    encoded = interop::EncodePythonStr(*str);
    payload_size = str->size();
  } else {
    PROXYSTORE_FUZZ_CHECK(header.format == PythonFormat::kNumpy, "numpy");
    const NpyArray& a = std::get<NpyArray>(*v);
    CheckAllAccess(a);
    encoded = interop::EncodePythonNumpy(a);
    payload_size = a.data().size();
  }
  PROXYSTORE_FUZZ_CHECK(encoded.ok(), encoded.status().ToString());
  absl::StatusOr<PythonValue> back = interop::DecodePython(*encoded);
  PROXYSTORE_FUZZ_CHECK(back.ok() && back->index() == v->index(),
                        back.status().ToString());
  if (const auto* bytes = std::get_if<SharedBytes>(&*v)) {
    PROXYSTORE_FUZZ_CHECK(std::get<SharedBytes>(*back).view() == bytes->view(),
                          "bytes back");
  } else if (const auto* str = std::get_if<std::string>(&*v)) {
    PROXYSTORE_FUZZ_CHECK(std::get<std::string>(*back) == *str, "str back");
  } else {
    PROXYSTORE_FUZZ_CHECK(
        SameArray(std::get<NpyArray>(*back), std::get<NpyArray>(*v)),
        "array back");
  }
  // An input whose framing (and .npy header) is what the encoder writes is
  // reproduced exactly.
  const size_t prefix = encoded->size() - payload_size;
  if (input.substr(0, prefix) == encoded->view().substr(0, prefix)) {
    PROXYSTORE_FUZZ_CHECK(encoded->view() == input,
                          "canonical input not reproduced");
  }
}

void TestOneInput(absl::string_view input) {
  (void)CheckParse(input);
  CheckPython(input);
  const std::string framed = absl::StrCat("NP\n", input);
  CheckPython(framed);
}

}  // namespace
}  // namespace proxystore::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  proxystore::fuzz::TestOneInput(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
