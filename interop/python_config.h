// Python ProxyStore 1.0's store config files (proxystore.store.config
// StoreConfig, as `StoreConfig.from_toml` / `write_toml` and pydantic's
// `model_validate_json` / `model_dump_json` read and write them), read into
// our StoreConfig and written from it, so that one file configures a store
// in both languages:
//
//   name = "shared"                     # StoreConfig{.name = "shared",
//   cache_size = 16                     #   .cache_size = 16, ...,
//   [connector]                         #   .python_format = true,
//   kind = "redis"                      #   .connector = {"redis",
//   [connector.options]                 #     {{"host", "10.0.0.5"},
//   hostname = "10.0.0.5"               #      {"port", "6379"},
//   port = 6379                         #      {"layout", "proxystore-python"},
//   password_env = "REDIS_PASSWORD"     #      {"password_env", ...}}}}
//
//   PROXYSTORE_ASSIGN_OR_RETURN(StoreConfig config,
//                               ReadPythonStoreConfigFile("store.toml"));
//   PROXYSTORE_ASSIGN_OR_RETURN(ConnectorConfig connector,
//                               ResolveSecretReferences(config.connector));
//   PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<Connector> c,
//                               MakeConnector(connector));
//
// Connectors (docs/python_interop.md, "Configs", has the whole table):
// Python's FileConnector and RedisConnector become our "file" and "redis" in
// layout "proxystore-python" (objects stored as Python stores them, so both
// languages share them), LocalConnector our "local" (in-process: a Python
// process and ours never share one). MultiConnector, whose options are live
// connector objects that no file can hold, and every other kind (Globus,
// endpoint, ProxyStore Extensions' DIM and ZeroMQ connectors, unknown
// kinds) are Unimplemented, naming the kind. Kinds are spelt as Python
// accepts them: "file", "FileConnector" (any case) or
// "proxystore.connectors.file.FileConnector".
//
// Python's model forbids fields it does not know: so does the reader
// (InvalidArgument naming them, and naming the connector options that the
// Python connector's constructor would refuse). Values are type-checked as
// Python's strict validation checks them (cache_size = 1.0 is not an
// integer). The writer refuses, rather than drop, whatever Python cannot
// carry (a serializer name, compression, a Redis prefix, a non-default
// timeout, ...), so what it writes reads back as the config it was given.
//
// Secrets: a Redis password is never written into a config file, nor read
// from one. The file names where it is instead, as option "password_env"
// (an environment variable) or "password_file" (an absolute path), and
// ResolveSecretReferences reads it on the host that makes the connector.
// CAUTION: today our RedisConnector puts a "password" it is given into
// Config(), hence into every proxy (connectors/redis/redis_connector.h); see
// ResolveSecretReferences.
//
// Thread-safety: stateless; every function may be called from any number of
// threads (ResolveSecretReferences reads the environment: do not setenv
// concurrently).
#ifndef PROXYSTORE_INTEROP_PYTHON_CONFIG_H_
#define PROXYSTORE_INTEROP_PYTHON_CONFIG_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/secret.h"
#include "proxystore/store/store_config.h"

