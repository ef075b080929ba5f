#include "proxystore/serializer/serializer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "flatbuffers/flatbuffers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/serializer/testdata/point_generated.h"
#include "proxystore/testing/status_matchers.h"

// ---- a user-defined codec, written as a user would ----

namespace userland {
struct Person {
  std::string name;
  int32_t age = 0;
  friend bool operator==(const Person&, const Person&) = default;
};
}  // namespace userland

template <>
struct proxystore::Codec<userland::Person> {
  // Payload: 4-byte little-endian age, then the name.
  static constexpr absl::string_view kName = "person-v1";
  static size_t EncodedSize(const userland::Person& p) {
    return 4 + p.name.size();
  }
  static void EncodeTo(const userland::Person& p, char* dst) {
    const auto age = static_cast<uint32_t>(p.age);
    for (int i = 0; i < 4; ++i) dst[i] = static_cast<char>(age >> (8 * i));
    std::memcpy(dst + 4, p.name.data(), p.name.size());
  }
  static absl::StatusOr<userland::Person> Decode(const SharedBytes& payload) {
    if (payload.size() < 4) return absl::DataLossError("person too short");
    uint32_t age = 0;
    for (int i = 0; i < 4; ++i) {
      age |= uint32_t{static_cast<unsigned char>(payload.data()[i])} << (8 * i);
    }
    return userland::Person{std::string(payload.view().substr(4)),
                            static_cast<int32_t>(age)};
  }
};

namespace userland {
// Codecs whose envelope header cannot be built at compile time: a name that
// is no constant expression, and a name too long for a header of
// kStaticHeaderMax bytes.
struct Note {
  std::string text;
  friend bool operator==(const Note&, const Note&) = default;
};
struct Tag {
  std::string text;
  friend bool operator==(const Tag&, const Tag&) = default;
};
template <typename T>
struct TextCodec {
  static size_t EncodedSize(const T& v) { return v.text.size(); }
  static void EncodeTo(const T& v, char* dst) {
    std::memcpy(dst, v.text.data(), v.text.size());
  }
  static absl::StatusOr<T> Decode(const proxystore::SharedBytes& payload) {
    return T{payload.ToString()};
  }
};
}  // namespace userland

template <>
struct proxystore::Codec<userland::Note> : userland::TextCodec<userland::Note> {
  static inline const std::string kName = "note-v1";
};
template <>
struct proxystore::Codec<userland::Tag> : userland::TextCodec<userland::Tag> {
  static constexpr absl::string_view kName =
      "tag-v1-with-a-codec-name-long-enough-that-the-envelope-header-it-makes-"
      "is-more-than-two-hundred-and-fifty-six-bytes-long-so-that-serialize-"
      "writes-it-field-by-field-at-run-time-as-it-does-for-any-name-that-is-"
      "not-a-compile-time-constant";
};

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using testdata::CreatePoint;
using testdata::Point;
using testdata::Vec2;
using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::HasSubstr;

struct Pixel {
  uint8_t r, g, b;
  float alpha;
  friend bool operator==(const Pixel&, const Pixel&) = default;
};
struct OtherPixel {  // same size as Pixel, different type
  uint8_t r, g, b;
  float alpha;
};
enum class Color : uint16_t { kRed = 1, kBlue = 7 };

// A type that must have no codec: not trivially copyable, no specialization.
struct NoCodec {
  std::unique_ptr<int> p;
};
// A trivially copyable type holding a pointer, opted out of "pod".
struct HoldsPointer {
  const char* text;
};

}  // namespace

template <>
inline constexpr bool kDisablePodCodec<HoldsPointer> = true;

namespace {

// The static check for a type without a codec: Serialize<NoCodec>(...) fails
// to compile with "proxystore::Codec<T> is not defined for this T ...".
static_assert(!kHasCodec<NoCodec>);
static_assert(!kHasCodec<HoldsPointer>);
static_assert(!kHasCodec<int*>);
static_assert(!kHasCodec<absl::string_view>);
static_assert(!kHasCodec<long double>);
static_assert(!kHasCodec<std::vector<bool>>);
static_assert(!kHasCodec<std::vector<std::string>>);
static_assert(!kHasCodec<const int>);
static_assert(!kHasCodec<Point>);  // a table by value: use FlatBuffer<Point>
static_assert(kHasCodec<userland::Person>);
static_assert(kHasCodec<Pixel>);
static_assert(kHasCodec<std::vector<Pixel>>);
static_assert(kHasCodec<FlatBuffer<Point>>);
static_assert(kHasCodec<Vec2>);  // FlatBuffers structs are plain pods
// TypeName is a compile-time constant.
static_assert(TypeName<int32_t>() == "int32_t");
static_assert(TypeName<std::string>() == "std::string");

TEST(KHasCodec, IsFalseForTypesWithoutCodec) {
  EXPECT_FALSE(kHasCodec<NoCodec>);
  EXPECT_FALSE(kHasCodec<std::vector<std::string>>);
  EXPECT_TRUE(kHasCodec<std::string>);
  EXPECT_TRUE(kHasCodec<double>);
}

TEST(TypeName, NamesTypes) {
  EXPECT_EQ(TypeName<double>(), "double");
  EXPECT_EQ(TypeName<uint64_t>(), "uint64_t");
  EXPECT_EQ(TypeName<SharedBytes>(), "proxystore::SharedBytes");
  EXPECT_EQ(TypeName<std::vector<double>>(), "std::vector<double>");
  EXPECT_EQ(TypeName<userland::Person>(), "userland::Person");
  EXPECT_EQ(TypeName<Pixel>(), "proxystore::{anonymous}::Pixel");
  EXPECT_NE(TypeName<Pixel>(), TypeName<OtherPixel>());
  // Cheap: the same storage every time.
  EXPECT_EQ(TypeName<Pixel>().data(), TypeName<Pixel>().data());
}

// ---- helpers ----

// A fresh, exactly sized heap copy, so ASan flags any read past the end.
SharedBytes ExactCopy(absl::string_view data) {
  std::vector<uint8_t> copy(data.size());
  if (!data.empty()) std::memcpy(copy.data(), data.data(), data.size());
  return SharedBytes::FromVector(std::move(copy));
}

std::string CompressibleText(size_t size) {
  static constexpr const char* kWords[] = {"proxy ",  "store ",     "lazy ",
                                           "object ", "connector ", "key "};
  std::string s;
  s.reserve(size + 16);
  uint32_t state = 12345;
  while (s.size() < size) {
    state = state * 1664525u + 1013904223u;
    s += kWords[(state >> 24) % 6];
  }
  s.resize(size);
  return s;
}

std::string RandomBytes(size_t size, uint64_t seed) {
  std::string s(size, '\0');
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    s[i] = static_cast<char>(state);
  }
  return s;
}

SerializeOptions Compressed(size_t threshold = 0) {
  SerializeOptions o;
  o.compress = true;
  o.compress_threshold = threshold;
  return o;
}

// A copy of `data` starting at an odd address.
SharedBytes Misaligned(absl::string_view data) {
  auto storage = std::make_shared<std::string>();
  storage->reserve(data.size() + 1);
  storage->push_back('\0');
  storage->append(data.data(), data.size());
  SharedBytes out =
      SharedBytes::FromOwner(storage, absl::string_view(*storage).substr(1));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(out.data()) % 2, 1u);
  return out;
}

template <typename T>
void ExpectRoundTrip(const T& value, const SerializeOptions& options = {}) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes bytes, Serialize(value, options));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(T back, Deserialize<T>(bytes));
  EXPECT_TRUE(back == value) << TypeName<T>();
  // Also from an exact-size copy (catches reads past the end under ASan).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(T back2,
                                  Deserialize<T>(ExactCopy(bytes.view())));
  EXPECT_TRUE(back2 == value) << TypeName<T>();
}

template <typename T>
void ExpectRoundTripBothWays(const T& value) {
  ExpectRoundTrip(value);
  ExpectRoundTrip(value, Compressed());
}

// ---- round trips ----

TEST(Serializer, StringRoundTrips) {
  ExpectRoundTripBothWays(std::string());
  ExpectRoundTripBothWays(std::string("hello"));
  ExpectRoundTripBothWays(std::string("with\0nul", 8));
  ExpectRoundTripBothWays(CompressibleText(100000));
}

