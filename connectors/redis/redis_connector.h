// RedisConnector: objects as string values in a Redis server (kind "redis"),
// as ProxyStore's RedisConnector. Any server speaking RESP2 with UNLINK
// (Redis >= 4.0, KeyDB) will do. Each object is the Redis string
// `<prefix><key id>`; a connector only ever touches keys under its prefix.
// Options, error codes and guarantees: docs/connectors.md. CAUTION: option
// "password" travels in clear text in Config(), hence in every proxy; name
// it by reference instead ("password_env": an environment variable,
// "password_file": a file, read where the connector is made, and only for
// the servers "password_for" lists; receivers set their own with
// SetReceiverOptions, connectors/trust.h).
//
//   PROXYSTORE_ASSIGN_OR_RETURN(
//       std::unique_ptr<RedisConnector> c,
//       RedisConnector::Create({"redis", {{"host", "10.0.0.5"},
//                                         {"port", "6379"}}}));
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, c->Put(SharedBytes::Copy("data")));
//   // In another process: MakeConnector(c->Config()) reads the same key.
//
// Redis Cluster: option "cluster" ("h1:7000,h2:7000": seed nodes, instead
// of host/port/unix_socket) routes each key by its hash slot to the master
// that serves it, as the cluster's slot map says (CLUSTER SLOTS, read from
// any node that answers, refreshed after a MOVED); see docs/connectors.md,
// "Redis Cluster", for redirects, retries, batches across nodes, replica
// reads and what "wait_replicas" promises.
//
//   RedisConnector::Create({"redis", {{"cluster", "10.0.0.5:7000,"
//                                                  "10.0.0.6:7000"}}});
//
// Deferred writes: NewKey mints an id as Put does and sends nothing; Set is
// one SET ... NX, so Redis decides atomically which of racing Sets writes,
// pipelined with a PUBLISH on the key's channel, SetChannel(): "<redis
// key>:set". WaitFor subscribes to that channel, so a Set from any process
// wakes it at once.
//
// Thread-safety: all methods may be called concurrently. A child made by
// fork(2) may keep using the connector; it opens connections of its own.
#ifndef PROXYSTORE_CONNECTORS_REDIS_REDIS_CONNECTOR_H_
#define PROXYSTORE_CONNECTORS_REDIS_REDIS_CONNECTOR_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "proxystore/base/bytes.h"
#include "proxystore/connectors/connector.h"

namespace proxystore {

namespace redis_internal {
class Connection;     // A hiredis connection with its reply reader (.cc).
struct Pool;          // The idle connections to one server (.cc).
struct Routes;        // A cluster's slot map as last read (.cc).
struct Outcome;       // How one attempt on a connection ended (.cc).
class CommandWriter;  // Pipelined commands, sent with sendmsg(2) (.cc).
struct Reply;         // The first line of a reply (.cc).
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
  // Most seed nodes in option "cluster".
  static constexpr size_t kMaxClusterSeeds = 64;
  // Longest CLUSTER SLOTS reply read, in bytes.
  static constexpr size_t kMaxSlotsReplySize = size_t{8} << 20;
  // How long a write with "wait_replicas" waits for the replicas (WAIT).
  static constexpr int64_t kDefaultWaitTimeoutMs = 2000;

  // A cluster seed node of option "cluster".
  struct Seed {
    std::string host;
    int port = 0;
  };

  // Checks the options; does no I/O (the first operation connects).
  // Without "prefix", makes a fresh one, "proxystore:<NewObjectId()>:".
  // InvalidArgument for a malformed, out-of-range or unknown option, for
  // "unix_socket" together with "host" or "port", for "cluster" together
  // with any of them or with a "db" other than 0 (a cluster has database 0
  // only), and for "read_from_replicas" without "cluster".
  static absl::StatusOr<std::unique_ptr<RedisConnector>> Create(
      const ConnectorConfig& options);
  // Create(), for the registry; the config's kind is not checked here.
  static absl::StatusOr<std::unique_ptr<Connector>> FromConfig(
      const ConnectorConfig& config);
  // Location options "host", "port", "unix_socket", "cluster", "db",
  // "prefix" and "password" (a receiver needs it to reach the data);
  // receiver defaults
  // clear=false, max_object_size=1 GiB. The destination
  // ("redis:<host>:<port>/<db>/<prefix>" or "redis:unix:<path>/<db>/<prefix>")
  // is described in docs/connectors.md.
  static ConnectorKindTraits KindTraits();

  ~RedisConnector() override;

  absl::string_view kind() const override { return kKind; }
  // Every option ("password" only if set), the prefix included, so that a
  // connector made from it in any process reaches the same keys.
  ConnectorConfig Config() const override;

