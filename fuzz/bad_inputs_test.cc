// One test per row group of docs/bad_inputs.md: each decoder that reads
// bytes from outside, fed the bad inputs of the table (empty, one byte,
// truncated, bit-flipped, wrong type, wrong codec, oversized length fields,
// lz4 size claims, 4 KiB of 0xff, huge), asserting the status code the table
// gives. Huge inputs (2 GiB and more) are mapped, not allocated: zero pages
// under MAP_NORESERVE, so a test costs only the pages a decoder touches.
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "flatbuffers/flatbuffers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/connector_wire.h"
#include "proxystore/connectors/multi/multi_connector.h"
#include "proxystore/fuzz/fuzz_util.h"
#include "proxystore/fuzz/sample_generated.h"
#include "proxystore/serializer/serializer.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store_config.h"
#include "proxystore/store/store_config_wire.h"
#include "proxystore/testing/status_matchers.h"
#include "proxystore/wire/wire.h"

namespace proxystore::fuzz {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::AnyOf;

constexpr auto kDataLoss = absl::StatusCode::kDataLoss;
constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

// More than FLATBUFFERS_MAX_BUFFER_SIZE (2^31 - 1).
constexpr size_t kHuge = (size_t{1} << 31) + 64;

// `size` bytes of zero pages, writable, mapped with MAP_NORESERVE.
class Mapped {
 public:
  explicit Mapped(size_t size) : size_(size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~Mapped() {
    if (data_ != nullptr) munmap(data_, size_);
  }
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;

  bool ok() const { return data_ != nullptr; }
  char* data() { return data_; }
  absl::string_view view() const { return {data_, size_}; }
  SharedBytes bytes() const { return SharedBytes::FromOwner(nullptr, view()); }

 private:
  char* data_;
  size_t size_;
};

// A heap copy of exactly s.size() bytes (ASan sees any overread).
SharedBytes Exact(absl::string_view s) {
  std::vector<uint8_t> v(s.begin(), s.end());
  return SharedBytes::FromVector(std::move(v));
}

std::string Flip(std::string s, size_t bit) {
  s[bit / 8] = static_cast<char>(s[bit / 8] ^ (1 << (bit % 8)));
  return s;
}

void StoreLe(char* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

std::string PatchLe(std::string s, size_t offset, uint64_t v, int n) {
  StoreLe(s.data() + offset, v, n);
  return s;
}

StoreConfig SampleStoreConfig() {
  StoreConfig c;
  c.name = "bad-inputs";
  c.connector = {"file", {{"directory", "/tmp/x"}, {"clear", "true"}}};
  c.cache_size = 4;
  return c;
}

FactoryData SampleFactory() {
  return FactoryData{Key("3f2a9c0e5b7d41e8a6c2f0913d4b8e57"),
                     SampleStoreConfig(), true, "",
                     std::string(TypeName<std::string>())};
}

SampleBuffer MakeSample() {
  flatbuffers::FlatBufferBuilder fbb;
  auto name = fbb.CreateString("sample");
  auto samples = fbb.CreateVector(std::vector<int32_t>{1, 2, 3});
  Vec2 pos(1, 2);
  SampleBuilder b(fbb);
  b.add_name(name);
  b.add_pos(&pos);
  b.add_samples(samples);
  fbb.Finish(b.Finish());
  return SampleBuffer::FromBuilder(std::move(fbb));
}

// ---- Tables written field by field, for inputs the library never writes.
// The field slots follow wire/wire.fbs: slot i is voffset 4 + 2 i.

flatbuffers::voffset_t Slot(int i) {
  return static_cast<flatbuffers::voffset_t>(4 + 2 * i);
}

// Ends the table begun at `start` and finishes the buffer with `identifier`
// (none if null).
std::string Finished(flatbuffers::FlatBufferBuilder& fbb,
                     flatbuffers::uoffset_t start, bool size_prefixed,
                     const char* identifier) {
  flatbuffers::Offset<flatbuffers::Table> root(fbb.EndTable(start));
  if (size_prefixed) {
    fbb.FinishSizePrefixed(root, identifier);
  } else {
    fbb.Finish(root, identifier);
  }
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
                     fbb.GetSize());
}

// ConnectorConfig {version, kind, options: [ConnectorOption {name (key,
// required), value}]}. A null name leaves the field out.
std::string RawConnectorConfig(
    const char* kind,
    const std::vector<std::pair<const char*, const char*>>& options) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<flatbuffers::Table>> opts;
  for (const auto& [name, value] : options) {
    flatbuffers::Offset<flatbuffers::String> n;
    if (name != nullptr) n = fbb.CreateString(name);
    auto v = fbb.CreateString(value);
    auto start = fbb.StartTable();
    if (name != nullptr) fbb.AddOffset(Slot(0), n);
    fbb.AddOffset(Slot(1), v);
    opts.emplace_back(fbb.EndTable(start));
  }
  auto vec = fbb.CreateVector(opts);
  auto k = fbb.CreateString(kind);
  auto start = fbb.StartTable();
  fbb.AddElement<uint16_t>(Slot(0), wire::kVersion, 0);
  fbb.AddOffset(Slot(1), k);
  fbb.AddOffset(Slot(2), vec);
  return Finished(fbb, start, /*size_prefixed=*/false, "PSCC");
}

// StoreConfig {version, name, connector (required), ...}.
std::string RawStoreConfig(uint16_t version, bool with_connector,
                           const char* identifier = "PSSC") {
  flatbuffers::FlatBufferBuilder fbb;
  auto conn = connector_internal::WriteConnectorConfig(
      fbb, SampleStoreConfig().connector, 0);
  auto name = fbb.CreateString("raw");
  auto start = fbb.StartTable();
  fbb.AddElement<uint16_t>(Slot(0), version, 0);
  fbb.AddOffset(Slot(1), name);
  if (with_connector) fbb.AddOffset(Slot(2), conn);
  return Finished(fbb, start, /*size_prefixed=*/false, identifier);
}

// Proxy {version, key (required), store_config (required), evict,
// deserializer, type_name (required)}, size-prefixed.
std::string RawFactory(uint16_t version, bool with_key, bool with_type,
                       const char* identifier = "PSPX") {
  flatbuffers::FlatBufferBuilder fbb;
  auto conf = store_internal::WriteStoreConfig(fbb, SampleStoreConfig(), 0);
  auto key = fbb.CreateString("k");
  auto type = fbb.CreateString("std::string");
  auto start = fbb.StartTable();
  fbb.AddElement<uint16_t>(Slot(0), version, 0);
  if (with_key) fbb.AddOffset(Slot(1), key);
  fbb.AddOffset(Slot(2), conf);
  if (with_type) fbb.AddOffset(Slot(5), type);
  return Finished(fbb, start, /*size_prefixed=*/true, identifier);
}

// ===================================================== FactoryData::Parse ===

TEST(FactoryDataParse, EmptyOneByteAndGarbageAreDataLoss) {
  EXPECT_THAT(FactoryData::Parse(""), StatusIs(kDataLoss));
  EXPECT_THAT(FactoryData::Parse("x"), StatusIs(kDataLoss));
  EXPECT_THAT(FactoryData::Parse(std::string(4096, '\xff')),
              StatusIs(kDataLoss));
  EXPECT_THAT(ParseProxy<std::string>(""), StatusIs(kDataLoss));
}

TEST(FactoryDataParse, EveryTruncationAndExtensionIsDataLoss) {
  const std::string wire = SampleFactory().Serialize();
  for (size_t n = 0; n < wire.size(); ++n) {
    EXPECT_THAT(FactoryData::Parse(Exact(wire.substr(0, n)).view()),
                StatusIs(kDataLoss, "truncated or extended"))
        << n;
  }
  EXPECT_THAT(FactoryData::Parse(wire + std::string(8, '\0')),
              StatusIs(kDataLoss, "truncated or extended"));
}

TEST(FactoryDataParse, BitFlipsAreDataLossInvalidArgumentOrAnotherProxy) {
  const std::string wire = SampleFactory().Serialize();
  int rejected = 0;
  for (size_t bit = 0; bit < wire.size() * 8; ++bit) {
    absl::StatusOr<FactoryData> got =
        FactoryData::Parse(Exact(Flip(wire, bit)).view());
    EXPECT_THAT(got, AnyOf(IsOk(), StatusIs(kDataLoss), StatusIs(kInvalid)))
        << bit;
    rejected += !got.ok();
  }
  // Flips in the size prefix, offsets and vtables are caught; flips inside
  // strings give a different, well-formed proxy (no checksum).
  EXPECT_GT(rejected, 0);
}

TEST(FactoryDataParse, WrongTypeIsInvalidArgumentAndOtherFormatsDataLoss) {
  const std::string wire = SampleFactory().Serialize();
  EXPECT_THAT(ParseProxy<int32_t>(wire),
              StatusIs(kInvalid, "the proxy was made for type std::string"));
  EXPECT_THAT(ParseProxy<std::string>(wire), IsOk());
  // A store config, a connector config, a serialized object: not proxies.
  EXPECT_THAT(FactoryData::Parse(SampleStoreConfig().Serialize()),
              StatusIs(kDataLoss));
  EXPECT_THAT(FactoryData::Parse(SampleStoreConfig().connector.Serialize()),
              StatusIs(kDataLoss));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes object,
                                  Serialize(std::string("abc")));
  EXPECT_THAT(FactoryData::Parse(object.view()), StatusIs(kDataLoss));
}

