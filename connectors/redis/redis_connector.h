// RedisConnector: objects as string values in a Redis server (kind "redis").
//
// ProxyStore's RedisConnector, for processes that can reach one Redis (or
// KeyDB, or any server speaking RESP2 with UNLINK, i.e. Redis >= 4.0). Each
// object is the Redis string `<prefix><key id>`; key ids are NewObjectId()
// hex strings, so keys carry no server-side meaning and a connector only
// ever touches keys under its own prefix. Options (all strings):
//   "host", "port"        TCP endpoint; default 127.0.0.1 and 6379.
//   "unix_socket"         path of a Unix socket instead (then "host" and
//                         "port" must be absent); at most 107 bytes.
//   "db"                  database index >= 0, default 0 (SELECT on connect).
//   "password"            AUTH on connect when non-empty. CAUTION: it travels
//                         in clear text inside Config(), hence inside every
//                         serialized store config and proxy made through this
//                         connector, and in ConnectorConfig::DebugString().
//   "prefix"              key prefix, non-empty, at most 1024 bytes. Default:
//                         "proxystore:<fresh NewObjectId()>:", so that every
//                         connector created without one has its own key space.
//                         Config() carries the prefix, so connectors re-created
//                         from it (in any process) reach the same keys.
//   "connect_timeout_ms"  bound on establishing a connection (including AUTH
//                         and SELECT), default 5000.
//   "command_timeout_ms"  bound on each wait for the socket while sending or
//                         receiving (a whole 500 MB transfer may take longer;
//                         a silent server fails after this long), default
//                         30000.
//   "clear"               bool, default false (as ProxyStore): what Close()
//                         does when CloseOptions::clear is unset.
// Unknown options are InvalidArgument. Config() round-trips all of them.
//
// Commands: Put = SET, Get = GET (nil -> std::nullopt), Exists = EXISTS,
// Evict = UNLINK (freed by the server in the background). A non-string value
// under one of our keys (someone else's doing) makes Get FailedPrecondition
// (WRONGTYPE), while GetBatch reports it missing, as MGET does. PutBatch = MSET
// and GetBatch = MGET, split into pipelined chunks of at most kMaxBatchItems
// items (and, for MSET, about kMaxBatchBytes of values) that are all sent
// before any reply is read: one round trip for any batch size, while no single
// command grows past the server's query buffer limit.
//
// Close(clear) deletes only this connector's keys: SCAN MATCH <escaped
// prefix>* and UNLINK in batches (ProxyStore's connector runs FLUSHDB, which
// wipes the whole database). It is idempotent; each clearing Close scans
// again. After Close, Put/Get/Exists/Evict and the batches are
// FailedPrecondition. Create() does no I/O: the first connection is made by
// the first operation.
//
// Sizes: Redis refuses bulk strings over proto-max-bulk-len, 512 MiB by
// default, so values larger than kMaxValueSize are refused with
// InvalidArgument before anything is sent; values up to it round-trip
// exactly (binary-safe, NULs included).
//
// Copies: Put sends the value from the caller's buffer (sendmsg over an
// iovec; hiredis would copy it twice into its output buffer, see
// machine-performance.md on 1 MB SETs). Get hands out the hiredis reply's own
// buffer: the SharedBytes owns the redisReply (freeReplyObject on release),
// so nothing is copied out of it; each GetBatch value owns its own reply
// element.
//
// Connections: a pool of hiredis connections, each used by one thread at a
// time; an operation takes an idle one or opens a new one, and gives it back
// afterwards (at most kMaxIdleConnections stay open while idle, and an idle
// one keeps no read buffer grown by a big reply). A connection that fails
// (EOF, reset, timeout, protocol error) is discarded, along with every idle
// one (after a server restart they are all stale). If
// an operation fails on a connection that had been idle in the pool and the
// failure was not a timeout, it is retried once on a new connection (all
// operations are idempotent), so a restarted server is picked up
// transparently. A server that is down or silent yields Unavailable within
// the configured timeouts, never a hang, and never SIGPIPE (MSG_NOSIGNAL).
// Error replies name the command and carry the server's message: AUTH
// failures and NOAUTH are Unauthenticated, a bad database index is
// InvalidArgument, OOM is ResourceExhausted, LOADING/BUSY are Unavailable,
// READONLY/MISCONF/WRONGTYPE are FailedPrecondition, others Internal.
//
// Thread-safety: all methods may be called concurrently; the pool is guarded
// by a mutex and no connection is used by two threads at once.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(
//       std::unique_ptr<RedisConnector> c,
//       RedisConnector::Create({"redis", {{"host", "10.0.0.5"},
//                                         {"port", "6379"}}}));
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, c->Put(SharedBytes::Copy("data")));
//   // In another process: MakeConnector(c->Config()) reads the same key.
#ifndef PROXYSTORE_CONNECTORS_REDIS_REDIS_CONNECTOR_H_
#define PROXYSTORE_CONNECTORS_REDIS_REDIS_CONNECTOR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "connectors/connector.h"
#include "store/bytes.h"
#include "store/mutex.h"

