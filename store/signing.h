// Authenticated proxies: a process-wide key with which this process signs
// every proxy it serializes and verifies every proxy it parses.
//
// A serialized proxy names a store and its connector config, and the process
// that resolves it acts on what it names (within connectors/trust.h's
// policy). Where proxies cross a boundary an attacker can write to (a queue,
// a shared file system, a network), set the same secret key in producer and
// consumer processes: every proxy is then MAC'd when serialized
// (HMAC-SHA-512-256, libsodium's crypto_auth) and ParseProxy checks the MAC
// before it reads anything else. With a key set, an unsigned proxy, a proxy
// signed with another key, or one changed in transit is PermissionDenied.
// Without a key, proxies are written unsigned, and signed ones are read
// without a check (their MAC is skipped).
//
//   // Both sides, e.g. with a key from a file only they can read:
//   PROXYSTORE_RETURN_IF_ERROR(SetProxySigningKey(key_bytes));
//
// Signing proves that a holder of the key made the proxy; it does not hide
// its contents (store and connector configs travel in clear) and does not
// stop a replay of a proxy that was once valid.
//
// Wire form of a signed proxy: "PSG1" | 32-byte MAC | the unsigned proxy
// (docs/wire_format.md).
//
// Thread-safety: all functions may be called from any thread.
#ifndef PROXYSTORE_STORE_SIGNING_H_
#define PROXYSTORE_STORE_SIGNING_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace proxystore {

// Sets the process-wide key. Any length of at least kMinProxyKeySize bytes
// of secret (it is hashed down to the MAC's key size); shorter keys are
// InvalidArgument.
inline constexpr size_t kMinProxyKeySize = 32;
absl::Status SetProxySigningKey(absl::string_view key);
// Back to unsigned proxies.
void ClearProxySigningKey();
bool ProxySigningEnabled();

namespace signing_internal {

inline constexpr absl::string_view kMagic = "PSG1";
inline constexpr size_t kMacSize = 32;

// `proxy` signed with the process key; `proxy` itself if there is none.
std::string Sign(std::string proxy);
// The unsigned proxy inside `wire`, once its MAC checks out (see above).
absl::StatusOr<absl::string_view> Verify(absl::string_view wire);

}  // namespace signing_internal
}  // namespace proxystore

#endif  // PROXYSTORE_STORE_SIGNING_H_