TEST(FactoryDataParse, OversizedLengthFieldsAreDataLoss) {
  const std::string wire = SampleFactory().Serialize();
  // The size prefix, then the root offset, claiming up to 4 GiB.
  EXPECT_THAT(FactoryData::Parse(PatchLe(wire, 0, 0xffffffff, 4)),
              StatusIs(kDataLoss, "truncated or extended"));
  EXPECT_THAT(FactoryData::Parse(PatchLe(wire, 4, 0xfffffff0, 4)),
              StatusIs(kDataLoss, "not a serialized proxy"));
}

TEST(FactoryDataParse, InvalidValuesInsideAreInvalidArgument) {
  FactoryData no_key = SampleFactory();
  no_key.key = Key("");
  EXPECT_THAT(FactoryData::Parse(no_key.Serialize()),
              StatusIs(kInvalid, "empty key"));
  FactoryData bad_config = SampleFactory();
  bad_config.store_config.cache_size = -1;
  EXPECT_THAT(FactoryData::Parse(bad_config.Serialize()),
              StatusIs(kInvalid, "cache size"));
}

TEST(FactoryDataParse, WrongVersionAndMissingFieldsAreRejected) {
  ASSERT_THAT(FactoryData::Parse(RawFactory(2, true, true)), IsOk());
  EXPECT_THAT(FactoryData::Parse(RawFactory(3, true, true)),
              StatusIs(kInvalid, "unsupported serialized proxy version 3"));
  // Version absent: what a writer that forgot it would produce.
  EXPECT_THAT(FactoryData::Parse(RawFactory(0, true, true)),
              StatusIs(kInvalid, "unsupported serialized proxy version 0"));
  EXPECT_THAT(FactoryData::Parse(RawFactory(2, false, true)),
              StatusIs(kDataLoss, "not a serialized proxy"));
  EXPECT_THAT(FactoryData::Parse(RawFactory(2, true, false)),
              StatusIs(kDataLoss, "not a serialized proxy"));
}