  const std::string& prefix() const { return settings_.prefix; }
  // Option "layout": "native" (the default), or "proxystore-python": read
  // and write what Python ProxyStore 1.0's RedisConnector does, on a server
  // that Python processes use at the same time. Python's keys are bare
  // uuid4 strings ("prefix" defaults to empty, and may be set to share a
  // prefix by hand), and Put and NewKey mint that form; to keep an empty
  // prefix from reaching every key of the database, every operation takes
  // only ids of that form or NewObjectId()'s (InvalidArgument otherwise), and
  // a clearing Close removes only keys so named (Python's clear is FLUSHDB,
  // which this never runs).
  static constexpr absl::string_view kNativeLayoutName = "native";
  static constexpr absl::string_view kPythonLayoutName = "proxystore-python";
  bool python_layout() const { return settings_.python_layout; }

  // Whether option "cluster" is set.
  bool cluster() const { return !settings_.seeds.empty(); }
  // "host:port", the Unix socket path, or "cluster <seed nodes>", for
  // messages.
  const std::string& endpoint() const { return endpoint_; }
  // The Redis key that holds `key`'s object: prefix() + key.id().
  std::string RedisKey(const Key& key) const;
  // The Pub/Sub channel Set publishes on (an empty message) and WaitFor
  // subscribes to: `redis_key` + kSetChannelSuffix. Any client may subscribe
  // to it; a message on it means "look again", never "it is there".
  static constexpr absl::string_view kSetChannelSuffix = ":set";
  static std::string SetChannel(absl::string_view redis_key);

 protected:
  // Every operation is FailedPrecondition after Close, and InvalidArgument
  // for an empty key id. A server that is down or silent is Unavailable
  // within the configured timeouts, never a hang; an error reply carries the
  // server's message, its code mapped as docs/connectors.md lists; a reply
  // that is not valid RESP2 is Internal.
  //
  // Put (SET): InvalidArgument for a value over kMaxValueSize, before
  // anything is sent.
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override;
  // One SET, its value sent from the parts themselves (sendmsg iovecs).
  absl::StatusOr<Key> DoPutParts(absl::Span<const absl::string_view> parts,
                                 const PutOptions& options) override;
  // PutBatch (MSET): one round trip, all or nothing. If part of the batch
  // fails (OOM under maxmemory, say), the rest is removed again; the error
  // names the failed chunk of items, and says so if the removal failed too.
  absl::StatusOr<std::vector<Key>> DoPutBatch(
      absl::Span<const SharedBytes> data, const PutOptions& options) override;
  // Get (GET): std::nullopt if missing. ResourceExhausted if the value is
  // larger than "max_object_size" (before any of it is read);
  // FailedPrecondition if the key holds a non-string value.
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override;
  // GetBatch (MGET): one round trip; the same size limit as Get, while a
  // non-string value reads as missing (as MGET reports it).
  absl::StatusOr<std::vector<std::optional<SharedBytes>>> DoGetBatch(
      absl::Span<const Key> keys) override;
  // Exists (EXISTS).
  absl::StatusOr<bool> DoExists(const Key& key) override;
  // NewKey: NewObjectId(), nothing sent. Set (SET <redis key> <value> NX, as
  // Put sends it, then PUBLISH SetChannel() "", written together and both
  // replies read: one round trip): AlreadyExists naming the key if it holds
  // a value; InvalidArgument for a key id NewObjectId() could not have
  // minted. The PUBLISH goes out whatever the SET answers: after a refused
  // SET NX the key holds an object anyway, and waiters re-check EXISTS after
  // every message, so a message that announces nothing costs them one
  // EXISTS. Its outcome is not the Set's: if the server refuses it (an ACL
  // without PUBLISH) the object is still written, and waiters wake at their
  // timeout instead. Put publishes nothing.
  absl::StatusOr<Key> DoNewKey(const NewKeyOptions& options) override;
  absl::Status DoSet(const Key& key, SharedBytes data) override;
  // Set of the parts, sent from the parts themselves (one SET NX).
  absl::Status DoSetParts(const Key& key,
                          absl::Span<const absl::string_view> parts) override;
  // WaitFor: the same key checks as Set. SUBSCRIBEs to SetChannel() on a
  // connection of its own (a subscribed connection takes no other commands,
  // so it is never pooled, and is closed on return), then checks EXISTS (on
  // a pooled one), so that a Set between the two is seen by one or the
  // other; then waits for a message until the timeout, and checks EXISTS
  // again after each (true once the key holds an object). The timeout
  // passing is not an error: false, after a last EXISTS. A zero or negative
  // timeout is one EXISTS, no subscription. A server that goes away while
  // waiting is Unavailable at once (its connection's EOF), not at the
  // timeout. Unimplemented, carrying the server's message, where the server
  // refuses SUBSCRIBE (an ACL, a proxy without Pub/Sub): callers then poll.
  // Pub/Sub channels ignore the database, so a Set of the same Redis key in
  // another database wakes the waiter for one more EXISTS.
  absl::StatusOr<bool> DoWaitFor(const Key& key,
                                 absl::Duration timeout) override;
  // Evict (UNLINK: the server frees the value in the background).
  absl::Status DoEvict(const Key& key) override;
  // With clear (default: option "clear", false) removes every key under the
  // prefix, whoever wrote it; then closes the idle connections. Idempotent;
  // each clearing Close scans the keys again.
  absl::Status DoClose(const CloseOptions& options) override;

