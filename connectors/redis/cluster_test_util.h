// Looks at Redis Cluster nodes behind the connector's back, for the cluster
// tests: one command to one node, the keys a node holds, its command counts.
#ifndef PROXYSTORE_CONNECTORS_REDIS_CLUSTER_TEST_UTIL_H_
#define PROXYSTORE_CONNECTORS_REDIS_CLUSTER_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proxystore/testing/redis_server.h"

namespace proxystore::redis_test {

// One command to `node`, its reply as text (a status, string or integer;
// "nil"; "-" and the error; "!" and the message for a connection failure;
// "?" for an array).
std::string NodeCommand(const testing::RedisServer& node,
                        const std::vector<std::string>& words);

// How many keys `node` holds under `prefix` (SCAN on that node only); -1 if
// it cannot be asked.
int KeysOn(const testing::RedisServer& node, const std::string& prefix);

// Calls of `command` the node has served (INFO commandstats); -1 if the
// reply is malformed.
int64_t Calls(const testing::RedisServer& node, absl::string_view command);

}  // namespace proxystore::redis_test

#endif  // PROXYSTORE_CONNECTORS_REDIS_CLUSTER_TEST_UTIL_H_