TEST(FactoryDataParse, BuffersWithoutTheIdentifierAreDataLoss) {
  // The layout of version 1 had no identifier.
  EXPECT_THAT(FactoryData::Parse(RawFactory(2, true, true, nullptr)),
              StatusIs(kDataLoss, "no \"PSPX\" identifier"));
  EXPECT_THAT(FactoryData::Parse(RawFactory(2, true, true, "PSSC")),
              StatusIs(kDataLoss, "no \"PSPX\" identifier"));
}

TEST(FactoryDataParse, ProxiesAboveOneMebibyteAreDataLoss) {
  // So that no unsigned proxy's size prefix can read as "PSG1" (signing.h).
  FactoryData big = SampleFactory();
  big.store_config.name = std::string(size_t{1} << 20, 'n');
  EXPECT_THAT(FactoryData::Parse(big.Serialize()),
              StatusIs(kDataLoss, "too large for a serialized proxy"));
}

TEST(FactoryDataParse, HugeInputIsDataLossNotAnAssertion) {
  Mapped huge(kHuge);
  ASSERT_TRUE(huge.ok());
  // A size prefix that matches the buffer. Refused by the size check before
  // anything is copied; this once reached the FlatBuffers verifier, which
  // asserts on buffers of 2 GiB and more.
  StoreLe(huge.data(), kHuge - 4, 4);
  EXPECT_THAT(FactoryData::Parse(huge.view()), StatusIs(kDataLoss, "large"));
  EXPECT_THAT(ParseProxy<std::string>(huge.view()), StatusIs(kDataLoss));
}

// ===================================================== StoreConfig::Parse ===

TEST(StoreConfigParse, EmptyOneByteAndGarbageAreDataLoss) {
  EXPECT_THAT(StoreConfig::Parse(""), StatusIs(kDataLoss));
  EXPECT_THAT(StoreConfig::Parse("x"), StatusIs(kDataLoss));
  EXPECT_THAT(StoreConfig::Parse(std::string(4096, '\xff')),
              StatusIs(kDataLoss));
}

TEST(StoreConfigParse, TruncationsAreDataLossOrLoseOnlyPadding) {
  const StoreConfig config = SampleStoreConfig();
  const std::string wire = config.Serialize();
  for (size_t n = 0; n < wire.size(); ++n) {
    absl::StatusOr<StoreConfig> got =
        StoreConfig::Parse(Exact(wire.substr(0, n)).view());
    if (got.ok()) {
      // Not size-prefixed: cutting trailing alignment padding goes unseen.
      EXPECT_EQ(*got, config) << n;
      EXPECT_GE(n, wire.size() - 8) << n;
    } else {
      EXPECT_THAT(got, StatusIs(kDataLoss)) << n;
    }
  }
}

TEST(StoreConfigParse, BitFlipsAreDataLossInvalidArgumentOrAnotherConfig) {
  const std::string wire = SampleStoreConfig().Serialize();
  for (size_t bit = 0; bit < wire.size() * 8; ++bit) {
    absl::StatusOr<StoreConfig> got =
        StoreConfig::Parse(Exact(Flip(wire, bit)).view());
    EXPECT_THAT(got, AnyOf(IsOk(), StatusIs(kDataLoss), StatusIs(kInvalid)))
        << bit;
    if (got.ok()) {
      EXPECT_THAT(got->Validate(), IsOk()) << bit;
    }
  }
}

TEST(StoreConfigParse, OtherFormatsAreRejected) {
  // A serialized proxy (size-prefixed) and an envelope are not configs.
  EXPECT_THAT(StoreConfig::Parse(SampleFactory().Serialize()),
              StatusIs(kDataLoss));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes object, Serialize(int32_t{7}));
  EXPECT_THAT(StoreConfig::Parse(object.view()), StatusIs(kDataLoss));
  // A connector config: its identifier tells it apart.
  EXPECT_THAT(StoreConfig::Parse(SampleStoreConfig().connector.Serialize()),
              StatusIs(kDataLoss, "identifier"));
}