TEST(Serializer, TenMegabyteStringRoundTripsCompressedAndNot) {
  const std::string text = CompressibleText(10'000'000);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes plain, Serialize(text));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo plain_info,
                                  InspectEnvelope(plain));
  EXPECT_FALSE(plain_info.compressed);
  EXPECT_EQ(plain.size(), plain_info.header_size + text.size());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string back,
                                  Deserialize<std::string>(plain));
  EXPECT_TRUE(back == text);

  SerializeOptions options;
  options.compress = true;  // default threshold 4096
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes packed, Serialize(text, options));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(packed));
  EXPECT_TRUE(info.compressed);
  EXPECT_EQ(info.payload_size, text.size());
  EXPECT_LT(info.stored_size, text.size() / 2);
  EXPECT_EQ(packed.size(), info.header_size + info.stored_size);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(back, Deserialize<std::string>(packed));
  EXPECT_TRUE(back == text);
  // The same compressed data read as every other byte type.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes raw,
                                  Deserialize<SharedBytes>(packed));
  EXPECT_TRUE(raw.view() == text);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto v,
                                  Deserialize<std::vector<char>>(packed));
  EXPECT_TRUE(absl::string_view(v.data(), v.size()) == text);
}

TEST(Serializer, IncompressibleOrSmallPayloadsAreStoredRaw) {
  const std::string random = RandomBytes(1 << 20, 1);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b,
                                  Serialize(random, Compressed()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
  EXPECT_FALSE(info.compressed);
  EXPECT_EQ(b.size(), info.header_size + random.size());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string back,
                                  Deserialize<std::string>(b));
  EXPECT_TRUE(back == random);

  // Below the threshold: not even tried.
  SerializeOptions options;
  options.compress = true;
  options.compress_threshold = 4096;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(b,
                                  Serialize(std::string(4095, 'a'), options));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(info, InspectEnvelope(b));
  EXPECT_FALSE(info.compressed);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(b,
                                  Serialize(std::string(4096, 'a'), options));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(info, InspectEnvelope(b));
  EXPECT_TRUE(info.compressed);
}

TEST(Serializer, ByteVectorsRoundTrip) {
  ExpectRoundTripBothWays(std::vector<uint8_t>{});
  ExpectRoundTripBothWays(std::vector<uint8_t>{0, 1, 2, 255});
  ExpectRoundTripBothWays(std::vector<std::byte>{});
  ExpectRoundTripBothWays(
      std::vector<std::byte>{std::byte{0}, std::byte{0x80}, std::byte{0xFF}});
  ExpectRoundTripBothWays(std::vector<char>{});
  ExpectRoundTripBothWays(std::vector<char>{'a', '\0', 'b'});
  const std::string text = CompressibleText(50000);
  ExpectRoundTripBothWays(std::vector<uint8_t>(text.begin(), text.end()));
  ExpectRoundTripBothWays(std::vector<char>(text.begin(), text.end()));
}

TEST(Serializer, SharedBytesRoundTripsAndDeserializesWithoutCopy) {
  ExpectRoundTripBothWays(SharedBytes());
  ExpectRoundTripBothWays(SharedBytes::Copy("abc"));
  ExpectRoundTripBothWays(SharedBytes::FromString(CompressibleText(50000)));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes bytes,
                                  Serialize(SharedBytes::Copy("payload")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(bytes));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes back,
                                  Deserialize<SharedBytes>(bytes));
  EXPECT_EQ(back.data(), bytes.data() + info.header_size);  // a slice
  EXPECT_EQ(back.owner(), bytes.owner());
  bytes = SharedBytes();  // the slice keeps the buffer alive
  EXPECT_EQ(back.view(), "payload");
}

TEST(Serializer, ByteTypesReadEachOthersData) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes s, Serialize(std::string("xyz")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto v, Deserialize<std::vector<uint8_t>>(s));
  EXPECT_EQ(v, (std::vector<uint8_t>{'x', 'y', 'z'}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b, Serialize(v));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string str, Deserialize<std::string>(b));
  EXPECT_EQ(str, "xyz");
}

TEST(Serializer, ArithmeticRoundTrips) {
  ExpectRoundTripBothWays(true);
  ExpectRoundTripBothWays(false);
  ExpectRoundTripBothWays('c');
  ExpectRoundTripBothWays(std::numeric_limits<int8_t>::min());
  ExpectRoundTripBothWays(std::numeric_limits<uint8_t>::max());
  ExpectRoundTripBothWays(std::numeric_limits<int16_t>::min());
  ExpectRoundTripBothWays(std::numeric_limits<uint16_t>::max());
  ExpectRoundTripBothWays(std::numeric_limits<int32_t>::min());
  ExpectRoundTripBothWays(std::numeric_limits<uint32_t>::max());
  ExpectRoundTripBothWays(std::numeric_limits<int64_t>::min());
  ExpectRoundTripBothWays(std::numeric_limits<uint64_t>::max());
  ExpectRoundTripBothWays(-1.5f);
  ExpectRoundTripBothWays(std::numeric_limits<double>::infinity());
  ExpectRoundTripBothWays(0.1);

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes nan, Serialize(std::numeric_limits<double>::quiet_NaN()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(double d, Deserialize<double>(nan));
  EXPECT_TRUE(std::isnan(d));
}

TEST(Serializer, ArithmeticLayoutIsLittleEndian) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b,
                                  Serialize(uint32_t{0x01020304}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
  EXPECT_EQ(info.codec, "uint32");
  EXPECT_EQ(info.type_name, "uint32_t");
  EXPECT_EQ(b.view().substr(info.header_size), "\x04\x03\x02\x01");
}

TEST(Serializer, ArithmeticCodecNameFixesTheLayout) {
  // `long` and `long long` are distinct types but both int64.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b, Serialize(42L));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(long long v, Deserialize<long long>(b));
  EXPECT_EQ(v, 42);
}

TEST(Serializer, BoolRejectsOtherByteValues) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b, Serialize(true));
  std::string forged(b.view());
  forged.back() = 2;
  EXPECT_THAT(Deserialize<bool>(ExactCopy(forged)),
              StatusIs(absl::StatusCode::kDataLoss, "not 0 or 1"));
}

TEST(Serializer, PodStructsEnumsAndVectorsRoundTrip) {
  ExpectRoundTripBothWays(Pixel{1, 2, 3, 0.5f});
  ExpectRoundTripBothWays(Color::kBlue);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b,
                                  Serialize(Pixel{1, 2, 3, 0.5f}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
  EXPECT_EQ(info.codec, "pod");
  EXPECT_EQ(info.payload_size, sizeof(Pixel));

  ExpectRoundTripBothWays(std::vector<double>{});
  ExpectRoundTripBothWays(std::vector<double>{1.5, -2.25, 1e300});
  ExpectRoundTripBothWays(std::vector<int32_t>(100000, 7));
  ExpectRoundTripBothWays(std::vector<uint64_t>{0, ~uint64_t{0}});
  ExpectRoundTripBothWays(std::vector<Pixel>{{1, 2, 3, 0.5f}, {4, 5, 6, 1.f}});
  ExpectRoundTripBothWays(std::vector<Pixel>(5000, Pixel{9, 9, 9, 9.f}));

  // A FlatBuffers struct is a plain pod too.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes v, Serialize(Vec2(1.0, -2.0)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Vec2 vec, Deserialize<Vec2>(v));
  EXPECT_EQ(vec.x(), 1.0);
  EXPECT_EQ(vec.y(), -2.0);
}

TEST(Serializer, UserDefinedCodecRoundTrips) {
  ExpectRoundTripBothWays(userland::Person{"Ada", 36});
  ExpectRoundTripBothWays(userland::Person{"", -1});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b,
                                  Serialize(userland::Person{"Ada", 36}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
  EXPECT_EQ(info.codec, "person-v1");
  EXPECT_EQ(info.type_name, "userland::Person");
  EXPECT_THAT(
      Deserialize<std::string>(b),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("userland::Person"), HasSubstr("std::string"))));
}

TEST(Serializer, UserCodecErrorsPropagate) {
  // A valid envelope whose payload the user's codec rejects.
  const size_t header =
      *internal::EnvelopeHeaderSize("person-v1", TypeName<userland::Person>());
  std::string forged(header + 2, '\0');
  internal::WriteEnvelopeHeader(forged.data(), header, "person-v1",
                                TypeName<userland::Person>(), false, 2, 2);
  EXPECT_THAT(Deserialize<userland::Person>(ExactCopy(forged)),
              StatusIs(absl::StatusCode::kDataLoss, "person too short"));
}

// ---- envelope layout ----

