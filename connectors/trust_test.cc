#include "proxystore/connectors/trust.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// A kind that records the config it is made from; never stores anything.
class NullConnector final : public Connector {
 public:
  explicit NullConnector(ConnectorConfig config) : config_(std::move(config)) {}
  absl::string_view kind() const override { return config_.kind; }
  ConnectorConfig Config() const override { return config_; }

 protected:
  absl::StatusOr<Key> DoPut(SharedBytes, const PutOptions&) override {
    return absl::UnimplementedError("null");
  }
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key&) override {
    return std::nullopt;
  }
  absl::StatusOr<bool> DoExists(const Key&) override { return false; }
  absl::Status DoEvict(const Key&) override { return absl::OkStatus(); }
  absl::Status DoClose(const CloseOptions&) override {
    return absl::OkStatus();
  }

 private:
  ConnectorConfig config_;
};

absl::StatusOr<std::unique_ptr<Connector>> MakeNull(const ConnectorConfig& c) {
  return std::unique_ptr<Connector>(std::make_unique<NullConnector>(c));
}

// "trustdir": data in "dir", local options "wipe" and "limit".
ConnectorKindTraits DirTraits() {
  ConnectorKindTraits t;
  t.location_options = {"dir"};
  t.receiver_defaults = {{"wipe", "false"}, {"limit", "100"}};
  t.destinations =
      [](const ConnectorConfig& c) -> absl::StatusOr<std::vector<std::string>> {
    PROXYSTORE_ASSIGN_OR_RETURN(std::string dir, c.GetString("dir"));
    PROXYSTORE_ASSIGN_OR_RETURN(
        std::string canonical,
        trust_internal::CanonicalDirectory("trustdir", dir));
    return std::vector<std::string>{absl::StrCat("trustdir:", canonical)};
  };
  return t;
}

// "trustnest": a kind made of others (ConnectorConfig::children), with one
// local option "mode".
ConnectorKindTraits NestTraits() {
  ConnectorKindTraits t;
  t.has_children = true;
  t.destinations = [](const ConnectorConfig&) {
    return absl::StatusOr<std::vector<std::string>>(std::vector<std::string>{});
  };
  return t;
}

PROXYSTORE_REGISTER_CONNECTOR("trustdir", &MakeNull, DirTraits());
PROXYSTORE_REGISTER_CONNECTOR("trustnest", &MakeNull, NestTraits());
PROXYSTORE_REGISTER_CONNECTOR("trustbare", &MakeNull);

ConnectorConfig Dir(std::string dir) {
  return {
      "trustdir",
      {{"dir", std::move(dir)}, {"wipe", "true"}, {"limit", "99999999999"}}};
}

TEST(TrustPolicyTest, DefaultAllowsEverything) {
  TrustPolicy p = TrustPolicy::Default();
  EXPECT_THAT(p.CheckKind("anything"), IsOk());
  EXPECT_THAT(p.CheckDestination("file:/"), IsOk());
  EXPECT_TRUE(p.allows_everything());
}