struct redisContext;

namespace proxystore {

class RedisConnector : public Connector {
 public:
  static constexpr absl::string_view kKind = "redis";
  // Redis's default proto-max-bulk-len.
  static constexpr size_t kMaxValueSize = size_t{512} << 20;
  static constexpr size_t kMaxPrefixSize = 1024;
  static constexpr int64_t kDefaultPort = 6379;
  static constexpr int64_t kDefaultConnectTimeoutMs = 5000;
  static constexpr int64_t kDefaultCommandTimeoutMs = 30000;
  static constexpr int64_t kMaxTimeoutMs = int64_t{24} * 3600 * 1000;
  static constexpr size_t kMaxIdleConnections = 16;
  // Most keys per MSET/MGET command, and (roughly) most value bytes per MSET.
  static constexpr size_t kMaxBatchItems = 1000;
  static constexpr size_t kMaxBatchBytes = size_t{64} << 20;

  static absl::StatusOr<std::unique_ptr<RedisConnector>> Create(
      const ConnectorConfig& options);
  // Registry factory; the config's kind is not checked here.
  static absl::StatusOr<std::unique_ptr<Connector>> FromConfig(
      const ConnectorConfig& config);

  ~RedisConnector() override;

  absl::string_view kind() const override { return kKind; }
  ConnectorConfig Config() const override;

  const std::string& prefix() const { return settings_.prefix; }
  // "host:port" or the Unix socket path, for messages.
  const std::string& endpoint() const { return endpoint_; }
  // The Redis key that holds `key`'s object: prefix() + key.id().
  std::string RedisKey(const Key& key) const;

 protected:
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override;
  // One SET, its value sent from the parts themselves (sendmsg iovecs).
  absl::StatusOr<Key> DoPutParts(absl::Span<const absl::string_view> parts,
                                 const PutOptions& options) override;
  absl::StatusOr<std::vector<Key>> DoPutBatch(
      absl::Span<const SharedBytes> data, const PutOptions& options) override;
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override;
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> DoGetBatch(
      absl::Span<const Key> keys) override;
  absl::StatusOr<bool> DoExists(const Key& key) override;
  absl::Status DoEvict(const Key& key) override;
  absl::Status DoClose(const CloseOptions& options) override;

 private:
  struct Settings {
    std::string host;  // Empty when unix_socket is set.
    int port = 0;
    std::string unix_socket;
    int64_t db = 0;
    std::string password;
    std::string prefix;
    int64_t connect_timeout_ms = 0;
    int64_t command_timeout_ms = 0;
    bool clear = false;
  };
  struct ContextDeleter {
    void operator()(redisContext* c) const;
  };
  using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

  explicit RedisConnector(Settings settings);

  absl::Status CheckOpen(absl::string_view op) const;
  // InvalidArgument for an empty key id (it would name the prefix itself).
  absl::Status CheckKey(const Key& key, absl::string_view op) const;
  absl::Status CheckValueSize(size_t size, absl::string_view op) const;
  // A new connection, authenticated and on the right database.
  absl::StatusOr<ContextPtr> Connect() const;
  // Runs `fn` on a connection of its own (see "Connections" above); errors
  // are prefixed with the endpoint and `op`. `fn` must be idempotent and
  // (re)set its outputs: it may run twice.
  absl::Status Run(absl::string_view op, bool check_open,
                   absl::FunctionRef<absl::Status(redisContext*)> fn);
  // Returns a healthy connection to the pool (or closes it).
  void Release(ContextPtr context);
  // Closes every idle connection.
  void DropIdle();
  // UNLINKs every key under the prefix.
  absl::Status ClearKeys();

  const Settings settings_;
  const std::string endpoint_;
  std::atomic<bool> closed_{false};
  Mutex mu_;
  std::vector<ContextPtr> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_REDIS_REDIS_CONNECTOR_H_