TEST(Envelope, LayoutMatchesTheDocumentedBytes) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b, Serialize(std::string("hi")));
  const absl::string_view v = b.view();
  // 32 fixed + "string" (6) + "std::string" (11) = 49 -> 64.
  ASSERT_EQ(v.size(), 64u + 2u);
  EXPECT_EQ(v.substr(0, 4), "\x89PSC");
  EXPECT_EQ(v[4], 1);                                            // version
  EXPECT_EQ(v[5], 0);                                            // flags
  EXPECT_EQ(v.substr(6, 2), absl::string_view("\x40\x00", 2));   // H = 64
  EXPECT_EQ(v.substr(8, 2), absl::string_view("\x06\x00", 2));   // C
  EXPECT_EQ(v.substr(10, 2), absl::string_view("\x0b\x00", 2));  // N
  EXPECT_EQ(v.substr(12, 4), absl::string_view("\0\0\0\0", 4));
  EXPECT_EQ(v.substr(16, 8), absl::string_view("\x02\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(v.substr(24, 8), absl::string_view("\x02\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(v.substr(32, 6), "string");
  EXPECT_EQ(v.substr(38, 11), "std::string");
  EXPECT_EQ(v.substr(49, 15), std::string(15, '\0'));
  EXPECT_EQ(v.substr(64), "hi");
}

// Codecs with constant names get their header built at compile time; the
// others write it at run time. Both give the documented bytes (those that
// WriteEnvelopeHeader writes).
template <typename T>
void ExpectHeaderIsTheDocumentedOne(const T& value, size_t payload_size) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b, Serialize(value));
  const absl::string_view codec = Codec<T>::kName;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      const size_t header_size,
      internal::EnvelopeHeaderSize(codec, TypeName<T>()));
  std::string want(header_size, '\x55');
  internal::WriteEnvelopeHeader(want.data(), header_size, codec, TypeName<T>(),
                                /*compressed=*/false, payload_size,
                                payload_size);
  ASSERT_EQ(b.size(), header_size + payload_size) << TypeName<T>();
  EXPECT_EQ(b.view().substr(0, header_size), want) << TypeName<T>();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(T back, Deserialize<T>(b));
  EXPECT_TRUE(back == value) << TypeName<T>();
}

static_assert(internal::HasStaticHeader<std::string>());
static_assert(internal::HasStaticHeader<SharedBytes>());
static_assert(internal::HasStaticHeader<userland::Person>());
static_assert(!internal::HasStaticHeader<userland::Note>());
static_assert(!internal::HasStaticHeader<userland::Tag>());

TEST(Envelope, CompileTimeAndRunTimeHeadersAreTheDocumentedBytes) {
  ExpectHeaderIsTheDocumentedOne(std::string("hi"), 2);
  ExpectHeaderIsTheDocumentedOne(std::string(), 0);
  ExpectHeaderIsTheDocumentedOne(std::string(70'000, 'x'), 70'000);
  ExpectHeaderIsTheDocumentedOne(int32_t{-5}, 4);
  ExpectHeaderIsTheDocumentedOne(std::vector<Pixel>{{1, 2, 3, 0.5f}},
                                 sizeof(Pixel));
  ExpectHeaderIsTheDocumentedOne(userland::Person{"Ada", 36}, 7);
  ExpectHeaderIsTheDocumentedOne(userland::Note{"runtime name"}, 12);
  ExpectHeaderIsTheDocumentedOne(userland::Tag{"long name"}, 9);
}

TEST(Envelope, PayloadIsSixteenByteAligned) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b,
                                  Serialize(std::vector<double>{1, 2, 3}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
  EXPECT_EQ(info.header_size % 16, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 16, 0u);
  EXPECT_EQ(b.size(), info.header_size + 3 * sizeof(double));
}

// Small buffers share one allocation with their reference count, larger
// ones are malloc'd; a compressed buffer that shrank moves to an exact one.
// Every kind starts 16-byte aligned and round-trips.
TEST(Envelope, BuffersOfEveryKindAreAlignedAndExact) {
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{1000},
        size_t{65'400}, size_t{65'536}, size_t{70'000}}) {
    for (bool compress : {false, true}) {
      const std::string text = CompressibleText(n);
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(
          SharedBytes b,
          Serialize(text, compress ? Compressed() : SerializeOptions{}));
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 16, 0u) << n;
      EXPECT_EQ(b.size(), info.header_size + info.stored_size) << n;
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string back,
                                      Deserialize<std::string>(b));
      EXPECT_EQ(back, text) << n << " compress=" << compress;
    }
  }
}

TEST(Envelope, MisalignedInputIsReadWithoutMisalignedAccess) {
  const std::vector<double> values = {1.5, 2.5, 3.5};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b, Serialize(values));
  const SharedBytes shifted = Misaligned(b.view());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto back,
                                  Deserialize<std::vector<double>>(shifted));
  EXPECT_EQ(back, values);
}

// ---- wrong type / codec ----

TEST(Errors, WrongTypeNamesBothTypes) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b, Serialize(int32_t{7}));
  EXPECT_THAT(Deserialize<double>(b),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("int32_t"), HasSubstr("double"),
                             HasSubstr("int32"), HasSubstr("float64"))));
  EXPECT_THAT(Deserialize<std::string>(b),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("int32_t"), HasSubstr("std::string"))));
  EXPECT_THAT(Deserialize<uint32_t>(b),
              StatusIs(absl::StatusCode::kInvalidArgument, "uint32_t"));
  EXPECT_THAT(Deserialize<FlatBuffer<Point>>(b),
              StatusIs(absl::StatusCode::kInvalidArgument, "flatbuffer"));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes p, Serialize(Pixel{1, 2, 3, 4}));
  EXPECT_THAT(Deserialize<OtherPixel>(p),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("Pixel"), HasSubstr("OtherPixel"))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes v,
                                  Serialize(std::vector<int32_t>{1, 2}));
  EXPECT_THAT(Deserialize<std::vector<float>>(v),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("std::vector<int>"),
                             HasSubstr("std::vector<float>"))));
  EXPECT_THAT(Deserialize<std::vector<uint8_t>>(v),
              StatusIs(absl::StatusCode::kInvalidArgument, "vector"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes s, Serialize(std::string("x")));
  EXPECT_THAT(Deserialize<int32_t>(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("std::string"), HasSubstr("int32_t"))));
}

TEST(Errors, PayloadSizesAreChecked) {
  // Valid envelopes (right codec and type) with wrong payload sizes.
  auto forge = [](absl::string_view codec, absl::string_view type,
                  size_t payload_size) {
    const size_t header = *internal::EnvelopeHeaderSize(codec, type);
    std::string out(header + payload_size, '\x01');
    internal::WriteEnvelopeHeader(out.data(), header, codec, type, false,
                                  payload_size, payload_size);
    return ExactCopy(out);
  };
  EXPECT_THAT(Deserialize<int32_t>(forge("int32", "int32_t", 3)),
              StatusIs(absl::StatusCode::kDataLoss, "expected 4"));
  EXPECT_THAT(Deserialize<Pixel>(forge("pod", TypeName<Pixel>(), 1)),
              StatusIs(absl::StatusCode::kDataLoss,
                       absl::StrCat("expected ", sizeof(Pixel))));
  EXPECT_THAT(Deserialize<std::vector<double>>(
                  forge("vector", "std::vector<double>", 12)),
              StatusIs(absl::StatusCode::kDataLoss, "not a multiple"));
  EXPECT_THAT(Deserialize<std::vector<double>>(
                  forge("vector", "std::vector<double>", 16)),
              IsOk());
}

// ---- corrupt input: never a crash ----

// Every value this file serializes for the corruption tests.
std::vector<std::pair<std::string, SharedBytes>> Samples() {
  std::vector<std::pair<std::string, SharedBytes>> out;
  out.emplace_back("int32", *Serialize(int32_t{-5}));
  out.emplace_back("string", *Serialize(std::string("hello world")));
  out.emplace_back("compressed string",
                   *Serialize(CompressibleText(300), Compressed()));
  out.emplace_back("vector<double>", *Serialize(std::vector<double>{1, 2}));
  out.emplace_back("pixel", *Serialize(Pixel{1, 2, 3, 4}));
  flatbuffers::FlatBufferBuilder fbb;
  const Vec2 pos(1, 2);
  fbb.Finish(CreatePoint(fbb, fbb.CreateString("p"), &pos,
                         fbb.CreateVector(std::vector<int32_t>{1, 2, 3})));
  out.emplace_back("flatbuffer",
                   *Serialize(FlatBuffer<Point>::FromBuilder(std::move(fbb))));
  return out;
}

// Deserializes `data` as every type; none may crash. Returns the status of
// reading it as the sample's own type.
template <typename T>
absl::Status ReadAs(const SharedBytes& data) {
  return Deserialize<T>(data).status();
}
std::vector<absl::Status> ReadAsEverything(const SharedBytes& data) {
  return {ReadAs<int32_t>(data),
          ReadAs<std::string>(data),
          ReadAs<SharedBytes>(data),
          ReadAs<std::vector<uint8_t>>(data),
          ReadAs<std::vector<double>>(data),
          ReadAs<Pixel>(data),
          ReadAs<bool>(data),
          ReadAs<FlatBuffer<Point>>(data),
          ReadAs<userland::Person>(data),
          InspectEnvelope(data).status()};
}