TEST(StoreConfigParse, OversizedLengthFieldsAreDataLoss) {
  const std::string wire = SampleStoreConfig().Serialize();
  EXPECT_THAT(StoreConfig::Parse(PatchLe(wire, 0, 0xfffffff0, 4)),
              StatusIs(kDataLoss));
}

TEST(StoreConfigParse, InvalidValuesAreInvalidArgument) {
  StoreConfig no_name = SampleStoreConfig();
  no_name.name.clear();
  EXPECT_THAT(StoreConfig::Parse(no_name.Serialize()),
              StatusIs(kInvalid, "name"));
  StoreConfig negative = SampleStoreConfig();
  negative.cache_size = -5;
  EXPECT_THAT(StoreConfig::Parse(negative.Serialize()),
              StatusIs(kInvalid, "-5"));
}

TEST(StoreConfigParse, WrongVersionIdentifierAndMissingConnectorAreRejected) {
  ASSERT_THAT(StoreConfig::Parse(RawStoreConfig(2, true)), IsOk());
  EXPECT_THAT(
      StoreConfig::Parse(RawStoreConfig(7, true)),
      StatusIs(kInvalid, "unsupported serialized store config version 7"));
  EXPECT_THAT(StoreConfig::Parse(RawStoreConfig(2, false)),
              StatusIs(kDataLoss, "not a serialized store config"));
  EXPECT_THAT(StoreConfig::Parse(RawStoreConfig(2, true, nullptr)),
              StatusIs(kDataLoss, "no \"PSSC\" identifier"));
}

TEST(StoreConfigParse, HugeInputIsDataLossNotAnAssertion) {
  Mapped huge(kHuge);
  ASSERT_TRUE(huge.ok());
  EXPECT_THAT(StoreConfig::Parse(huge.view()), StatusIs(kDataLoss, "large"));
}

// ================================================= ConnectorConfig::Parse ===

TEST(ConnectorConfigParse, EmptyOneByteAndGarbageAreDataLoss) {
  EXPECT_THAT(ConnectorConfig::Parse(""), StatusIs(kDataLoss));
  EXPECT_THAT(ConnectorConfig::Parse("x"), StatusIs(kDataLoss));
  EXPECT_THAT(ConnectorConfig::Parse(std::string(4096, '\xff')),
              StatusIs(kDataLoss));
}

TEST(ConnectorConfigParse, NoKindIsInvalidArgument) {
  EXPECT_THAT(ConnectorConfig::Parse(ConnectorConfig{"", {}}.Serialize()),
              StatusIs(kInvalid, "no kind"));
}

TEST(ConnectorConfigParse, DuplicateOrNamelessOptionsAreDataLoss) {
  ASSERT_THAT(ConnectorConfig::Parse(
                  RawConnectorConfig("file", {{"a", "1"}, {"b", "2"}})),
              IsOk());
  EXPECT_THAT(ConnectorConfig::Parse(
                  RawConnectorConfig("file", {{"a", "1"}, {"a", "2"}})),
              StatusIs(kDataLoss, "repeats option \"a\""));
  // The name is the table's required key: the verifier refuses it.
  EXPECT_THAT(
      ConnectorConfig::Parse(RawConnectorConfig("file", {{nullptr, "1"}})),
      StatusIs(kDataLoss, "not a serialized connector config"));
}

