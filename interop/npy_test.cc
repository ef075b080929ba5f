#include "proxystore/interop/npy.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::interop {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A golden file written by testdata/make_golden.py (numpy itself).
std::string ReadTestdata(absl::string_view name) {
  const std::string path = absl::StrCat("interop/testdata/", name);
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// A .npy of header dict text `dict` (padded as numpy pads) and `data`.
SharedBytes Npy(absl::string_view dict, absl::string_view data = "") {
  return SharedBytes::FromString(
      absl::StrCat(npy_internal::WrapHeader(dict), data));
}

std::string Le32(uint32_t v) {
  std::string out(4, '\0');
  std::memcpy(out.data(), &v, 4);
  return out;
}

absl::StatusOr<NpyArray> Parse(absl::string_view bytes) {
  return NpyArray::Parse(SharedBytes::Copy(bytes));
}

// ------------------------------------------------------ numpy's own files ---

TEST(NpyGolden, Version1) {
  const std::string file = ReadTestdata("v1_int32_2x3.npy");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a, Parse(file));
  EXPECT_EQ(a.format_version(), 1);
  EXPECT_EQ(a.dtype(), NpyDtype::kInt32);
  EXPECT_THAT(a.shape(), ElementsAre(2, 3));
  EXPECT_EQ(a.size(), 6u);
  EXPECT_FALSE(a.fortran_order());
  EXPECT_THAT(a.ToVector<int32_t>(),
              IsOkAndHolds(ElementsAre(0, 1, 2, 3, 4, 5)));
  // What numpy.save writes for this array, byte for byte.
  const int32_t values[] = {0, 1, 2, 3, 4, 5};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes written,
                                  WriteNpy<int32_t>(values, {2, 3}));
  EXPECT_EQ(written.view(), file);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes again, WriteNpy(a));
  EXPECT_EQ(again.view(), file);
}

TEST(NpyGolden, Version2) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a,
                                  Parse(ReadTestdata("v2_float64.npy")));
  EXPECT_EQ(a.format_version(), 2);
  EXPECT_EQ(a.dtype(), NpyDtype::kFloat64);
  EXPECT_THAT(a.shape(), ElementsAre(3));
  EXPECT_THAT(a.ToVector<double>(),
              IsOkAndHolds(ElementsAre(1.0, -2.5, 1e-300)));
}

TEST(NpyGolden, Version3FortranOrder) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a,
                                  Parse(ReadTestdata("v3_int16_fortran.npy")));
  EXPECT_EQ(a.format_version(), 3);
  EXPECT_EQ(a.dtype(), NpyDtype::kInt16);
  EXPECT_THAT(a.shape(), ElementsAre(3, 2));
  EXPECT_TRUE(a.fortran_order());
  // arange(6).reshape(3, 2) in column-major storage order.
  EXPECT_THAT(a.ToVector<int16_t>(),
              IsOkAndHolds(ElementsAre(0, 2, 4, 1, 3, 5)));
  // Rewritten as version 1.0, which numpy reads the same.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes v1, WriteNpy(a));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray b, NpyArray::Parse(v1));
  EXPECT_EQ(b.format_version(), 1);
  EXPECT_THAT(b.shape(), ElementsAre(3, 2));
  EXPECT_TRUE(b.fortran_order());
  EXPECT_EQ(b.data().view(), a.data().view());
}

// ------------------------------------------------------------ the writer ---

TEST(NpyWrite, HeaderIsNumpys) {
  const float values[] = {1, 2, 3, 4, 5, 6};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes npy,
                                  WriteNpy<float>(values, {3, 2}, true));
  const std::string dict =
      "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }";
  // Room for the growth axis (the last one in Fortran order) to have 21
  // digits, then spaces and '\n' up to 64 bytes from the start.
  const std::string header =
      absl::StrCat(dict, std::string(20, ' '),
                   std::string(128 - 10 - dict.size() - 20 - 1, ' '), "\n");
  EXPECT_EQ(npy.view().substr(0, 10),
            absl::string_view("\x93NUMPY\x01\x00v\x00", 10));
  EXPECT_EQ(npy.view().substr(10, 118), header);
  EXPECT_EQ(npy.size(), 128 + sizeof(values));
}