TEST(Corruption, EveryTruncationFails) {
  for (const auto& [name, full] : Samples()) {
    for (size_t len = 0; len < full.size(); ++len) {
      const SharedBytes cut = ExactCopy(full.view().substr(0, len));
      for (const absl::Status& s : ReadAsEverything(cut)) {
        EXPECT_THAT(s, AnyOf(StatusIs(absl::StatusCode::kDataLoss),
                             StatusIs(absl::StatusCode::kInvalidArgument)))
            << name << " cut to " << len;
      }
    }
  }
  EXPECT_THAT(Deserialize<std::string>(SharedBytes()),
              StatusIs(absl::StatusCode::kDataLoss, "empty"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b, Serialize(std::string("abc")));
  EXPECT_THAT(Deserialize<std::string>(ExactCopy(b.view().substr(0, 40))),
              StatusIs(absl::StatusCode::kDataLoss, "truncated"));
  EXPECT_THAT(
      Deserialize<std::string>(ExactCopy(b.view().substr(0, b.size() - 1))),
      StatusIs(absl::StatusCode::kDataLoss, "truncated"));
  EXPECT_THAT(Deserialize<std::string>(ExactCopy(absl::StrCat(b.view(), "x"))),
              StatusIs(absl::StatusCode::kDataLoss, "corrupt"));
}

TEST(Corruption, HeaderFromAPrefixChecksWhatTheWholeDataWould) {
  for (const auto& [name, full] : Samples()) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(internal::ParsedData whole,
                                    internal::ParseData(full.view()));
    const size_t header = whole.header_size;
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        internal::ParsedData from_prefix,
        internal::ParseHeader(full.view().substr(0, header), full.size()));
    EXPECT_EQ(from_prefix.codec, whole.codec) << name;
    EXPECT_EQ(from_prefix.type_name, whole.type_name) << name;
    EXPECT_EQ(from_prefix.stored_size, whole.stored_size) << name;
    EXPECT_EQ(from_prefix.compressed, whole.compressed) << name;
    if (whole.format == SerializeOptions::Format::kNative) {
      // A prefix shorter than the header: read more.
      EXPECT_THAT(
          internal::ParseHeader(full.view().substr(0, header - 1), full.size()),
          StatusIs(absl::StatusCode::kOutOfRange))
          << name;
    }
    // A total that disagrees with the length field: as for whole data.
    EXPECT_THAT(
        internal::ParseHeader(full.view().substr(0, header), full.size() + 1),
        StatusIs(absl::StatusCode::kDataLoss))
        << name;
  }
}

TEST(Corruption, EveryHeaderBitFlipIsDetected) {
  for (const auto& [name, full] : Samples()) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(full));
    EXPECT_EQ(info.compressed, name == "compressed string");
    for (size_t bit = 0; bit < info.header_size * 8; ++bit) {
      std::string flipped(full.view());
      flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
      const SharedBytes data = ExactCopy(flipped);
      for (const absl::Status& s : ReadAsEverything(data)) {
        // Reading as a type the sample is not fails anyway; what matters is
        // no crash and no other codes.
        EXPECT_THAT(s, AnyOf(IsOk(), StatusIs(absl::StatusCode::kDataLoss),
                             StatusIs(absl::StatusCode::kInvalidArgument)))
            << name << " bit " << bit;
      }
      // Read as its own type, a header flip is always detected, except in
      // the type name of codecs that ignore it (arithmetic, byte types):
      // then the value must come back unchanged.
      if (name == "int32") {
        auto v = Deserialize<int32_t>(data);
        if (v.ok()) {
          EXPECT_EQ(*v, -5) << "bit " << bit;
        }
      } else if (name == "string" || name == "compressed string") {
        auto v = Deserialize<std::string>(data);
        if (v.ok()) {
          EXPECT_EQ(*v, *Deserialize<std::string>(full)) << "bit " << bit;
        }
      } else if (name == "vector<double>") {
        EXPECT_FALSE(Deserialize<std::vector<double>>(data).ok()) << bit;
      } else if (name == "pixel") {
        EXPECT_FALSE(Deserialize<Pixel>(data).ok()) << bit;
      } else if (name == "flatbuffer") {
        EXPECT_FALSE(Deserialize<FlatBuffer<Point>>(data).ok()) << bit;
      }
    }
  }
}

TEST(Corruption, GarbageNeverCrashes) {
  for (uint64_t seed = 0; seed < 300; ++seed) {
    std::string garbage = RandomBytes(seed % 97, seed);
    if (seed % 3 == 0 && garbage.size() >= 4) {
      std::memcpy(garbage.data(), "\x89PSC", 4);  // past the magic check
      if (garbage.size() > 4) garbage[4] = 1;
    }
    for (const absl::Status& s : ReadAsEverything(ExactCopy(garbage))) {
      EXPECT_THAT(s, AnyOf(IsOk(), StatusIs(absl::StatusCode::kDataLoss),
                           StatusIs(absl::StatusCode::kInvalidArgument)))
          << "seed " << seed;
    }
  }
  EXPECT_THAT(Deserialize<std::string>(SharedBytes::Copy("hello world")),
              StatusIs(absl::StatusCode::kDataLoss, "magic"));
  EXPECT_THAT(Deserialize<std::string>(SharedBytes::Copy("xx\nabc")),
              StatusIs(absl::StatusCode::kDataLoss, "magic"));
}

// Overwrites `size` little-endian bytes at `offset`.
SharedBytes Patch(const SharedBytes& in, size_t offset, uint64_t value,
                  int size) {
  std::string s(in.view());
  for (int i = 0; i < size; ++i)
    s[offset + i] = static_cast<char>(value >> (8 * i));
  return ExactCopy(s);
}

TEST(Corruption, ForgedHugeLengthFieldsAreRejected) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b, Serialize(std::string("abc")));
  const uint64_t kHuge = ~uint64_t{0};
  EXPECT_THAT(Deserialize<std::string>(Patch(b, 16, kHuge, 8)),
              StatusIs(absl::StatusCode::kDataLoss, "truncated"));
  EXPECT_THAT(Deserialize<std::string>(Patch(b, 24, kHuge, 8)),
              StatusIs(absl::StatusCode::kDataLoss, "corrupt"));
  EXPECT_THAT(Deserialize<std::string>(Patch(b, 6, 0xFFF0, 2)),
              StatusIs(absl::StatusCode::kDataLoss, "header size"));
  EXPECT_THAT(Deserialize<std::string>(Patch(b, 8, 0xFFFF, 2)),
              StatusIs(absl::StatusCode::kDataLoss, "header size"));
  EXPECT_THAT(Deserialize<std::string>(Patch(b, 10, 0xFFFF, 2)),
              StatusIs(absl::StatusCode::kDataLoss, "header size"));
  EXPECT_THAT(Deserialize<std::string>(Patch(b, 8, 0, 2)),
              StatusIs(absl::StatusCode::kDataLoss, "empty codec"));
  EXPECT_THAT(Deserialize<std::string>(Patch(b, 4, 2, 1)),
              StatusIs(absl::StatusCode::kDataLoss, "version 2"));
  EXPECT_THAT(Deserialize<std::string>(Patch(b, 5, 0x80, 1)),
              StatusIs(absl::StatusCode::kDataLoss, "flags"));
  EXPECT_THAT(Deserialize<std::string>(Patch(b, 12, 1, 4)),
              StatusIs(absl::StatusCode::kDataLoss, "reserved"));
  EXPECT_THAT(Deserialize<std::string>(Patch(b, 60, 1, 1)),
              StatusIs(absl::StatusCode::kDataLoss, "padding"));
  // The compressed flag on raw data: stored size == decoded size.
  EXPECT_THAT(Deserialize<std::string>(Patch(b, 5, 1, 1)),
              StatusIs(absl::StatusCode::kDataLoss, "compressed"));
}

TEST(Corruption, ForgedLz4SizeClaimsAreRejectedBeforeAllocating) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes b, Serialize(CompressibleText(100000), Compressed()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
  ASSERT_TRUE(info.compressed);
  const uint64_t s = info.stored_size;
  // Impossible ratios and sizes beyond the lz4 limit: refused up front.
  for (uint64_t claim : {s * 255 + 17, uint64_t{kMaxLz4Input} + 1,
                         uint64_t{1} << 40, ~uint64_t{0}}) {
    EXPECT_THAT(Deserialize<std::string>(Patch(b, 24, claim, 8)),
                StatusIs(absl::StatusCode::kDataLoss, "refusing"))
        << claim;
    EXPECT_THAT(Deserialize<SharedBytes>(Patch(b, 24, claim, 8)),
                StatusIs(absl::StatusCode::kDataLoss, "refusing"));
  }
  // Plausible but wrong claims: lz4 notices.
  for (uint64_t claim : {info.payload_size - 1, info.payload_size + 1, s + 1}) {
    EXPECT_THAT(Deserialize<std::string>(Patch(b, 24, claim, 8)),
                StatusIs(absl::StatusCode::kDataLoss, "lz4"))
        << claim;
    EXPECT_THAT(Deserialize<SharedBytes>(Patch(b, 24, claim, 8)),
                StatusIs(absl::StatusCode::kDataLoss, "lz4"));
  }
  // Corrupt block contents.
  std::string junk(b.view());
  for (size_t i = info.header_size; i < junk.size(); i += 7) junk[i] ^= 0x5A;
  EXPECT_THAT(Deserialize<std::string>(ExactCopy(junk)),
              StatusIs(absl::StatusCode::kDataLoss, "lz4"));
  EXPECT_THAT(Deserialize<std::vector<char>>(ExactCopy(junk)),
              StatusIs(absl::StatusCode::kDataLoss, "lz4"));
}

