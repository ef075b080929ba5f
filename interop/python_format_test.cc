#include "proxystore/interop/python_format.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/interop/npy.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::interop {
namespace {

using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// A golden file: serialize() of a value by the real Python ProxyStore
// (testdata/make_golden.py).
SharedBytes Golden(absl::string_view name) {
  const std::string path = absl::StrCat("interop/testdata/", name, ".bin");
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return SharedBytes::FromString(std::string(
      (std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
}

SharedBytes Bytes(absl::string_view s) { return SharedBytes::Copy(s); }

// ---------------------------------------------------------- bytes and str ---

TEST(PythonGolden, Bytes) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  const std::pair<const char*, std::string> cases[] = {
      {"bytes_empty", ""},
      {"bytes_all", all},
      {"bytes_lines", std::string("US\nNP\n\x93NUMPY\n")},
  };
  for (const auto& [name, value] : cases) {
    SCOPED_TRACE(name);
    const SharedBytes golden = Golden(name);
    EXPECT_EQ(IdentifyPythonFormat(golden.view()), PythonFormat::kBytes);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes got, DecodePythonBytes(golden));
    EXPECT_EQ(got.view(), value);
    // Zero-copy: a slice of the input.
    EXPECT_EQ(got.data(), golden.data() + 3);
    EXPECT_EQ(got.owner(), golden.owner());
    EXPECT_EQ(EncodePythonBytes(value).view(), golden.view());
  }
}

TEST(PythonGolden, Str) {
  const std::pair<const char*, std::string> cases[] = {
      {"str_empty", ""},
      {"str_ascii", "hello, world\n"},
      // h, e-acute, llo w, o-umlaut, rld, em dash, "nihongo", a snake.
      {"str_unicode",
       "h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac"
       "\xe8\xaa\x9e \xf0\x9f\x90\x8d"},
  };
  for (const auto& [name, value] : cases) {
    SCOPED_TRACE(name);
    const SharedBytes golden = Golden(name);
    EXPECT_EQ(IdentifyPythonFormat(golden.view()), PythonFormat::kStr);
    EXPECT_THAT(DecodePythonStr(golden.view()), IsOkAndHolds(value));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes encoded,
                                    EncodePythonStr(value));
    EXPECT_EQ(encoded.view(), golden.view());
  }
}

// ---------------------------------------------------------------- numpy ---

// Decodes golden `name`, checks its dtype, shape, order and elements, and
// that the C++ encoders write the very same bytes.
template <typename T>
void ExpectArray(absl::string_view name, std::vector<uint64_t> shape,
                 bool fortran_order, const std::vector<T>& values) {
  SCOPED_TRACE(name);
  const SharedBytes golden = Golden(name);
  EXPECT_EQ(IdentifyPythonFormat(golden.view()), PythonFormat::kNumpy);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a, DecodePythonNumpy(golden));
  EXPECT_EQ(a.dtype(), NpyDtypeOf<T>());
  EXPECT_EQ(a.shape(), shape);
  EXPECT_EQ(a.fortran_order(), fortran_order);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<T> got, a.ToVector<T>());
  ASSERT_EQ(got.size(), values.size());
  if constexpr (std::is_floating_point_v<T>) {
    // Bitwise: NaN and -0.0 too.
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(std::memcmp(&got[i], &values[i], sizeof(T)), 0)
          << "element " << i << ": " << got[i] << " vs " << values[i];
    }
  } else {
    EXPECT_EQ(got, values);
  }
  // The data is a slice of the golden buffer, after "NP\n" and the header.
  EXPECT_EQ(a.data().owner(), golden.owner());
  EXPECT_EQ(a.data().data() + a.data().size(), golden.data() + golden.size());

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes again, EncodePythonNumpy(a));
  EXPECT_EQ(again.view(), golden.view());
  if constexpr (!std::is_same_v<T, bool>) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        SharedBytes typed, EncodePythonNumpy<T>(values, shape, fortran_order));
    EXPECT_EQ(typed.view(), golden.view());
  }
}

