// Secrets named by reference in a connector's options, so that the secret
// itself never sits in a config, a config file or a proxy: an environment
// variable (option "<name>_env") or a file (option "<name>_file").
//
//   PROXYSTORE_ASSIGN_OR_RETURN(
//       std::string password,
//       ReadSecret(SecretSource::kFile, "/run/secrets/redis", "option "
//                  "\"password_file\""));
//
// A reference is read in the process that makes the connector. A file must
// be a regular file of at most kMaxSecretFileSize bytes (checked before it
// is read; opening never waits on a FIFO); one trailing line break is
// dropped, as `echo` and editors leave it. A secret is one non-empty line:
// one holding NUL, CR or LF is refused.
//
// Thread-safety: stateless (getenv(3) is read, never written).
#ifndef PROXYSTORE_CONNECTORS_SECRET_H_
#define PROXYSTORE_CONNECTORS_SECRET_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace proxystore {

enum class SecretSource { kEnvironment, kFile };

inline constexpr size_t kMaxSecretFileSize = size_t{64} << 10;
inline constexpr size_t kMaxSecretEnvNameSize = 256;
inline constexpr size_t kMaxSecretPathSize = 4096;

// InvalidArgument, starting with `what`, unless `value` names an
// environment variable ([A-Za-z_][A-Za-z0-9_]*, at most
// kMaxSecretEnvNameSize characters) or an absolute path of at most
// kMaxSecretPathSize bytes without NUL. Reads nothing.
absl::Status CheckSecretReference(SecretSource source, absl::string_view value,
                                  absl::string_view what);

// The secret `value` refers to. Errors start with `what`: those of
// CheckSecretReference; NotFound for an unset variable or a missing file;
// InvalidArgument for a file that is not a regular file or is too large, an
// empty secret, or one with NUL, CR or LF; the errno's code otherwise.
absl::StatusOr<std::string> ReadSecret(SecretSource source,
                                       absl::string_view value,
                                       absl::string_view what);

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_SECRET_H_
