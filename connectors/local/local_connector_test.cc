#include "proxystore/connectors/local/local_connector.h"

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/testing/connector_conformance.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::ConnectorTestParams;
using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

ConnectorTestParams LocalParams() {
  return {.name = "Local",
          .make = []() -> absl::StatusOr<std::unique_ptr<Connector>> {
            return LocalConnector::FromConfig({"local", {}});
          },
          .shared_across_processes = false};
}

PROXYSTORE_INSTANTIATE_CONNECTOR_CONFORMANCE(Local, LocalParams());

TEST(LocalConnector, IsRegisteredAsLocal) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector({"LocalConnector", {}}));
  EXPECT_EQ(c->kind(), "local");
  EXPECT_EQ(c->Config().kind, "local");
}

TEST(LocalConnector, PutStoresTheGivenBufferWithoutCopying) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> c,
                                  LocalConnector::Create());
  std::string payload(1 << 20, 'p');
  const char* original = payload.data();
  SharedBytes bytes = SharedBytes::FromString(std::move(payload));
  ASSERT_EQ(bytes.data(), original);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(std::move(bytes)));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got, c->Get(key));
  ASSERT_TRUE(got.has_value());
  // The very buffer that was put, and the same owner.
  EXPECT_EQ(got->data(), original);
  EXPECT_EQ(got->size(), size_t{1} << 20);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> again,
                                  c->Get(key));
  EXPECT_EQ(again->owner(), got->owner());

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(auto batch, c->GetBatch({key}));
  EXPECT_EQ(batch[0]->data(), original);
}

TEST(LocalConnector, EvictDropsTheStoredReference) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> c,
                                  LocalConnector::Create());
  SharedBytes bytes = SharedBytes::Copy("counted");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(bytes));
  EXPECT_EQ(bytes.owner().use_count(), 2);  // Ours and the connector's.
  PROXYSTORE_ASSERT_OK(c->Evict(key));
  EXPECT_EQ(bytes.owner().use_count(), 1);
}

TEST(LocalConnector, EachConnectorGetsAFreshNamespace) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> a,
                                  LocalConnector::Create());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> b,
                                  LocalConnector::Create());
  EXPECT_NE(a->namespace_id(), b->namespace_id());
  EXPECT_EQ(a->namespace_id().size(), 32u);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, a->Put(SharedBytes::Copy("a")));
  EXPECT_THAT(b->Exists(key), IsOkAndHolds(false));
  EXPECT_THAT(a->Exists(key), IsOkAndHolds(true));
}

TEST(LocalConnector, ConfigNamesTheNamespace) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> c,
                                  LocalConnector::Create());
  ConnectorConfig config = c->Config();
  EXPECT_EQ(config.kind, "local");
  EXPECT_EQ(config.options.size(), 1u);
  EXPECT_EQ(config.options.at("namespace"), c->namespace_id());
}

TEST(LocalConnector, NamedNamespaceIsSharedAndReturnsTheSameBuffer) {
  ConnectorConfig config{"local", {{"namespace", "shared-test-ns"}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> a,
                                  LocalConnector::Create(config));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> b,
                                  MakeConnector(config));
  EXPECT_EQ(a->namespace_id(), "shared-test-ns");
  EXPECT_EQ(b->Config(), config);
  SharedBytes bytes = SharedBytes::Copy("shared");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, a->Put(bytes));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got, b->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->data(), bytes.data());  // Same process, same buffer.
  PROXYSTORE_ASSERT_OK(a->Close(CloseOptions{.clear = true}));
}

TEST(LocalConnector, DefaultCloseKeepsDataForOtherConnectors) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> a,
                                  LocalConnector::Create());
  const ConnectorConfig config = a->Config();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, a->Put(SharedBytes::Copy("kept")));
  PROXYSTORE_ASSERT_OK(a->Close());
  a.reset();  // Even with no connector left on the namespace.

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> b,
                                  MakeConnector(config));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got, b->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), "kept");
  PROXYSTORE_ASSERT_OK(b->Close(CloseOptions{.clear = true}));
}

TEST(LocalConnector, ClearingCloseDropsTheNamespaceData) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> a,
                                  LocalConnector::Create());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> b,
                                  MakeConnector(a->Config()));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, a->Put(SharedBytes::Copy("gone")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> held, b->Get(key));

  PROXYSTORE_ASSERT_OK(a->Close(CloseOptions{.clear = true}));
  // The other connector on the namespace still works, without the data.
  EXPECT_THAT(b->Exists(key), IsOkAndHolds(false));
  // Bytes already handed out stay valid.
  EXPECT_EQ(held->view(), "gone");
  // And new data put through b is visible to a connector made later.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key2, b->Put(SharedBytes::Copy("new")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(b->Config()));
  EXPECT_THAT(c->Exists(key2), IsOkAndHolds(true));
  PROXYSTORE_ASSERT_OK(c->Close(CloseOptions{.clear = true}));
}

TEST(LocalConnector, ClearAfterAPlainCloseStillClears) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> a,
                                  LocalConnector::Create());
  const ConnectorConfig config = a->Config();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, a->Put(SharedBytes::Copy("x")));
  PROXYSTORE_ASSERT_OK(a->Close());
  PROXYSTORE_ASSERT_OK(a->Close(CloseOptions{.clear = true}));
  a.reset();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> b,
                                  MakeConnector(config));
  EXPECT_THAT(b->Exists(key), IsOkAndHolds(false));
}