TEST(Corruption, Lz4RatioBoundHoldsForRealData) {
  // Zeros compress about as well as lz4 allows; the bound must accept them.
  const std::string zeros(8 << 20, '\0');
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b,
                                  Serialize(zeros, Compressed()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
  EXPECT_TRUE(info.compressed);
  EXPECT_GT(info.payload_size / info.stored_size, 200u);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string back,
                                  Deserialize<std::string>(b));
  EXPECT_TRUE(back == zeros);
}

// ---- ProxyStore Python format ----

TEST(Python, WritesProxyStoreBytesAndStr) {
  SerializeOptions py;
  py.format = SerializeOptions::Format::kProxyStorePython;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes s,
                                  Serialize(std::string("abc"), py));
  EXPECT_EQ(s.view(), "US\nabc");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes b, Serialize(std::vector<uint8_t>{'a', 'b', 'c'}, py));
  EXPECT_EQ(b.view(), "BS\nabc");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes c,
                                  Serialize(SharedBytes::Copy("xyz"), py));
  EXPECT_EQ(c.view(), "BS\nxyz");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes e, Serialize(std::string(), py));
  EXPECT_EQ(e.view(), "US\n");
  // Compression does not apply to the Python format.
  py.compress = true;
  py.compress_threshold = 0;
  const std::string text = CompressibleText(100000);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes big, Serialize(text, py));
  EXPECT_EQ(big.view().substr(3), text);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string back,
                                  Deserialize<std::string>(big));
  EXPECT_EQ(back, text);

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
  EXPECT_EQ(info.format, SerializeOptions::Format::kProxyStorePython);
  EXPECT_EQ(info.codec, "BS");
  EXPECT_EQ(info.type_name, "bytes");
  EXPECT_EQ(info.payload_size, 3u);
}

TEST(Python, RejectsOtherTypesAndInvalidUtf8) {
  SerializeOptions py;
  py.format = SerializeOptions::Format::kProxyStorePython;
  EXPECT_THAT(
      Serialize(int32_t{1}, py),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("int32_t"), HasSubstr("bytes and str"))));
  EXPECT_THAT(Serialize(std::string("\xff\xfe"), py),
              StatusIs(absl::StatusCode::kInvalidArgument, "UTF-8"));
  EXPECT_THAT(Serialize(std::string("\xed\xa0\x80"), py),  // a surrogate
              StatusIs(absl::StatusCode::kInvalidArgument, "UTF-8"));
  EXPECT_THAT(Serialize(std::string("\xc0\xaf"), py),  // overlong '/'
              StatusIs(absl::StatusCode::kInvalidArgument, "UTF-8"));
  EXPECT_THAT(Serialize(std::string("abcdefgh\xe2\x82"), py),  // cut short
              StatusIs(absl::StatusCode::kInvalidArgument, "UTF-8"));
  EXPECT_THAT(
      Serialize(std::string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"), py),
      IsOk());
  // Non-UTF-8 bytes go as bytes.
  EXPECT_THAT(Serialize(std::vector<char>{'\xff'}, py), IsOk());
}

TEST(Python, ReadsHandWrittenProxyStoreData) {
  for (absl::string_view raw :
       {absl::string_view("BS\nabc"), absl::string_view("US\nabc"),
        absl::string_view("01\nabc"), absl::string_view("02\nabc")}) {
    const SharedBytes data = ExactCopy(raw);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string s,
                                    Deserialize<std::string>(data));
    EXPECT_EQ(s, "abc") << raw;
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto v,
                                    Deserialize<std::vector<uint8_t>>(data));
    EXPECT_EQ(v, (std::vector<uint8_t>{'a', 'b', 'c'})) << raw;
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto bytes,
                                    Deserialize<std::vector<std::byte>>(data));
    EXPECT_EQ(bytes.size(), 3u);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto chars,
                                    Deserialize<std::vector<char>>(data));
    EXPECT_EQ(chars.size(), 3u);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes sb,
                                    Deserialize<SharedBytes>(data));
    EXPECT_EQ(sb.view(), "abc");
    EXPECT_EQ(sb.data(), data.data() + 3);  // zero-copy slice
  }
  for (absl::string_view raw :
       {absl::string_view("01\n"), absl::string_view("02\n"),
        absl::string_view("BS\n"), absl::string_view("US\n")}) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string s,
                                    Deserialize<std::string>(ExactCopy(raw)));
    EXPECT_EQ(s, "") << raw;
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b,
                                    Deserialize<SharedBytes>(ExactCopy(raw)));
    EXPECT_TRUE(b.empty());
  }
}

TEST(Python, PickledAndOtherObjectsCannotBeRead) {
  for (absl::string_view raw :
       {absl::string_view("PK\n\x80\x05K\x01."), absl::string_view("03\n\x80"),
        absl::string_view("CP\n\x80"), absl::string_view("04\n"),
        absl::string_view("NP\n\x93NUMPY"), absl::string_view("PD\n"),
        absl::string_view("PL\n")}) {
    EXPECT_THAT(Deserialize<std::string>(ExactCopy(raw)),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("cannot be read in C++"),
                               HasSubstr(std::string(raw.substr(0, 2))))))
        << raw;
    EXPECT_THAT(Deserialize<SharedBytes>(ExactCopy(raw)),
                StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(Deserialize<int32_t>(ExactCopy(raw)),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
  EXPECT_THAT(Deserialize<std::string>(ExactCopy("PK\n")),
              StatusIs(absl::StatusCode::kInvalidArgument, "pickle"));
  // Python bytes read as a non-byte type.
  EXPECT_THAT(Deserialize<int32_t>(ExactCopy("BS\nabcd")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("Python bytes"), HasSubstr("int32_t"))));
  EXPECT_THAT(Deserialize<FlatBuffer<Point>>(ExactCopy("US\nabcd")),
              StatusIs(absl::StatusCode::kInvalidArgument, "Python str"));
}

// ---- FlatBuffers ----

FlatBuffer<Point> MakePoint(absl::string_view name, int samples) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<int32_t> values(samples);
  for (int i = 0; i < samples; ++i) values[i] = i % 10;
  const Vec2 pos(1.5, -2.5);
  fbb.Finish(CreatePoint(fbb, fbb.CreateString(name.data(), name.size()), &pos,
                         fbb.CreateVector(values)));
  return FlatBuffer<Point>::FromBuilder(std::move(fbb));
}

void ExpectPoint(const FlatBuffer<Point>& p, absl::string_view name,
                 int samples) {
  ASSERT_NE(p.root(), nullptr);
  ASSERT_NE(p->name(), nullptr);
  EXPECT_EQ(p->name()->string_view(),
            std::string_view(name.data(), name.size()));
  ASSERT_NE(p->pos(), nullptr);
  EXPECT_EQ(p->pos()->x(), 1.5);
  EXPECT_EQ((*p).pos()->y(), -2.5);
  ASSERT_NE(p->samples(), nullptr);
  ASSERT_EQ(p->samples()->size(), static_cast<uint32_t>(samples));
  if (samples > 0) {
    EXPECT_EQ(p->samples()->Get(samples - 1), (samples - 1) % 10);
  }
}

TEST(FlatBuffers, FromBuilderDoesNotCopy) {
  flatbuffers::FlatBufferBuilder fbb;
  const Vec2 pos(1.5, -2.5);
  fbb.Finish(CreatePoint(fbb, fbb.CreateString("a"), &pos));
  const uint8_t* built = fbb.GetBufferPointer();
  FlatBuffer<Point> p = FlatBuffer<Point>::FromBuilder(std::move(fbb));
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(p.bytes().data()), built);
  EXPECT_EQ(p->name()->str(), "a");
}

