// The connector conformance suite: one set of gtest cases that every
// Connector implementation instantiates, so that all kinds honour the same
// contract (ProxyStore's Connector protocol, see connectors/connector.h).
//
// It checks: Put/Get round trips (empty, binary with NULs, 10 MB), distinct
// keys, missing keys (Get -> nullopt, Exists -> false, Evict -> OK), evict
// semantics, PutBatch/GetBatch ordering with missing keys, Config() round
// trips through the registry (MakeConnector) and through
// ConnectorConfig::Serialize/Parse reaching the same data, idempotent Close,
// concurrent use from 8 threads, that a returned SharedBytes outlives the
// object's eviction and the connector itself, and GetInto (missing keys, the
// size and prefix the fn sees, read(dst, offset) from any offset matching
// Get, the whole object when the fn declines, the fn's errors unchanged,
// empty objects, misused reads).
//
// Usage, in a connector's test (link //testing:connector_conformance, which
// is alwayslink so its TEST_Ps register):
//
//   ConnectorTestParams LocalParams() {
//     return {.name = "Local",
//             .make = [] () -> absl::StatusOr<std::unique_ptr<Connector>> {
//               return LocalConnector::Create({});
//             }};
//   }
//   PROXYSTORE_INSTANTIATE_CONNECTOR_CONFORMANCE(Local, LocalParams());
//
// `make` must return a connector with its own, initially empty, storage each
// time it is called (fresh namespace, fresh directory, ...). The suite closes
// every connector it makes with clear=true (or, for a clone made from another
// connector's Config(), with clear=false so the original's data survives).
//
// Thread-safety: `make` may be called from the test thread only; the
// connectors it returns are used from many threads (the Connector contract).
#ifndef PROXYSTORE_TESTING_CONNECTOR_CONFORMANCE_H_
#define PROXYSTORE_TESTING_CONNECTOR_CONFORMANCE_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/connector.h"

namespace proxystore::testing {

struct ConnectorTestParams {
  // Test-name suffix; letters, digits and '_' only (gtest rule).
  std::string name;
  // Creates a connector with fresh, empty storage.
  std::function<absl::StatusOr<std::unique_ptr<Connector>>()> make;
  // Size of the large round-trip value; 10 MB by default.
  size_t large_value_size = 10'000'000;
  // Whether connectors made from Config() in other processes share this
  // connector's storage ("local" is private to its process).
  bool shared_across_processes = true;
};

// So that gtest prints the parameter by name instead of as raw bytes.
inline void PrintTo(const ConnectorTestParams& params, std::ostream* os) {
  *os << params.name;
}

class ConnectorConformanceTest
    : public ::testing::TestWithParam<ConnectorTestParams> {
 protected:
  void SetUp() override;
  // Closes connector() with clear=true.
  void TearDown() override;

  // The connector under test, made in SetUp.
  Connector& connector() { return *connector_; }
  // Another connector with its own storage.
  absl::StatusOr<std::unique_ptr<Connector>> MakeAnother() {
    return GetParam().make();
  }

 private:
  std::unique_ptr<Connector> connector_;
};

}  // namespace proxystore::testing

// Instantiates the suite for one or more ConnectorTestParams values:
//   PROXYSTORE_INSTANTIATE_CONNECTOR_CONFORMANCE(File, FileParams(),
//                                                FileNoMmapParams());
// Use at namespace scope (gtest pastes the suite name into identifiers, so
// the macro brings ConnectorConformanceTest into the current namespace).
#define PROXYSTORE_INSTANTIATE_CONNECTOR_CONFORMANCE(prefix, ...)       \
  using ::proxystore::testing::ConnectorConformanceTest;                \
  INSTANTIATE_TEST_SUITE_P(                                             \
      prefix, ConnectorConformanceTest, ::testing::Values(__VA_ARGS__), \
      [](const ::testing::TestParamInfo<                                \
          ::proxystore::testing::ConnectorTestParams>& info) {          \
        return info.param.name;                                         \
      })

#endif  // PROXYSTORE_TESTING_CONNECTOR_CONFORMANCE_H_