TEST(TrustPolicyTest, DenyAllAllowsOnlyWhatIsListed) {
  TrustPolicy p = TrustPolicy::DenyAll()
                      .AllowKind("shm")
                      .AllowDestination("file:/data")
                      .AllowDestination("redis:10.0.0.5:6379/0/app:");
  EXPECT_THAT(p.CheckKind("SHM"), IsOk());
  EXPECT_THAT(p.CheckKind("file"), IsOk());  // For its listed destinations.
  EXPECT_THAT(p.CheckKind("redis"), IsOk());
  EXPECT_THAT(
      p.CheckKind("local"),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("\"local\"")));
  EXPECT_THAT(p.CheckDestination("shm:anything"), IsOk());
  EXPECT_THAT(p.CheckDestination("file:/data"), IsOk());
  EXPECT_THAT(p.CheckDestination("file:/data/ps/objects"), IsOk());
  EXPECT_THAT(p.CheckDestination("file:/database"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("\"file:/database\"")));
  EXPECT_THAT(p.CheckDestination("file:/"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(p.CheckDestination("redis:10.0.0.5:6379/0/app:abc:"), IsOk());
  EXPECT_THAT(p.CheckDestination("redis:10.0.0.5:6379/0/other:"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(p.CheckDestination("redis:10.0.0.5:6379/1/app:"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(p.CheckDestination("redis:10.0.0.5:63790/0/app:"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(TrustPolicyTest, PrintsWhatItAllows) {
  std::ostringstream os;
  os << TrustPolicy::DenyAll().AllowKind("shm").AllowDestination("file:/d");
  EXPECT_THAT(os.str(), HasSubstr("shm"));
  EXPECT_THAT(os.str(), HasSubstr("file:/d"));
}

TEST(ReceiverConfigTest, KeepsLocationAndUsesReceiverDefaults) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      ConnectorConfig got,
      ReceiverConfig(Dir("/tmp/ps-objects"), TrustPolicy::Default()));
  EXPECT_EQ(got.kind, "trustdir");
  EXPECT_THAT(got.options, UnorderedElementsAre(Pair("dir", "/tmp/ps-objects"),
                                                Pair("wipe", "false"),
                                                Pair("limit", "100")));
}

TEST(ReceiverConfigTest, DropsUnknownOptionsFromTheWire) {
  ConnectorConfig wire = Dir("/tmp/x");
  wire.options["exec"] = "rm -rf /";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig got,
                                  ReceiverConfig(wire, TrustPolicy::Default()));
  EXPECT_FALSE(got.options.contains("exec"));
}

TEST(ReceiverConfigTest, ReceiverOverridesApplyAndLocationCannotBeOverridden) {
  ASSERT_THAT(SetReceiverOptions("trustdir", {{"limit", "7"}}), IsOk());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      ConnectorConfig got,
      ReceiverConfig(Dir("/tmp/x"), TrustPolicy::Default()));
  EXPECT_EQ(got.options.at("limit"), "7");
  EXPECT_EQ(got.options.at("wipe"), "false");
  EXPECT_THAT(SetReceiverOptions("trustdir", {{"dir", "/elsewhere"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("location option")));
  EXPECT_THAT(SetReceiverOptions("no-such-kind", {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(SetReceiverOptions("trustdir", {}), IsOk());
}

TEST(ReceiverConfigTest, PolicyIsCheckedOnCanonicalDestinations) {
  TrustPolicy p = TrustPolicy::DenyAll().AllowDestination("trustdir:/srv/ps");
  EXPECT_THAT(ReceiverConfig(Dir("/srv/ps/a"), p), IsOk());
  EXPECT_THAT(ReceiverConfig(Dir("/srv/ps/../../etc"), p),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("\"trustdir:/etc\"")));
  EXPECT_THAT(
      ReceiverConfig(Dir("relative/dir"), p),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not absolute")));
}

TEST(ReceiverConfigTest, KindsWithoutTraitsTakeNothingFromTheWire) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      ConnectorConfig got, ReceiverConfig({"trustbare", {{"anything", "x"}}},
                                          TrustPolicy::Default()));
  EXPECT_TRUE(got.options.empty());
  EXPECT_THAT(ReceiverConfig({"trustbare", {}}, TrustPolicy::DenyAll()),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(ReceiverConfig({"trustbare", {}},
                             TrustPolicy::DenyAll().AllowKind("trustbare")),
              IsOk());
}

TEST(ReceiverConfigTest, UnknownKindIsInvalidArgument) {
  EXPECT_THAT(
      ReceiverConfig({"nosuchkind", {}}, TrustPolicy::Default()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nosuchkind")));
}

ConnectorConfig Nest(std::vector<ConnectorChild> children) {
  return ConnectorConfig{"trustnest", {{"mode", "x"}}, std::move(children)};
}

TEST(ReceiverConfigTest, NestedConfigsAreReducedAndCheckedOneByOne) {
  ConnectorConfig nest =
      Nest({{"a", Dir("/srv/ps/a"), {}}, {"b", Dir("/home/me"), {}}});
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig got,
                                  ReceiverConfig(nest, TrustPolicy::Default()));
  EXPECT_FALSE(got.options.contains("mode"));
  ASSERT_EQ(got.children.size(), 2u);
  EXPECT_EQ(got.children[0].name, "a");
  EXPECT_EQ(got.children[0].config.options.at("dir"), "/srv/ps/a");
  EXPECT_EQ(got.children[0].config.options.at("wipe"), "false");
  EXPECT_EQ(got.children[0].config.options.at("limit"), "100");

  TrustPolicy p = TrustPolicy::DenyAll().AllowDestination("trustdir:/srv/ps");
  EXPECT_THAT(ReceiverConfig(nest, p),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("\"trustdir:/home/me\""),
                             HasSubstr("child \"b\""))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::string> destinations,
                                  ConnectorDestinations(nest));
  EXPECT_THAT(destinations,
              ElementsAre("trustdir:/srv/ps/a", "trustdir:/home/me"));
}

TEST(ReceiverConfigTest, ChildrenDormantOnThisHostAreCarriedUnchecked) {
  Policy elsewhere{.host_patterns = {"no-such-host-[0-9]+"}};
  ConnectorConfig nest = Nest(
      {{"here", Dir("/srv/ps"), {}}, {"there", Dir("/home/x"), elsewhere}});
  TrustPolicy p = TrustPolicy::DenyAll().AllowDestination("trustdir:/srv/ps");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig got, ReceiverConfig(nest, p));
  ASSERT_EQ(got.children.size(), 2u);
  EXPECT_EQ(got.children[1].config, Dir("/home/x"));
  EXPECT_EQ(got.children[1].policy, elsewhere);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::vector<std::string> destinations,
                                  ConnectorDestinations(nest));
  EXPECT_THAT(destinations, ElementsAre("trustdir:/srv/ps"));
}

TEST(LocationConfigTest, ReducesEveryChildOfAKnownKind) {
  Policy elsewhere{.host_patterns = {"no-such-host-[0-9]+"}};
  ConnectorConfig unknown{"notlinkedhere", {{"secret", "s"}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      ConnectorConfig got,
      LocationConfig(Nest({{"a", Dir("/srv/ps"), {}},
                           {"b", Dir("/home/x"), elsewhere},
                           {"c", unknown, {}}})));
  EXPECT_TRUE(got.options.empty());
  ASSERT_EQ(got.children.size(), 3u);
  EXPECT_THAT(got.children[0].config.options,
              ElementsAre(Pair("dir", "/srv/ps")));
  // Dormant on this host, but still only where its data is.
  EXPECT_THAT(got.children[1].config.options,
              ElementsAre(Pair("dir", "/home/x")));
  EXPECT_EQ(got.children[1].policy, elsewhere);
  // A kind this process does not link: its options cannot be told apart.
  EXPECT_EQ(got.children[2].config, unknown);
}

TEST(ReceiverConfigTest, NestingIsBounded) {
  ConnectorConfig c = Dir("/srv/ps");
  for (int i = 0; i < 20; ++i) c = Nest({{"n", c, {}}});
  EXPECT_THAT(ReceiverConfig(c, TrustPolicy::Default()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("nest more than")));
  EXPECT_THAT(LocationConfig(c), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(MakeConnectorTest, KindsWithoutChildrenRefuseThem) {
  ConnectorConfig c = Dir("/srv/ps");
  c.children.push_back({"x", Dir("/srv/ps"), {}});
  EXPECT_THAT(MakeConnector(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("takes no children")));
  EXPECT_THAT(MakeConnector(Nest({{"x", Dir("/srv/ps"), {}}})), IsOk());
}

TEST(LocationConfigTest, KeepsOnlyWhereTheDataIs) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig got,
                                  LocationConfig(Dir("/srv/ps")));
  EXPECT_THAT(got.options, ElementsAre(Pair("dir", "/srv/ps")));
}

TEST(MakeConnectorFromWireTest, UsesTheProcessPolicy) {
  SetTrustPolicy(TrustPolicy::DenyAll());
  EXPECT_THAT(MakeConnectorFromWire(Dir("/srv/ps")),
              StatusIs(absl::StatusCode::kPermissionDenied));
  SetTrustPolicy(TrustPolicy::Default());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnectorFromWire(Dir("/srv/ps")));
  EXPECT_EQ(c->Config().options.at("wipe"), "false");
  EXPECT_THAT(GetTrustPolicy().allows_everything(), true);
}

}  // namespace
}  // namespace proxystore