 private:
  struct Settings {
    std::string host;  // Empty when unix_socket or seeds are set.
    int port = 0;
    std::string unix_socket;
    std::vector<Seed> seeds;  // Cluster mode when not empty.
    bool read_from_replicas = false;
    bool python_layout = false;  // Option "layout" "proxystore-python".
    int64_t wait_replicas = 0;
    int64_t wait_timeout_ms = 0;
    int64_t db = 0;
    std::string password;
    // Set when the password came by reference: "password_env" or
    // "password_file", and its value (what Config() carries instead).
    std::string password_option;
    std::string password_reference;
    std::string password_for;  // Option "password_for", as given.
    std::string prefix;        // Empty until Create() makes the default one.
    size_t max_object_size = 0;
    int64_t connect_timeout_ms = 0;
    int64_t command_timeout_ms = 0;
    bool clear = false;
  };
  using Connection = redis_internal::Connection;
  using Pool = redis_internal::Pool;
  using Routes = redis_internal::Routes;
  using Outcome = redis_internal::Outcome;
  using CommandWriter = redis_internal::CommandWriter;
  using Reply = redis_internal::Reply;

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
  // CheckKey, and InvalidArgument for an id NewObjectId() could not have
  // minted: Set and WaitFor take only those.
  absl::Status CheckMinted(const Key& key, absl::string_view op) const;
  absl::Status CheckValueSize(size_t size, absl::string_view op) const;
  // A new key id: NewObjectId(), or NewPythonObjectId() in the Python
  // layout.
  std::string MintId() const;
  // ResourceExhausted naming `key` if `size` exceeds max_object_size.
  absl::Status CheckReadSize(int64_t size, const Key& key) const;
  // Put and Set: one SET of `key` (NX if `only_if_absent`: AlreadyExists
  // when the key holds a value) whose value is `parts` joined, sent from
  // the parts themselves. InvalidArgument over kMaxValueSize, before
  // anything is sent; `verb` names the operation in errors.
  absl::Status Write(absl::string_view verb, const Key& key,
                     absl::Span<const absl::string_view> parts,
                     bool only_if_absent);
  // Exists (EXISTS) on a pooled connection; errors name `op`.
  absl::StatusOr<bool> ExistsFor(const Key& key, absl::string_view op);
  // A new connection to `pool`'s server, authenticated, on the right
  // database and (cluster mode with read_from_replicas) READONLY.
  absl::StatusOr<std::unique_ptr<Connection>> Connect(const Pool& pool) const;
  // Runs `fn` on a pooled or new connection of this process to `pool`'s
  // server (after ASKING if `asking`), retrying once on a new one if a
  // pooled connection turned out dead and `fn` failed (not if it succeeded
  // before the connection died); errors are prefixed with the endpoint and
  // `op`. `fn` must be idempotent and (re)set its outputs: it may run
  // twice. `outcome` (may be null) learns a cluster error reply and whether
  // the connection failed.
  absl::Status RunOn(Pool& pool, absl::string_view op, bool check_open,
                     bool asking,
                     absl::FunctionRef<absl::Status(Connection&)> fn,
                     Outcome* outcome);
  // Runs `fn` where `redis_key` lives: on the one server, or on the master
  // (a replica, for a `read` with read_from_replicas) serving its slot,
  // following MOVED and ASK and retrying TRYAGAIN, CLUSTERDOWN, LOADING,
  // READONLY and unreachable nodes, with the slot map refreshed, until
  // command_timeout_ms has passed: then Unavailable with the last error.
  absl::Status RunKey(absl::string_view op, absl::string_view redis_key,
                      bool read,
                      absl::FunctionRef<absl::Status(Connection&)> fn);
  // Cluster batches: one command per item (`add`, then `read` reads its
  // reply), pipelined per node, every node written before any is read.
  // Items that meet a redirect, a retryable cluster error or a failed node
  // go again, after the map is refreshed, until command_timeout_ms. With
  // `wait` and wait_replicas, each node's commands are followed by WAIT.
  // `sent` (items a server may have carried out) is kept up to date for
  // roll-backs. The first error that is not retried is returned.
  // FailedPrecondition after Close if `check_open`.
  // `command` names the command in error messages.
  absl::Status RunBatch(
      absl::string_view op, absl::string_view command,
      absl::Span<const std::string> redis_keys, bool read_replicas, bool wait,
      absl::FunctionRef<void(CommandWriter&, size_t)> add,
      absl::FunctionRef<absl::Status(Connection&, size_t, const Reply&)> read,
      std::vector<bool>* sent, bool check_open = true);
  // The pool of the server that serves `redis_key` (its slot's master).
  // `used` learns the slot map it was chosen from (null on one server).
  absl::StatusOr<Pool*> PoolForKey(absl::string_view redis_key,
                                   absl::Time deadline,
                                   std::shared_ptr<const Routes>* used);
  // The pool of server host:port, made on first use.
  Pool& PoolAt(absl::string_view host, int port);
  // The cluster's slot map as last read; reads it if there is none.
  absl::StatusOr<std::shared_ptr<const Routes>> CurrentRoutes(
      absl::Time deadline);
  // Reads the slot map from the first node that answers (the nodes of the
  // last map read, then the seeds; no further node once `deadline` has
  // passed) and makes it current. One thread reads at a time; others wait
  // for its result, until `deadline`. Unavailable if no node could be
  // reached; otherwise the code of the last node's answer.
  absl::StatusOr<std::shared_ptr<const Routes>> RefreshRoutes(
      absl::Time deadline);
  // Forgets the slot map if it is still `stale`, so that the next
  // operation reads it again.
  void ForgetRoutes(const Routes* stale);
  // Returns a healthy connection of this process to the pool (or closes it).
  void Release(Pool& pool, std::unique_ptr<Connection> connection);
  // An idle connection of this process to `pool`'s server, or null.
  std::unique_ptr<Connection> TakeIdle(Pool& pool);
  // Closes every idle connection (of `only`, if not null).
  void DropIdle(Pool* only = nullptr);
  // PutBatch on the one server (MSET); `maybe_stored` learns which items a
  // server may have stored.
  absl::Status PutBatchOnServer(absl::string_view op,
                                absl::Span<const SharedBytes> data,
                                absl::Span<const std::string> redis_keys,
                                std::vector<bool>* maybe_stored);
  // UNLINKs `redis_keys`; for PutBatch's roll-back.
  absl::Status Unlink(absl::Span<const std::string> redis_keys);
  // UNLINKs every key under the prefix (on every master of a cluster).
  absl::Status ClearKeys();
  absl::Status ClearKeysOn(Pool& pool);
  // After writes with wait_replicas: Unavailable unless `acknowledged`
  // replicas reach wait_replicas.
  absl::Status CheckReplicated(int64_t acknowledged,
                               absl::string_view what) const;

