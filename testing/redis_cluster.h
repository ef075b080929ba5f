// RedisCluster: a private Redis Cluster (real redis-server processes) for
// tests and benchmarks.
//
// Start() launches masters * (1 + replicas_per_master) nodes, each a
// RedisServer (so: a free loopback port, or one on its address in its
// network namespace with options.placement; its own directory node-<i>/
// under a private temporary directory; the log read through a pipe) run with
// `--cluster-enabled yes`, `--cluster-config-file node-<i>/nodes.conf`, a
// short `--cluster-node-timeout` (fast failover), a cluster bus port of its
// own (`--cluster-port`, a second free port: the default, port + 10000, does
// not exist for ports above 55535), `--cluster-replica-validity-factor 0`
// (a replica may always take over, however long its master was gone) and
// `--repl-diskless-sync-delay 0` (a replica's sync starts at once instead of
// after 5 s). It then creates the cluster with `redis-cli --cluster create
// ... --cluster-replicas N --cluster-yes` and returns once the cluster is
// healthy (see below).
// redis-cli picks which nodes are masters and which master each replica
// follows; Layout() tells.
//
// Healthy means, for every running node: CLUSTER INFO says cluster_state:ok,
// 16384 slots assigned and every node known; its CLUSTER SHARDS view assigns
// every slot to a running node and marks no running node as failed, and is
// the same as every other running node's view (slot owners and who
// replicates whom) and knows every running replica's replication offset (a
// node lists a replica in CLUSTER SLOTS only then, so cluster clients see
// every replica); and a replica's link to its master is up
// (master_link_status:up: the initial sync finished). Start() first waits
// for the log lines "Cluster state changed: ok" (every node) and
// "MASTER <-> REPLICA sync: Finished with success" (every replica), then
// confirms with those queries.
//
// How waits wait: never a fixed sleep. Every wait is one poll(2) over all
// running nodes' output pipes, so it wakes when any node logs a line
// (state changes, elections, syncs and FAIL messages are all logged) and
// checks the condition again. Some changes are learned through gossip
// without a log line (a node hearing of a slot's new owner), so poll(2) also
// has a timeout that starts at 5 ms and doubles up to 100 ms after every
// check that came up short, and falls back to 5 ms after a log line: at
// most about ten checks a second while nothing is logged.
//
// Teardown: the destructor kills every node (SIGKILL; the data is thrown
// away), reaps each process and removes the private directory. As with
// RedisServer, call Start() and RestartNode() from a thread that outlives
// the cluster (PR_SET_PDEATHSIG).
//
// Thread-safety: not thread-safe; call its methods from one thread at a time.
// Clients on other threads may use the nodes meanwhile (that is how a test
// reshards in the middle of traffic: MigrateSlot on one thread, traffic on
// others). addresses(), address(), size() and node_id() never change.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<RedisCluster> cluster,
//                               RedisCluster::Start());
//   // A cluster client starts from cluster->addresses(): "127.0.0.1:p0,...";
//   // with options.placement, the nodes' own addresses ("10.64.3.2:p0,...").
//   PROXYSTORE_ASSIGN_OR_RETURN(RedisClusterLayout layout, cluster->Layout());
//   const int master = layout.masters()[0];
//   PROXYSTORE_RETURN_IF_ERROR(cluster->KillNode(master));
//   PROXYSTORE_ASSIGN_OR_RETURN(int promoted,
//                               cluster->WaitForFailover(master));
//   PROXYSTORE_RETURN_IF_ERROR(cluster->RestartNode(master));  // a replica now
#ifndef PROXYSTORE_TESTING_REDIS_CLUSTER_H_
#define PROXYSTORE_TESTING_REDIS_CLUSTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proxystore/testing/redis_server.h"