TEST(NpyWrite, OneDimensionalByDefault) {
  const uint8_t values[] = {7, 8, 9};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes npy, WriteNpy<uint8_t>(values));
  EXPECT_THAT(std::string(npy.view()),
              HasSubstr("{'descr': '|u1', 'fortran_order': False, "
                        "'shape': (3,), }"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a, NpyArray::Parse(npy));
  EXPECT_THAT(a.shape(), ElementsAre(3));
  EXPECT_THAT(a.As<uint8_t>(), IsOkAndHolds(ElementsAre(7, 8, 9)));
}

TEST(NpyWrite, ZeroDimensional) {
  const double value[] = {2.5};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes npy, WriteNpy<double>(value, {}));
  // No growth padding without an axis.
  const std::string dict =
      "{'descr': '<f8', 'fortran_order': False, 'shape': (), }";
  EXPECT_EQ(npy.view().substr(10, 118),
            absl::StrCat(dict, std::string(118 - dict.size() - 1, ' '), "\n"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a, NpyArray::Parse(npy));
  EXPECT_EQ(a.ndim(), 0u);
  EXPECT_EQ(a.size(), 1u);
  EXPECT_THAT(a.ToVector<double>(), IsOkAndHolds(ElementsAre(2.5)));
}

TEST(NpyWrite, FortranOrderOnlyWhereItChangesTheOrder) {
  const int64_t three[] = {1, 2, 3};
  const std::vector<std::vector<uint64_t>> shapes = {
      {3}, {1, 3}, {3, 1}, {1, 3, 1}};
  for (const std::vector<uint64_t>& shape : shapes) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes npy,
                                    WriteNpy<int64_t>(three, shape, true));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a, NpyArray::Parse(npy));
    EXPECT_FALSE(a.fortran_order()) << absl::StrJoin(shape, ",");
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes empty, WriteNpy<int64_t>(absl::Span<const int64_t>(), {0, 3},
                                           /*fortran_order=*/true));
  EXPECT_THAT(std::string(empty.view()), HasSubstr("'fortran_order': False"));
  const int64_t six[] = {1, 2, 3, 4, 5, 6};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes f,
                                  WriteNpy<int64_t>(six, {2, 1, 3}, true));
  EXPECT_THAT(std::string(f.view()), HasSubstr("'fortran_order': True"));
}

TEST(NpyWrite, RefusesAShapeThatDoesNotFitTheData) {
  const int32_t values[] = {1, 2, 3};
  EXPECT_THAT(WriteNpy<int32_t>(values, {2, 2}),
              StatusIs(absl::StatusCode::kInvalidArgument, "(2, 2)"));
  EXPECT_THAT(WriteNpy<int32_t>(values, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, "()"));
  const std::vector<uint64_t> huge = {1ull << 40, 1ull << 40};
  EXPECT_THAT(WriteNpy<int32_t>(values, huge),
              StatusIs(absl::StatusCode::kInvalidArgument, "2**63-1"));
  const std::vector<uint64_t> many(kMaxNpyDims + 1, 1);
  EXPECT_THAT(WriteNpy<int32_t>(absl::MakeConstSpan(values, 1), many),
              StatusIs(absl::StatusCode::kInvalidArgument, "dimensions"));
  // kMaxNpyDims is fine.
  const std::vector<uint64_t> most(kMaxNpyDims, 1);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes npy, WriteNpy<int32_t>(absl::MakeConstSpan(values, 1), most));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a, NpyArray::Parse(npy));
  EXPECT_EQ(a.ndim(), kMaxNpyDims);
}

TEST(NpyWrite, LongHeaderIsVersion2) {
  const std::string short_dict(100, ' ');
  const std::string v1 = npy_internal::WrapHeader(short_dict);
  EXPECT_EQ(v1.substr(0, 8), absl::string_view("\x93NUMPY\x01\x00", 8));
  EXPECT_EQ(v1.size() % 64, 0u);
  EXPECT_EQ(v1.back(), '\n');

  const std::string long_dict(70000, ' ');
  const std::string v2 = npy_internal::WrapHeader(long_dict);
  EXPECT_EQ(v2.substr(0, 8), absl::string_view("\x93NUMPY\x02\x00", 8));
  EXPECT_EQ(v2.size() % 64, 0u);
  uint32_t length;
  std::memcpy(&length, v2.data() + 8, 4);
  EXPECT_EQ(length, v2.size() - 12);
  // Already aligned: numpy pads a whole 64 bytes.
  const std::string aligned = npy_internal::WrapHeader(std::string(53, ' '));
  EXPECT_EQ(aligned.size(), 128u);
}

