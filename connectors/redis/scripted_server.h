// ScriptedRedisServer: a RESP server on a free loopback port whose every
// reply a test writes, for what a real redis-server never sends (malformed
// replies, redirects, a connection dropped after a command ran, silence).
// Each command (an array of bulk strings, as clients send them) goes to the
// handler, which returns the raw reply bytes, or kClose (hang up without
// replying) or kSilent (never reply). Commands are counted and logged.
//
//   ScriptedRedisServer s([](const std::vector<std::string>& cmd) {
//     return cmd[0] == "GET" ? std::string("$-1\r\n") : "+OK\r\n";
//   });
//   ... connect to 127.0.0.1:s.port() ...
//   EXPECT_EQ(s.Count("GET"), 1);
//
// Thread-safety: the handler runs on the server's threads (one per
// connection), so it must be thread-safe; Count() and Log() may be called
// from any thread.
#ifndef PROXYSTORE_CONNECTORS_REDIS_SCRIPTED_SERVER_H_
#define PROXYSTORE_CONNECTORS_REDIS_SCRIPTED_SERVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace proxystore::redis_test {

class ScriptedRedisServer {
 public:
  static constexpr const char* kClose =
      "\x01"
      "CLOSE";
  static constexpr const char* kSilent =
      "\x01"
      "SILENT";
  using Handler = std::function<std::string(const std::vector<std::string>&)>;

  // Listens at once; port() is 0 if that failed.
  explicit ScriptedRedisServer(Handler handler);
  // Hangs up every connection and joins the server's threads.
  ~ScriptedRedisServer();
  ScriptedRedisServer(const ScriptedRedisServer&) = delete;
  ScriptedRedisServer& operator=(const ScriptedRedisServer&) = delete;

  int port() const { return port_; }
  // How many commands named `name` arrived ("CLUSTER SLOTS" for CLUSTER's
  // subcommands).
  int Count(const std::string& name);
  std::vector<std::vector<std::string>> Log();

 private:
  void AcceptLoop();
  void Serve(int fd);

  const Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread accept_;
  std::mutex mu_;
  bool done_ = false;                          // Guarded by mu_.
  std::vector<int> conns_;                     // Guarded by mu_.
  std::vector<std::thread> threads_;           // Guarded by mu_.
  std::map<std::string, int> counts_;          // Guarded by mu_.
  std::vector<std::vector<std::string>> log_;  // Guarded by mu_.
};

}  // namespace proxystore::redis_test

#endif  // PROXYSTORE_CONNECTORS_REDIS_SCRIPTED_SERVER_H_