TEST(LocalConnector, OperationsAfterCloseAreFailedPrecondition) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> c,
                                  LocalConnector::Create());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("x")));
  PROXYSTORE_ASSERT_OK(c->Close());
  EXPECT_THAT(c->Put(SharedBytes::Copy("y")),
              StatusIs(absl::StatusCode::kFailedPrecondition, "Put"));
  EXPECT_THAT(c->Get(key),
              StatusIs(absl::StatusCode::kFailedPrecondition, "Get"));
  EXPECT_THAT(c->GetBatch({key}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(c->Exists(key),
              StatusIs(absl::StatusCode::kFailedPrecondition, "Exists"));
  EXPECT_THAT(c->Evict(key),
              StatusIs(absl::StatusCode::kFailedPrecondition, "Evict"));
  // Config() still works: the data is still reachable by others.
  EXPECT_EQ(c->Config().kind, "local");
}

TEST(LocalConnector, UnknownOrBadOptionsAreInvalidArgument) {
  EXPECT_THAT(LocalConnector::Create({"local", {{"store_dict", "x"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"store_dict\"")));
  EXPECT_THAT(MakeConnector({"local", {{"bogus", "1"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"bogus\""));
  EXPECT_THAT(LocalConnector::Create({"local", {{"namespace", ""}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "namespace"));
}

TEST(LocalConnector, CreatingConnectorsOnOneNamespaceFromManyThreads) {
  // Namespace acquisition/release races with use of the same namespace.
  const ConnectorConfig config{"local", {{"namespace", "racy-ns"}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> anchor,
                                  LocalConnector::Create(config));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key,
                                  anchor->Put(SharedBytes::Copy("anchor")));
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&config, &key] {
      for (int i = 0; i < 50; ++i) {
        absl::StatusOr<std::unique_ptr<Connector>> c = MakeConnector(config);
        ASSERT_THAT(c, IsOk());
        EXPECT_THAT((*c)->Exists(key), IsOkAndHolds(true));
        absl::StatusOr<Key> mine = (*c)->Put(SharedBytes::Copy("t"));
        ASSERT_THAT(mine, IsOk());
        EXPECT_THAT((*c)->Evict(*mine), IsOk());
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_THAT(anchor->Get(key), IsOk());
  PROXYSTORE_ASSERT_OK(anchor->Close(CloseOptions{.clear = true}));
}

// ---- configs from serialized proxies (connectors/trust.h) ----

TEST(LocalConnector, RegistersTheNamespaceAsItsOnlyLocation) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorKindTraits traits,
                                  GetConnectorKindTraits("local"));
  EXPECT_THAT(traits.location_options, ElementsAre("namespace"));
  EXPECT_THAT(traits.receiver_defaults, IsEmpty());
  // "namespace" always comes from the proxy.
  EXPECT_THAT(SetReceiverOptions("local", {{"namespace", "mine"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "location"));
}

TEST(LocalConnector, ReceiverConfigKeepsTheNamespace) {
  const ConnectorConfig wire{"LocalConnector",
                             {{"namespace", "wire-ns"}, {"bogus", "1"}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig config,
                                  ReceiverConfig(wire, TrustPolicy::Default()));
  EXPECT_EQ(config, (ConnectorConfig{"local", {{"namespace", "wire-ns"}}}));
  EXPECT_THAT(LocationConfig(wire), IsOkAndHolds(ConnectorConfig{
                                        "local", {{"namespace", "wire-ns"}}}));
  // Without a namespace the receiver gets a fresh, empty one.
  EXPECT_THAT(ReceiverConfig({"local", {}}, TrustPolicy::Default()),
              IsOkAndHolds(ConnectorConfig{"local", {}}));
}

TEST(LocalConnector, DestinationIsLocalColonNamespace) {
  EXPECT_THAT(ConnectorDestinations({"local", {{"namespace", "ns-a"}}}),
              IsOkAndHolds(ElementsAre("local:ns-a")));
  EXPECT_THAT(ConnectorDestinations({"local", {}}),
              IsOkAndHolds(ElementsAre("local:")));
  EXPECT_THAT(ConnectorDestinations({"local", {{"namespace", ""}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, "namespace"));

  const TrustPolicy policy =
      TrustPolicy::DenyAll().AllowDestination("local:ns-a");
  EXPECT_THAT(ReceiverConfig({"local", {{"namespace", "ns-a"}}}, policy),
              IsOk());
  EXPECT_THAT(ReceiverConfig({"local", {{"namespace", "ns-ab"}}}, policy),
              StatusIs(absl::StatusCode::kPermissionDenied, "\"local:ns-ab\""));
  EXPECT_THAT(ReceiverConfig({"local", {}}, policy),
              StatusIs(absl::StatusCode::kPermissionDenied, "\"local:\""));
}

TEST(LocalConnector, ConnectorFromTheWireReachesTheSameObjects) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalConnector> a,
                                  LocalConnector::Create());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, a->Put(SharedBytes::Copy("wire")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> b,
                                  MakeConnectorFromWire(a->Config()));
  EXPECT_EQ(b->Config(), a->Config());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got, b->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), "wire");
  PROXYSTORE_ASSERT_OK(a->Close(CloseOptions{.clear = true}));
}

}  // namespace
}  // namespace proxystore