TEST(ConnectorConfigParse, OtherFormatsAreRejected) {
  EXPECT_THAT(ConnectorConfig::Parse(SampleFactory().Serialize()),
              StatusIs(kDataLoss, "identifier"));
  EXPECT_THAT(ConnectorConfig::Parse(SampleStoreConfig().Serialize()),
              StatusIs(kDataLoss, "identifier"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes object, Serialize(int32_t{7}));
  EXPECT_THAT(ConnectorConfig::Parse(object.view()), StatusIs(kDataLoss));
}

TEST(ConnectorConfigParse, OversizedLengthFieldsAreDataLoss) {
  const std::string wire = SampleStoreConfig().connector.Serialize();
  EXPECT_THAT(ConnectorConfig::Parse(PatchLe(wire, 0, 0xfffffff0, 4)),
              StatusIs(kDataLoss));
}

TEST(ConnectorConfigParse, HugeInputIsDataLossNotAnAssertion) {
  Mapped huge(kHuge);
  ASSERT_TRUE(huge.ok());
  EXPECT_THAT(ConnectorConfig::Parse(huge.view()),
              StatusIs(kDataLoss, "large"));
}

TEST(ConnectorConfigParse, DeepOrNamelessChildrenAreInvalidArgument) {
  ConnectorConfig c{"local", {}};
  for (int i = 0; i < wire::kMaxNesting; ++i) {
    c = ConnectorConfig{"multi", {}, {{"c", c, {}}}};
  }
  ASSERT_THAT(ConnectorConfig::Parse(c.Serialize()), IsOk());
  ConnectorConfig deeper{"multi", {}, {{"c", c, {}}}};
  EXPECT_THAT(ConnectorConfig::Parse(deeper.Serialize()),
              StatusIs(kInvalid, "nest more than 8 levels"));
  ConnectorConfig nameless{"multi", {}, {{"", {"local", {}}, {}}}};
  EXPECT_THAT(ConnectorConfig::Parse(nameless.Serialize()),
              StatusIs(kInvalid, "child without a name"));
}

// ============================================================= Key::Parse ===

TEST(KeyParse, EmptyAndOversizedAreInvalidArgumentAnyOtherBytesAKey) {
  EXPECT_THAT(Key::Parse(""), StatusIs(kInvalid, "empty"));
  EXPECT_THAT(Key::Parse("x"), IsOk());
  // Keys are opaque: any bytes up to the limit are a key.
  EXPECT_THAT(Key::Parse(std::string(Key::kMaxIdSize, '\xff')), IsOk());
  EXPECT_THAT(Key::Parse(std::string(Key::kMaxIdSize + 1, 'k')),
              StatusIs(kInvalid, "exceeds"));
  Mapped huge(kHuge);
  ASSERT_TRUE(huge.ok());
  EXPECT_THAT(Key::Parse(huge.view()), StatusIs(kInvalid, "exceeds"));
}

// ========================================= Deserialize<T>, InspectEnvelope ===

TEST(Envelope, EmptyOneByteAndGarbageAreDataLoss) {
  for (absl::string_view bad :
       {absl::string_view(""), absl::string_view("x"),
        absl::string_view("\x89", 1), absl::string_view("\x89PSC\x01", 5)}) {
    EXPECT_THAT(InspectEnvelope(Exact(bad)), StatusIs(kDataLoss));
    EXPECT_THAT(Deserialize<std::string>(Exact(bad)), StatusIs(kDataLoss));
    EXPECT_THAT(Deserialize<SampleBuffer>(Exact(bad)), StatusIs(kDataLoss));
  }
  const SharedBytes ff = Exact(std::string(4096, '\xff'));
  EXPECT_THAT(InspectEnvelope(ff), StatusIs(kDataLoss, "magic"));
  EXPECT_THAT(Deserialize<double>(ff), StatusIs(kDataLoss, "magic"));
}

TEST(Envelope, EveryTruncationIsDataLossForEveryCodec) {
  SerializeOptions lz4;
  lz4.compress = true;
  lz4.compress_threshold = 1;
  std::vector<SharedBytes> wires;
  wires.push_back(*Serialize(std::string(300, 'a'), lz4));
  wires.push_back(*Serialize(std::vector<double>(40, 1.5)));
  wires.push_back(*Serialize(Pod{1, 2, 3.0, {}}));
  wires.push_back(*Serialize(MakeSample()));
  for (const SharedBytes& wire : wires) {
    for (size_t n = 0; n < wire.size(); ++n) {
      const SharedBytes cut = Exact(wire.view().substr(0, n));
      EXPECT_THAT(InspectEnvelope(cut), StatusIs(kDataLoss)) << n;
      EXPECT_THAT(Deserialize<std::string>(cut), StatusIs(kDataLoss)) << n;
      EXPECT_THAT(Deserialize<std::vector<double>>(cut), StatusIs(kDataLoss));
      EXPECT_THAT(Deserialize<Pod>(cut), StatusIs(kDataLoss));
      EXPECT_THAT(Deserialize<SampleBuffer>(cut), StatusIs(kDataLoss));
    }
  }
}

TEST(Envelope, HeaderBitFlipsAreDetectedPayloadFlipsAreNot) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes wire, Serialize(int32_t{-5}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(wire));
  const std::string s(wire.view());
  for (size_t bit = 0; bit < s.size() * 8; ++bit) {
    absl::StatusOr<int32_t> got = Deserialize<int32_t>(Exact(Flip(s, bit)));
    if (bit < info.header_size * 8) {
      // The int32 codec ignores the C++ type name (its codec name fixes the
      // layout), so a flip there leaves the value intact.
      const bool in_type_name = bit >= (32 + 5) * 8 && bit < (32 + 5 + 7) * 8;
      if (in_type_name) {
        EXPECT_THAT(got, IsOk()) << bit;
      } else {
        EXPECT_THAT(got, AnyOf(StatusIs(kDataLoss), StatusIs(kInvalid))) << bit;
      }
    } else {
      // No checksum: a flipped payload bit is a different value.
      ASSERT_THAT(got, IsOk()) << bit;
      EXPECT_NE(*got, -5) << bit;
    }
  }
}

TEST(Envelope, CompressedPayloadFlipsAreDataLossOrAnotherValue) {
  SerializeOptions lz4;
  lz4.compress = true;
  lz4.compress_threshold = 1;
  std::string text;
  for (int i = 0; i < 64; ++i) absl::StrAppend(&text, "line ", i, "\n");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes wire, Serialize(text, lz4));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(wire));
  ASSERT_TRUE(info.compressed);
  const std::string s(wire.view());
  for (size_t bit = info.header_size * 8; bit < s.size() * 8; ++bit) {
    EXPECT_THAT(Deserialize<std::string>(Exact(Flip(s, bit))),
                AnyOf(IsOk(), StatusIs(kDataLoss, "lz4")))
        << bit;
  }
}

