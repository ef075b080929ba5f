// Connector: the byte-level key/value transport under a Store.
//
// A Connector stores immutable byte strings and mints a Key for each. It is
// ProxyStore's `Connector` protocol in C++: Put/PutBatch/Get/GetBatch/Exists/
// Evict/Config/Close. A missing key is not an error at this level: Get returns
// std::nullopt and Evict of a missing key is OK. Reads return SharedBytes, so
// a connector can hand out memory it does not copy (an mmap, a reply buffer).
//
// Every connector kind registers itself by name ("local", "file", ...) with
// PROXYSTORE_REGISTER_CONNECTOR in its own .cc (its library is alwayslink), and
// round-trips its configuration: MakeConnector(c.Config()) in any process that
// links the kind re-creates a connector that reaches the same data. That is
// what lets a proxy resolve in another process.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<Connector> c,
//                               MakeConnector(ConnectorConfig{"local", {}}));
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, c->Put(SharedBytes::Copy("hi")));
//   PROXYSTORE_ASSIGN_OR_RETURN(std::optional<SharedBytes> got, c->Get(key));
//
// Thread-safety: every Connector method may be called from many threads at
// once; implementations guarantee it.
#ifndef PROXYSTORE_CONNECTORS_CONNECTOR_H_
#define PROXYSTORE_CONNECTORS_CONNECTOR_H_

#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/key.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/policy.h"

