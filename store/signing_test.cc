#include "proxystore/store/signing.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/local/local_connector.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

const std::string kKey(32, 'k');
const std::string kOtherKey(40, 'o');

class SigningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<Connector> c,
        MakeConnector(ConnectorConfig{"local", {}}));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(store_,
                                    Store::Create("signing", std::move(c)));
  }
  void TearDown() override {
    ClearProxySigningKey();
    EXPECT_THAT(store_->Close(), IsOk());
  }

  std::string Wire(const std::string& value) {
    absl::StatusOr<Proxy<std::string>> p = store_->Proxy(value);
    EXPECT_THAT(p.status(), IsOk());
    absl::StatusOr<std::string> wire = p->Serialize();
    EXPECT_THAT(wire.status(), IsOk());
    return *wire;
  }

  std::shared_ptr<Store> store_;
};

TEST_F(SigningTest, ShortKeysAreRefused) {
  EXPECT_THAT(
      SetProxySigningKey(std::string(31, 'k')),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too short")));
  EXPECT_FALSE(ProxySigningEnabled());
}

TEST_F(SigningTest, SignedProxiesResolve) {
  ASSERT_THAT(SetProxySigningKey(kKey), IsOk());
  EXPECT_TRUE(ProxySigningEnabled());
  std::string wire = Wire("signed value");
  EXPECT_EQ(wire.substr(0, 4), "PSG1");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  ParseProxy<std::string>(wire));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const std::string> got,
                                  p.Get());
  EXPECT_EQ(*got, "signed value");
}

TEST_F(SigningTest, EveryChangedByteIsRejected) {
  ASSERT_THAT(SetProxySigningKey(kKey), IsOk());
  const std::string wire = Wire("value");
  for (size_t i = 4; i < wire.size(); ++i) {
    std::string tampered = wire;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    EXPECT_THAT(ParseProxy<std::string>(tampered),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         HasSubstr("does not verify")))
        << "byte " << i;
  }
  EXPECT_THAT(ParseProxy<std::string>(wire.substr(0, wire.size() - 1)),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(SigningTest, UnsignedProxiesAreRejectedWhenAKeyIsSet) {
  const std::string unsigned_wire = Wire("value");
  ASSERT_THAT(SetProxySigningKey(kKey), IsOk());
  EXPECT_THAT(
      ParseProxy<std::string>(unsigned_wire),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not signed")));
}

TEST_F(SigningTest, AnotherKeysProxiesAreRejected) {
  ASSERT_THAT(SetProxySigningKey(kOtherKey), IsOk());
  const std::string wire = Wire("value");
  ASSERT_THAT(SetProxySigningKey(kKey), IsOk());
  EXPECT_THAT(ParseProxy<std::string>(wire),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(SigningTest, WithoutAKeySignedProxiesAreReadUnchecked) {
  ASSERT_THAT(SetProxySigningKey(kKey), IsOk());
  const std::string wire = Wire("value");
  ClearProxySigningKey();
  EXPECT_FALSE(ProxySigningEnabled());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                  ParseProxy<std::string>(wire));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const std::string> got,
                                  p.Get());
  EXPECT_EQ(*got, "value");
  // And unsigned ones are written again.
  EXPECT_NE(Wire("value").substr(0, 4), "PSG1");
}

}  // namespace
}  // namespace proxystore