namespace proxystore::testing {

// Redis Cluster's hash slots: 0 .. kRedisClusterSlots - 1.
inline constexpr int kRedisClusterSlots = 16384;

// Where one node runs (RedisClusterOptions::placement).
struct RedisClusterNodePlacement {
  // A network namespace file (RedisServerOptions::netns); empty: the
  // caller's namespace.
  std::string netns;
  // The node's IPv4 address there (RedisServerOptions::bind_address).
  std::string bind_address = "127.0.0.1";
};

struct RedisClusterOptions {
  // At least 3: redis-cli refuses to create a cluster with fewer masters.
  int masters = 3;
  int replicas_per_master = 1;
  // Append-only file on each node (RedisServerOptions::persistence).
  bool persistence = false;
  // Non-empty: every node requires it (and replicas authenticate to their
  // masters with it: --masterauth); redis-cli and our own queries use it.
  std::string password;
  // More redis-server arguments for every node, appended verbatim.
  std::vector<std::string> extra_args;
  // Empty: every node on 127.0.0.1 in the caller's network namespace.
  // Otherwise one entry per node, in index order: node i runs in
  // placement[i].netns, on placement[i].bind_address (several nodes may
  // share a namespace and address; each gets its own ports). The nodes must
  // reach each other's addresses. redis-cli runs in node 0's namespace, and
  // the fixture's own queries to a node are made inside that node's.
  std::vector<RedisClusterNodePlacement> placement;
  // --cluster-node-timeout: how long a node may be unreachable before it is
  // suspected to have failed. Short, so that failover tests are fast.
  absl::Duration node_timeout = absl::Milliseconds(1000);
  // How long Start() may take in all, and how long one node may take to
  // become ready (at Start() and RestartNode()).
  absl::Duration startup_timeout = absl::Seconds(60);
  // How long WaitForFailover(), RestartNode() and MigrateSlot() wait for the
  // cluster to be healthy again.
  absl::Duration wait_timeout = absl::Seconds(30);
  // How long one MIGRATE may take (its timeout argument).
  absl::Duration migrate_timeout = absl::Seconds(10);
  std::string server_binary = "/usr/bin/redis-server";
  std::string cli_binary = "/usr/bin/redis-cli";
};

// Inclusive slot range.
struct RedisClusterSlotRange {
  int first = 0;
  int last = 0;
  friend bool operator==(const RedisClusterSlotRange&,
                         const RedisClusterSlotRange&) = default;
};

// One node as a running node sees the cluster (its CLUSTER SHARDS reply).
struct RedisClusterNodeInfo {
  // The node's index in the cluster (RedisCluster::node(index)).
  int index = -1;
  // Its 40-character node id.
  std::string id;
  bool master = false;
  // A replica's master (index); -1 for a master.
  int master_index = -1;
  // Marked as failed (health "fail") by the node asked.
  bool failed = false;
  // Its replication offset as the node asked knows it (learned through
  // gossip): a node lists a replica in CLUSTER SLOTS only once this is not
  // 0.
  int64_t replication_offset = 0;
  // A master's slots, in ascending order.
  std::vector<RedisClusterSlotRange> slots;
};

struct RedisClusterLayout {
  // The node whose view this is.
  int asked = -1;
  // Indexed by node index, one entry per node of the cluster; a node the
  // asked node does not know has index -1.
  std::vector<RedisClusterNodeInfo> nodes;

  // Masters, in index order (a master without slots included).
  std::vector<int> masters() const;
  // The replicas of `master`, in index order.
  std::vector<int> replicas_of(int master) const;
  // The master that owns `slot`, or -1 if none does.
  int SlotOwner(int slot) const;
};

class RedisCluster {
 public:
  // Starts the nodes and creates the cluster; see the file comment. Errors:
  // InvalidArgument for bad options; FailedPrecondition if redis-server or
  // redis-cli is missing; Unavailable if a node or redis-cli failed (the
  // message carries their output); DeadlineExceeded if the cluster was not
  // healthy within options.startup_timeout (the message says what was
  // missing, with the tail of every node's log).
  static absl::StatusOr<std::unique_ptr<RedisCluster>> Start(
      const RedisClusterOptions& options = {});

  // Kills and reaps every node and removes the private directory.
  ~RedisCluster();
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  const RedisClusterOptions& options() const { return options_; }
  // How many nodes: masters * (1 + replicas_per_master).
  int size() const { return static_cast<int>(nodes_.size()); }
  // The i-th node's server (pid(), port(), Pause(), Output(), ...), for
  // 0 <= i < size(). Use
  // KillNode()/RestartNode() rather than its Kill()/Restart() when the
  // cluster should notice.
  RedisServer& node(int i) { return *nodes_[i].server; }
  const RedisServer& node(int i) const { return *nodes_[i].server; }
  // The i-th node's id (stable across restarts: it is in nodes.conf).
  const std::string& node_id(int i) const { return nodes_[i].id; }
  // "host:port" of the i-th node ("127.0.0.1:port" without placement).
  std::string address(int i) const;
  // Every node's address, comma-separated, for a cluster client's startup
  // nodes: "127.0.0.1:p0,127.0.0.1:p1,...".
  std::string addresses() const;
  // The private directory (each node's files are in node-<i>/ below it).
  const std::string& dir() const { return dir_; }

