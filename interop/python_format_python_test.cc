// Both directions against the real Python ProxyStore 1.0: Python's
// serialize() -> our decoders, and our encoders -> Python's deserialize().
// Skips, saying why, where Python ProxyStore cannot be imported
// (testing/python_proxystore.h) and, for the array cases, where numpy
// cannot be. numpy comes from the python3 itself or, failing that, from
// Debian's python3-numpy (the same fallback as testdata/make_golden.py).
//
// Values travel as files in the test's temporary directory: argv cannot
// carry arbitrary bytes.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/interop/npy.h"
#include "proxystore/interop/python_format.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/python_proxystore.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::interop {
namespace {

using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::PythonProxyStoreDir;
using ::proxystore::testing::RunPython;
using ::testing::ElementsAre;

// Imports numpy as np (None if it cannot be had), and proxystore.serialize.
constexpr absl::string_view kPrelude = R"py(
import os, sys
try:
    import numpy as np
except ImportError:
    sys.path.append('/usr/lib/python3/dist-packages')
    try:
        import numpy as np
    except ImportError:
        np = None
from proxystore.serialize import serialize, deserialize
)py";

std::string Script(absl::string_view body) {
  return absl::StrCat(kPrelude, body);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

class PythonInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = PythonProxyStoreDir();
    if (!dir.ok()) {
      GTEST_SKIP() << "Python ProxyStore cannot be imported: " << dir.status();
    }
    dir_ = absl::StrCat(
        testing::TestTempDir(), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }

  // Skips the test unless the Python side has numpy.
  void RequireNumpy() {
    absl::StatusOr<std::string> out =
        RunPython(Script("print('yes' if np is not None else 'no')\n"));
    ASSERT_TRUE(out.ok()) << out.status();
    if (*out != "yes\n") {
      GTEST_SKIP() << "numpy cannot be imported by the python3 that runs "
                      "ProxyStore (install python3-numpy)";
    }
  }

  std::string Path(absl::string_view name) const {
    return absl::StrCat(dir_, "/", name);
  }

  std::string dir_;
};

// ------------------------------------------------- Python -> C++ decoders ---

TEST_F(PythonInterop, PythonBytesAndStrDecodeInCpp) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string out, RunPython(Script(R"py(
out = sys.argv[1]
values = {
    'empty': b'',
    'binary': bytes(range(256)) * 4096,
    'text': 'na\u00efve \u65e5\u672c \U0001F600 ' * 1000,
    'nul': 'a\x00b',
}
for name, value in values.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(serialize(value))
print('wrote', len(values))
)py"),
                                                             {dir_}));
  EXPECT_EQ(out, "wrote 4\n");

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes empty,
      DecodePythonBytes(SharedBytes::FromString(ReadFile(Path("empty")))));
  EXPECT_EQ(empty.size(), 0u);

  std::string binary;
  for (int r = 0; r < 4096; ++r) {
    for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes got,
      DecodePythonBytes(SharedBytes::FromString(ReadFile(Path("binary")))));
  EXPECT_TRUE(got.view() == binary);

  std::string text;
  for (int r = 0; r < 1000; ++r) {
    text += "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 ";
  }
  EXPECT_THAT(DecodePythonStr(ReadFile(Path("text"))), IsOkAndHolds(text));
  EXPECT_THAT(DecodePythonStr(ReadFile(Path("nul"))),
              IsOkAndHolds(std::string("a\0b", 3)));
}

