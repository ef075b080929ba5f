#include "proxystore/wire/wire.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::wire {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

std::string ConnectorBytes(uint16_t version, const Format& format) {
  flatbuffers::FlatBufferBuilder fbb;
  auto kind = fbb.CreateString("local");
  fb::ConnectorConfigBuilder b(fbb);
  b.add_version(version);
  b.add_kind(kind);
  return Finish(fbb, b.Finish(), format);
}

absl::StatusOr<std::string> ReadKind(absl::string_view bytes,
                                     const Format& format) {
  PROXYSTORE_RETURN_IF_ERROR(CheckSize(bytes, format));
  AlignedView aligned(bytes);
  PROXYSTORE_ASSIGN_OR_RETURN(const fb::ConnectorConfig* root,
                              ReadRoot<fb::ConnectorConfig>(aligned, format));
  return std::string(View(root->kind()));
}

TEST(WireTest, RoundTripsWithIdentifierAndVersion) {
  const std::string bytes = ConnectorBytes(kVersion, kConnectorConfig);
  EXPECT_EQ(bytes.substr(4, 4), "PSCC");
  EXPECT_THAT(ReadKind(bytes, kConnectorConfig), IsOkAndHolds("local"));
}

TEST(WireTest, SizePrefixedRoundTrip) {
  constexpr Format kPrefixed{"test buffer", "PSCC", true, 1 << 10};
  const std::string bytes = ConnectorBytes(kVersion, kPrefixed);
  EXPECT_EQ(bytes.substr(8, 4), "PSCC");
  EXPECT_THAT(ReadKind(bytes, kPrefixed), IsOkAndHolds("local"));
  // Every truncation and any extension is caught by the prefix.
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THAT(ReadKind(bytes.substr(0, n), kPrefixed),
                StatusIs(absl::StatusCode::kDataLoss))
        << n;
  }
  EXPECT_THAT(ReadKind(bytes + std::string(8, '\0'), kPrefixed),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("extended")));
}

TEST(WireTest, RefusesOtherVersions) {
  for (uint16_t version : {0, 1, 3, 65535}) {
    EXPECT_THAT(
        ReadKind(ConnectorBytes(version, kConnectorConfig), kConnectorConfig),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 HasSubstr(absl::StrCat("version ", version))));
  }
}

TEST(WireTest, RefusesAnotherFormatsIdentifier) {
  const std::string bytes = ConnectorBytes(kVersion, kConnectorConfig);
  EXPECT_THAT(ReadKind(bytes, kStoreConfig),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("\"PSSC\"")));
}

TEST(WireTest, RefusesBuffersWithoutIdentifier) {
  flatbuffers::FlatBufferBuilder fbb;
  auto kind = fbb.CreateString("local");
  fb::ConnectorConfigBuilder b(fbb);
  b.add_version(kVersion);
  b.add_kind(kind);
  fbb.Finish(b.Finish());
  const std::string bytes(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
                          fbb.GetSize());
  EXPECT_THAT(ReadKind(bytes, kConnectorConfig),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("no \"PSCC\" identifier")));
}

TEST(WireTest, RefusesCorruptBuffers) {
  std::string bytes = ConnectorBytes(kVersion, kConnectorConfig);
  // The root offset points past the end.
  bytes[0] = '\x7f';
  EXPECT_THAT(ReadKind(bytes, kConnectorConfig),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("verification")));
  EXPECT_THAT(ReadKind("", kConnectorConfig),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("too short")));
}

TEST(WireTest, RefusesOversizedInputBeforeCopying) {
  constexpr Format kSmall{"small buffer", "PSCC", false, 16};
  const std::string bytes(17, '\0');
  EXPECT_THAT(CheckSize(bytes, kSmall),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("17 bytes are too large for a small buffer")));
  EXPECT_THAT(CheckSize(bytes.substr(0, 16), kSmall), IsOk());
}

TEST(WireTest, ProxyPrefixCannotSpellTheSignedMagic) {
  // "PSG1" read as the little-endian size prefix of a serialized proxy.
  const uint32_t psg1 = 'P' | ('S' << 8) | ('G' << 16) | (uint32_t{'1'} << 24);
  EXPECT_GT(psg1, kProxy.max_size);
}

}  // namespace
}  // namespace proxystore::wire