namespace proxystore::interop {

enum class PythonConfigFormat {
  kToml,  // StoreConfig.from_toml / write_toml (tomllib, tomli_w)
  kJson,  // StoreConfig.model_validate_json / model_dump_json
};

// The largest config text read or written, in bytes; larger is
// InvalidArgument before anything is parsed (or, for a file, read).
inline constexpr size_t kMaxPythonConfigSize = size_t{1} << 20;

// The secret reference options of a "redis" connector config: the name of
// an environment variable, or the absolute path of a file, that holds the
// password (connectors/secret.h reads them; the redis connector takes them
// itself too). At most one of them, and never together with "password".
inline constexpr absl::string_view kPasswordEnvOption = "password_env";
inline constexpr absl::string_view kPasswordFileOption = "password_file";
// The largest secret file read, in bytes.
inline constexpr size_t kMaxSecretFileSize = proxystore::kMaxSecretFileSize;

// Reads a Python StoreConfig document. The result has python_format set
// (a Python Store reads only Python's serialize() format), Python's defaults
// for absent fields (populate_target defaults to true, as in Python) and
// passes StoreConfig::Validate(). Secret references stay references.
// InvalidArgument: text over kMaxPythonConfigSize, a syntax error (with its
// line and column, or byte offset), a missing, unknown or mistyped field or
// connector option, a serializer or deserializer (Python callables, which
// no file can name), a NUL in a string, a value out of range.
// Unimplemented: a connector kind without a C++ counterpart, or a feature
// of one that ours lacks (LocalConnector's include_data_in_config).
absl::StatusOr<StoreConfig> ReadPythonStoreConfig(absl::string_view text,
                                                  PythonConfigFormat format);

// The format a config file's name says: ".toml" or ".json" (any case).
// InvalidArgument naming the path otherwise.
absl::StatusOr<PythonConfigFormat> PythonConfigFormatForPath(
    absl::string_view path);

// ReadPythonStoreConfig of the file at `path`, in the format its extension
// says. NotFound / PermissionDenied / ... (from errno) if it cannot be
// opened; InvalidArgument for a non-regular file or one larger than
// kMaxPythonConfigSize (checked before it is read). Messages name the path.
absl::StatusOr<StoreConfig> ReadPythonStoreConfigFile(absl::string_view path);

// A Python StoreConfig document that Python ProxyStore 1.0 loads (and builds
// the connector of, unless it references a secret: Python's RedisConnector
// takes no password) and that ReadPythonStoreConfig reads back as `config`
// for configs in the form it returns (connector options that hold our
// defaults are left out). Every field Python cannot carry must hold our
// default: python_format must be true; compress, compress_threshold,
// serializer and deserializer their defaults; "file" and "redis" connectors
// must use layout "proxystore-python" with no option beyond those the table
// in docs/python_interop.md maps, other than at its default value. A
// "local" connector's namespace is dropped (it names memory of one process).
// InvalidArgument naming the field or option otherwise, for a literal
// "password" (reference it instead), for strings that are not UTF-8 or hold
// a NUL, and for a config that fails StoreConfig::Validate(); Unimplemented
// for kinds Python cannot build from a file ("multi", "shm", ...).
absl::StatusOr<std::string> WritePythonStoreConfig(const StoreConfig& config,
                                                   PythonConfigFormat format);

// WritePythonStoreConfig to the file at `path` (format from its extension),
// replacing it atomically: the text goes to a temporary beside it, renamed
// over `path` once complete, so readers see the old file or the new one.
absl::Status WritePythonStoreConfigFile(const StoreConfig& config,
                                        absl::string_view path);

// `config` with its secret references resolved on this host: a "redis"
// config's "password_env" / "password_file" replaced by "password" (the
// variable's value, or the file's content without one trailing "\n" or
// "\r\n"); children are resolved too; other configs come back unchanged.
// Errors name the option, variable or path, never the secret:
// InvalidArgument for a reference with "password" or with the other
// reference, a malformed variable name ([A-Za-z_][A-Za-z0-9_]*), a relative
// path, a secret that is empty or holds NUL, CR or LF (beyond the trailing
// line break), a file that is not a regular file or is larger than
// kMaxSecretFileSize; NotFound for an unset variable or a missing file;
// other errno codes as absl::ErrnoToStatus maps them.
//
// CAUTION: the result holds the password in clear, and a RedisConnector made
// from it returns it in Config(), so every proxy of a store on it carries it
// (the connector's "password" is a location option). Keep such stores to
// trusted receivers until RedisConnector resolves references itself
// (docs/python_interop.md, "Secrets").
absl::StatusOr<ConnectorConfig> ResolveSecretReferences(
    const ConnectorConfig& config);

}  // namespace proxystore::interop

#endif  // PROXYSTORE_INTEROP_PYTHON_CONFIG_H_