TEST(FlatBuffers, RoundTripReadsInPlace) {
  const FlatBuffer<Point> original = MakePoint("origin", 100);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes bytes, Serialize(original));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(bytes));
  EXPECT_EQ(info.codec, "flatbuffer");
  EXPECT_THAT(info.type_name, HasSubstr("Point"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(FlatBuffer<Point> read,
                                  Deserialize<FlatBuffer<Point>>(bytes));
  ExpectPoint(read, "origin", 100);
  // Zero-copy: the root and all fields lie inside the serialized buffer.
  const char* root = reinterpret_cast<const char*>(read.root());
  EXPECT_GE(root, bytes.data());
  EXPECT_LT(root, bytes.data() + bytes.size());
  EXPECT_EQ(read.bytes().data(), bytes.data() + info.header_size);
  EXPECT_EQ(read.bytes().owner(), bytes.owner());
}

TEST(FlatBuffers, RoundTripsCompressed) {
  const FlatBuffer<Point> original = MakePoint("big", 100000);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes bytes,
                                  Serialize(original, Compressed()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(bytes));
  EXPECT_TRUE(info.compressed);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(FlatBuffer<Point> read,
                                  Deserialize<FlatBuffer<Point>>(bytes));
  ExpectPoint(read, "big", 100000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(read.bytes().data()) % 16, 0u);
}

TEST(FlatBuffers, CorruptBufferIsDataLoss) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes bytes,
                                  Serialize(MakePoint("p", 3)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(bytes));
  // The root offset pointing far outside the buffer.
  EXPECT_THAT(Deserialize<FlatBuffer<Point>>(
                  Patch(bytes, info.header_size, 0x7FFFFFF0, 4)),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("verification"), HasSubstr("Point"))));
  // Every single byte of the payload overwritten: never a crash.
  for (size_t i = info.header_size; i < bytes.size(); ++i) {
    for (int value : {0x00, 0x7F, 0xFF}) {
      auto r = Deserialize<FlatBuffer<Point>>(Patch(bytes, i, value, 1));
      if (r.ok()) {
        // Still valid: reading what it claims to have stays in bounds.
        if (r->root()->name() != nullptr) (void)r->root()->name()->str();
      } else {
        EXPECT_THAT(r, StatusIs(absl::StatusCode::kDataLoss)) << i;
      }
    }
  }
  // Empty payload.
  EXPECT_THAT(FlatBuffer<Point>::FromBytes(SharedBytes()),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(FlatBuffers, MisalignedBytesAreCopiedToAlignedMemory) {
  const FlatBuffer<Point> original = MakePoint("m", 10);
  const SharedBytes shifted = Misaligned(original.bytes().view());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(FlatBuffer<Point> read,
                                  FlatBuffer<Point>::FromBytes(shifted));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(read.bytes().data()) % 16, 0u);
  ExpectPoint(read, "m", 10);
}

// ---- threads ----

TEST(Serializer, ConcurrentUseOfSharedInput) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes s, Serialize(CompressibleText(20000), Compressed()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes f, Serialize(MakePoint("t", 50)));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&s, &f] {
      for (int i = 0; i < 50; ++i) {
        EXPECT_THAT(Deserialize<std::string>(s), IsOk());
        EXPECT_THAT(Deserialize<SharedBytes>(s), IsOk());
        auto p = Deserialize<FlatBuffer<Point>>(f);
        ASSERT_THAT(p, IsOk());
        EXPECT_EQ((*p)->samples()->size(), 50u);
        EXPECT_THAT(Serialize(i), IsOk());
      }
    });
  }
  for (std::thread& t : threads) t.join();
}

TEST(SerializeInPlace, WrapsTheBufferWithoutCopying) {
  PayloadBuffer buf = PayloadBuffer::Allocate(5);
  std::memcpy(buf.data(), "hello", 5);
  const char* payload = buf.data();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes wire,
                                  SerializeInPlace(std::move(buf)));
  EXPECT_EQ(wire.data() + wire.size() - 5, payload);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes back,
                                  Deserialize<SharedBytes>(wire));
  EXPECT_EQ(back.view(), "hello");
  EXPECT_EQ(back.data(), payload);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string s,
                                  Deserialize<std::string>(wire));
  EXPECT_EQ(s, "hello");
  // Byte-for-byte what Serialize writes for the same bytes.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes ref,
                                  Serialize(SharedBytes::Copy("hello")));
  EXPECT_EQ(wire.view(), ref.view());
  EXPECT_THAT(SerializeInPlace(std::move(buf)),
              StatusIs(absl::StatusCode::kInvalidArgument, "moved from"));
}

TEST(SerializeInPlace, PythonFormatAndCompression) {
  SerializeOptions py;
  py.format = SerializeOptions::Format::kProxyStorePython;
  PayloadBuffer buf = PayloadBuffer::Allocate(3);
  std::memcpy(buf.data(), "abc", 3);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes wire,
                                  SerializeInPlace(std::move(buf), py));
  EXPECT_EQ(wire.view(), "BS\nabc");
  SerializeOptions lz;
  lz.compress = true;
  lz.compress_threshold = 16;
  PayloadBuffer big = PayloadBuffer::Allocate(100000);
  std::memset(big.data(), 'q', big.size());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes packed,
                                  SerializeInPlace(std::move(big), lz));
  EXPECT_LT(packed.size(), 10000u);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string s,
                                  Deserialize<std::string>(packed));
  EXPECT_EQ(s, std::string(100000, 'q'));
}

// header + payload of SerializeParts is byte for byte what Serialize
// writes, and the payload is the value's own memory.
template <typename T>
void ExpectPartsMatchSerialize(const T& value, absl::string_view value_bytes,
                               const SerializeOptions& options = {}) {
  std::optional<SerializedParts> parts = SerializeParts(value, options);
  ASSERT_TRUE(parts.has_value()) << TypeName<T>();
  EXPECT_EQ(parts->payload.data(), value_bytes.data()) << TypeName<T>();
  EXPECT_EQ(parts->payload.size(), value_bytes.size());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes wire, Serialize(value, options));
  EXPECT_EQ(absl::StrCat(parts->header, parts->payload), wire.view())
      << TypeName<T>();
}