template <typename T>
class NpyRoundTrip : public ::testing::Test {};
using Elements =
    ::testing::Types<bool, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                     uint32_t, uint64_t, float, double>;
TYPED_TEST_SUITE(NpyRoundTrip, Elements);

TYPED_TEST(NpyRoundTrip, EveryDtype) {
  using T = TypeParam;
  const T values[] = {T(0),
                      T(1),
                      std::numeric_limits<T>::max(),
                      std::numeric_limits<T>::lowest(),
                      T(1),
                      T(0)};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes npy, WriteNpy<T>(values, {2, 3}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a, NpyArray::Parse(npy));
  EXPECT_EQ(a.dtype(), NpyDtypeOf<T>());
  EXPECT_EQ(NpyItemSize(a.dtype()), sizeof(T));
  EXPECT_THAT(std::string(npy.view()),
              HasSubstr(absl::StrCat("'descr': '", NpyDescr(a.dtype()), "'")));
  EXPECT_THAT(a.shape(), ElementsAre(2, 3));
  // A fresh string's heap buffer and the 64-byte header: aligned in place.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(absl::Span<const T> view, a.As<T>());
  EXPECT_EQ(reinterpret_cast<const char*>(view.data()), npy.data() + 128);
  EXPECT_THAT(view, ElementsAre(values[0], values[1], values[2], values[3],
                                values[4], values[5]));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<T> copy, a.ToVector<T>());
  EXPECT_TRUE(std::equal(copy.begin(), copy.end(), std::begin(values)));
}

// -------------------------------------------------------------- accessors ---

TEST(NpyAccess, MisalignedDataIsCopiedNotViewed) {
  const int64_t values[] = {-1, 2, -3};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes npy, WriteNpy<int64_t>(values));
  // One byte in front: the data is at an odd address.
  const SharedBytes shifted =
      *SharedBytes::FromString(absl::StrCat("x", npy.view())).Suffix(1);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a, NpyArray::Parse(shifted));
  EXPECT_THAT(a.As<int64_t>(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "aligned"));
  EXPECT_THAT(a.ToVector<int64_t>(), IsOkAndHolds(ElementsAre(-1, 2, -3)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray aligned, a.Aligned());
  EXPECT_NE(aligned.data().data(), a.data().data());
  EXPECT_THAT(aligned.As<int64_t>(), IsOkAndHolds(ElementsAre(-1, 2, -3)));
  // Already aligned: no copy.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray same, aligned.Aligned());
  EXPECT_EQ(same.data().data(), aligned.data().data());
  // Bytes need no alignment.
  const uint8_t bytes[] = {1, 2};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes u8, WriteNpy<uint8_t>(bytes));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      NpyArray b,
      NpyArray::Parse(
          *SharedBytes::FromString(absl::StrCat("x", u8.view())).Suffix(1)));
  EXPECT_THAT(b.As<uint8_t>(), IsOkAndHolds(ElementsAre(1, 2)));
}

