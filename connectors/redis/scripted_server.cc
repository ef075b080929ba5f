#include "proxystore/connectors/redis/scripted_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"

namespace proxystore::redis_test {
namespace {

bool ReadLine(const std::string& b, size_t* p, std::string* line) {
  const size_t e = b.find("\r\n", *p);
  if (e == std::string::npos) return false;
  *line = b.substr(*p, e - *p);
  *p = e + 2;
  return true;
}

// One whole command at the front of `b`: its words, and where it ends.
bool Parse(const std::string& b, size_t* end, std::vector<std::string>* cmd) {
  size_t p = 0;
  std::string line;
  int64_t n = 0;
  if (!ReadLine(b, &p, &line) || line.empty() || line[0] != '*' ||
      !absl::SimpleAtoi(line.substr(1), &n)) {
    return false;
  }
  for (int64_t i = 0; i < n; ++i) {
    int64_t len = 0;
    if (!ReadLine(b, &p, &line) || line.empty() ||
        !absl::SimpleAtoi(line.substr(1), &len) || len < 0 ||
        b.size() < p + static_cast<size_t>(len) + 2) {
      return false;
    }
    cmd->push_back(b.substr(p, static_cast<size_t>(len)));
    p += static_cast<size_t>(len) + 2;
  }
  *end = p;
  return true;
}

}  // namespace

ScriptedRedisServer::ScriptedRedisServer(Handler handler)
    : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (listen_fd_ < 0 ||
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return;
  }
  port_ = ntohs(a.sin_port);
  accept_ = std::thread([this] { AcceptLoop(); });
}

ScriptedRedisServer::~ScriptedRedisServer() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    for (int c : conns_) ::shutdown(c, SHUT_RDWR);
  }
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (accept_.joinable()) accept_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

int ScriptedRedisServer::Count(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(name);
  return it == counts_.end() ? 0 : it->second;
}

std::vector<std::vector<std::string>> ScriptedRedisServer::Log() {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}

void ScriptedRedisServer::AcceptLoop() {
  for (;;) {
    const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) {
      ::close(c);
      return;
    }
    conns_.push_back(c);
    threads_.emplace_back([this, c] { Serve(c); });
  }
}

void ScriptedRedisServer::Serve(int c) {
  std::string buf;
  char chunk[65536];
  for (;;) {
    std::vector<std::string> cmd;
    size_t end = 0;
    if (!Parse(buf, &end, &cmd)) {
      const ssize_t n = ::recv(c, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buf.append(chunk, static_cast<size_t>(n));
      continue;
    }
    buf.erase(0, end);
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::string name = cmd.empty() ? "" : cmd[0];
      if (cmd.size() > 1 && name == "CLUSTER") name += " " + cmd[1];
      ++counts_[name];
      log_.push_back(cmd);
    }
    const std::string reply = handler_(cmd);
    if (reply == kClose) break;
    if (reply == kSilent) continue;
    for (size_t off = 0; off < reply.size();) {
      const ssize_t n =
          ::send(c, reply.data() + off, reply.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  }
  // Hangs up; the descriptor is closed here, once, and dropped from conns_.
  std::lock_guard<std::mutex> lock(mu_);
  ::shutdown(c, SHUT_RDWR);
  std::erase(conns_, c);
  ::close(c);
}

}  // namespace proxystore::redis_test
