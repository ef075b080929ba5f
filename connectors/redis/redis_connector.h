// RedisConnector: objects as string values in a Redis server (kind "redis").
//
// ProxyStore's RedisConnector, for processes that can reach one Redis (or
// KeyDB, or any server speaking RESP2 with UNLINK, i.e. Redis >= 4.0). Each
// object is the Redis string `<prefix><key id>`; key ids are NewObjectId()
// hex strings, so keys carry no server-side meaning and a connector only
// ever touches keys under its own prefix. Options (all strings):
//   "host", "port"        TCP endpoint; default 127.0.0.1 and 6379. A host is
//                         a name or an IP address: letters, digits and
//                         ".-_:%" only.
//   "unix_socket"         path of a Unix socket instead (then "host" and
//                         "port" must be absent); at most 107 bytes.
//   "db"                  database index >= 0, default 0 (SELECT on connect).
//   "password"            AUTH on connect when non-empty. CAUTION: it travels
//                         in clear text inside Config(), hence inside every
//                         serialized store config and proxy made through this
//                         connector, and in ConnectorConfig::DebugString(): a
//                         receiver needs it to reach the data (it is a
//                         location option, see KindTraits()).
//   "prefix"              key prefix, non-empty, at most 1024 bytes. Default:
//                         "proxystore:<fresh NewObjectId()>:", unique to this
//                         connector (and to those re-created from its
//                         Config(), in any process: they reach the same keys).
//   "max_object_size"     largest value a read (Get, GetBatch) accepts, in
//                         bytes, default kMaxValueSize. A larger value is
//                         ResourceExhausted naming the key and both sizes,
//                         before any of it is allocated or read. Puts are
//                         bounded by kMaxValueSize only.
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
// command grows past the server's query buffer limit. PutBatch is
// all-or-nothing: if a chunk fails (OOM under maxmemory, say), the keys of the
// other chunks are UNLINKed again and the error names the failed chunk (and
// any key the roll-back could not remove).
//
// Close(clear) deletes only the keys under this connector's prefix: SCAN
// MATCH <escaped prefix>* and UNLINK in batches (ProxyStore's connector runs
// FLUSHDB, which wipes the whole database). With the default prefix those are
// this connector's objects only. A prefix given in the options is cleared
// whole, whoever wrote under it: clearing it is what the user asked for by
// configuring it together with clear (so share a configured prefix only with
// connectors meant to share its data). A connector re-created from a
// serialized proxy never clears unless its process says so (KindTraits()).
// Close is idempotent; each clearing Close scans again. After Close,
// Put/Get/Exists/Evict and the batches are FailedPrecondition. Create() does
// no I/O: the first connection is made by the first operation.
//
// Sizes: Redis refuses bulk strings over proto-max-bulk-len, 512 MiB by
// default, so values larger than kMaxValueSize are refused with
// InvalidArgument before anything is sent; values up to it round-trip
// exactly (binary-safe, NULs included).
//
// Replies are untrusted bytes. The connector parses them itself (RESP2) with
// bounded memory: a reply line (status, error, integer, length) must fit in a
// kReadBufferSize buffer per connection; a value is allocated once, at its
// announced size, only after that size passed max_object_size, and without
// throwing (std::nothrow; a failed allocation is ResourceExhausted); an MGET
// reply must have exactly as many elements as keys asked for, and a SCAN
// reply at most kMaxScanKeys keys of kMaxBatchBytes in all. So a hostile or
// broken server makes this process hold at most max_object_size beyond the
// data it actually sent, plus that buffer. A reply that is not RESP2, or
// breaks these rules, is Internal ("protocol error") and its connection is
// discarded. (hiredis's own reader, Debian's 0.14.1, cannot bound a bulk
// string: it buffers the whole announced length before anything looks at
// it; its maxbuf only decides when an idle buffer is freed, and it has no
// maxelements. hiredis is used to connect only.)
//
// Copies: Put sends the value from the caller's buffer (sendmsg over an
// iovec; hiredis would copy it twice into its output buffer, see
// machine-performance.md on 1 MB SETs). Get reads a value into a buffer of
// its own, straight from the socket past what was already buffered, and
// hands that buffer out as the SharedBytes: nothing is copied after the
// kernel; each GetBatch value owns its own buffer.
//
// Connections: a pool of hiredis connections, each used by one thread at a
// time; an operation takes an idle one or opens a new one, and gives it back
// afterwards (at most kMaxIdleConnections stay open while idle). A
// connection belongs to the process that opened it: after fork(2) the child
// never sends or reads anything on an inherited one, it closes its copies of
// their descriptors and opens its own (a pthread_atfork counter tells the
// processes apart; the pool's lock is held across fork() so that a child never
// inherits it locked). Connections are close-on-exec. A connection that
// fails (EOF, reset, timeout, protocol error) is discarded, along with every
// idle one (after a server restart they are all stale). If an operation
// fails on a connection that had been idle in the pool with EOF or a reset,
// it is retried once on a new connection (all operations are idempotent), so
// a restarted server is picked up transparently. A server that is down or
// silent yields Unavailable within the configured timeouts, never a hang, and
// never SIGPIPE (MSG_NOSIGNAL). Error replies name the command and carry the
// server's message: AUTH failures and NOAUTH are Unauthenticated, a bad
// database index is InvalidArgument, OOM is ResourceExhausted, LOADING/BUSY
// are Unavailable, READONLY/MISCONF/WRONGTYPE are FailedPrecondition, others
// Internal.
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
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/connector.h"