TEST_F(PythonInterop, PythonArraysDecodeInCpp) {
  RequireNumpy();
  if (IsSkipped() || HasFatalFailure()) return;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string out, RunPython(Script(R"py(
out = sys.argv[1]
big = np.arange(100000, dtype='<f8').reshape(250, 400) * 0.5
values = {
    'big': big,
    'big_fortran': np.asfortranarray(big),
    'transposed': np.arange(12, dtype='<i8').reshape(3, 4).T,
    'sliced': np.arange(10, dtype='<u2')[::3],
    'bool_2d': np.array([[True, False], [False, True]]),
    'scalar': np.array(-7, dtype='<i2'),
    'empty_3d': np.zeros((2, 0, 5), dtype='<u4'),
}
for name, value in values.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(serialize(value))
print('wrote', len(values))
)py"),
                                                             {dir_}));
  EXPECT_EQ(out, "wrote 7\n");

  auto decode = [&](absl::string_view name) {
    return DecodePythonNumpy(SharedBytes::FromString(ReadFile(Path(name))));
  };
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray big, decode("big"));
  EXPECT_THAT(big.shape(), ElementsAre(250, 400));
  EXPECT_FALSE(big.fortran_order());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<double> v,
                                  big.ToVector<double>());
  ASSERT_EQ(v.size(), 100000u);
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_EQ(v[i], 0.5 * static_cast<double>(i)) << i;
  }

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray f, decode("big_fortran"));
  EXPECT_THAT(f.shape(), ElementsAre(250, 400));
  EXPECT_TRUE(f.fortran_order());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<double> fv, f.ToVector<double>());
  ASSERT_EQ(fv.size(), 100000u);
  // Column-major: element (r, c) is at c * 250 + r.
  for (size_t r = 0; r < 250; ++r) {
    for (size_t c = 0; c < 400; ++c) {
      ASSERT_EQ(fv[c * 250 + r], 0.5 * static_cast<double>(r * 400 + c));
    }
  }

  // A transposed C array is Fortran-contiguous: numpy writes it in that
  // order rather than copying.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray t, decode("transposed"));
  EXPECT_THAT(t.shape(), ElementsAre(4, 3));
  EXPECT_TRUE(t.fortran_order());
  EXPECT_THAT(t.ToVector<int64_t>(),
              IsOkAndHolds(ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)));
  // A strided view is written as a C-ordered copy.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray s, decode("sliced"));
  EXPECT_THAT(s.ToVector<uint16_t>(), IsOkAndHolds(ElementsAre(0, 3, 6, 9)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray b, decode("bool_2d"));
  EXPECT_THAT(b.ToVector<bool>(),
              IsOkAndHolds(ElementsAre(true, false, false, true)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray scalar, decode("scalar"));
  EXPECT_EQ(scalar.ndim(), 0u);
  EXPECT_THAT(scalar.ToVector<int16_t>(), IsOkAndHolds(ElementsAre(-7)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(NpyArray e, decode("empty_3d"));
  EXPECT_THAT(e.shape(), ElementsAre(2, 0, 5));
  EXPECT_EQ(e.size(), 0u);
}

// ------------------------------------------------ C++ encoders -> Python ---

TEST_F(PythonInterop, CppBytesAndStrDeserializeInPython) {
  std::string binary;
  for (int i = 0; i < 1 << 20; ++i) {
    binary.push_back(static_cast<char>((i * 7) & 0xff));
  }
  WriteFile(Path("binary"), EncodePythonBytes(binary).view());
  WriteFile(Path("empty"), EncodePythonBytes("").view());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes text,
      EncodePythonStr("\xc3\xa9t\xc3\xa9 \xf0\x9f\x8c\x9e \xe2\x82\xac"));
  WriteFile(Path("text"), text.view());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes nul,
                                  EncodePythonStr(absl::string_view("\0", 1)));
  WriteFile(Path("nul"), nul.view());

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string out, RunPython(Script(R"py(
d = sys.argv[1]
def load(name):
    with open(os.path.join(d, name), 'rb') as f:
        return deserialize(f.read())
expected = {
    'binary': bytes((i * 7) & 0xff for i in range(1 << 20)),
    'empty': b'',
    'text': '\u00e9t\u00e9 \U0001F31E \u20ac',
    'nul': '\x00',
}
for name, want in expected.items():
    got = load(name)
    assert type(got) is type(want), (name, type(got))
    assert got == want, (name, got[:100])
    print(name, 'ok')
)py"),
                                                             {dir_}));
  EXPECT_EQ(out, "binary ok\nempty ok\ntext ok\nnul ok\n");
}