  const Settings settings_;
  const std::string endpoint_;
  // "command_timeout_ms=N ms", for messages.
  const std::string timeout_;
  std::atomic<bool> closed_{false};
  // Not a proxystore::Mutex (a pthread rwlock, which glibc releases only in
  // the thread that write-locked it): the fork handlers lock it in the parent
  // and release it in the child, whose thread has another id.
  std::mutex mu_;
  // One pool per server, never removed while the connector lives; the
  // pools' idle connections are guarded by mu_ too. Guarded by mu_.
  absl::flat_hash_map<std::string, std::unique_ptr<Pool>> pools_;
  // The one server's pool; null in cluster mode.
  Pool* main_pool_ = nullptr;
  std::shared_ptr<const Routes> routes_;  // Guarded by mu_.
  // Every node of the last map read, kept when routes_ is forgotten: where
  // the next map is asked for first. Guarded by mu_.
  std::vector<std::pair<std::string, int>> known_nodes_;
  // A thread is reading the map (RefreshRoutes); refreshed_ is notified
  // when it is done, and routes_generation_ counts the maps read. Guarded
  // by mu_; a child made by fork(2) starts with refreshing_ false.
  bool refreshing_ = false;
  uint64_t routes_generation_ = 0;
  std::condition_variable refreshed_;
  // Round robin over a slot's replicas for replica reads.
  std::atomic<uint32_t> next_replica_{0};
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_REDIS_REDIS_CONNECTOR_H_