TEST(PythonGolden, NumpyEveryDtype) {
  ExpectArray<bool>("np_bool", {4}, false, {true, false, true, true});
  ExpectArray<int8_t>("np_int8", {5}, false, {-128, -1, 0, 1, 127});
  ExpectArray<uint8_t>("np_uint8_2x2", {2, 2}, false, {0, 1, 254, 255});
  ExpectArray<int16_t>("np_int16", {3}, false, {-32768, 0, 32767});
  ExpectArray<uint16_t>("np_uint16", {3}, false, {0, 1, 65535});
  ExpectArray<int32_t>("np_int32_2x3", {2, 3}, false, {0, 1, 2, 3, 4, 5});
  ExpectArray<uint32_t>("np_uint32", {2}, false, {0, 4294967295u});
  ExpectArray<int64_t>("np_int64", {4}, false,
                       {std::numeric_limits<int64_t>::min(), -1, 0,
                        std::numeric_limits<int64_t>::max()});
  ExpectArray<uint64_t>("np_uint64", {2}, false,
                        {0, std::numeric_limits<uint64_t>::max()});
  ExpectArray<float>(
      "np_float32", {4}, false,
      {0.5f, -1.25f, std::numeric_limits<float>::infinity(), 3.4028235e38f});
  ExpectArray<double>("np_float64", {6}, false,
                      {0.1, -0.0, std::numeric_limits<double>::infinity(),
                       -std::numeric_limits<double>::infinity(),
                       std::numeric_limits<double>::quiet_NaN(), 1e308});
}

TEST(PythonGolden, NumpyShapesAndOrders) {
  ExpectArray<double>("np_float64_0d", {}, false, {2.5});
  ExpectArray<bool>("np_bool_0d", {}, false, {true});
  ExpectArray<int32_t>("np_int32_empty", {0}, false, {});
  ExpectArray<float>("np_float32_0x3", {0, 3}, false, {});
  // arange(6).reshape(2, 3) stored column by column.
  ExpectArray<int16_t>("np_int16_fortran_2x3", {2, 3}, true,
                       {0, 3, 1, 4, 2, 5});
  std::vector<uint8_t> counting(24);
  for (size_t i = 0; i < counting.size(); ++i)
    counting[i] = static_cast<uint8_t>(i);
  ExpectArray<uint8_t>("np_uint8_2x3x4", {2, 3, 4}, false, counting);
}

TEST(PythonGolden, NumpyBoolEncodesFromASpan) {
  const bool values[] = {true, false, true, true};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes encoded,
                                  EncodePythonNumpy<bool>(values));
  EXPECT_EQ(encoded.view(), Golden("np_bool").view());
}