TEST(SerializeParts, HeaderAndPayloadAreWhatSerializeWrites) {
  const std::string text(100'000, 't');
  ExpectPartsMatchSerialize(text, text);
  const std::string empty;
  ExpectPartsMatchSerialize(empty, empty);
  const std::vector<uint8_t> bytes = {1, 2, 3};
  ExpectPartsMatchSerialize(
      bytes, absl::string_view(reinterpret_cast<const char*>(bytes.data()), 3));
  const std::vector<double> doubles = {1.5, -2.25};
  ExpectPartsMatchSerialize(
      doubles, absl::string_view(reinterpret_cast<const char*>(doubles.data()),
                                 sizeof(double) * 2));
  const SharedBytes shared = SharedBytes::Copy("shared bytes");
  ExpectPartsMatchSerialize(shared, shared.view());
  SerializeOptions py;
  py.format = SerializeOptions::Format::kProxyStorePython;
  ExpectPartsMatchSerialize(text, text, py);
  ExpectPartsMatchSerialize(
      bytes, absl::string_view(reinterpret_cast<const char*>(bytes.data()), 3),
      py);
  EXPECT_EQ(SerializeParts(text, py)->header, "US\n");
  EXPECT_EQ(SerializeParts(bytes, py)->header, "BS\n");
}

TEST(SerializeParts, NulloptWhenTheBytesAreNotCopiedVerbatim) {
  // Encoded, not viewed.
  EXPECT_FALSE(SerializeParts(int64_t{7}).has_value());
  // Compressed.
  SerializeOptions lz;
  lz.compress = true;
  lz.compress_threshold = 16;
  EXPECT_FALSE(SerializeParts(std::string(1000, 'q'), lz).has_value());
  EXPECT_TRUE(SerializeParts(std::string(15, 'q'), lz).has_value());
  // Serialize would fail: not UTF-8 for a Python str; no Python form.
  SerializeOptions py;
  py.format = SerializeOptions::Format::kProxyStorePython;
  EXPECT_FALSE(SerializeParts(std::string("\xff"), py).has_value());
  EXPECT_FALSE(SerializeParts(std::vector<double>{1.0}, py).has_value());
}

// ---- lz4 decompression bombs and sizes read from the bytes ----

// Every codec this file can name: the built-in ones (byte types, arithmetic,
// "pod", vectors, FlatBuffers) and a user codec without DecodeFilled.
template <typename... Ts>
struct TypeList {};
using EveryCodec =
    TypeList<std::string, SharedBytes, std::vector<uint8_t>,
             std::vector<std::byte>, std::vector<char>, bool, int8_t, uint16_t,
             int32_t, int64_t, float, double, Color, Pixel, userland::Person,
             std::vector<double>, std::vector<int16_t>, std::vector<uint64_t>,
             std::vector<Pixel>, FlatBuffer<Point>>;

template <typename... Ts, typename F>
void ForEachCodec(TypeList<Ts...>, F&& f) {
  (f.template operator()<Ts>(), ...);
}

// A compressed envelope for T whose lz4 block is `block` and whose decoded
// size field says `claim`.
template <typename T>
SharedBytes Lz4Envelope(absl::string_view block, uint64_t claim) {
  const size_t header =
      *internal::EnvelopeHeaderSize(Codec<T>::kName, TypeName<T>());
  // Exactly sized, as ExactCopy.
  std::vector<uint8_t> out(header + block.size());
  char* const dst = reinterpret_cast<char*>(out.data());
  internal::WriteEnvelopeHeader(dst, header, Codec<T>::kName, TypeName<T>(),
                                /*compressed=*/true, block.size(), claim);
  std::memcpy(dst + header, block.data(), block.size());
  return SharedBytes::FromVector(std::move(out));
}

// The lz4 block inside a compressed envelope.
absl::string_view StoredBlock(const SharedBytes& envelope) {
  return envelope.view().substr(InspectEnvelope(envelope)->header_size);
}

// A well-formed lz4 block of `count` literal bytes (one sequence).
std::string LiteralsBlock(size_t count) {
  std::string block(1, static_cast<char>(std::min<size_t>(count, 15) << 4));
  if (count >= 15) {
    block.append((count - 15) / 255, '\xff');
    block.push_back(static_cast<char>((count - 15) % 255));
  }
  block.append(CompressibleText(count));
  return block;
}

// A well-formed lz4 block that decodes to exactly `size` (>= 25) bytes: one
// literal, one long match of it, five closing literals. About size / 255
// bytes long.
std::string RunBlock(uint64_t size) {
  const uint64_t match = size - 6;  // >= 19: the length field is extended
  std::string block = {'\x1f', 'x', '\x01', '\x00'};
  block.append((match - 19) / 255, '\xff');
  block.push_back(static_cast<char>((match - 19) % 255));
  block.append("\x50tail!", 6);
  return block;
}

DeserializeOptions Limit(uint64_t bytes) {
  DeserializeOptions options;
  options.max_decompressed_size = bytes;
  return options;
}

// Sets the process-wide limit for one scope.
class ScopedDefaultLimit {
 public:
  explicit ScopedDefaultLimit(uint64_t bytes)
      : saved_(DefaultMaxDecompressedSize()) {
    SetDefaultMaxDecompressedSize(bytes);
  }
  ~ScopedDefaultLimit() { SetDefaultMaxDecompressedSize(saved_); }

 private:
  const uint64_t saved_;
};

// One bomb: `block` claiming `claim` bytes, read as T under `options`.
struct Bomb {
  std::string name;
  std::string block;
  uint64_t claim;
  DeserializeOptions options;
  std::string why;  // expected in the DataLoss message
};

// A claim a process would notice: half a GiB.
constexpr uint64_t kBigClaim = uint64_t{1} << 29;

// Bombs claiming kBigClaim, within the 255:1 bound and the default limit:
// refused before anything is allocated.
std::vector<Bomb> BigBombs() {
  const size_t fits = (kBigClaim - 16) / 255 + 1;  // bytes for the claim
  return {
      {"garbage", RandomBytes(fits, 3), kBigClaim, {}, "refusing to allocate"},
      {"literals", LiteralsBlock(fits), kBigClaim, {}, "it decodes to"},
      {"run one byte short",
       RunBlock(kBigClaim - 1),
       kBigClaim,
       {},
       "it decodes to"},
  };
}

// Reads `bomb` as every codec; returns the types whose result was not a
// DataLoss naming `bomb.why` (empty: all clean).
std::vector<std::string> ReadBombAsEveryCodec(const Bomb& bomb) {
  std::vector<std::string> unclean;
  ForEachCodec(EveryCodec{}, [&]<typename T>() {
    const absl::Status s =
        Deserialize<T>(Lz4Envelope<T>(bomb.block, bomb.claim), bomb.options)
            .status();
    if (s.code() != absl::StatusCode::kDataLoss ||
        !absl::StrContains(s.message(), bomb.why) ||
        !absl::StrContains(s.message(), absl::StrCat(bomb.claim)) ||
        !absl::StrContains(s.message(), absl::StrCat(bomb.block.size()))) {
      unclean.push_back(
          absl::StrCat(bomb.name, " as ", TypeName<T>(), ": ", s.ToString()));
    }
  });
  return unclean;
}

TEST(Lz4Bombs, ImpossibleClaimsAreDataLossForEveryCodec) {
  const std::string small = RandomBytes(64, 1);
  // 8.4 MB: enough for 255x to reach 2 GiB, so the lz4 input limit decides.
  const std::string big((uint64_t{1} << 31) / 255 + 1, '\xf0');
  const std::vector<Bomb> bombs = {
      {"2 GiB from 64 bytes", small, uint64_t{1} << 31, {}, "refusing"},
      {"2 GiB from 8.4 MB", big, uint64_t{1} << 31, {}, "refusing"},
      {"2^63", small, uint64_t{1} << 63, {}, "refusing"},
      {"just above 255:1", small, 64 * 255 + 17, {}, "refusing"},
      {"just above the limit", small, 64 * 255, Limit(64 * 255 - 1),
       "max_decompressed_size"},
      {"at the limit, garbage", small, 64 * 255, Limit(64 * 255),
       "refusing to allocate"},
      {"at the limit, literals", LiteralsBlock(100), 64 * 255, Limit(64 * 255),
       "it decodes to 100;"},
      {"at the limit, run", RunBlock(64 * 255 - 1), 64 * 255, Limit(64 * 255),
       "it decodes to"},
      {"run longer than the claim",
       RunBlock(1 << 20),
       100'000,
       {},
       "more than that"},
  };
  for (const Bomb& bomb : bombs) {
    EXPECT_THAT(ReadBombAsEveryCodec(bomb), ::testing::IsEmpty());
  }
}

TEST(Lz4Bombs, ClaimsUpToFourTimesTheBlockAreLeftToLz4) {
  // Up to 4x its size a block is not walked: lz4 itself finds the lie
  // (having allocated at most 4x the bytes read). Above, the walk does,
  // before anything is allocated.
  const std::string block = LiteralsBlock(100);
  const Bomb lz4 = {"4x", block, 4 * block.size(), {}, "did not decode"};
  const Bomb walk = {
      "4x + 1", block, 4 * block.size() + 1, {}, "it decodes to 100;"};
  EXPECT_THAT(ReadBombAsEveryCodec(lz4), ::testing::IsEmpty());
  EXPECT_THAT(ReadBombAsEveryCodec(walk), ::testing::IsEmpty());
}

TEST(Lz4Bombs, ClaimsAboveTheDefaultLimitAreRefused) {
  EXPECT_EQ(DefaultMaxDecompressedSize(), kDefaultMaxDecompressedSize);
  EXPECT_EQ(kDefaultMaxDecompressedSize, uint64_t{1} << 30);
  const Bomb bomb = {
      "limit", RunBlock(4096), 4096, {}, "max_decompressed_size"};
  {
    ScopedDefaultLimit limit(4095);
    EXPECT_EQ(DefaultMaxDecompressedSize(), 4095u);
    EXPECT_THAT(ReadBombAsEveryCodec(bomb), ::testing::IsEmpty());
    // An explicit limit wins over the default.
    EXPECT_THAT(
        Deserialize<std::string>(
            Lz4Envelope<std::string>(bomb.block, bomb.claim), Limit(4096)),
        IsOk());
  }
  EXPECT_EQ(DefaultMaxDecompressedSize(), kDefaultMaxDecompressedSize);
}

// The claim of a real compressed `value` is accepted at exactly the limit and
// refused one byte below it, through options and the process-wide default.
template <typename T>
void ExpectDecodesAtExactlyTheLimit(const T& value) {
  SCOPED_TRACE(TypeName<T>());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b,
                                  Serialize(value, Compressed()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
  ASSERT_TRUE(info.compressed);
  const uint64_t size = info.payload_size;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(T back, Deserialize<T>(b, Limit(size)));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes again, Serialize(back));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes want, Serialize(value));
  EXPECT_EQ(again.view(), want.view());
  const auto refused = StatusIs(
      absl::StatusCode::kDataLoss,
      AllOf(HasSubstr(absl::StrCat(size)), HasSubstr(absl::StrCat(size - 1)),
            HasSubstr(absl::StrCat(info.stored_size)),
            HasSubstr("max_decompressed_size")));
  EXPECT_THAT(Deserialize<T>(b, Limit(size - 1)), refused);
  {
    ScopedDefaultLimit limit(size);
    EXPECT_THAT(Deserialize<T>(b), IsOk());
  }
  {
    ScopedDefaultLimit limit(size - 1);
    EXPECT_THAT(Deserialize<T>(b), refused);
  }
}

