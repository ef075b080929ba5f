// Store::Get of types whose codec decodes straight from the connector
// (Connector::GetInto): every encoding a Get must read, and every corruption
// it must refuse, through each path the connectors take (local in place and
// through its default; file by reading into the object).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/local/local_connector.h"
#include "proxystore/serializer/serializer.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::StatusIs;
using ::proxystore::testing::TestTempDir;

struct Case {
  std::string kind;  // "local" or "file"
  size_t size;       // of the test string
};

std::string Pattern(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + i % 23);
  return s;
}

class GetDirectTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    ConnectorConfig config{GetParam().kind, {}};
    if (GetParam().kind == "file") {
      config.options["directory"] = TestTempDir() + "/objects";
    }
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                    MakeConnector(config));
    StoreOptions options;
    options.cache_size = 0;
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        store_, Store::Create(absl::StrCat("direct-", GetParam().kind, "-",
                                           GetParam().size),
                              std::move(c), options));
    text_ = Pattern(GetParam().size);
  }
  void TearDown() override {
    if (store_ != nullptr) {
      EXPECT_THAT(store_->Close({.clear = true}),
                  ::proxystore::testing::IsOk());
    }
  }
  // Stores `bytes` as they are, bypassing the serializer.
  Key PutRaw(absl::string_view bytes) {
    absl::StatusOr<Key> key = store_->connector().Put(SharedBytes::Copy(bytes));
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? *key : Key();
  }

  std::shared_ptr<Store> store_;
  std::string text_;
};

TEST_P(GetDirectTest, ReadsEveryEncodingOfItsType) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key native, store_->Put(text_));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto got, store_->Get<std::string>(native));
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(*got, text_);
  // The same bytes as a byte vector (the codecs accept each other).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto bytes,
                                  store_->Get<std::vector<uint8_t>>(native));
  ASSERT_NE(bytes, nullptr);
  EXPECT_EQ(std::string(bytes->begin(), bytes->end()), text_);

  // ProxyStore Python data ("US\n" + UTF-8).
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes python,
      Serialize(text_,
                {.format = SerializeOptions::Format::kProxyStorePython}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto from_python, store_->Get<std::string>(PutRaw(python.view())));
  EXPECT_EQ(*from_python, text_);

  // lz4-compressed: handed back whole and decompressed as usual.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SharedBytes compressed,
      Serialize(text_, {.compress = true, .compress_threshold = 1}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto decompressed, store_->Get<std::string>(PutRaw(compressed.view())));
  EXPECT_EQ(*decompressed, text_);

  // Missing: the default value, no error.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      auto missing,
      store_->Get<std::string>(Key("0123456789abcdef0123456789abcdef")));
  EXPECT_EQ(missing, nullptr);
}

TEST_P(GetDirectTest, RefusesWhatTheSerializerRefuses) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes whole, Serialize(text_));
  const absl::string_view full = whole.view();
  std::vector<std::string> bad = {
      std::string(full.substr(0, 1)),
      std::string(full.substr(0, 20)),
      std::string(full.substr(0, 40)),
      std::string(full.substr(0, 47)),
      std::string(full.substr(0, full.size() - 1)),
      absl::StrCat(full, "x"),
  };
  std::string flipped(full);
  flipped[12] = '\x01';  // the reserved field
  bad.push_back(flipped);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(EnvelopeInfo info, InspectEnvelope(whole));
  std::string padding(full);
  padding[info.header_size - 1] = '\x01';  // the header's zero padding
  bad.push_back(padding);
  for (const std::string& b : bad) {
    const absl::Status expected =
        Deserialize<std::string>(SharedBytes::Copy(b)).status();
    ASSERT_FALSE(expected.ok()) << b.size();
    const Key key = PutRaw(b);
    EXPECT_THAT(store_->Get<std::string>(key).status(),
                StatusIs(expected.code()))
        << b.size() << " bytes: " << expected;
  }
  // Another type's data: InvalidArgument naming the stored type.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(SharedBytes number, Serialize(int32_t{-5}));
  EXPECT_THAT(store_->Get<std::string>(PutRaw(number.view())).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Get<std::string>(PutRaw("")).status(),
              StatusIs(absl::StatusCode::kDataLoss));
}

INSTANTIATE_TEST_SUITE_P(
    Paths, GetDirectTest,
    ::testing::Values(
        // local: visited in place (small) and through the default (large).
        Case{"local", 100}, Case{"local", LocalConnector::kInPlaceGetMax + 1},
        // file: header and payload in the first read, and past it.
        Case{"file", 100}, Case{"file", 3 * kGetIntoPrefix + 5}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return absl::StrCat(info.param.kind, "_", info.param.size);
    });

}  // namespace
}  // namespace proxystore