TEST(PythonGolden, NumpyDataIsMisalignedByTheFraming) {
  // The .npy header ends on a 64-byte boundary of the .npy, which is 3 bytes
  // into the buffer: wide items cannot be viewed in place.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a,
                                  DecodePythonNumpy(Golden("np_int32_2x3")));
  EXPECT_THAT(a.As<int32_t>(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "ToVector"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray aligned, a.Aligned());
  EXPECT_THAT(aligned.As<int32_t>(),
              IsOkAndHolds(ElementsAre(0, 1, 2, 3, 4, 5)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray bytes,
                                  DecodePythonNumpy(Golden("np_uint8_2x2")));
  EXPECT_THAT(bytes.As<uint8_t>(), IsOkAndHolds(ElementsAre(0, 1, 254, 255)));
}

TEST(PythonGolden, NumpyDtypesWithoutACppCounterpart) {
  const std::pair<const char*, const char*> cases[] = {
      {"np_big_endian", "'>i4'"},
      {"np_float16", "'<f2'"},
      {"np_complex128", "'<c16'"},
      {"np_unicode", "'<U2'"},
      {"np_object", "'|O'"},
      {"np_structured", "[('x', '<i4'), ('y', '<f8')]"},
  };
  for (const auto& [name, descr] : cases) {
    SCOPED_TRACE(name);
    const SharedBytes golden = Golden(name);
    EXPECT_EQ(IdentifyPythonFormat(golden.view()), PythonFormat::kNumpy);
    EXPECT_THAT(DecodePythonNumpy(golden),
                StatusIs(absl::StatusCode::kUnimplemented,
                         absl::StrCat("Python numpy data: .npy dtype descr ",
                                      descr, " is not supported")));
  }
}

// -------------------------------------------------------- Python objects ---

TEST(PythonGolden, PickledObjectsAreNeverInterpreted) {
  const std::pair<const char*, PythonFormat> cases[] = {
      {"pickle_dict", PythonFormat::kPickle},
      {"cloudpickle_lambda", PythonFormat::kCloudpickle},
  };
  for (const auto& [name, format] : cases) {
    SCOPED_TRACE(name);
    const SharedBytes golden = Golden(name);
    EXPECT_EQ(IdentifyPythonFormat(golden.view()), format);
    const std::string what =
        absl::StrCat("ProxyStore's ", PythonFormatName(format), " serializer");
    EXPECT_THAT(DecodePythonBytes(golden),
                StatusIs(absl::StatusCode::kUnimplemented, what));
    EXPECT_THAT(DecodePythonStr(golden.view()),
                StatusIs(absl::StatusCode::kUnimplemented, what));
    EXPECT_THAT(DecodePythonNumpy(golden),
                StatusIs(absl::StatusCode::kUnimplemented, what));
    EXPECT_THAT(DecodePython(golden),
                StatusIs(absl::StatusCode::kUnimplemented, what));
  }
  // Pandas and polars frames are refused the same way, from the identifier.
  EXPECT_THAT(DecodePython(Bytes("PD\n\x80\x05")),
              StatusIs(absl::StatusCode::kUnimplemented, "pandas serializer"));
  EXPECT_THAT(DecodePython(Bytes("PL\nARROW1")),
              StatusIs(absl::StatusCode::kUnimplemented, "polars serializer"));
}

// ------------------------------------------------------------- framing ---

TEST(PythonFraming, Identifiers) {
  const std::pair<PythonFormat, const char*> cases[] = {
      {PythonFormat::kBytes, "BS"},       {PythonFormat::kStr, "US"},
      {PythonFormat::kNumpy, "NP"},       {PythonFormat::kPandas, "PD"},
      {PythonFormat::kPolars, "PL"},      {PythonFormat::kPickle, "PK"},
      {PythonFormat::kCloudpickle, "CP"},
  };
  for (const auto& [format, id] : cases) {
    EXPECT_EQ(PythonFormatIdentifier(format), id);
    EXPECT_EQ(IdentifyPythonFormat(absl::StrCat(id, "\n")), format);
  }
  EXPECT_EQ(PythonFormatIdentifier(PythonFormat::kUnknown), "");
  EXPECT_EQ(PythonFormatName(PythonFormat::kStr), "str");
  EXPECT_EQ(PythonFormatName(PythonFormat::kUnknown), "unknown");
}

TEST(PythonFraming, ReadsTheFirstLineAsPythonDoes) {
  // deserialize() strips whitespace around the identifier, and a buffer
  // without '\n' is all identifier.
  const std::pair<const char*, const char*> cases[] = {
      {"BS\nabc", "abc"},
      {" BS \r\nabc", "abc"},
      {"\tBS\n\nx", "\nx"},
      {"BS", ""},
      {"BS\n", ""},
      {"\x0b BS\x0c\n", ""},
      {"BS\nUS\nNP\n", "US\nNP\n"},
  };
  for (const auto& [data, payload] : cases) {
    SCOPED_TRACE(data);
    const PythonHeader header = ReadPythonHeader(data);
    EXPECT_EQ(header.format, PythonFormat::kBytes);
    EXPECT_EQ(header.identifier, "BS");
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes got,
                                    DecodePythonBytes(Bytes(data)));
    EXPECT_EQ(got.view(), payload);
  }
}

TEST(PythonFraming, UnknownIdentifiersAreDataLoss) {
  // Including ProxyStore 0.x's numeric identifiers, which 1.0 no longer
  // reads, and a native proxystore-cpp envelope.
  for (absl::string_view data :
       {absl::string_view(""), absl::string_view("\n"),
        absl::string_view("bs\nx"), absl::string_view("B S\n"),
        absl::string_view("BSX\n"), absl::string_view("01\nabc"),
        absl::string_view("02\nabc"), absl::string_view("XY\n"),
        absl::string_view("\x89PSC\x01\x00", 6),
        absl::string_view("\0BS\n", 4)}) {
    SCOPED_TRACE(absl::CHexEscape(data));
    EXPECT_EQ(IdentifyPythonFormat(data), PythonFormat::kUnknown);
    EXPECT_THAT(DecodePythonBytes(Bytes(data)),
                StatusIs(absl::StatusCode::kDataLoss, "not data from Python"));
    EXPECT_THAT(DecodePythonStr(data), StatusIs(absl::StatusCode::kDataLoss));
    EXPECT_THAT(DecodePython(Bytes(data)),
                StatusIs(absl::StatusCode::kDataLoss));
  }
  // The identifier in the message is escaped and cut short.
  EXPECT_THAT(DecodePythonBytes(Bytes(std::string(1000, '\x01'))),
              StatusIs(absl::StatusCode::kDataLoss, "(1000 bytes)"));
}