TEST(NpyAccess, TheTypeMustMatchExactly) {
  const int32_t values[] = {1, 2};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes npy, WriteNpy<int32_t>(values));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a, NpyArray::Parse(npy));
  EXPECT_THAT(a.As<uint32_t>(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dtype is <i4 (int32_t), not <u4 (uint32_t)"));
  EXPECT_THAT(a.ToVector<float>(),
              StatusIs(absl::StatusCode::kInvalidArgument, "float"));
  EXPECT_THAT(a.As<int64_t>(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(NpyAccess, BoolBytesOtherThanZeroOrOneAreRefused) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      NpyArray a,
      NpyArray::Parse(Npy("{'descr': '|b1', 'fortran_order': False, "
                          "'shape': (3,), }",
                          absl::string_view("\x01\x00\x02", 3))));
  EXPECT_THAT(a.As<bool>(),
              StatusIs(absl::StatusCode::kDataLoss, "element 2 is byte 2"));
  EXPECT_THAT(a.ToVector<bool>(), StatusIs(absl::StatusCode::kDataLoss));
  // The bytes are still there for whoever wants numpy's reading of them.
  EXPECT_EQ(a.data().view(), absl::string_view("\x01\x00\x02", 3));
}

TEST(NpyAccess, EmptyArrays) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      NpyArray a, NpyArray::Parse(Npy("{'descr': '<f8', 'fortran_order': "
                                      "False, 'shape': (0, 3), }")));
  EXPECT_EQ(a.size(), 0u);
  EXPECT_THAT(a.As<double>(), IsOkAndHolds(ElementsAre()));
  EXPECT_THAT(a.ToVector<double>(), IsOkAndHolds(ElementsAre()));
  // numpy allows any other dimension once one is zero, so long as the
  // nonzero ones' bytes fit in int64.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      NpyArray b,
      NpyArray::Parse(Npy("{'descr': '<i8', 'fortran_order': "
                          "False, 'shape': (0, 1152921504606846975), }")));
  EXPECT_EQ(b.size(), 0u);
  EXPECT_THAT(NpyArray::Parse(Npy("{'descr': '<i8', 'fortran_order': False, "
                                  "'shape': (0, 1152921504606846976), }")),
              StatusIs(absl::StatusCode::kDataLoss, "2**63-1"));
}

TEST(NpyAccess, Create) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      NpyArray a, NpyArray::Create(NpyDtype::kUInt16, {2}, false,
                                   SharedBytes::Copy(absl::string_view(
                                       "\x01\x00\xff\xff", 4))));
  EXPECT_THAT(a.ToVector<uint16_t>(), IsOkAndHolds(ElementsAre(1, 65535)));
  EXPECT_EQ(a.format_version(), 1);
  EXPECT_THAT(NpyArray::Create(NpyDtype::kUInt16, {3}, false,
                               SharedBytes::Copy(absl::string_view("ab"))),
              StatusIs(absl::StatusCode::kInvalidArgument, "not 2"));
  EXPECT_THAT(NpyArray::Create(NpyDtype::kUInt8,
                               std::vector<uint64_t>(kMaxNpyDims + 1, 1), false,
                               SharedBytes::Copy(absl::string_view("a"))),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// ----------------------------------------------------- the header parser ---

TEST(NpyParse, AcceptsAnyPythonSpellingOfTheDict) {
  struct Case {
    std::string dict;
    NpyDtype dtype;
    std::vector<uint64_t> shape;
    bool fortran_order;
  };
  const Case cases[] = {
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
       NpyDtype::kInt32,
       {2},
       false},
      {"{\"shape\": (2,), \"descr\": \"<i4\", \"fortran_order\": True}",
       NpyDtype::kInt32,
       {2},
       true},
      {"{ 'fortran_order' :False,'shape':( 1 , 2 ),'descr':'=i4' }",
       NpyDtype::kInt32,
       {1, 2},
       false},
      {"{'descr':\n 'i4',\n\t'fortran_order': False,\r\n 'shape': (2 ,)}",
       NpyDtype::kInt32,
       {2},
       false},
      {"{'descr': '?', 'fortran_order': False, 'shape': (8,)}",
       NpyDtype::kBool,
       {8},
       false},
      {"{'descr': '<b1', 'fortran_order': False, 'shape': (8,)}",
       NpyDtype::kBool,
       {8},
       false},
      {"{'descr': '>u1', 'fortran_order': False, 'shape': (8,)}",
       NpyDtype::kUInt8,
       {8},
       false},
      {"{'descr': 'i1', 'fortran_order': False, 'shape': (2, 2, 2)}",
       NpyDtype::kInt8,
       {2, 2, 2},
       false},
      {"{'descr': '<u8', 'fortran_order': False, 'shape': ()}",
       NpyDtype::kUInt64,
       {},
       false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dict);
    uint64_t bytes = NpyItemSize(c.dtype);
    for (uint64_t dim : c.shape) bytes *= dim;
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        NpyArray a, NpyArray::Parse(Npy(c.dict, std::string(bytes, '\0'))));
    EXPECT_EQ(a.dtype(), c.dtype);
    EXPECT_EQ(a.shape(), c.shape);
    EXPECT_EQ(a.fortran_order(), c.fortran_order);
  }
}