TEST_F(PythonInterop, CppArraysDeserializeInPython) {
  RequireNumpy();
  if (IsSkipped() || HasFatalFailure()) return;
  std::vector<double> big(300 * 200);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<double>(i) / 4;
  auto write = [&](absl::string_view name,
                   absl::StatusOr<SharedBytes> encoded) {
    ASSERT_TRUE(encoded.ok()) << name << ": " << encoded.status();
    WriteFile(Path(name), encoded->view());
  };
  write("big", EncodePythonNumpy<double>(big, {300, 200}));
  write("big_fortran", EncodePythonNumpy<double>(big, {300, 200}, true));
  const bool flags[] = {true, false, true};
  write("bool", EncodePythonNumpy<bool>(flags));
  const int8_t i8[] = {-128, 127};
  write("int8", EncodePythonNumpy<int8_t>(i8));
  const uint64_t u64[] = {0, std::numeric_limits<uint64_t>::max()};
  write("uint64", EncodePythonNumpy<uint64_t>(u64));
  const int64_t i64[] = {std::numeric_limits<int64_t>::min(), 0,
                         std::numeric_limits<int64_t>::max()};
  write("int64", EncodePythonNumpy<int64_t>(i64));
  const float f32[] = {1.5f, -0.0f, std::numeric_limits<float>::infinity(),
                       std::numeric_limits<float>::quiet_NaN()};
  write("float32", EncodePythonNumpy<float>(f32));
  const int32_t scalar[] = {42};
  write("scalar", EncodePythonNumpy<int32_t>(scalar, {}));
  write("empty", EncodePythonNumpy<uint16_t>({}, {3, 0}));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string out, RunPython(Script(R"py(
d = sys.argv[1]
def load(name):
    with open(os.path.join(d, name), 'rb') as f:
        data = f.read()
    # What numpy.save writes for the same array, byte for byte.
    got = deserialize(data)
    assert serialize(got) == data, name
    return got
def check(name, got, want, fortran=False):
    assert isinstance(got, np.ndarray), (name, type(got))
    assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    assert np.array_equal(got, want, equal_nan=want.dtype.kind == 'f'), name
    if want.dtype.kind == 'f':
        assert np.array_equal(np.signbit(got), np.signbit(want)), name
    f_only = got.flags.f_contiguous and not got.flags.c_contiguous
    assert bool(f_only) == fortran, name
    print(name, 'ok')
big = np.arange(300 * 200, dtype='<f8').reshape(300, 200) / 4
check('big', load('big'), big)
# The C++ data is column-major: element (r, c) is big.flat[c * 300 + r].
fortran = np.asfortranarray(big.reshape(200, 300).T)
check('big_fortran', load('big_fortran'), fortran, fortran=True)
check('bool', load('bool'), np.array([True, False, True]))
check('int8', load('int8'), np.array([-128, 127], dtype='<i1'))
check('uint64', load('uint64'), np.array([0, 2**64 - 1], dtype='<u8'))
check('int64', load('int64'), np.array([-2**63, 0, 2**63 - 1], dtype='<i8'))
check('float32', load('float32'),
      np.array([1.5, -0.0, np.inf, np.nan], dtype='<f4'))
check('scalar', load('scalar'), np.array(42, dtype='<i4'))
check('empty', load('empty'), np.zeros((3, 0), dtype='<u2'))
)py"),
                                                             {dir_}));
  EXPECT_EQ(out,
            "big ok\nbig_fortran ok\nbool ok\nint8 ok\nuint64 ok\nint64 ok\n"
            "float32 ok\nscalar ok\nempty ok\n");
}

// ------------------------------------------------------------- agreement ---

// Odd framings: whatever Python's deserialize() reads, we read the same, and
// what it refuses, we refuse.
TEST_F(PythonInterop, FramingAgreesWithPythonDeserialize) {
  const std::vector<std::string> cases = {
      "BS\nabc",
      " BS \r\nabc",
      "\tBS\n\nx",
      "BS",
      "BS\n",
      "\x0b BS\x0c\n",
      "US\n\xc3\xa9",
      "US",
      " US\t\nhi",
      "US\n\xff",
      "US\n\xed\xa0\x80",
      "bs\nx",
      "B S\nx",
      "BSX\nx",
      "01\nabc",
      "02\nabc",
      "",
      "\n",
      "XY\nabc",
      std::string("\0BS\nx", 5),
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    WriteFile(Path(absl::StrCat(i)), cases[i]);
  }
  // Python prints, per case, "bytes <hex>", "str <hex of UTF-8>" or "error".
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::string out, RunPython(Script(R"py(
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, str(i)), 'rb') as f:
        data = f.read()
    try:
        got = deserialize(data)
    except Exception:
        print('error')
        continue
    if isinstance(got, bytes):
        print('bytes', got.hex())
    else:
        print('str', got.encode().hex())
)py"),
                                 {dir_, absl::StrCat(cases.size())}));
  std::vector<std::string> lines = absl::StrSplit(out, '\n');
  ASSERT_EQ(lines.size(), cases.size() + 1) << out;
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("case ", i, ": ", absl::CHexEscape(cases[i])));
    absl::StatusOr<PythonValue> ours =
        DecodePython(SharedBytes::Copy(cases[i]));
    std::string ours_line = "error";
    if (ours.ok() && std::holds_alternative<SharedBytes>(*ours)) {
      ours_line = absl::StrCat(
          "bytes ",
          absl::BytesToHexString(std::get<SharedBytes>(*ours).view()));
    } else if (ours.ok() && std::holds_alternative<std::string>(*ours)) {
      ours_line = absl::StrCat(
          "str ", absl::BytesToHexString(std::get<std::string>(*ours)));
    }
    EXPECT_EQ(ours_line, lines[i]);
  }
}

}  // namespace
}  // namespace proxystore::interop