  // The cluster as node `asked` sees it (CLUSTER SHARDS); asked = -1: the
  // first running node.
  absl::StatusOr<RedisClusterLayout> Layout(int asked = -1) const;

  // Crashes node i (SIGKILL, reaped). Returns at once: the cluster notices
  // after node_timeout.
  absl::Status KillNode(int i);
  // Starts node i again (same port, directory and node id; if it runs, it is
  // shut down gracefully first) and waits until the cluster is healthy with
  // it: a node that lost its slots while it was down rejoins as a replica.
  absl::Status RestartNode(int i);
  // After `old_master` was killed (or paused): waits until one of its
  // replicas was promoted and the cluster is healthy without `old_master`
  // (every other running node agrees and none assigns a slot to it).
  // Returns the promoted replica's index. InvalidArgument if `old_master`
  // was no master, FailedPrecondition if it had no replica, when the cluster
  // was last seen healthy.
  absl::StatusOr<int> WaitForFailover(int old_master);

  // Live migration of `slot` from master `from` to master `to`, with the
  // commands a resharding tool uses:
  //   BeginSlotMigration:  CLUSTER SETSLOT slot IMPORTING on `to`, then
  //                        MIGRATING on `from`;
  //   MigrateSlotKeys:     CLUSTER GETKEYSINSLOT + MIGRATE ... KEYS on
  //                        `from`, one batch; returns how many keys moved
  //                        (0: none left);
  //   FinishSlotMigration: CLUSTER SETSLOT slot NODE on `to`, `from`, then
  //                        every other master; then waits until every
  //                        running node sees `to` own the slot.
  // A step the cluster refuses (`from` does not own the slot, say) is
  // FailedPrecondition with the node's error. MigrateSlot runs all three,
  // moving keys in batches of `batch`. Between
  // the steps the slot is half-moved: `from` answers ASK for keys it no
  // longer has, `to` serves them after ASKING.
  absl::Status MigrateSlot(int slot, int from, int to, int batch = 100);
  absl::Status BeginSlotMigration(int slot, int from, int to);
  absl::StatusOr<int> MigrateSlotKeys(int slot, int from, int to,
                                      int max_keys = 100);
  absl::Status FinishSlotMigration(int slot, int from, int to);

  // Waits until the cluster is healthy (file comment), e.g. after a test
  // paused and resumed nodes itself.
  absl::Status WaitUntilHealthy();

 private:
  struct Node {
    std::unique_ptr<RedisServer> server;
    std::string id;
    int bus_port = 0;
  };
  // Why a check came up short; empty when its condition holds.
  using Check = absl::FunctionRef<absl::StatusOr<std::string>()>;

  RedisCluster(RedisClusterOptions options, std::string dir);

  absl::Status StartNodes();
  absl::Status CreateWithCli(absl::Time deadline);
  // Waits as the file comment says until `check` returns "" (or an error).
  // `what` names the wait in a DeadlineExceeded message.
  absl::Status WaitFor(absl::string_view what, absl::Time deadline,
                       Check check);
  // The health check; nodes in `excluded` are neither asked nor allowed to
  // own slots. Remembers the layout it saw when it returns "".
  absl::StatusOr<std::string> HealthProblem(const std::vector<int>& excluded);
  // Runs one command on node i (AUTH first if there is a password) and
  // returns its reply as text (a status, string or integer; an array's
  // elements one a line); an error reply is an error.
  absl::StatusOr<std::string> Command(
      int i, const std::vector<std::string>& words) const;
  // The last lines of every node's log, for error messages.
  std::string LogTails();
  // The node at ip:port (any ip if `ip` is empty); -1 if none.
  int IndexOf(const std::string& ip, int port) const;
  // InvalidArgument unless 0 <= i < size().
  absl::Status CheckIndex(absl::string_view what, int i) const;

  const RedisClusterOptions options_;
  const std::string dir_;
  std::vector<Node> nodes_;
  // The layout the last successful health check saw.
  RedisClusterLayout healthy_layout_;
};

}  // namespace proxystore::testing

#endif  // PROXYSTORE_TESTING_REDIS_CLUSTER_H_