TEST(NpyParse, RefusesBadDicts) {
  struct Case {
    std::string dict;
    absl::StatusCode code;
    std::string message;
  };
  const auto kDataLoss = absl::StatusCode::kDataLoss;
  const auto kUnimplemented = absl::StatusCode::kUnimplemented;
  const Case cases[] = {
      {"", kDataLoss, "expected '{'"},
      {"[]", kDataLoss, "expected '{'"},
      {"{}", kDataLoss, "lacks 'descr'"},
      {"{'descr': '<i4', 'shape': (1,)}", kDataLoss, "lacks 'fortran_order'"},
      {"{'descr': '<i4', 'fortran_order': False}", kDataLoss, "lacks 'shape'"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
       kDataLoss, "unexpected key 'x'"},
      {"{'descr': '<i4', 'descr': '<i4', 'fortran_order': False, "
       "'shape': (1,)}",
       kDataLoss, "'descr' twice"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (1,)} x", kDataLoss,
       "text after the dict"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (1,)", kDataLoss,
       "expected '}'"},
      {"{'descr': '<i4' 'fortran_order': False, 'shape': (1,)}", kDataLoss,
       "expected '}'"},
      {"{'descr': '<i4', 'fortran_order': 0, 'shape': (1,)}", kDataLoss,
       "not True or False"},
      {"{'descr': '<i4', 'fortran_order': 'False', 'shape': (1,)}", kDataLoss,
       "not True or False"},
      {"{'descr': '<i4', 'fortran_order': Falsey, 'shape': (1,)}", kDataLoss,
       "not True or False"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': [1]}", kDataLoss,
       "not a tuple"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (1)}", kDataLoss,
       "parenthesized integer"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (-1,)}", kDataLoss,
       "non-negative"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (1.0,)}", kDataLoss,
       "not a decimal integer"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (0x1,)}", kDataLoss,
       "not a decimal integer"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (1_0,)}", kDataLoss,
       "not a decimal integer"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (01,)}", kDataLoss,
       "leading zero"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (1,,)}", kDataLoss,
       "non-negative decimal"},
      {"{'descr': '<i4', 'fortran_order': False, "
       "'shape': (9223372036854775808,)}",
       kDataLoss, "larger than 2**63-1"},
      {"{'descr': '<i4', 'fortran_order': False, "
       "'shape': (4294967296, 4294967296)}",
       kDataLoss, "more than 2**63-1 bytes"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (" +
           std::string(kMaxNpyDims + 1, '1') + ",)}",
       kDataLoss, "larger than 2**63-1"},
      {"{'descr': 'a\\'b', 'fortran_order': False, 'shape': (1,)}", kDataLoss,
       "escape"},
      {"{'descr': '<i4, 'fortran_order': False, 'shape': (1,)}", kDataLoss,
       "expected '}'"},
      {"{'descr': 4, 'fortran_order': False, 'shape': (1,)}", kDataLoss,
       "not a string, list or tuple"},
      {"{'descr': [('a', '<i4'), 'fortran_order': False, 'shape': (1,)}",
       kDataLoss, "unbalanced"},
      // Well formed, but not a dtype with a C++ counterpart.
      {"{'descr': '>i4', 'fortran_order': False, 'shape': (1,)}",
       kUnimplemented, "descr '>i4' is not"},
      {"{'descr': '>f8', 'fortran_order': False, 'shape': (1,)}",
       kUnimplemented, "descr '>f8' is not"},
      {"{'descr': '<f2', 'fortran_order': False, 'shape': (1,)}",
       kUnimplemented, "descr '<f2' is not"},
      {"{'descr': '<c16', 'fortran_order': False, 'shape': (1,)}",
       kUnimplemented, "descr '<c16' is not"},
      {"{'descr': '<U3', 'fortran_order': False, 'shape': (1,)}",
       kUnimplemented, "descr '<U3' is not"},
      {"{'descr': '|O', 'fortran_order': False, 'shape': (1,)}", kUnimplemented,
       "descr '|O' is not"},
      {"{'descr': '|b2', 'fortran_order': False, 'shape': (1,)}",
       kUnimplemented, "descr '|b2' is not"},
      {"{'descr': 'int32', 'fortran_order': False, 'shape': (1,)}",
       kUnimplemented, "descr 'int32' is not"},
      {"{'descr': [('x', '<i4'), ('y', '<f8')], 'fortran_order': False, "
       "'shape': (1,)}",
       kUnimplemented, "descr [('x', '<i4'), ('y', '<f8')] is not"},
      {"{'descr': ('<i4', (2,)), 'fortran_order': False, 'shape': (1,)}",
       kUnimplemented, "descr ('<i4', (2,)) is not"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dict);
    EXPECT_THAT(NpyArray::Parse(Npy(c.dict, std::string(64, '\0'))),
                StatusIs(c.code, c.message));
  }
}