TEST(Envelope, WrongTypeAndWrongCodecAreInvalidArgument) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes pod, Serialize(Pod{}));
  EXPECT_THAT(Deserialize<std::vector<double>>(pod),
              StatusIs(kInvalid, "type mismatch"));
  EXPECT_THAT(Deserialize<int32_t>(pod), StatusIs(kInvalid, "type mismatch"));
  EXPECT_THAT(Deserialize<SampleBuffer>(pod),
              StatusIs(kInvalid, "type mismatch"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes text,
                                  Serialize(std::string("abc")));
  EXPECT_THAT(Deserialize<double>(text), StatusIs(kInvalid, "'string'"));
  // Same C++ size, other codec: int32 data is not float32 data.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes i32, Serialize(int32_t{1}));
  EXPECT_THAT(Deserialize<float>(i32), StatusIs(kInvalid, "int32"));
  // A FlatBuffer of another table, inside an envelope, names its table.
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(CreateChild(fbb, fbb.CreateString("c"), 1));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes child,
      Serialize(FlatBuffer<Child>::FromBuilder(std::move(fbb))));
  EXPECT_THAT(Deserialize<SampleBuffer>(child),
              StatusIs(kInvalid, "proxystore::fuzz::Child"));
  // Python objects other than bytes/str, and Python data as a non-byte type.
  EXPECT_THAT(Deserialize<std::string>(Exact("PK\n\x80\x04")),
              StatusIs(kInvalid, "pickle"));
  EXPECT_THAT(Deserialize<int32_t>(Exact("BS\nabcd")),
              StatusIs(kInvalid, "bytes"));
}

TEST(Envelope, PayloadSizeThatDoesNotFitTheCodecIsDataLoss) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes i32, Serialize(int32_t{1}));
  // Five payload bytes, with consistent length fields.
  std::string five = absl::StrCat(i32.view(), "x");
  five = PatchLe(five, 16, 5, 8);
  five = PatchLe(five, 24, 5, 8);
  EXPECT_THAT(Deserialize<int32_t>(Exact(five)), StatusIs(kDataLoss, "5"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes vec,
                                  Serialize(std::vector<double>{1, 2}));
  std::string seventeen = absl::StrCat(vec.view(), "x");
  seventeen = PatchLe(seventeen, 16, 17, 8);
  seventeen = PatchLe(seventeen, 24, 17, 8);
  EXPECT_THAT(Deserialize<std::vector<double>>(Exact(seventeen)),
              StatusIs(kDataLoss, "multiple"));
  // A "bool" payload byte other than 0 or 1.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes b, Serialize(true));
  std::string two(b.view());
  two.back() = 2;
  EXPECT_THAT(Deserialize<bool>(Exact(two)), StatusIs(kDataLoss, "bool"));
}

TEST(Envelope, OversizedLengthFieldsAreDataLoss) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes wire,
                                  Serialize(std::string("abc")));
  const std::string s(wire.view());
  const uint64_t kMax = ~uint64_t{0};
  EXPECT_THAT(InspectEnvelope(Exact(PatchLe(s, 16, kMax, 8))),
              StatusIs(kDataLoss, "truncated"));
  EXPECT_THAT(Deserialize<std::string>(Exact(PatchLe(s, 24, kMax, 8))),
              StatusIs(kDataLoss, "corrupt"));
  EXPECT_THAT(Deserialize<std::string>(Exact(PatchLe(s, 6, 0xfff0, 2))),
              StatusIs(kDataLoss, "header size"));
  EXPECT_THAT(Deserialize<std::string>(Exact(PatchLe(s, 8, 0xffff, 2))),
              StatusIs(kDataLoss, "header size"));
}

TEST(Envelope, Lz4SizeClaimsBeyondWhatLz4CanProduceAreRefusedUpFront) {
  SerializeOptions lz4;
  lz4.compress = true;
  lz4.compress_threshold = 1;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes wire,
                                  Serialize(std::string(5000, 'z'), lz4));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(wire));
  ASSERT_TRUE(info.compressed);
  const std::string s(wire.view());
  for (uint64_t claim :
       {info.stored_size * 255 + 17, kMaxLz4Input + 1, ~uint64_t{0}}) {
    EXPECT_THAT(Deserialize<std::string>(Exact(PatchLe(s, 24, claim, 8))),
                StatusIs(kDataLoss, "refusing to allocate"))
        << claim;
  }
  // Within lz4's ratio but not what the block decodes to: lz4 notices.
  EXPECT_THAT(Deserialize<std::string>(
                  Exact(PatchLe(s, 24, info.stored_size * 255 + 16, 8))),
              StatusIs(kDataLoss, "lz4"));
  EXPECT_THAT(Deserialize<std::vector<uint8_t>>(
                  Exact(PatchLe(s, 24, info.payload_size + 1, 8))),
              StatusIs(kDataLoss, "lz4"));
}