namespace proxystore {

namespace redis_internal {
class Connection;  // A hiredis connection with its reply reader (.cc).
}  // namespace redis_internal

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
  // Read buffer per connection: the longest reply line accepted.
  static constexpr size_t kReadBufferSize = size_t{16} << 10;
  // Most keys one SCAN reply may carry.
  static constexpr size_t kMaxScanKeys = 100'000;

  static absl::StatusOr<std::unique_ptr<RedisConnector>> Create(
      const ConnectorConfig& options);
  // Registry factory; the config's kind is not checked here.
  static absl::StatusOr<std::unique_ptr<Connector>> FromConfig(
      const ConnectorConfig& config);
  // How configs from serialized proxies are treated (connectors/trust.h):
  //  - location options: "host", "port", "unix_socket", "db", "prefix" and
  //    "password" (it must travel to reach the data; see its CAUTION above);
  //  - receiver defaults: "clear" = "false", "max_object_size" = 1 GiB
  //    (1073741824); timeouts take the connector's defaults;
  //  - destination: "redis:<host>:<port>/<db>/<prefix>" (an IPv6 host in
  //    brackets, the host in lower case) or
  //    "redis:unix:<canonical absolute path>/<db>/<prefix>"; without a prefix
  //    the connector makes a fresh one, and the destination ends in "/". A
  //    TCP host named "unix" or a relative socket path is InvalidArgument.
  static ConnectorKindTraits KindTraits();

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
    std::string prefix;  // Empty until Create() makes the default one.
    size_t max_object_size = 0;
    int64_t connect_timeout_ms = 0;
    int64_t command_timeout_ms = 0;
    bool clear = false;
  };
  using Connection = redis_internal::Connection;

  explicit RedisConnector(Settings settings);

  // The location options of `options` ("prefix" may stay empty).
  static absl::StatusOr<Settings> ParseLocation(const ConnectorConfig& options);
  static absl::StatusOr<std::vector<std::string>> Destinations(
      const ConnectorConfig& location);
  // pthread_atfork handlers: every live connector's pool lock is held across
  // fork(); the child bumps the fork generation.
  static void PrepareFork();
  static void ParentAfterFork();
  static void ChildAfterFork();

  absl::Status CheckOpen(absl::string_view op) const;
  // InvalidArgument for an empty key id (it would name the prefix itself).
  absl::Status CheckKey(const Key& key, absl::string_view op) const;
  absl::Status CheckValueSize(size_t size, absl::string_view op) const;
  // ResourceExhausted naming `key` if `size` exceeds max_object_size.
  absl::Status CheckReadSize(int64_t size, const Key& key) const;
  // A new connection, authenticated and on the right database.
  absl::StatusOr<std::unique_ptr<Connection>> Connect() const;
  // Runs `fn` on a connection of its own (see "Connections" above); errors
  // are prefixed with the endpoint and `op`. `fn` must be idempotent and
  // (re)set its outputs: it may run twice.
  absl::Status Run(absl::string_view op, bool check_open,
                   absl::FunctionRef<absl::Status(Connection&)> fn);
  // Returns a healthy connection of this process to the pool (or closes it).
  void Release(std::unique_ptr<Connection> connection);
  // Closes every idle connection.
  void DropIdle();
  // UNLINKs `redis_keys`; for PutBatch's roll-back.
  absl::Status Unlink(absl::Span<const std::string> redis_keys);
  // UNLINKs every key under the prefix.
  absl::Status ClearKeys();

  const Settings settings_;
  const std::string endpoint_;
  // "command_timeout_ms=N ms", for messages.
  const std::string timeout_;
  std::atomic<bool> closed_{false};
  // Not a proxystore::Mutex (a pthread rwlock, which glibc releases only in
  // the thread that write-locked it): the fork handlers lock it in the parent
  // and release it in the child, whose thread has another id.
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;  // Guarded by mu_.
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_REDIS_REDIS_CONNECTOR_H_