TEST(NpyParse, RefusesTooManyDimensions) {
  std::string shape = "(";
  for (size_t i = 0; i <= kMaxNpyDims; ++i) shape += "1, ";
  shape += ")";
  EXPECT_THAT(
      NpyArray::Parse(Npy(
          absl::StrCat(
              "{'descr': '<i4', 'fortran_order': False, 'shape': ", shape, "}"),
          "abcd")),
      StatusIs(absl::StatusCode::kDataLoss, "more than 64 dimensions"));
}

TEST(NpyParse, RefusesBadFraming) {
  const std::string good =
      std::string(Npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2,)}",
                      std::string(8, '\0'))
                      .view());
  ASSERT_THAT(Parse(good), IsOk());
  EXPECT_THAT(Parse(""), StatusIs(absl::StatusCode::kDataLoss, "\\x93NUMPY"));
  EXPECT_THAT(Parse("\x93NUMPZ\x01\x00"),
              StatusIs(absl::StatusCode::kDataLoss, "\\x93NUMPY"));
  std::string v4 = good;
  v4[6] = 4;
  EXPECT_THAT(Parse(v4),
              StatusIs(absl::StatusCode::kUnimplemented, "version 4.0"));
  std::string v11 = good;
  v11[7] = 1;
  EXPECT_THAT(Parse(v11),
              StatusIs(absl::StatusCode::kUnimplemented, "version 1.1"));
  EXPECT_THAT(Parse(good.substr(0, 9)),
              StatusIs(absl::StatusCode::kDataLoss, "header length"));
  EXPECT_THAT(Parse(good.substr(0, 60)),
              StatusIs(absl::StatusCode::kDataLoss, "truncated"));
  // Data one element short or long.
  EXPECT_THAT(Parse(good.substr(0, good.size() - 4)),
              StatusIs(absl::StatusCode::kDataLoss,
                       "needs 8 data bytes, but 4 follow"));
  EXPECT_THAT(Parse(good + "abcd"),
              StatusIs(absl::StatusCode::kDataLoss,
                       "needs 8 data bytes, but 12 follow"));
  // A header length beyond the limit is refused before anything else.
  const std::string huge =
      absl::StrCat(absl::string_view("\x93NUMPY\x02\x00", 8),
                   Le32(kMaxNpyHeaderSize + 1), "{}");
  EXPECT_THAT(Parse(huge),
              StatusIs(absl::StatusCode::kDataLoss, "longer than the limit"));
  const std::string huge3 = absl::StrCat(
      absl::string_view("\x93NUMPY\x03\x00", 8), Le32(0xffffffff), "{}");
  EXPECT_THAT(Parse(huge3),
              StatusIs(absl::StatusCode::kDataLoss, "longer than the limit"));
}

TEST(NpyParse, DataIsASliceOfTheInput) {
  const uint32_t values[] = {10, 20};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes npy, WriteNpy<uint32_t>(values));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray a, NpyArray::Parse(npy));
  EXPECT_EQ(a.data().data(), npy.data() + 128);
  EXPECT_EQ(a.data().owner(), npy.owner());
}

TEST(NpyDtypes, Names) {
  EXPECT_EQ(NpyDescr(NpyDtype::kBool), "|b1");
  EXPECT_EQ(NpyDescr(NpyDtype::kInt8), "|i1");
  EXPECT_EQ(NpyDescr(NpyDtype::kUInt8), "|u1");
  EXPECT_EQ(NpyDescr(NpyDtype::kInt64), "<i8");
  EXPECT_EQ(NpyDescr(NpyDtype::kFloat32), "<f4");
  EXPECT_EQ(NpyDtypeName(NpyDtype::kFloat64), "double");
  EXPECT_EQ(NpyItemSize(NpyDtype::kUInt16), 2u);
}

}  // namespace
}  // namespace proxystore::interop