TEST(PythonFraming, AnotherDecodableFormatIsInvalidArgument) {
  EXPECT_THAT(DecodePythonStr(Golden("bytes_all").view()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "the data is Python bytes (identifier 'BS'), not str"));
  EXPECT_THAT(DecodePythonBytes(Golden("str_ascii")),
              StatusIs(absl::StatusCode::kInvalidArgument, "not bytes"));
  EXPECT_THAT(DecodePythonNumpy(Golden("str_ascii")),
              StatusIs(absl::StatusCode::kInvalidArgument, "not numpy"));
  EXPECT_THAT(DecodePythonBytes(Golden("np_int8")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Python numpy (identifier 'NP')"));
}

TEST(PythonFraming, DecodeAny) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(PythonValue b,
                                  DecodePython(Golden("bytes_lines")));
  ASSERT_TRUE(std::holds_alternative<SharedBytes>(b));
  EXPECT_EQ(std::get<SharedBytes>(b).view(), "US\nNP\n\x93NUMPY\n");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(PythonValue s,
                                  DecodePython(Golden("str_ascii")));
  ASSERT_TRUE(std::holds_alternative<std::string>(s));
  EXPECT_EQ(std::get<std::string>(s), "hello, world\n");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(PythonValue n,
                                  DecodePython(Golden("np_int16")));
  ASSERT_TRUE(std::holds_alternative<NpyArray>(n));
  EXPECT_THAT(std::get<NpyArray>(n).ToVector<int16_t>(),
              IsOkAndHolds(ElementsAre(-32768, 0, 32767)));
  EXPECT_THAT(DecodePython(Bytes("NP\n\x93NUMPY")),
              StatusIs(absl::StatusCode::kDataLoss, "Python numpy data"));
}

TEST(PythonFraming, NumpyPayloadErrorsSayWhereTheyCameFrom) {
  const std::string golden(Golden("np_int32_2x3").view());
  EXPECT_THAT(DecodePythonNumpy(Bytes(golden.substr(0, golden.size() - 1))),
              StatusIs(absl::StatusCode::kDataLoss,
                       "Python numpy data: .npy array of <i4 shape (2, 3) "
                       "needs 24 data bytes, but 23 follow"));
  EXPECT_THAT(DecodePythonNumpy(Bytes("NP\nnot npy")),
              StatusIs(absl::StatusCode::kDataLoss, "not a .npy array"));
}

// ---------------------------------------------------------------- UTF-8 ---

TEST(PythonUtf8, InvalidTextIsRefusedBothWays) {
  const std::pair<std::string, size_t> cases[] = {
      {"ok\xff", 2},                // never a UTF-8 byte
      {"\xc0\xaf", 0},              // overlong '/'
      {"a\xe0\x80\xaf", 1},         // overlong, three bytes
      {"ab\xed\xa0\x80", 2},        // a surrogate (U+D800)
      {"\xf4\x90\x80\x80", 0},      // above U+10FFFF
      {"\xf8\x88\x80\x80\x80", 0},  // five-byte form
      {"\xe2\x82", 0},              // truncated
      {"\xe2\x28\xa1", 0},          // bad continuation
      {"x\x80", 1},                 // lone continuation
  };
  for (const auto& [text, bad] : cases) {
    SCOPED_TRACE(absl::CHexEscape(text));
    EXPECT_EQ(FirstInvalidUtf8(text), bad);
    EXPECT_THAT(DecodePythonStr(absl::StrCat("US\n", text)),
                StatusIs(absl::StatusCode::kDataLoss,
                         absl::StrCat("not valid UTF-8 at byte ", bad)));
    EXPECT_THAT(EncodePythonStr(text),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("not valid UTF-8 at byte ", bad)));
  }
  // The edges of the valid ranges.
  for (absl::string_view ok : {"\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80",
                               "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf",
                               "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"}) {
    EXPECT_EQ(FirstInvalidUtf8(ok), ok.size()) << absl::CHexEscape(ok);
  }
  EXPECT_EQ(FirstInvalidUtf8(absl::string_view("a\0b", 3)), 3u);
}

}  // namespace
}  // namespace proxystore::interop