namespace proxystore {

// A 128-bit random id as 32 lowercase hex characters (uuid4-like), for
// connectors to mint keys with.
std::string NewObjectId();
// True iff `id` has the form NewObjectId() mints: 32 lowercase hex digits.
// Connectors that name files, segments or server keys after ids accept only
// these from outside.
inline bool IsObjectId(absl::string_view id) {
  if (id.size() != 32) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// A NewObjectId() in Python's str(uuid.uuid4()) form,
// "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" (lowercase, y in [89ab]): the key
// ids Python ProxyStore's connectors mint, for the layouts that share a
// store with it.
std::string NewPythonObjectId();
// True iff `id` has that form (8-4-4-4-12 lowercase hex digits, any
// version).
bool IsPythonObjectId(absl::string_view id);

struct ConnectorChild;

// What it takes to re-create a connector: its kind, its options (connector
// specific, e.g. "directory" for "file") and, for a connector made of others
// ("multi"), their configs. docs/connectors.md lists every kind's options.
struct ConnectorConfig {
  std::string kind;
  std::map<std::string, std::string> options;
  // The connectors this one is made of, in order; only kinds registered with
  // ConnectorKindTraits::has_children accept any.
  std::vector<ConnectorChild> children;

  friend bool operator==(const ConnectorConfig&, const ConnectorConfig&);

  // Typed option accessors. A missing option yields `fallback`; a malformed
  // one is InvalidArgument naming the option and the connector kind.
  absl::StatusOr<std::string> GetString(absl::string_view name,
                                        std::string fallback = "") const;
  absl::StatusOr<int64_t> GetInt(absl::string_view name,
                                 int64_t fallback) const;
  absl::StatusOr<bool> GetBool(absl::string_view name, bool fallback) const;
  // InvalidArgument naming the first option not in `known`.
  absl::Status CheckKnownOptions(
      std::initializer_list<absl::string_view> known) const;

  // The wire form (docs/wire_format.md): a FlatBuffer with identifier "PSCC"
  // and a version. Parse verifies the bytes before reading them: DataLoss
  // for bytes that are not a connector config, InvalidArgument for another
  // version, an empty kind or children nested more than 8 levels deep.
  std::string Serialize() const;
  static absl::StatusOr<ConnectorConfig> Parse(absl::string_view bytes);

  // "kind{opt=value, ...}" or "kind{...}[name: kind{...} {policy}, ...]",
  // for messages.
  std::string DebugString() const;
  // DebugString(), so that test failures and logs show configs readably.
  friend std::ostream& operator<<(std::ostream& os, const ConnectorConfig& c) {
    return os << c.DebugString();
  }
};

// A connector inside another: its name there, its config and the policy the
// parent routes by.
struct ConnectorChild {
  std::string name;
  ConnectorConfig config;
  Policy policy;

  friend bool operator==(const ConnectorChild&,
                         const ConnectorChild&) = default;
};

// Options for a put. `subset_tags`/`superset_tags` route puts in the "multi"
// connector (ProxyStore's Policy tags); other connectors ignore them.
struct PutOptions {
  std::vector<std::string> subset_tags;
  std::vector<std::string> superset_tags;
};

// Connector::NewKey. Connectors that place objects by size ("multi") route
// a deferred key by `size_hint`, the size the object is expected to have.
struct NewKeyOptions {
  std::optional<uint64_t> size_hint;
  std::vector<std::string> subset_tags;
  std::vector<std::string> superset_tags;
};

struct CloseOptions {
  // Remove this connector's data (files, segments, keys). Unset: the
  // connector's configured default.
  std::optional<bool> clear;
};

// GetInto: reading an object straight into the memory that will hold it.
//
// The connector learns the object's size, reads its first bytes, and hands
// both to the caller's GetIntoFn together with `read`, which writes bytes
// [offset, size) of the object to `dst` (room for size - offset bytes) and
// checks that the object did not change underneath (DataLoss otherwise).
// `read` may be called at most once, and only during the GetIntoFn call.
struct ObjectReader {
  uint64_t size = 0;         // the object's size in bytes
  absl::string_view prefix;  // its first min(size, kGetIntoPrefix) bytes
  absl::FunctionRef<absl::Status(char* dst, uint64_t offset)> read;
  // The whole object, when the connector holds it in memory for the length
  // of the call (the default GetInto, "local" for small objects): the fn may
  // copy from it directly instead of calling `read`.
  std::optional<absl::string_view> in_memory = std::nullopt;
};
inline constexpr size_t kGetIntoPrefix = 4096;
// Returns true once it has what it needs (from `read` or `in_memory`), or
// false to receive the whole object as SharedBytes instead
// (GetIntoResult::whole; allowed after `read` too, e.g. when the bytes turn
// out not to be what it can decode). An error is returned by GetInto as is.
using GetIntoFn = absl::FunctionRef<absl::StatusOr<bool>(const ObjectReader&)>;
struct GetIntoResult {
  bool found = false;  // false: nothing under the key (the fn was not called)
  std::optional<SharedBytes> whole;  // the object, when the fn returned false
};
// Runs `fn` over `bytes` held in memory for the call (prefix, `in_memory`,
// and a `read` that copies): what the default GetInto does with the result
// of Get. Returns what `fn` returns.
// InvalidArgument: `read` called twice or past the object's end.
absl::Status GetIntoReadMisuse(const Key& key, uint64_t offset, uint64_t size);
inline absl::StatusOr<bool> GetIntoInMemory(const Key& key,
                                            absl::string_view bytes,
                                            GetIntoFn fn) {
  bool read = false;
  auto copy = [&](char* dst, uint64_t offset) -> absl::Status {
    if (read || offset > bytes.size()) {
      return GetIntoReadMisuse(key, offset, bytes.size());
    }
    read = true;
    if (offset < bytes.size()) {
      std::memcpy(dst, bytes.data() + offset, bytes.size() - offset);
    }
    return absl::OkStatus();
  };
  return fn(ObjectReader{.size = bytes.size(),
                         .prefix = bytes.substr(0, kGetIntoPrefix),
                         .read = copy,
                         .in_memory = bytes});
}

class Connector {
 public:
  Connector() = default;
  virtual ~Connector() = default;
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // The registered kind name, e.g. "local".
  virtual absl::string_view kind() const = 0;

  // Stores `data` under a new key.
  absl::StatusOr<Key> Put(SharedBytes data, const PutOptions& options = {}) {
    return DoPut(std::move(data), options);
  }
  // Stores the concatenation of `parts` under a new key, exactly as
  // Put(joined parts) would, but without joining them in memory where the
  // backend can write them out gathered ("file" and "shm": writev(2);
  // "redis": one sendmsg(2)): Store::Put sends an envelope header and a
  // large object's own bytes this way, so they move once, from the object
  // to the storage. The parts need only outlive the call. Default: one copy
  // into a new buffer, then Put.
  absl::StatusOr<Key> PutParts(absl::Span<const absl::string_view> parts,
                               const PutOptions& options = {}) {
    return DoPutParts(parts, options);
  }
  // Stores each item; the keys come back in input order.
  absl::StatusOr<std::vector<Key>> PutBatch(absl::Span<const SharedBytes> data,
                                            const PutOptions& options = {}) {
    return DoPutBatch(data, options);
  }
  // The bytes stored under `key`, or std::nullopt if there are none.
  absl::StatusOr<std::optional<SharedBytes>> Get(const Key& key) {
    return DoGet(key);
  }
  // Get into the caller's memory (see ObjectReader): the bytes move once,
  // from the storage to the final object, where the backend reads with a
  // copy anyway ("file": pread(2) into `dst`), and the object is visited
  // where it lies when the backend holds it in memory ("local"). Default:
  // Get, then the fn over the bytes in memory (`read` copies). Store::Get
  // decodes std::string and byte vectors this way.
  absl::StatusOr<GetIntoResult> GetInto(const Key& key, GetIntoFn fn) {
    return DoGetInto(key, fn);
  }
  // One result per key, in order; std::nullopt for each missing key.
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> GetBatch(
      absl::Span<const Key> keys) {
    return DoGetBatch(keys);
  }
  absl::StatusOr<bool> Exists(const Key& key) { return DoExists(key); }

  // Deferred writes: a key minted now and written later, possibly by another
  // process (ProxyStore's DeferrableConnector; Store::Future builds on it).
  // Until Set, the key reads as missing (Get -> nullopt, Exists -> false);
  // after it, as the object. A key is written once: Set on a key that
  // already holds an object is AlreadyExists and leaves the object as it
  // was (the store's caches may hold it), so racing producers cannot tear
  // or replace what a consumer read; readers see nothing or the whole
  // object. Set of a key evicted before it was set writes it. Set accepts
  // only keys NewKey of this kind minted (InvalidArgument otherwise).
  // Unimplemented, naming the kind, where the connector cannot defer.
  absl::StatusOr<Key> NewKey(const NewKeyOptions& options = {}) {
    return DoNewKey(options);
  }
  absl::Status Set(const Key& key, SharedBytes data) {
    return DoSet(key, std::move(data));
  }
  // Set of the concatenation of `parts`, written from the parts themselves
  // where the backend writes gathered (as PutParts: "file", "shm", "redis";
  // "multi" forwards). Store::Set sends a large object's envelope header
  // and bytes this way. Default: one copy into a new buffer, then Set.
  absl::Status SetParts(const Key& key,
                        absl::Span<const absl::string_view> parts) {
    return DoSetParts(key, parts);
  }
  // Waits up to `timeout` for `key` to hold an object (a Set here or in
  // another process): true once it does, false when the timeout passes
  // first. Where the backend tells cheaply ("local": a condition variable;
  // "file" and "shm": inotify on the directory; "redis": a Pub/Sub message
  // its Set publishes; "multi": its child), a set wakes the waiter at once;
  // elsewhere Unimplemented, and the caller polls (a future's proxy does,
  // PollingOptions).
  absl::StatusOr<bool> WaitFor(const Key& key, absl::Duration timeout) {
    return DoWaitFor(key, timeout);
  }

  // Removes the object; OK if it does not exist.
  absl::Status Evict(const Key& key) { return DoEvict(key); }
  // Enough to re-create this connector, in this or another process.
  virtual ConnectorConfig Config() const = 0;
  // Releases resources; with clear, removes the data too. Idempotent.
  absl::Status Close(const CloseOptions& options = {}) {
    return DoClose(options);
  }

 protected:
  virtual absl::StatusOr<Key> DoPut(SharedBytes data,
                                    const PutOptions& options) = 0;
  // Default: DoPut of the joined parts.
  virtual absl::StatusOr<Key> DoPutParts(
      absl::Span<const absl::string_view> parts, const PutOptions& options);
  // Default: DoPut per item. Backends with a batch primitive override.
  virtual absl::StatusOr<std::vector<Key>> DoPutBatch(
      absl::Span<const SharedBytes> data, const PutOptions& options);
  virtual absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) = 0;
  // Default: DoGet, then `fn` over the bytes in memory.
  virtual absl::StatusOr<GetIntoResult> DoGetInto(const Key& key, GetIntoFn fn);
  // Default: DoGet per key.
  virtual absl::StatusOr<std::vector<std::optional<SharedBytes>>> DoGetBatch(
      absl::Span<const Key> keys);
  virtual absl::StatusOr<bool> DoExists(const Key& key) = 0;
  // Default: Unimplemented naming the kind.
  virtual absl::StatusOr<Key> DoNewKey(const NewKeyOptions& options);
  virtual absl::Status DoSet(const Key& key, SharedBytes data);
  // Default: DoSet of the joined parts.
  virtual absl::Status DoSetParts(const Key& key,
                                  absl::Span<const absl::string_view> parts);
  virtual absl::StatusOr<bool> DoWaitFor(const Key& key,
                                         absl::Duration timeout);
  virtual absl::Status DoEvict(const Key& key) = 0;
  virtual absl::Status DoClose(const CloseOptions& options) = 0;
};

// Creates a connector from its configuration.
using ConnectorFactory =
    std::function<absl::StatusOr<std::unique_ptr<Connector>>(
        const ConnectorConfig&)>;

// How a kind's configs are treated when they arrive from outside (inside a
// serialized proxy); connectors/trust.h applies it.
struct ConnectorKindTraits {
  // Options that say where the data is: the only ones a receiver takes from
  // the wire. A name ending in '*' matches every option it prefixes
  // ("child.*"). Empty: nothing travels, the receiver's options alone make
  // the connector.
  std::vector<std::string> location_options;
  // What a process does with a connector made from the wire unless it says
  // otherwise (SetReceiverOptions): safe values, e.g. {"clear", "false"}.
  std::map<std::string, std::string> receiver_defaults;
  // The destinations a (location-only) config reaches, "<kind>:<where>"
  // (trust.h), checked against the trust policy. Null: "<kind>:".
  std::function<absl::StatusOr<std::vector<std::string>>(
      const ConnectorConfig&)>
      destinations;
  // Whether configs of this kind have children (ConnectorConfig::children,
  // "multi"). MakeConnector refuses children for other kinds; the trust
  // layer reduces and checks each child as a config of its own kind.
  bool has_children = false;
};

// Registers `kind`. AlreadyExists if the kind is taken; InvalidArgument for an
// empty kind. Kinds are matched case-insensitively and an optional
// "Connector" suffix is ignored ("local" == "LOCAL" == "LocalConnector").
absl::Status RegisterConnectorKind(absl::string_view kind,
                                   ConnectorFactory factory,
                                   ConnectorKindTraits traits = {});

// The traits `kind` registered with; InvalidArgument naming the kind (and
// the registered ones) if it is not registered.
absl::StatusOr<ConnectorKindTraits> GetConnectorKindTraits(
    absl::string_view kind);

// Re-creates a connector. InvalidArgument naming the kind (and listing the
// registered ones) if no library linked into this process registered it, or
// if the config has children and the kind takes none.
absl::StatusOr<std::unique_ptr<Connector>> MakeConnector(
    const ConnectorConfig& config);

// The registered kinds, sorted.
std::vector<std::string> RegisteredConnectorKinds();

namespace connector_internal {
// Registers at static-initialization time; a duplicate is a fatal
// programming error reported on stderr (there is no caller to return to).
struct Registrar {
  Registrar(absl::string_view kind, ConnectorFactory factory,
            ConnectorKindTraits traits = {});
};
// The registry's spelling of a kind: "LocalConnector" / "LOCAL" -> "local".
std::string NormalizeKind(absl::string_view kind);
}  // namespace connector_internal

}  // namespace proxystore

// In a connector's .cc (its cc_library must be alwayslink = True):
//   PROXYSTORE_REGISTER_CONNECTOR("local", &LocalConnector::FromConfig,
//                                 LocalConnector::KindTraits());
#define PROXYSTORE_REGISTER_CONNECTOR(kind, ...)                        \
  static const ::proxystore::connector_internal::Registrar              \
  PROXYSTORE_STATUS_CONCAT_(proxystore_connector_registrar_, __LINE__)( \
      kind, __VA_ARGS__)

#endif  // PROXYSTORE_CONNECTORS_CONNECTOR_H_