TEST(Envelope, HugeInputsAreReadInPlaceOrRefusedWithoutCopying) {
  // 2 GiB of payload after a valid "bytes" header: a zero-copy slice.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes small,
                                  Serialize(SharedBytes::Copy("x")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(small));
  const size_t header = info.header_size;
  Mapped huge(header + kHuge);
  ASSERT_TRUE(huge.ok());
  std::memcpy(huge.data(), small.data(), header);
  StoreLe(huge.data() + 16, kHuge, 8);
  StoreLe(huge.data() + 24, kHuge, 8);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes got,
                                  Deserialize<SharedBytes>(huge.bytes()));
  EXPECT_EQ(got.size(), kHuge);
  EXPECT_EQ(got.data(), huge.data() + header);
  // The same sizes under a FlatBuffer header: too large to verify.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes fb, Serialize(MakeSample()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo fb_info, InspectEnvelope(fb));
  Mapped huge_fb(fb_info.header_size + kHuge);
  ASSERT_TRUE(huge_fb.ok());
  std::memcpy(huge_fb.data(), fb.data(), fb_info.header_size);
  StoreLe(huge_fb.data() + 16, kHuge, 8);
  StoreLe(huge_fb.data() + 24, kHuge, 8);
  EXPECT_THAT(Deserialize<SampleBuffer>(huge_fb.bytes()),
              StatusIs(kDataLoss, "too large"));
  // Huge garbage fails on its first bytes.
  Mapped zeros(kHuge);
  ASSERT_TRUE(zeros.ok());
  EXPECT_THAT(InspectEnvelope(zeros.bytes()), StatusIs(kDataLoss, "magic"));
}

// ============================================== FlatBuffer<T>::FromBytes ===

TEST(FlatBufferFromBytes, EmptyOneByteGarbageAndTruncationsAreDataLoss) {
  EXPECT_THAT(SampleBuffer::FromBytes(Exact("")), StatusIs(kDataLoss));
  EXPECT_THAT(SampleBuffer::FromBytes(Exact("x")), StatusIs(kDataLoss));
  EXPECT_THAT(SampleBuffer::FromBytes(Exact(std::string(4096, '\xff'))),
              StatusIs(kDataLoss, "failed verification"));
  const SampleBuffer sample = MakeSample();
  const absl::string_view wire = sample.bytes().view();
  for (size_t n = 0; n < wire.size(); ++n) {
    absl::StatusOr<SampleBuffer> got =
        SampleBuffer::FromBytes(Exact(wire.substr(0, n)));
    if (got.ok()) {
      // Trailing alignment padding only.
      EXPECT_GE(n, wire.size() - 8) << n;
      EXPECT_EQ(TouchSample(got->root()), TouchSample(sample.root())) << n;
    } else {
      EXPECT_THAT(got, StatusIs(kDataLoss)) << n;
    }
  }
}

TEST(FlatBufferFromBytes, BitFlipsAreDataLossOrAVerifiedBuffer) {
  const std::string wire(MakeSample().bytes().view());
  for (size_t bit = 0; bit < wire.size() * 8; ++bit) {
    absl::StatusOr<SampleBuffer> got =
        SampleBuffer::FromBytes(Exact(Flip(wire, bit)));
    if (got.ok()) {
      (void)TouchSample(got->root());  // every read stays inside
    } else {
      EXPECT_THAT(got, StatusIs(kDataLoss)) << bit;
    }
  }
}

TEST(FlatBufferFromBytes, OversizedLengthFieldsAreDataLoss) {
  std::string wire(MakeSample().bytes().view());
  EXPECT_THAT(SampleBuffer::FromBytes(Exact(PatchLe(wire, 0, 0xfffffff0, 4))),
              StatusIs(kDataLoss));
}

TEST(FlatBufferFromBytes, AnotherTablesBufferIsNotDetectedWithoutAnEnvelope) {
  // FlatBuffers carry no type: a Child buffer may verify as a Sample. The
  // envelope's type name is what catches it (Envelope.WrongType...). Either
  // way, nothing is read outside the buffer.
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(CreateChild(fbb, fbb.CreateString("c"), 1));
  const std::string child(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
                          fbb.GetSize());
  absl::StatusOr<SampleBuffer> got = SampleBuffer::FromBytes(Exact(child));
  if (got.ok()) (void)TouchSample(got->root());
  EXPECT_THAT(got, AnyOf(IsOk(), StatusIs(kDataLoss)));
}

TEST(FlatBufferFromBytes, HugeInputIsDataLoss) {
  Mapped huge(kHuge);
  ASSERT_TRUE(huge.ok());
  EXPECT_THAT(SampleBuffer::FromBytes(huge.bytes()),
              StatusIs(kDataLoss, "too large"));
}

// ======================================================= MultiKey::Decode ===

