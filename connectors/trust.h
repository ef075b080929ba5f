// Receiver-side authority over connector configs that arrive from outside.
//
// A serialized proxy carries the config of the store (and connector) that
// made it. The receiving process re-creates a connector from it, and that
// config is untrusted: it may name any directory, namespace, server or
// prefix, and any option value. This header is how a receiving process keeps
// the authority over its own machine.
//
// Every connector kind splits its options in two (ConnectorKindTraits, given
// when the kind registers):
//  - LOCATION options say where the data is (a directory, an shm namespace, a
//    Redis endpoint and prefix, a multi connector's children). Only these are
//    taken from the wire.
//  - Everything else says what this process does (clear on close, directory
//    creation, mmap/populate thresholds, the largest object it reads,
//    timeouts, pool sizes). For a config from the wire these come from the
//    kind's receiver defaults, then from SetReceiverOptions(); whatever the
//    wire said is dropped.
//
// A TrustPolicy then decides which kinds and destinations a wire config may
// name at all. A destination is a string "<kind>:<where>" (the kind's traits
// compute it): "file:/data/ps", "shm:myns", "redis:127.0.0.1:6379/0/prefix",
// "redis:unix:/run/redis.sock/0/prefix", "local:<namespace>". A rejected
// config is PermissionDenied naming the destination, before anything is
// opened, connected or created.
//
//   // Only resolve proxies whose data lives under /scratch or on one Redis.
//   SetTrustPolicy(TrustPolicy::DenyAll()
//                      .AllowDestination("file:/scratch")
//                      .AllowDestination("redis:10.0.0.5:6379"));
//   // Read objects of up to 8 GiB through "file" connectors from proxies.
//   SetReceiverOptions("file", {{"max_object_size", "8589934592"}});
//
// The default policy (TrustPolicy::Default()) allows every kind linked into
// the process and every destination: receiver-side authority alone keeps a
// proxy from destroying or exhausting the receiver (it never clears, never
// creates directories, reads at most the receiver's max_object_size, uses
// the receiver's timeouts). docs/security.md has the threat model.
//
// Thread-safety: TrustPolicy is a value type; the process-wide setters and
// getters may be called from any thread.
#ifndef PROXYSTORE_CONNECTORS_TRUST_H_
#define PROXYSTORE_CONNECTORS_TRUST_H_

#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proxystore/connectors/connector.h"

namespace proxystore {

class TrustPolicy {
 public:
  // Every kind linked into this process, every destination.
  static TrustPolicy Default();
  // Nothing, until allowed with AllowKind/AllowDestination.
  static TrustPolicy DenyAll();

  // Allows every destination of `kind` ("file", "redis", ...).
  TrustPolicy& AllowKind(absl::string_view kind);
  // Allows destinations equal to `prefix` or below it: "file:/data" allows
  // "file:/data" and "file:/data/ps" but not "file:/database";
  // "redis:127.0.0.1:6379" allows every db and prefix on that server;
  // "redis:127.0.0.1:6379/0/app:" allows prefixes starting with "app:" on
  // db 0. The kind is the part before the first ':' and is allowed for these
  // destinations only.
  TrustPolicy& AllowDestination(absl::string_view prefix);

  // OK, or PermissionDenied naming the kind.
  absl::Status CheckKind(absl::string_view kind) const;
  // OK, or PermissionDenied naming the destination.
  absl::Status CheckDestination(absl::string_view destination) const;

  bool allows_everything() const { return allow_all_; }
  std::string DebugString() const;
  friend std::ostream& operator<<(std::ostream& os, const TrustPolicy& p) {
    return os << p.DebugString();
  }

 private:
  explicit TrustPolicy(bool allow_all) : allow_all_(allow_all) {}

  bool allow_all_;
  std::set<std::string> kinds_;
  std::vector<std::string> destinations_;
};

// The process-wide policy applied to configs from the wire (initially
// TrustPolicy::Default()).
void SetTrustPolicy(TrustPolicy policy);
TrustPolicy GetTrustPolicy();

// Overrides the receiver defaults of `kind` for configs from the wire in this
// process (replacing earlier overrides of that kind). InvalidArgument for an
// unknown kind or for a location option (those always come from the proxy).
absl::Status SetReceiverOptions(absl::string_view kind,
                                std::map<std::string, std::string> options);

// `config` with only its location options (recursively for nested configs):
// what a proxy needs to reach the data, and what two configs must share to
// reach the same data. InvalidArgument for an unregistered kind.
absl::StatusOr<ConnectorConfig> LocationConfig(const ConnectorConfig& config);

// The destinations `config` reaches (recursively for nested configs).
absl::StatusOr<std::vector<std::string>> ConnectorDestinations(
    const ConnectorConfig& config);

// What a receiver makes of a config from the wire: its location options,
// checked against `policy`, plus the receiver's own options. PermissionDenied
// naming the kind or destination the policy refuses; InvalidArgument for an
// unknown kind or a malformed location.
absl::StatusOr<ConnectorConfig> ReceiverConfig(const ConnectorConfig& wire,
                                               const TrustPolicy& policy);

// MakeConnector(ReceiverConfig(wire, GetTrustPolicy())).
absl::StatusOr<std::unique_ptr<Connector>> MakeConnectorFromWire(
    const ConnectorConfig& wire);

// Helpers for kinds' destination functions.
namespace trust_internal {
// "/a/./b/../c/" -> "/a/c"; InvalidArgument for a relative path or one with
// a NUL byte. Symbolic links are resolved for the part of the path that
// exists, so a link cannot lead out of an allowed root.
absl::StatusOr<std::string> CanonicalDirectory(absl::string_view kind,
                                               absl::string_view directory);
}  // namespace trust_internal

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_TRUST_H_