TEST(Lz4Bombs, AValidPayloadAtExactlyTheLimitDecodes) {
  const std::string text = CompressibleText(100'000);
  const auto* u = reinterpret_cast<const uint8_t*>(text.data());
  const auto* b = reinterpret_cast<const std::byte*>(text.data());
  ExpectDecodesAtExactlyTheLimit(text);
  ExpectDecodesAtExactlyTheLimit(SharedBytes::Copy(text));
  ExpectDecodesAtExactlyTheLimit(std::vector<uint8_t>(u, u + text.size()));
  ExpectDecodesAtExactlyTheLimit(std::vector<std::byte>(b, b + text.size()));
  ExpectDecodesAtExactlyTheLimit(std::vector<char>(text.begin(), text.end()));
  std::vector<double> doubles(10'000);
  std::vector<int16_t> shorts(10'000);
  std::vector<uint64_t> longs(10'000);
  std::vector<Pixel> pixels(10'000);
  for (int i = 0; i < 10'000; ++i) {
    doubles[i] = i % 7;
    shorts[i] = static_cast<int16_t>(i % 5);
    longs[i] = i % 3;
    pixels[i] = Pixel{1, 2, static_cast<uint8_t>(i % 4), 0.5f};
  }
  ExpectDecodesAtExactlyTheLimit(doubles);
  ExpectDecodesAtExactlyTheLimit(shorts);
  ExpectDecodesAtExactlyTheLimit(longs);
  ExpectDecodesAtExactlyTheLimit(pixels);
  ExpectDecodesAtExactlyTheLimit(MakePoint("limit", 10'000));
  ExpectDecodesAtExactlyTheLimit(userland::Person{text, 42});
}

TEST(Lz4Bombs, BigClaimsAreRefusedWithoutGrowingTheProcess) {
  // Had any codec allocated (and zero-filled) a claim, the peak resident
  // size would have grown by half a GiB.
  rusage before;
  ASSERT_EQ(getrusage(RUSAGE_SELF, &before), 0);
  for (const Bomb& bomb : BigBombs()) {
    EXPECT_THAT(ReadBombAsEveryCodec(bomb), ::testing::IsEmpty());
  }
  rusage after;
  ASSERT_EQ(getrusage(RUSAGE_SELF, &after), 0);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss,
            static_cast<long>(kBigClaim / 4 / 1024))  // KiB
      << "peak RSS grew from " << before.ru_maxrss << " to " << after.ru_maxrss
      << " KiB";
}

#ifndef PROXYSTORE_SANITIZER  // sanitizers reserve terabytes of address space
// Runs in a child: with an address space that cannot grow by a claim, exits
// 0 if every big bomb is a clean DataLoss. Had anything tried to allocate a
// claim, malloc would have failed (ResourceExhausted) or std::bad_alloc would
// have ended the child.
[[noreturn]] void ReadBigBombsWithoutAddressSpace(
    const std::vector<Bomb>& bombs) {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  statm >> pages;
  rlimit as;
  as.rlim_cur = as.rlim_max =
      pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) + kBigClaim / 4;
  if (pages == 0 || setrlimit(RLIMIT_AS, &as) != 0) std::_Exit(2);
  for (const Bomb& bomb : bombs) {
    for (const std::string& unclean : ReadBombAsEveryCodec(bomb)) {
      std::fprintf(stderr, "%s\n", unclean.c_str());
      std::_Exit(1);
    }
  }
  std::_Exit(0);
}

TEST(Lz4Bombs, BigClaimsNeedNoAddressSpace) {
  const std::vector<Bomb> bombs = BigBombs();
  EXPECT_EXIT(ReadBigBombsWithoutAddressSpace(bombs),
              ::testing::ExitedWithCode(0), "");
}
#endif

TEST(Lz4Bombs, TheWalkAcceptsWhateverLz4Decodes) {
  // Real blocks of many shapes and sizes.
  for (size_t n : {16, 100, 4096, 65'543, 1 << 20}) {
    for (const std::string& value :
         {CompressibleText(n), std::string(n, '\0'),
          absl::StrCat(RandomBytes(n / 2, n), std::string(n / 2, 'z'))}) {
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b,
                                      Serialize(value, Compressed()));
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
      if (!info.compressed) continue;
      EXPECT_THAT(internal::CheckLz4Block(StoredBlock(b), info.payload_size),
                  IsOk())
          << n;
    }
  }
  // Every byte of a real block overwritten, claims around the real size:
  // whatever lz4 decodes to exactly the claim, the walk accepts too.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes b, Serialize(CompressibleText(600), Compressed()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(b));
  ASSERT_TRUE(info.compressed);
  const std::string block(StoredBlock(b));
  int lz4_accepted = 0;
  for (size_t i = 0; i < block.size(); ++i) {
    for (int value : {0x00, 0x0F, 0xF0, 0xFF, block[i] ^ 0x01}) {
      std::string mutated = block;
      mutated[i] = static_cast<char>(value);
      for (uint64_t claim :
           {info.payload_size - 1, info.payload_size, info.payload_size + 1}) {
        std::string out(claim, '\0');
        if (!internal::DecompressTo(mutated, out.data(), claim).ok()) continue;
        ++lz4_accepted;
        EXPECT_THAT(internal::CheckLz4Block(mutated, claim), IsOk())
            << "byte " << i << " = " << value << ", claim " << claim;
      }
    }
  }
  EXPECT_GT(lz4_accepted, 0);
}

TEST(Lz4Bombs, PythonDataIsNeverDecompressed) {
  // Python bytes/str have no compressed form: the bytes come back verbatim.
  const std::string run = RunBlock(1 << 20);
  for (absl::string_view id : {"BS\n", "US\n", "01\n", "02\n"}) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        std::string s,
        Deserialize<std::string>(ExactCopy(absl::StrCat(id, run))));
    EXPECT_EQ(s, run);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        SharedBytes b,
        Deserialize<SharedBytes>(ExactCopy(absl::StrCat(id, run))));
    EXPECT_EQ(b.view(), run);
  }
}

TEST(Corruption, CompressedVectorSizeIsCheckedBeforeAllocating) {
  // A real block of 4097 bytes: not a whole number of doubles or shorts.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes b, Serialize(CompressibleText(4097), Compressed()));
  const std::string block(StoredBlock(b));
  EXPECT_THAT(Deserialize<std::vector<double>>(
                  Lz4Envelope<std::vector<double>>(block, 4097)),
              StatusIs(absl::StatusCode::kDataLoss, "not a multiple"));
  EXPECT_THAT(Deserialize<std::vector<int16_t>>(
                  Lz4Envelope<std::vector<int16_t>>(block, 4097)),
              StatusIs(absl::StatusCode::kDataLoss, "not a multiple"));
  EXPECT_THAT(Deserialize<Pixel>(Lz4Envelope<Pixel>(block, 4097)),
              StatusIs(absl::StatusCode::kDataLoss,
                       absl::StrCat("expected ", sizeof(Pixel))));
  EXPECT_THAT(Deserialize<int64_t>(Lz4Envelope<int64_t>(block, 4097)),
              StatusIs(absl::StatusCode::kDataLoss, "expected 8"));
}

// Offset of `needle` in `haystack`, which must contain it once.
size_t FindOnce(absl::string_view haystack, absl::string_view needle) {
  const size_t at = haystack.find(needle);
  EXPECT_NE(at, absl::string_view::npos);
  EXPECT_EQ(haystack.find(needle, at + 1), absl::string_view::npos);
  return at;
}

TEST(FlatBuffers, ForgedLengthFieldsAreDataLoss) {
  flatbuffers::FlatBufferBuilder fbb;
  const Vec2 pos(1, 2);
  fbb.Finish(CreatePoint(
      fbb, fbb.CreateString("NAME-MARK"), &pos,
      fbb.CreateVector(std::vector<int32_t>{0x11223344, 0x55667788})));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes wire,
      Serialize(FlatBuffer<Point>::FromBuilder(std::move(fbb))));
  // A vector's or string's length is the uint32 just before its data.
  const size_t samples_len =
      FindOnce(wire.view(), "\x44\x33\x22\x11\x88\x77\x66\x55") - 4;
  const size_t name_len = FindOnce(wire.view(), "NAME-MARK") - 4;
  for (uint64_t forged : {3u, 0x40000000u, 0xFFFFFFFFu}) {
    EXPECT_THAT(
        Deserialize<FlatBuffer<Point>>(Patch(wire, samples_len, forged, 4)),
        StatusIs(absl::StatusCode::kDataLoss, "verification"))
        << forged;
    EXPECT_THAT(
        Deserialize<FlatBuffer<Point>>(Patch(wire, name_len, forged, 4)),
        StatusIs(absl::StatusCode::kDataLoss, "verification"))
        << forged;
  }
}

}  // namespace
}  // namespace proxystore