TEST(MultiKeyDecode, MalformedKeysAreInvalidArgument) {
  const Key good = MultiKey{"local", Key("abc")}.Encode();
  // Every truncation that cuts into "5:local:" (later ones keep a shorter
  // but valid child key).
  for (size_t n = 0; n <= std::string("5:local:").size(); ++n) {
    EXPECT_THAT(MultiKey::Decode(Key(good.id().substr(0, n))),
                StatusIs(kInvalid, "malformed multi key"))
        << n;
  }
  for (const char* bad :
       {"", "x", ":", "0:a:b", "05:local:k", "256:a:b", "9999:a:b",
        "99999999999999999999:a:b", "5:loc:k", "1:a", "1:ab"}) {
    EXPECT_THAT(MultiKey::Decode(Key(bad)), StatusIs(kInvalid)) << bad;
  }
  EXPECT_THAT(MultiKey::Decode(Key(std::string(4096, '\xff'))),
              StatusIs(kInvalid));
  // Any bytes after the name are the child's key.
  EXPECT_THAT(MultiKey::Decode(Key(std::string("1:a:\xff\0", 6))), IsOk());
}

TEST(MultiKeyDecode, LongKeysAreDecodedAndErrorsDoNotEchoThem) {
  // Keys from outside pass Key::Parse (at most 4096 bytes) first; Decode
  // itself has no limit.
  const std::string long_id = "1:a:" + std::string(1 << 20, 'k');
  EXPECT_THAT(MultiKey::Decode(Key(long_id)), IsOk());
  absl::StatusOr<MultiKey> bad =
      MultiKey::Decode(Key("x" + std::string(1 << 20, 'k')));
  EXPECT_THAT(bad, StatusIs(kInvalid));
  EXPECT_LT(bad.status().message().size(), 1000u);
}

// ======================================================= Policy::Validate ===

std::string Repeat(absl::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) absl::StrAppend(&out, s);
  return out;
}

// Regressions (found by fuzz_multi, fuzz/corpus/multi/regress_regcomp_*):
// glibc's regcomp copied a repeated group per repetition, so these patterns
// asked for 2^48 (or 50^4) nodes and exhausted memory inside
// Policy::Validate; later, stacked '?' and nested empty loops under the
// node cap made regcomp's epsilon closures run past the fuzzer's 10 s
// timeout. Host patterns now compile with RE2 (HostPattern), which refuses
// stacked repetitions, counts over 1000 (also nested ones multiplying past
// 1000) and programs over 4096 instructions.
TEST(PolicyValidate, PatternsThatWouldExplodeInRegcompAreInvalidArgument) {
  const std::pair<std::string, std::string> bombs[] = {
      {"a" + std::string(48, '+'), "bad repetition operator"},
      {"log+++" + std::string(100, '?'), "bad repetition operator"},
      {"((((a{50}){50}){50}){50})", "invalid repetition size"},
      {std::string(20, '(') + "a" + Repeat("){1,3}", 20),
       "invalid repetition size"},
      {Repeat("(a|bc){1000}", 2), "too complex"},
      {"((a{,80}){,80})", "invalid repetition size"},
      {"a{32767}", "count over 1000"},
  };
  for (const auto& [bomb, problem] : bombs) {
    Policy p;
    p.host_patterns = {bomb};
    EXPECT_THAT(p.Validate(), StatusIs(kInvalid, problem)) << bomb;
    EXPECT_FALSE(p.IsValidOnHost("aaaa"));
  }
  // Deep nesting costs RE2 nothing: it simplifies these to "a" and "a+".
  Policy deep;
  deep.host_patterns = {std::string(200, '(') + "a" + std::string(200, ')'),
                        std::string(40, '(') + "a" + Repeat(")+", 40)};
  EXPECT_THAT(deep.Validate(), IsOk());
  EXPECT_TRUE(deep.IsValidOnHost("a"));
  EXPECT_TRUE(deep.IsValidOnHost("aaaa"));
  EXPECT_FALSE(deep.IsValidOnHost("b"));
  Policy backref;
  backref.host_patterns = {"(a+)\\1"};
  EXPECT_THAT(backref.Validate(), StatusIs(kInvalid, "back-reference"));
  // Ordinary patterns, including bounded repetitions, still work.
  Policy fine;
  fine.host_patterns = {"node-[0-9]{1,4}",          "login[0-9]+\\.cluster",
                        "(gpu|cpu)-[a-z]{2}[0-9]*", "[]a-]+",
                        "[[:alpha:]]{3}",           "x{0,100}"};
  EXPECT_THAT(fine.Validate(), IsOk());
  EXPECT_TRUE(fine.IsValidOnHost("node-12"));
  EXPECT_TRUE(fine.IsValidOnHost("gpu-ab7"));
  EXPECT_TRUE(fine.IsValidOnHost("]a-"));
  // The nested empty loops that were slow in regcomp are ordinary here.
  Policy loops;
  loops.host_patterns = {Repeat("()*", 300), Repeat("(()+)+", 100) + "x"};
  EXPECT_THAT(loops.Validate(), IsOk());
  EXPECT_TRUE(loops.IsValidOnHost(""));
  EXPECT_TRUE(loops.IsValidOnHost("x"));
  EXPECT_FALSE(loops.IsValidOnHost("y"));
}

}  // namespace
}  // namespace proxystore::fuzz
