#include "proxystore/connectors/redis/redis_connector.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/redis/cluster_routing.h"
#include "proxystore/connectors/secret.h"
#include "proxystore/connectors/trust.h"

namespace proxystore {
namespace {

// Command arguments at least this long are sent from the caller's memory;
// shorter ones are copied next to the protocol framing. One page: copying
// longer values costs more than an iovec, and a batch's copies add up to a
// fresh buffer of the batch's size, whose pages fault in on every call
// (PutBatch of 100 x 10 KB with 16 KiB here: 531 page faults and 3.6 MB
// allocated per call, 3-4x the time of pipelined SETs; with 4 KiB: none,
// 1.1 MB, and about the SETs' time).
constexpr size_t kExternalArgMin = size_t{4} << 10;
// Keys per SCAN step of a clearing Close.
constexpr absl::string_view kScanCount = "1000";
// Longest SCAN cursor accepted (a uint64 in decimal has 20 digits).
constexpr int64_t kMaxCursorSize = 64;
// "max_object_size" of connectors made from serialized proxies: 1 GiB.
constexpr absl::string_view kReceiverMaxObjectSize = "1073741824";

// Bumped in every child by a pthread_atfork handler: a connection opened at
// another generation belongs to another process.
std::atomic<uint64_t> fork_generation{0};

uint64_t ForkGeneration() {
  return fork_generation.load(std::memory_order_acquire);
}

std::string Quote(absl::string_view s) { return QuoteForMessage(s); }

timeval ToTimeval(int64_t ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

// The text of a socket timeout (SO_RCVTIMEO/SO_SNDTIMEO -> EAGAIN).
const std::string& TimeoutText() {
  static NoDestructor<const std::string> text(
      std::generic_category().message(EAGAIN));
  return *text;
}

// Marks `c` failed the way hiredis does, so that it is never reused.
void SetContextError(redisContext* c, int type, absl::string_view message) {
  c->err = type;
  const size_t n = std::min(message.size(), sizeof(c->errstr) - 1);
  std::memcpy(c->errstr, message.data(), n);
  c->errstr[n] = '\0';
}

bool TimedOut(const redisContext* c) {
  return c->err == REDIS_ERR_IO && TimeoutText() == c->errstr;
}

// The status for a connection that failed (c->err set).
absl::Status TransportError(const redisContext* c, absl::string_view timeout) {
  if (TimedOut(c)) {
    return absl::UnavailableError(absl::StrCat(
        "the server did not respond within ", timeout, " (socket timeout)"));
  }
  switch (c->err) {
    case REDIS_ERR_EOF:
      return absl::UnavailableError(
          absl::StrCat("the server closed the connection (", c->errstr, ")"));
    case REDIS_ERR_PROTOCOL:
      return absl::InternalError(
          absl::StrCat("protocol error in the server's reply: ", c->errstr));
    case REDIS_ERR_OOM:
      return absl::ResourceExhaustedError(
          absl::StrCat("out of memory reading the reply: ", c->errstr));
    default:
      return absl::UnavailableError(
          absl::StrCat("connection failed: ", c->errstr));
  }
}

}  // namespace

namespace redis_internal {

// The first line of a RESP2 reply.
struct Reply {
  char type = 0;  // '+' status, '-' error, ':' integer, '$' string, '*' array
  // '+' and '-': the text, valid until the connection reads again.
  absl::string_view text;
  // ':' the integer; '$' the string's length, '*' the element count, -1 for
  // nil.
  int64_t number = 0;

  bool nil() const { return (type == '$' || type == '*') && number < 0; }
  // Whether more of the reply follows this line.
  bool has_body() const {
    return (type == '$' && number >= 0) || (type == '*' && number > 0);
  }
};

}  // namespace redis_internal

namespace {

using redis_internal::Reply;

absl::string_view ReplyTypeName(const Reply& r) {
  if (r.nil()) return "nil";
  switch (r.type) {
    case '+':
      return "status";
    case '-':
      return "error";
    case ':':
      return "integer";
    case '$':
      return "string";
    case '*':
      return "array";
  }
  return "unknown";
}

// An error reply, as a status naming the command and quoting the server.
absl::Status ErrorReplyStatus(absl::string_view command,
                              absl::string_view message) {
  // The first word of a Redis error is its class ("ERR", "WRONGPASS", ...).
  const absl::string_view cls = message.substr(0, message.find(' '));
  absl::StatusCode code = absl::StatusCode::kInternal;
  if (command == "AUTH" || cls == "WRONGPASS" || cls == "NOAUTH") {
    code = absl::StatusCode::kUnauthenticated;
  } else if (cls == "NOPERM") {
    code = absl::StatusCode::kPermissionDenied;
  } else if (absl::StartsWith(command, "SELECT")) {
    code = absl::StatusCode::kInvalidArgument;
  } else if (cls == "OOM") {
    code = absl::StatusCode::kResourceExhausted;
  } else if (cls == "LOADING" || cls == "BUSY" || cls == "MASTERDOWN" ||
             cls == "TRYAGAIN" || cls == "CLUSTERDOWN") {
    code = absl::StatusCode::kUnavailable;
  } else if (cls == "READONLY" || cls == "MISCONF" || cls == "WRONGTYPE" ||
             cls == "MOVED" || cls == "ASK" || cls == "CROSSSLOT") {
    code = absl::StatusCode::kFailedPrecondition;
  }
  return absl::Status(code, absl::StrCat(command, " failed: ", message));
}

// Redis glob patterns treat * ? [ ] \ specially; escape them so that MATCH
// sees the prefix literally.
std::string EscapeGlob(absl::string_view s) {
  std::string out;
  out.reserve(s.size() * 2);
  for (char ch : s) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') {
      out.push_back('\\');
    }
    out.push_back(ch);
  }
  return out;
}

}  // namespace

namespace redis_internal {

// RESP commands, pipelined, sent with sendmsg(2) straight from the callers'
// buffers: long arguments (values) are iovecs pointing at the caller's bytes
// and only the framing and short arguments are copied. hiredis's own writer
// would copy each value twice into its output buffer (see
// measured on 1 MB SETs) and memmove the rest after every
// partial write; and its write(2) raises SIGPIPE on a dead connection, where
// MSG_NOSIGNAL gives EPIPE: a dead server never raises SIGPIPE. The viewed
// arguments must outlive Send(). Replies are read by Connection; hiredis's
// buffers stay empty throughout.
class CommandWriter {
 public:
  void Add(absl::Span<const absl::string_view> args) {
    absl::StrAppend(&framing_, "*", args.size(), "\r\n");
    for (const absl::string_view& arg : args) {
      AppendArg(absl::MakeConstSpan(&arg, 1));
    }
    ++commands_;
  }
  // A command of `head`, then one argument that is the concatenation of
  // `joined_parts`, sent from the parts themselves, then `tail` (SET's
  // options follow the value).
  void AddJoining(absl::Span<const absl::string_view> head,
                  absl::Span<const absl::string_view> joined_parts,
                  absl::Span<const absl::string_view> tail = {}) {
    absl::StrAppend(&framing_, "*", head.size() + 1 + tail.size(), "\r\n");
    for (const absl::string_view& arg : head) {
      AppendArg(absl::MakeConstSpan(&arg, 1));
    }
    AppendArg(joined_parts);
    for (const absl::string_view& arg : tail) {
      AppendArg(absl::MakeConstSpan(&arg, 1));
    }
    ++commands_;
  }
  size_t commands() const { return commands_; }

  // Sends every command added so far. Does not change the writer, so a
  // retry can send the same commands again.
  absl::Status Send(redisContext* c, absl::string_view timeout) const {
    if (c->err != 0) return TransportError(c, timeout);
    std::vector<iovec> iov;
    iov.reserve(pieces_.size() + 1);
    for (const Piece& p : pieces_) iov.push_back(ToIovec(p));
    if (run_start_ < framing_.size()) {
      iov.push_back(
          ToIovec({nullptr, run_start_, framing_.size() - run_start_}));
    }
    size_t i = 0;
    while (i < iov.size()) {
      msghdr msg{};
      msg.msg_iov = &iov[i];
      msg.msg_iovlen = std::min<size_t>(iov.size() - i, IOV_MAX);
      const ssize_t n = ::sendmsg(c->fd, &msg, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = n < 0 ? errno : EIO;
        SetContextError(c, REDIS_ERR_IO, std::generic_category().message(err));
        return TransportError(c, timeout);
      }
      size_t left = static_cast<size_t>(n);
      while (left > 0) {
        if (left >= iov[i].iov_len) {
          left -= iov[i].iov_len;
          ++i;
        } else {
          iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
          iov[i].iov_len -= left;
          left = 0;
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  // Bytes at `external`, or framing_[offset, offset + size) if null.
  struct Piece {
    const char* external;
    size_t offset;
    size_t size;
  };

  // One bulk string made of `parts`: long parts are sent from where they
  // are, short ones are copied into the framing.
  void AppendArg(absl::Span<const absl::string_view> parts) {
    size_t size = 0;
    for (absl::string_view part : parts) size += part.size();
    absl::StrAppend(&framing_, "$", size, "\r\n");
    for (absl::string_view part : parts) {
      if (part.size() >= kExternalArgMin) {
        EndRun();
        pieces_.push_back({part.data(), 0, part.size()});
      } else {
        framing_.append(part.data(), part.size());
      }
    }
    framing_.append("\r\n");
  }

  void EndRun() {
    if (run_start_ < framing_.size()) {
      pieces_.push_back({nullptr, run_start_, framing_.size() - run_start_});
    }
    // The external piece goes next; framing resumes after it.
    run_start_ = framing_.size();
  }
  iovec ToIovec(const Piece& p) const {
    const char* base =
        p.external != nullptr ? p.external : framing_.data() + p.offset;
    // sendmsg only reads through iov_base.
    return iovec{const_cast<char*>(base), p.size};
  }

  std::string framing_;
  std::vector<Piece> pieces_;
  size_t run_start_ = 0;  // Start of the framing not yet in pieces_.
  size_t commands_ = 0;
};

}  // namespace redis_internal

namespace {

using redis_internal::CommandWriter;

absl::Status OptionError(absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat("connector \"redis\": ", message));
}

absl::StatusOr<int64_t> GetIntInRange(const ConnectorConfig& config,
                                      absl::string_view name, int64_t fallback,
                                      int64_t min, int64_t max) {
  PROXYSTORE_ASSIGN_OR_RETURN(int64_t value, config.GetInt(name, fallback));
  if (value < min || value > max) {
    return OptionError(absl::StrCat("option \"", name, "\" must be in [", min,
                                    ", ", max, "], got ", value));
  }
  return value;
}

// Host names and IP addresses (an IPv6 zone after '%'): nothing that could
// read as another part of a destination ("redis:<host>:<port>/...").
bool ValidHost(absl::string_view host) {
  if (host.empty()) return false;
  for (char ch : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '.' &&
        ch != '-' && ch != '_' && ch != ':' && ch != '%') {
      return false;
    }
  }
  return true;
}

// "host:port", an IPv6 host in brackets.
std::string HostPort(absl::string_view host, int port) {
  return host.find(':') == absl::string_view::npos
             ? absl::StrCat(host, ":", port)
             : absl::StrCat("[", host, "]:", port);
}

// Option "cluster": "host:port,host:port,..."; an IPv6 host in brackets
// ("[::1]:7000"). At most kMaxClusterSeeds, each host valid, each port in
// 1..65535; repeated seeds are dropped.
absl::StatusOr<std::vector<RedisConnector::Seed>> ParseSeeds(
    absl::string_view list, absl::string_view option = "cluster") {
  std::vector<RedisConnector::Seed> seeds;
  auto bad = [&](absl::string_view seed, absl::string_view why) {
    return OptionError(absl::StrCat(
        "option \"", option,
        "\" must list servers as host:port separated by commas (an IPv6 "
        "host in brackets); ",
        Quote(seed), " ", why));
  };
  if (list.empty()) return bad(list, "is empty");
  for (absl::string_view seed : absl::StrSplit(list, ',')) {
    if (seeds.size() == RedisConnector::kMaxClusterSeeds) {
      return OptionError(
          absl::StrCat("option \"", option, "\" lists more than ",
                       RedisConnector::kMaxClusterSeeds, " seed nodes"));
    }
    seed = absl::StripAsciiWhitespace(seed);
    const size_t colon = seed.rfind(':');
    if (colon == absl::string_view::npos) return bad(seed, "has no port");
    absl::string_view host = seed.substr(0, colon);
    if (absl::ConsumePrefix(&host, "[") && !absl::ConsumeSuffix(&host, "]")) {
      return bad(seed, "has an unclosed '['");
    }
    if (!ValidHost(host)) return bad(seed, "has no valid host");
    int port = 0;
    if (!absl::SimpleAtoi(seed.substr(colon + 1), &port) || port < 1 ||
        port > 65535) {
      return bad(seed, "has no port in 1..65535");
    }
    RedisConnector::Seed parsed{std::string(host), port};
    if (std::none_of(seeds.begin(), seeds.end(), [&](const auto& s) {
          return s.host == parsed.host && s.port == parsed.port;
        })) {
      seeds.push_back(std::move(parsed));
    }
  }
  return seeds;
}

std::string SeedList(absl::Span<const RedisConnector::Seed> seeds) {
  std::vector<std::string> parts;
  for (const RedisConnector::Seed& seed : seeds) {
    parts.push_back(HostPort(seed.host, seed.port));
  }
  return absl::StrJoin(parts, ",");
}

// Option "password_for": the servers a password by reference is for,
// comma-separated: "host:port" (an IPv6 host in brackets) or an absolute
// Unix socket path; hosts lower-cased, as connectors compare them.
absl::StatusOr<std::vector<std::string>> PasswordServers(
    absl::string_view list) {
  std::vector<std::string> servers;
  for (absl::string_view item : absl::StrSplit(list, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (absl::StartsWith(item, "/")) {
      servers.emplace_back(item);
      continue;
    }
    PROXYSTORE_ASSIGN_OR_RETURN(std::vector<RedisConnector::Seed> parsed,
                                ParseSeeds(item, "password_for"));
    for (const RedisConnector::Seed& seed : parsed) {
      servers.push_back(HostPort(absl::AsciiStrToLower(seed.host), seed.port));
    }
  }
  return servers;
}

// Error replies a cluster client acts on: redirects, and states that pass
// (a slot being migrated, a cluster or node not ready, a master demoted to
// a replica by a failover).
bool IsClusterRoutingError(absl::string_view error) {
  return redis_cluster::ClassifyError(error) !=
             redis_cluster::ClusterError::kOther ||
         absl::StartsWith(error, "READONLY ");
}

// The connectors alive in this process, for the fork handlers. A std::mutex
// for the reason given at RedisConnector::mu_.
struct LiveConnectors {
  std::mutex mu;
  absl::flat_hash_set<RedisConnector*> all;  // Guarded by mu.
};

LiveConnectors& Live() {
  static NoDestructor<LiveConnectors> live;
  return *live;
}

}  // namespace

namespace redis_internal {

// One connection: hiredis connected it (name resolution, connect timeout,
// keepalive); the connector writes commands (CommandWriter) and reads replies
// (below) on its descriptor itself, through a fixed buffer.
//
// Replies are untrusted bytes, parsed here (RESP2) with bounded memory: a
// reply line (status, error, integer, length) must fit in the
// kReadBufferSize buffer; a value is allocated once, at its announced size,
// only after that size passed max_object_size, and without throwing
// (std::nothrow; a failed allocation is ResourceExhausted); an MGET reply
// must have exactly as many elements as keys asked for, a SCAN reply at
// most kMaxScanKeys keys of kMaxBatchBytes in all, and a Pub/Sub message
// (WaitFor) must name the one channel subscribed to, while its payload is
// read past through the buffer and never stored. So a hostile or broken
// server makes this process hold at most max_object_size beyond the data it
// actually sent, plus that buffer. A reply that is not RESP2, or breaks
// these rules, is Internal ("protocol error") and its connection is
// discarded. (hiredis's own reader, Debian's 0.14.1, cannot bound a bulk
// string: it buffers the whole announced length before anything looks at
// it; its maxbuf only decides when an idle buffer is freed, and it has no
// maxelements. hiredis is used to connect only.)
//
// Get reads a value into a buffer of its own, straight from the socket past
// what was already buffered, and hands that buffer out as the SharedBytes:
// nothing is copied after the kernel; each GetBatch value owns its own
// buffer.
class Connection {
 public:
  // Takes `context`: connected, blocking, with socket timeouts set.
  explicit Connection(redisContext* context)
      : context_(context), generation_(ForkGeneration()) {}
  // redisFree: close(2) of this process's descriptor and free(3); never any
  // I/O (no QUIT), so a forked child may drop its parent's connections.
  ~Connection() { redisFree(context_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  redisContext* context() const { return context_; }
  // The fork generation of the process that opened it.
  uint64_t generation() const { return generation_; }
  // False once the connection failed, or holds unread reply bytes.
  bool usable() const { return context_->err == 0 && !discarded_; }
  // A reply was left unread on purpose (too large): close, server is fine.
  void Discard() { discarded_ = true; }

  // Marks the connection failed (error `type`) and returns its status.
  absl::Status Fail(int type, absl::string_view message,
                    absl::string_view timeout) {
    SetContextError(context_, type, message);
    return TransportError(context_, timeout);
  }

  // The first line of the next reply; a malformed one is a protocol error.
  absl::StatusOr<Reply> ReadReply(absl::string_view timeout) {
    if (context_->err != 0) return TransportError(context_, timeout);
    absl::string_view line;
    for (;;) {
      const absl::string_view pending(buf_ + begin_, end_ - begin_);
      const size_t eol = pending.find("\r\n");
      if (eol != absl::string_view::npos) {
        line = pending.substr(0, eol);
        begin_ += eol + 2;
        break;
      }
      if (pending.size() == RedisConnector::kReadBufferSize) {
        return Fail(REDIS_ERR_PROTOCOL,
                    absl::StrCat("a reply line is longer than ",
                                 RedisConnector::kReadBufferSize, " bytes"),
                    timeout);
      }
      PROXYSTORE_RETURN_IF_ERROR(Fill(timeout));
    }
    Reply r;
    if (!line.empty()) r.type = line[0];
    const absl::string_view rest = line.substr(line.empty() ? 0 : 1);
    switch (r.type) {
      case '-':
        // Kept for the cluster routing (RunKey): the text is only valid
        // until the next read.
        if (cluster_error_.empty() && IsClusterRoutingError(rest)) {
          cluster_error_.assign(rest.data(), rest.size());
        }
        r.text = rest;
        return r;
      case '+':
        r.text = rest;
        return r;
      case ':':
      case '$':
      case '*':
        if (!absl::SimpleAtoi(rest, &r.number) ||
            (r.type != ':' && r.number < -1)) {
          return Fail(
              REDIS_ERR_PROTOCOL,
              absl::StrCat("malformed reply line ", QuoteForMessage(line, 64)),
              timeout);
        }
        return r;
    }
    return Fail(
        REDIS_ERR_PROTOCOL,
        absl::StrCat("not a RESP2 reply line: ", QuoteForMessage(line, 64)),
        timeout);
  }

  // The `size` bytes of a string reply whose length line was just read, in
  // a buffer of their own. The caller has checked `size` against its limit.
  absl::StatusOr<SharedBytes> ReadString(size_t size,
                                         absl::string_view timeout) {
    std::unique_ptr<char[]> data;
    if (size > 0) {
      data.reset(new (std::nothrow) char[size]);
      if (data == nullptr) {
        Discard();
        return absl::ResourceExhaustedError(absl::StrCat(
            "cannot allocate ", size, " bytes for a value in a reply"));
      }
    }
    size_t have = 0;
    while (have < size) {
      const size_t left = size - have;
      if (begin_ == end_ && left >= RedisConnector::kReadBufferSize) {
        // Straight from the socket into the value.
        PROXYSTORE_ASSIGN_OR_RETURN(size_t n,
                                    Recv(data.get() + have, left, timeout));
        have += n;
        continue;
      }
      if (begin_ == end_) PROXYSTORE_RETURN_IF_ERROR(Fill(timeout));
      const size_t n = std::min(left, end_ - begin_);
      std::memcpy(data.get() + have, buf_ + begin_, n);
      begin_ += n;
      have += n;
    }
    PROXYSTORE_RETURN_IF_ERROR(ReadStringEnd(size, timeout));
    if (size == 0) return SharedBytes();
    const absl::string_view view(data.get(), size);
    return SharedBytes::FromOwner(
        std::shared_ptr<const char[]>(std::move(data)), view);
  }

  // Reads past the `size` bytes of a string reply whose length line was just
  // read, through the read buffer: nothing is allocated, whatever `size`.
  absl::Status SkipString(size_t size, absl::string_view timeout) {
    for (size_t left = size; left > 0;) {
      if (begin_ == end_) PROXYSTORE_RETURN_IF_ERROR(Fill(timeout));
      const size_t n = std::min(left, end_ - begin_);
      begin_ += n;
      left -= n;
    }
    return ReadStringEnd(size, timeout);
  }

  // Whether bytes of a reply were received and not parsed yet: a poll(2) on
  // the descriptor would not see them.
  bool buffered() const { return begin_ < end_; }

  // The first error reply read since ClearClusterError() that a cluster
  // client acts on (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, LOADING, READONLY),
  // or empty.
  const std::string& cluster_error() const { return cluster_error_; }
  void ClearClusterError() { cluster_error_.clear(); }

 private:
  // The CRLF after a string of `size` bytes.
  absl::Status ReadStringEnd(size_t size, absl::string_view timeout) {
    while (end_ - begin_ < 2) PROXYSTORE_RETURN_IF_ERROR(Fill(timeout));
    if (buf_[begin_] != '\r' || buf_[begin_ + 1] != '\n') {
      return Fail(
          REDIS_ERR_PROTOCOL,
          absl::StrCat("a string of ", size, " bytes is not followed by CRLF"),
          timeout);
    }
    begin_ += 2;
    return absl::OkStatus();
  }

  // Appends what the socket has (at least one byte) to the buffer.
  absl::Status Fill(absl::string_view timeout) {
    if (begin_ > 0) {
      std::memmove(buf_, buf_ + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    PROXYSTORE_ASSIGN_OR_RETURN(
        size_t n,
        Recv(buf_ + end_, RedisConnector::kReadBufferSize - end_, timeout));
    end_ += n;
    return absl::OkStatus();
  }

  // One recv(2) of at most `size` (> 0) bytes; EOF is an error.
  absl::StatusOr<size_t> Recv(char* out, size_t size,
                              absl::string_view timeout) {
    for (;;) {
      const ssize_t n = ::recv(context_->fd, out, size, 0);
      if (n > 0) return static_cast<size_t>(n);
      if (n == 0) {
        return Fail(REDIS_ERR_EOF, "Server closed the connection", timeout);
      }
      if (errno != EINTR) {
        return Fail(REDIS_ERR_IO, std::generic_category().message(errno),
                    timeout);
      }
    }
  }

  redisContext* const context_;
  const uint64_t generation_;
  bool discarded_ = false;
  std::string cluster_error_;
  size_t begin_ = 0;  // buf_[begin_, end_) is read but not yet parsed.
  size_t end_ = 0;
  char buf_[RedisConnector::kReadBufferSize];
};

// The idle connections to one server. Its fields never change once made;
// `idle` is guarded by the connector's mu_.
struct Pool {
  std::string host;  // Empty for a Unix socket.
  int port = 0;
  std::string unix_socket;
  std::string endpoint;  // "host:port" or the socket path, for messages.
  std::vector<std::unique_ptr<Connection>> idle;
};

// A cluster's slot map and where it came from.
struct Routes {
  redis_cluster::SlotMap map;
  // The host of the node that sent the map: nodes listed without a host
  // (HostKind::kSameHost) are on it.
  std::string answered_host;
};

// How one attempt on a connection ended, for the cluster routing.
struct Outcome {
  std::string cluster_error;  // See Connection::cluster_error().
  bool connection_failed = false;
  bool timed_out = false;
};

}  // namespace redis_internal

namespace {

using redis_internal::Connection;

// OK if `r` has type `type` (nil counts as '$' and '*'). An error reply is
// ErrorReplyStatus; another type is Internal, and if more of it follows,
// the connection is out of step and marked failed.
absl::Status Expect(Connection& c, absl::string_view command, const Reply& r,
                    char type, absl::string_view timeout) {
  if (r.type == type) return absl::OkStatus();
  if (r.type == '-') return ErrorReplyStatus(command, r.text);
  const std::string message = absl::StrCat(command, " returned an unexpected ",
                                           ReplyTypeName(r), " reply");
  if (r.has_body()) return c.Fail(REDIS_ERR_PROTOCOL, message, timeout);
  return absl::InternalError(message);
}

// Sends `writer`'s commands and checks that each reply has `type` ('+' or
// ':'). Reads every reply even after an error reply, so the connection stays
// in step.
absl::Status RoundTrip(Connection& c, const CommandWriter& writer,
                       absl::string_view command, char type,
                       absl::string_view timeout) {
  PROXYSTORE_RETURN_IF_ERROR(writer.Send(c.context(), timeout));
  absl::Status first = absl::OkStatus();
  for (size_t i = 0; i < writer.commands(); ++i) {
    PROXYSTORE_ASSIGN_OR_RETURN(Reply reply, c.ReadReply(timeout));
    first.Update(Expect(c, command, reply, type, timeout));
    if (!c.usable()) return first;
  }
  return first;
}

// What a subscribed connection receives (RESP2 Pub/Sub): ["subscribe",
// channel, count] once SUBSCRIBE took effect, then ["message", channel,
// payload] per PUBLISH.
enum class Push { kSubscribed, kMessage };

// Longest kind of push accepted ("subscribe", "message", ...).
constexpr int64_t kMaxPushKindSize = 16;

// The next push on `c`, subscribed to `channel` alone. Anything else is a
// protocol error (the connection is marked failed), except an error reply
// in place of SUBSCRIBE's confirmation (`confirming`): the server refuses
// Pub/Sub (an ACL, a proxy without it), which is Unimplemented so that the
// caller polls. The payload of a message is read past, never stored.
absl::StatusOr<Push> ReadPush(Connection& c, absl::string_view channel,
                              bool confirming, absl::string_view timeout) {
  // Short: the message must fit hiredis's errstr (the key is named by the
  // caller's annotation).
  auto malformed = [&](absl::string_view what) {
    return c.Fail(REDIS_ERR_PROTOCOL,
                  absl::StrCat("the subscription received ", what), timeout);
  };
  PROXYSTORE_ASSIGN_OR_RETURN(Reply head, c.ReadReply(timeout));
  if (confirming && head.type == '-') {
    return absl::UnimplementedError(
        absl::StrCat("the server refused SUBSCRIBE (", head.text,
                     "); poll the key instead"));
  }
  if (head.type != '*') {
    return malformed(
        absl::StrCat("a reply of type ", ReplyTypeName(head), ", not a push"));
  }
  if (head.number != 3) {
    return malformed(
        absl::StrCat("an array of ", head.number, " elements, not a push"));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(Reply kind_len, c.ReadReply(timeout));
  if (kind_len.type != '$' || kind_len.nil() ||
      kind_len.number > kMaxPushKindSize) {
    return malformed("a push without a kind");
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      SharedBytes kind,
      c.ReadString(static_cast<size_t>(kind_len.number), timeout));
  Push push;
  if (kind.view() == "subscribe") {
    push = Push::kSubscribed;
  } else if (kind.view() == "message") {
    push = Push::kMessage;
  } else {
    return malformed(absl::StrCat("a push of kind ", Quote(kind.view())));
  }
  // Its size first, so that another name is not even read.
  PROXYSTORE_ASSIGN_OR_RETURN(Reply name_len, c.ReadReply(timeout));
  if (name_len.type != '$' ||
      name_len.number != static_cast<int64_t>(channel.size())) {
    return malformed("a push for another channel");
  }
  PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes name,
                              c.ReadString(channel.size(), timeout));
  if (name.view() != channel) return malformed("a push for another channel");
  PROXYSTORE_ASSIGN_OR_RETURN(Reply last, c.ReadReply(timeout));
  if (push == Push::kSubscribed) {
    if (last.type != ':') return malformed("a malformed confirmation");
    return push;
  }
  if (last.type != '$' || last.nil()) return malformed("a malformed message");
  PROXYSTORE_RETURN_IF_ERROR(
      c.SkipString(static_cast<size_t>(last.number), timeout));
  return push;
}

}  // namespace

namespace {

// The shape of a CLUSTER SLOTS reply, as ReadRawReply bounds it: the most
// elements an array may have at each depth (ranges; first slot, last slot,
// master and replicas; a node's host, port, id and metadata; metadata
// names and values), no array deeper, and the most elements in all. hiredis
// allocates a reply object (~50 bytes) per element, so the last bound caps
// its parse at ~50 MB; a fully fragmented map of 16384 one-slot ranges with
// a master and two replicas each, metadata included, has ~400,000.
constexpr int64_t kMaxSlotsElementsAtDepth[] = {
    static_cast<int64_t>(redis_cluster::SlotMap::kMaxRanges),
    3 + static_cast<int64_t>(redis_cluster::SlotMap::kMaxReplicasPerRange), 4,
    static_cast<int64_t>(redis_cluster::SlotMap::kMaxMetadataElements)};
constexpr int kMaxRawDepth = 4;
constexpr int64_t kMaxSlotsReplyElements = 1'000'000;

// Reads one whole CLUSTER SLOTS reply from `c` and appends it to `out` as
// RESP2 bytes, spending at most `*budget` bytes and `*elements` elements:
// every line and string is counted before it is stored, so an announced
// length or element count cannot make this allocate or loop beyond the
// budget, and arrays are held to the shape above.
absl::Status ReadRawReply(Connection& c, std::string* out, size_t* budget,
                          int64_t* elements, int depth,
                          absl::string_view timeout) {
  auto too_big = [&](absl::string_view what) {
    return c.Fail(REDIS_ERR_PROTOCOL,
                  absl::StrCat("CLUSTER SLOTS reply: ", what), timeout);
  };
  PROXYSTORE_ASSIGN_OR_RETURN(Reply r, c.ReadReply(timeout));
  if (--*elements < 0) {
    return too_big(
        absl::StrCat("more than ", kMaxSlotsReplyElements, " elements"));
  }
  const std::string line =
      (r.type == '+' || r.type == '-')
          ? absl::StrCat(absl::string_view(&r.type, 1), r.text, "\r\n")
          : absl::StrCat(absl::string_view(&r.type, 1), r.number, "\r\n");
  if (line.size() > *budget) {
    return too_big(absl::StrCat("larger than ",
                                RedisConnector::kMaxSlotsReplySize, " bytes"));
  }
  *budget -= line.size();
  out->append(line);
  if (r.type == '$' && !r.nil()) {
    const uint64_t size = static_cast<uint64_t>(r.number);
    if (size + 2 > *budget) {
      return too_big(absl::StrCat(
          "larger than ", RedisConnector::kMaxSlotsReplySize, " bytes"));
    }
    PROXYSTORE_ASSIGN_OR_RETURN(
        SharedBytes value, c.ReadString(static_cast<size_t>(size), timeout));
    *budget -= size + 2;
    out->append(value.data(), value.size());
    out->append("\r\n");
  } else if (r.type == '*' && r.number > 0) {
    if (depth >= kMaxRawDepth || r.number > kMaxSlotsElementsAtDepth[depth]) {
      return too_big(absl::StrCat("an array of ", r.number,
                                  " elements at depth ", depth,
                                  ", beyond what a slot map holds"));
    }
    for (int64_t i = 0; i < r.number; ++i) {
      PROXYSTORE_RETURN_IF_ERROR(
          ReadRawReply(c, out, budget, elements, depth + 1, timeout));
    }
  }
  return absl::OkStatus();
}

// A CLUSTER SLOTS reply, as raw RESP2 bytes (ReadRawReply), as a SlotMap.
absl::StatusOr<redis_cluster::SlotMap> ParseSlots(const std::string& raw) {
  std::unique_ptr<redisReader, decltype(&redisReaderFree)> reader(
      redisReaderCreate(), &redisReaderFree);
  if (reader == nullptr) {
    return absl::ResourceExhaustedError("cannot allocate a reply reader");
  }
  void* parsed = nullptr;
  if (redisReaderFeed(reader.get(), raw.data(), raw.size()) != REDIS_OK ||
      redisReaderGetReply(reader.get(), &parsed) != REDIS_OK ||
      parsed == nullptr) {
    if (parsed != nullptr) freeReplyObject(parsed);
    return absl::InternalError(absl::StrCat(
        "CLUSTER SLOTS: hiredis could not parse the reply: ", reader->errstr));
  }
  std::unique_ptr<redisReply, decltype(&freeReplyObject)> reply(
      static_cast<redisReply*>(parsed), &freeReplyObject);
  return redis_cluster::SlotMap::FromClusterSlots(reply.get());
}

}  // namespace

void RedisConnector::PrepareFork() {
  LiveConnectors& live = Live();
  live.mu.lock();
  for (RedisConnector* c : live.all) c->mu_.lock();
}

void RedisConnector::ParentAfterFork() {
  LiveConnectors& live = Live();
  for (RedisConnector* c : live.all) c->mu_.unlock();
  live.mu.unlock();
}

// Only an atomic add and unlocks: the inherited connections are closed later,
// by the first operation that finds them (Run), outside fork's handlers.
void RedisConnector::ChildAfterFork() {
  fork_generation.fetch_add(1, std::memory_order_acq_rel);
  // A thread of the parent reading a slot map does not exist here.
  for (RedisConnector* c : Live().all) c->refreshing_ = false;
  ParentAfterFork();
}

RedisConnector::RedisConnector(Settings settings)
    : settings_(std::move(settings)),
      endpoint_(!settings_.seeds.empty()
                    ? absl::StrCat("cluster ", SeedList(settings_.seeds))
                : settings_.unix_socket.empty()
                    ? HostPort(settings_.host, settings_.port)
                    : settings_.unix_socket),
      timeout_(absl::StrCat("command_timeout_ms=", settings_.command_timeout_ms,
                            " ms")) {
  if (settings_.seeds.empty()) {
    auto pool = std::make_unique<Pool>();
    pool->host = settings_.host;
    pool->port = settings_.port;
    pool->unix_socket = settings_.unix_socket;
    pool->endpoint = endpoint_;
    main_pool_ = pool.get();
    pools_.emplace(endpoint_, std::move(pool));
  }
  static const bool fork_handlers = [] {
    return pthread_atfork(&PrepareFork, &ParentAfterFork, &ChildAfterFork) == 0;
  }();
  (void)fork_handlers;
  LiveConnectors& live = Live();
  std::lock_guard<std::mutex> lock(live.mu);
  live.all.insert(this);
}

RedisConnector::~RedisConnector() {
  LiveConnectors& live = Live();
  std::lock_guard<std::mutex> lock(live.mu);
  live.all.erase(this);
}

absl::StatusOr<RedisConnector::Settings> RedisConnector::ParseLocation(
    const ConnectorConfig& options) {
  auto has = [&options](const char* name) {
    return options.options.count(name) > 0;
  };
  Settings s;
  if (has("cluster")) {
    if (has("unix_socket") || has("host") || has("port")) {
      return OptionError(
          "set either option \"cluster\" or options \"host\"/\"port\"/"
          "\"unix_socket\", not both");
    }
    PROXYSTORE_ASSIGN_OR_RETURN(std::string list, options.GetString("cluster"));
    PROXYSTORE_ASSIGN_OR_RETURN(s.seeds, ParseSeeds(list));
  } else if (has("unix_socket")) {
    if (has("host") || has("port")) {
      return OptionError(
          "set either option \"unix_socket\" or options \"host\"/\"port\", "
          "not both");
    }
    PROXYSTORE_ASSIGN_OR_RETURN(s.unix_socket,
                                options.GetString("unix_socket"));
    if (s.unix_socket.empty()) {
      return OptionError("option \"unix_socket\" must not be empty");
    }
    if (s.unix_socket.find('\0') != std::string::npos) {
      return OptionError(
          absl::StrCat("option \"unix_socket\" contains a NUL byte: ",
                       Quote(s.unix_socket)));
    }
    if (s.unix_socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return OptionError(absl::StrCat("option \"unix_socket\" is longer than ",
                                      sizeof(sockaddr_un{}.sun_path) - 1,
                                      " bytes: ", Quote(s.unix_socket)));
    }
  } else {
    PROXYSTORE_ASSIGN_OR_RETURN(s.host, options.GetString("host", "127.0.0.1"));
    if (!ValidHost(s.host)) {
      return OptionError(absl::StrCat(
          "option \"host\" must be a host name or IP address (letters, "
          "digits, \".-_:%\"), got ",
          Quote(s.host)));
    }
    PROXYSTORE_ASSIGN_OR_RETURN(
        int64_t port, GetIntInRange(options, "port", kDefaultPort, 1, 65535));
    s.port = static_cast<int>(port);
  }
  PROXYSTORE_ASSIGN_OR_RETURN(s.db,
                              GetIntInRange(options, "db", 0, 0, INT_MAX));
  if (!s.seeds.empty() && s.db != 0) {
    return OptionError(
        "option \"db\" must be 0 with \"cluster\": a Redis Cluster has "
        "database 0 only");
  }
  PROXYSTORE_ASSIGN_OR_RETURN(s.password, options.GetString("password"));
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::string layout,
      options.GetString("layout", std::string(kNativeLayoutName)));
  if (layout == kPythonLayoutName) {
    s.python_layout = true;
  } else if (layout != kNativeLayoutName) {
    return OptionError(
        absl::StrCat("option \"layout\" must be \"", kNativeLayoutName,
                     "\" or \"", kPythonLayoutName, "\", got ", Quote(layout)));
  }
  if (has("prefix")) {
    PROXYSTORE_ASSIGN_OR_RETURN(s.prefix, options.GetString("prefix"));
    // Python's keys are bare ids: no prefix. Keys are then confined to
    // uuid-shaped ids instead (CheckKey), and so is clearing.
    if (s.prefix.empty() && !s.python_layout) {
      // Clearing deletes every key that starts with the prefix.
      return OptionError(
          "option \"prefix\" must not be empty (a clearing Close would delete "
          "every key in the database)");
    }
    if (s.prefix.size() > kMaxPrefixSize) {
      return OptionError(absl::StrCat("option \"prefix\" is longer than ",
                                      kMaxPrefixSize, " bytes"));
    }
  }
  return s;
}

absl::StatusOr<std::unique_ptr<RedisConnector>> RedisConnector::Create(
    const ConnectorConfig& options) {
  PROXYSTORE_RETURN_IF_ERROR(options.CheckKnownOptions(
      {"host", "port", "unix_socket", "cluster", "db", "password",
       "password_env", "password_file", "password_for", "prefix", "layout",
       "max_object_size", "connect_timeout_ms", "command_timeout_ms", "clear",
       "read_from_replicas", "wait_replicas", "wait_timeout_ms"}));
  PROXYSTORE_ASSIGN_OR_RETURN(Settings s, ParseLocation(options));
  // A password by reference, read here: it replaces a literal "password"
  // (a receiver's reference, SetReceiverOptions, wins over one a proxy
  // carries), and Config() carries the reference, never the password.
  const bool from_env = options.options.count("password_env") > 0;
  const bool from_file = options.options.count("password_file") > 0;
  if (from_env && from_file) {
    return OptionError(
        "options \"password_env\" and \"password_file\" both name the "
        "password: give one");
  }
  if (from_env || from_file) {
    s.password_option = from_env ? "password_env" : "password_file";
    PROXYSTORE_ASSIGN_OR_RETURN(s.password_reference,
                                options.GetString(s.password_option));
    // The servers the secret belongs to: a receiver's reference
    // (SetReceiverOptions) applies to every config from the wire, so
    // without this a proxy could name a server of its own and receive the
    // receiver's password in AUTH.
    if (options.options.count("password_for") == 0) {
      return OptionError(absl::StrCat(
          "option \"", s.password_option,
          "\" needs \"password_for\": the servers (host:port, or a Unix "
          "socket path) the password is for"));
    }
    PROXYSTORE_ASSIGN_OR_RETURN(s.password_for,
                                options.GetString("password_for"));
    PROXYSTORE_ASSIGN_OR_RETURN(std::vector<std::string> allowed,
                                PasswordServers(s.password_for));
    std::vector<std::string> own;
    if (!s.seeds.empty()) {
      for (const Seed& seed : s.seeds) {
        own.push_back(HostPort(absl::AsciiStrToLower(seed.host), seed.port));
      }
    } else if (!s.unix_socket.empty()) {
      own.push_back(s.unix_socket);
    } else {
      own.push_back(HostPort(absl::AsciiStrToLower(s.host), s.port));
    }
    const bool ours = std::all_of(own.begin(), own.end(), [&](const auto& o) {
      return std::find(allowed.begin(), allowed.end(), o) != allowed.end();
    });
    // Another server: the secret is not read, and not sent.
    if (ours) {
      absl::StatusOr<std::string> secret = ReadSecret(
          from_env ? SecretSource::kEnvironment : SecretSource::kFile,
          s.password_reference,
          absl::StrCat("connector \"redis\": option \"", s.password_option,
                       "\""));
      if (!secret.ok()) return secret.status();
      s.password = *std::move(secret);
    }
  }
  // A fresh key space: clearing it touches this connector's objects only.
  if (s.prefix.empty() && !s.python_layout) {
    s.prefix = absl::StrCat("proxystore:", NewObjectId(), ":");
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      int64_t max_object_size,
      GetIntInRange(options, "max_object_size",
                    static_cast<int64_t>(kMaxValueSize), 0, INT64_MAX));
  s.max_object_size = static_cast<size_t>(max_object_size);
  PROXYSTORE_ASSIGN_OR_RETURN(
      s.connect_timeout_ms,
      GetIntInRange(options, "connect_timeout_ms", kDefaultConnectTimeoutMs, 1,
                    kMaxTimeoutMs));
  PROXYSTORE_ASSIGN_OR_RETURN(
      s.command_timeout_ms,
      GetIntInRange(options, "command_timeout_ms", kDefaultCommandTimeoutMs, 1,
                    kMaxTimeoutMs));
  PROXYSTORE_ASSIGN_OR_RETURN(s.clear, options.GetBool("clear", false));
  PROXYSTORE_ASSIGN_OR_RETURN(s.read_from_replicas,
                              options.GetBool("read_from_replicas", false));
  if (s.read_from_replicas && s.seeds.empty()) {
    return OptionError(
        "option \"read_from_replicas\" needs \"cluster\" (a single "
        "server's replicas are not discovered)");
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      s.wait_replicas, GetIntInRange(options, "wait_replicas", 0, 0, 64));
  PROXYSTORE_ASSIGN_OR_RETURN(
      s.wait_timeout_ms,
      GetIntInRange(options, "wait_timeout_ms", kDefaultWaitTimeoutMs, 1,
                    kMaxTimeoutMs));
  if (s.wait_replicas > 0 && s.wait_timeout_ms >= s.command_timeout_ms) {
    return OptionError(absl::StrCat(
        "option \"wait_timeout_ms\" (", s.wait_timeout_ms,
        ") must be less than \"command_timeout_ms\" (", s.command_timeout_ms,
        "): the server answers WAIT only after it"));
  }
  // Not make_unique: the constructor is private.
  return std::unique_ptr<RedisConnector>(new RedisConnector(std::move(s)));
}

absl::StatusOr<std::unique_ptr<Connector>> RedisConnector::FromConfig(
    const ConnectorConfig& config) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<RedisConnector> c,
                              Create(config));
  return std::unique_ptr<Connector>(std::move(c));
}

absl::StatusOr<std::vector<std::string>> RedisConnector::Destinations(
    const ConnectorConfig& location) {
  PROXYSTORE_ASSIGN_OR_RETURN(Settings s, ParseLocation(location));
  auto tcp = [&](absl::string_view host_name,
                 int port) -> absl::StatusOr<std::string> {
    const std::string host = absl::AsciiStrToLower(host_name);
    // "redis:unix:..." names Unix sockets.
    if (host == "unix") {
      return OptionError(
          "option \"host\" \"unix\" is ambiguous in a destination; use its "
          "address");
    }
    return absl::StrCat(kKind, ":", HostPort(host, port), "/", s.db, "/",
                        s.prefix);
  };
  std::vector<std::string> destinations;
  if (!s.seeds.empty()) {
    // Each seed node. The nodes the cluster names in its slot map and
    // redirects are reached too: they are the cluster these seeds belong
    // to (docs/connectors.md, "Redis Cluster").
    for (const Seed& seed : s.seeds) {
      PROXYSTORE_ASSIGN_OR_RETURN(std::string d, tcp(seed.host, seed.port));
      destinations.push_back(std::move(d));
    }
  } else if (!s.unix_socket.empty()) {
    if (s.unix_socket[0] != '/') {
      return OptionError(absl::StrCat(
          "option \"unix_socket\" from a serialized proxy must be an absolute "
          "path, got ",
          Quote(s.unix_socket)));
    }
    PROXYSTORE_ASSIGN_OR_RETURN(
        std::string path,
        trust_internal::CanonicalDirectory(kKind, s.unix_socket));
    destinations.push_back(
        absl::StrCat(kKind, ":unix:", path, "/", s.db, "/", s.prefix));
  } else {
    PROXYSTORE_ASSIGN_OR_RETURN(std::string d, tcp(s.host, s.port));
    destinations.push_back(std::move(d));
  }
  return destinations;
}

ConnectorKindTraits RedisConnector::KindTraits() {
  ConnectorKindTraits traits;
  // "layout" says how keys are named and read: a receiver must read as the
  // producer wrote.
  traits.location_options = {"host", "port",   "unix_socket", "cluster",
                             "db",   "prefix", "password",    "layout"};
  traits.receiver_defaults = {
      {"clear", "false"},
      {"max_object_size", std::string(kReceiverMaxObjectSize)}};
  traits.destinations = &RedisConnector::Destinations;
  return traits;
}

ConnectorConfig RedisConnector::Config() const {
  ConnectorConfig config{
      std::string(kKind),
      {{"db", absl::StrCat(settings_.db)},
       {"prefix", settings_.prefix},
       {"max_object_size", absl::StrCat(settings_.max_object_size)},
       {"connect_timeout_ms", absl::StrCat(settings_.connect_timeout_ms)},
       {"command_timeout_ms", absl::StrCat(settings_.command_timeout_ms)},
       {"clear", settings_.clear ? "true" : "false"}}};
  if (!settings_.seeds.empty()) {
    config.options["cluster"] = SeedList(settings_.seeds);
    config.options["read_from_replicas"] =
        settings_.read_from_replicas ? "true" : "false";
  } else if (settings_.unix_socket.empty()) {
    config.options["host"] = settings_.host;
    config.options["port"] = absl::StrCat(settings_.port);
  } else {
    config.options["unix_socket"] = settings_.unix_socket;
  }
  // The default is left out, so that native configs are as they were.
  if (settings_.python_layout) {
    config.options["layout"] = std::string(kPythonLayoutName);
  }
  if (settings_.wait_replicas > 0) {
    config.options["wait_replicas"] = absl::StrCat(settings_.wait_replicas);
    config.options["wait_timeout_ms"] = absl::StrCat(settings_.wait_timeout_ms);
  }
  if (!settings_.password_option.empty()) {
    config.options[settings_.password_option] = settings_.password_reference;
    config.options["password_for"] = settings_.password_for;
  } else if (!settings_.password.empty()) {
    config.options["password"] = settings_.password;
  }
  return config;
}

// Key ids are NewObjectId() hex strings: they carry no server-side meaning.
std::string RedisConnector::RedisKey(const Key& key) const {
  return absl::StrCat(settings_.prefix, key.id());
}

absl::Status RedisConnector::CheckOpen(absl::string_view op) const {
  if (closed_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "redis connector (", endpoint_, "): ", op, " after Close"));
  }
  return absl::OkStatus();
}

absl::Status RedisConnector::CheckKey(const Key& key,
                                      absl::string_view op) const {
  if (key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redis connector (", endpoint_, "): ", op, ": the key is empty"));
  }
  // In the Python layout the prefix may be empty, so a key id from a proxy
  // could otherwise name any key of the database.
  if (settings_.python_layout && !IsPythonObjectId(key.id()) &&
      !IsObjectId(key.id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redis connector (", endpoint_, "): ", op, ": key ", Quote(key.id()),
        " is not a uuid (layout \"", kPythonLayoutName,
        "\" reaches only keys named as Python's str(uuid.uuid4()) or as "
        "NewObjectId())"));
  }
  return absl::OkStatus();
}

std::string RedisConnector::MintId() const {
  return settings_.python_layout ? NewPythonObjectId() : NewObjectId();
}

absl::Status RedisConnector::CheckValueSize(size_t size,
                                            absl::string_view op) const {
  if (size <= kMaxValueSize) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "redis connector (", endpoint_, "): ", op, ": a value of ", size,
      " bytes exceeds Redis's bulk string limit (proto-max-bulk-len, 512 MiB "
      "= ",
      kMaxValueSize, " bytes)"));
}

absl::Status RedisConnector::CheckReadSize(int64_t size, const Key& key) const {
  if (static_cast<uint64_t>(size) <= settings_.max_object_size) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("the value of key ", Quote(key.id()), " (Redis key ",
                   Quote(RedisKey(key)), ") is ", size,
                   " bytes, more than this connector's max_object_size of ",
                   settings_.max_object_size, " bytes; it was not read"));
}

absl::StatusOr<std::unique_ptr<RedisConnector::Connection>>
RedisConnector::Connect(const Pool& pool) const {
  const timeval connect_tv = ToTimeval(settings_.connect_timeout_ms);
  redisContext* raw =
      pool.unix_socket.empty()
          ? redisConnectWithTimeout(pool.host.c_str(), pool.port, connect_tv)
          : redisConnectUnixWithTimeout(pool.unix_socket.c_str(), connect_tv);
  if (raw == nullptr) {
    return absl::ResourceExhaustedError(
        "hiredis could not allocate a connection");
  }
  auto c = std::make_unique<Connection>(raw);
  if (raw->err != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to ", pool.endpoint, ": ", raw->errstr,
        // hiredis reports its own connect timeout as ETIMEDOUT.
        TimedOut(raw) || std::strstr(raw->errstr, "timed out") != nullptr
            ? absl::StrCat(
                  " (connect_timeout_ms=", settings_.connect_timeout_ms, ")")
            : ""));
  }
  // Not inherited by programs this process executes. (A fork+exec by another
  // thread between connect and here still inherits it.)
  (void)::fcntl(raw->fd, F_SETFD, FD_CLOEXEC);
  // AUTH and SELECT are bounded by the connect timeout too.
  if (redisSetTimeout(raw, connect_tv) != REDIS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot set socket timeouts: ", raw->errstr));
  }
  if (pool.unix_socket.empty()) {
    // Detects a vanished peer on idle pooled connections; best effort.
    (void)redisEnableKeepAlive(raw);
  }
  const std::string timeout =
      absl::StrCat("connect_timeout_ms=", settings_.connect_timeout_ms, " ms");
  // Both in one round trip.
  CommandWriter setup;
  const std::string db = absl::StrCat(settings_.db);
  if (!settings_.password.empty()) setup.Add({"AUTH", settings_.password});
  if (settings_.db != 0) setup.Add({"SELECT", db});
  // Lets a replica answer reads of its master's slots; harmless on a master
  // (a failover may turn either into the other).
  const bool readonly = settings_.read_from_replicas;
  if (readonly) setup.Add({"READONLY"});
  if (setup.commands() > 0) {
    PROXYSTORE_RETURN_IF_ERROR(setup.Send(raw, timeout));
    absl::Status first = absl::OkStatus();
    if (!settings_.password.empty()) {
      PROXYSTORE_ASSIGN_OR_RETURN(Reply r, c->ReadReply(timeout));
      first.Update(Expect(*c, "AUTH", r, '+', timeout));
    }
    if (settings_.db != 0 && c->usable()) {
      PROXYSTORE_ASSIGN_OR_RETURN(Reply r, c->ReadReply(timeout));
      first.Update(Expect(*c, absl::StrCat("SELECT ", db), r, '+', timeout));
    }
    if (readonly && c->usable()) {
      PROXYSTORE_ASSIGN_OR_RETURN(Reply r, c->ReadReply(timeout));
      first.Update(Expect(*c, "READONLY", r, '+', timeout));
    }
    PROXYSTORE_RETURN_IF_ERROR(first);
  }
  if (redisSetTimeout(raw, ToTimeval(settings_.command_timeout_ms)) !=
      REDIS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot set socket timeouts: ", raw->errstr));
  }
  return c;
}

// Connections: a pool of hiredis connections, each used by one thread at a
// time; an operation takes an idle one or opens a new one, and gives it back
// afterwards (at most kMaxIdleConnections stay open while idle). A
// connection belongs to the process that opened it: after fork(2) the child
// never sends or reads anything on an inherited one, it closes its copies of
// their descriptors and opens its own (a pthread_atfork counter tells the
// processes apart; the pool's lock is held across fork() so that a child
// never inherits it locked). Connections are close-on-exec. A connection
// that fails (EOF, reset, timeout, protocol error) is discarded, along with
// every idle one (after a server restart they are all stale). If an
// operation fails on a connection that had been idle in the pool with EOF or
// a reset, it is retried once on a new connection (all operations are
// idempotent), so a restarted server is picked up transparently.
absl::Status RedisConnector::RunOn(
    Pool& pool, absl::string_view op, bool check_open, bool asking,
    absl::FunctionRef<absl::Status(Connection&)> fn, Outcome* outcome) {
  if (check_open) PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  auto annotate = [&](const absl::Status& s) {
    return Annotate(
        s, absl::StrCat("redis connector (", pool.endpoint, "): ", op));
  };
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<Connection> c;
    if (attempt == 0) c = TakeIdle(pool);
    const bool reused = c != nullptr;
    if (c == nullptr) {
      absl::StatusOr<std::unique_ptr<Connection>> made = Connect(pool);
      if (!made.ok()) {
        // Unreachable (refused, reset, timed out): the network's; a refused
        // password or database is the server's answer.
        if (outcome != nullptr) {
          outcome->connection_failed = absl::IsUnavailable(made.status());
        }
        return annotate(made.status());
      }
      c = *std::move(made);
    }
    c->ClearClusterError();
    absl::Status status = absl::OkStatus();
    if (asking) {
      // ASK: this one command may use the slot being imported here.
      CommandWriter writer;
      writer.Add({"ASKING"});
      status = writer.Send(c->context(), timeout_);
      if (status.ok()) {
        absl::StatusOr<Reply> reply = c->ReadReply(timeout_);
        status = reply.ok() ? Expect(*c, "ASKING", *reply, '+', timeout_)
                            : reply.status();
      }
    }
    if (status.ok()) status = fn(*c);
    if (outcome != nullptr) {
      // A dropped connection (EOF, reset) is the network's; a malformed
      // reply is not retried, and a timeout has used the time up.
      const redisContext* ctx = c->context();
      outcome->cluster_error = c->cluster_error();
      outcome->timed_out = TimedOut(ctx);
      outcome->connection_failed =
          ctx->err == REDIS_ERR_EOF ||
          (ctx->err == REDIS_ERR_IO && !outcome->timed_out);
    }
    if (c->usable()) {
      Release(pool, std::move(c));
      return annotate(status);
    }
    const redisContext* context = c->context();
    // Only EOF or a reset on a connection that sat in the pool is worth a
    // second try: it may have died while idle. Not after a timeout (that
    // would double the wait) or a bad reply.
    const bool stale =
        reused && (context->err == REDIS_ERR_EOF ||
                   (context->err == REDIS_ERR_IO && !TimedOut(context)));
    const bool failed = context->err != 0;
    c.reset();
    // A failed connection: idle ones probably are too (a restarted or
    // crashed server): drop them all.
    if (failed) DropIdle(&pool);
    // An `fn` that succeeded before its connection failed has done its work
    // (Set: the SET was answered, the PUBLISH's reply was lost): running it
    // again could only undo that (SET NX: AlreadyExists).
    if (status.ok() || !stale || attempt > 0) return annotate(status);
  }
}

std::unique_ptr<RedisConnector::Connection> RedisConnector::TakeIdle(
    Pool& pool) {
  // Closed outside the lock.
  std::vector<std::unique_ptr<Connection>> inherited;
  std::lock_guard<std::mutex> lock(mu_);
  // Connections opened by a parent process are never used here.
  const uint64_t generation = ForkGeneration();
  for (std::unique_ptr<Connection>& idle : pool.idle) {
    if (idle->generation() != generation) inherited.push_back(std::move(idle));
  }
  std::erase(pool.idle, nullptr);
  if (pool.idle.empty()) return nullptr;
  std::unique_ptr<Connection> c = std::move(pool.idle.back());
  pool.idle.pop_back();
  return c;
}

void RedisConnector::Release(Pool& pool,
                             std::unique_ptr<Connection> connection) {
  if (!connection->usable() || connection->generation() != ForkGeneration()) {
    return;
  }
  std::unique_ptr<Connection> surplus;  // Closed outside the lock.
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_.load(std::memory_order_acquire) ||
      pool.idle.size() >= kMaxIdleConnections) {
    surplus = std::move(connection);
  } else {
    pool.idle.push_back(std::move(connection));
  }
}

void RedisConnector::DropIdle(Pool* only) {
  std::vector<std::unique_ptr<Connection>> idle;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [endpoint, pool] : pools_) {
    if (only != nullptr && pool.get() != only) continue;
    for (std::unique_ptr<Connection>& c : pool->idle) {
      idle.push_back(std::move(c));
    }
    pool->idle.clear();
  }
  // `idle` is closed after the lock is released (declared before it).
}

RedisConnector::Pool& RedisConnector::PoolAt(absl::string_view host, int port) {
  std::string endpoint = HostPort(host, port);
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<Pool>& pool = pools_[endpoint];
  if (pool == nullptr) {
    pool = std::make_unique<Pool>();
    pool->host = std::string(host);
    pool->port = port;
    pool->endpoint = std::move(endpoint);
  }
  return *pool;
}

absl::StatusOr<std::shared_ptr<const RedisConnector::Routes>>
RedisConnector::CurrentRoutes(absl::Time deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (routes_ != nullptr) return routes_;
  }
  return RefreshRoutes(deadline);
}

void RedisConnector::ForgetRoutes(const Routes* stale) {
  std::lock_guard<std::mutex> lock(mu_);
  if (routes_.get() == stale) routes_.reset();
}

namespace {

// Every node of `routes` (masters and replicas), as host and port.
std::vector<std::pair<std::string, int>> NodesOf(
    const redis_internal::Routes& routes) {
  std::vector<std::pair<std::string, int>> nodes;
  auto add = [&](const redis_cluster::Node* node) {
    const redis_cluster::Endpoint& e = node->endpoint;
    if (e.kind == redis_cluster::HostKind::kGiven) {
      nodes.emplace_back(e.host, e.port);
    } else if (e.kind == redis_cluster::HostKind::kSameHost) {
      nodes.emplace_back(routes.answered_host, e.port);
    }
  };
  for (const redis_cluster::SlotMap::Master& m : routes.map.Masters()) {
    add(m.node);
    for (const redis_cluster::SlotRange& r : m.ranges) {
      for (const redis_cluster::Node* replica : routes.map.Replicas(r.first)) {
        add(replica);
      }
    }
  }
  return nodes;
}

}  // namespace

// CLUSTER SLOTS is read as raw RESP by the bounded reader (ReadRawReply,
// which also bounds the reply's shape) and then parsed by hiredis's reader
// into the redisReply that SlotMap takes: hiredis never reads from the
// socket. One thread reads the map at a time; the others wait for its
// result (and try themselves if it failed).
absl::StatusOr<std::shared_ptr<const RedisConnector::Routes>>
RedisConnector::RefreshRoutes(absl::Time deadline) {
  std::vector<std::pair<std::string, int>> candidates;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (refreshing_) {
      const uint64_t generation = routes_generation_;
      refreshed_.wait_until(lock, absl::ToChronoTime(deadline),
                            [&] { return !refreshing_; });
      if (routes_ != nullptr && routes_generation_ != generation) {
        return routes_;
      }
      if (refreshing_) {
        return absl::UnavailableError(
            absl::StrCat("redis connector (", endpoint_,
                         "): the cluster's slot map was still being read when "
                         "command_timeout_ms ran out"));
      }
    }
    refreshing_ = true;
    // The nodes of the last map read (it may be stale, but they know the
    // new one), then the seeds.
    candidates = known_nodes_;
  }
  for (const Seed& seed : settings_.seeds) {
    candidates.emplace_back(seed.host, seed.port);
  }
  absl::Status last = absl::UnavailableError("no seed node");
  bool transport_only = true;  // Every failure so far was the network's.
  std::shared_ptr<const Routes> result;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const auto& [host, port] = candidates[i];
    if (std::find(candidates.begin(), candidates.begin() + i, candidates[i]) !=
        candidates.begin() + i) {
      continue;
    }
    if (i > 0 && absl::Now() >= deadline) break;
    std::string raw;
    Outcome outcome;
    absl::Status status = RunOn(
        PoolAt(host, port), "CLUSTER SLOTS", /*check_open=*/false,
        /*asking=*/false,
        [&](Connection& c) -> absl::Status {
          raw.clear();
          CommandWriter writer;
          writer.Add({"CLUSTER", "SLOTS"});
          PROXYSTORE_RETURN_IF_ERROR(writer.Send(c.context(), timeout_));
          size_t budget = kMaxSlotsReplySize;
          int64_t elements = kMaxSlotsReplyElements;
          return ReadRawReply(c, &raw, &budget, &elements, /*depth=*/0,
                              timeout_);
        },
        &outcome);
    absl::StatusOr<redis_cluster::SlotMap> map = [&] {
      if (!status.ok()) return absl::StatusOr<redis_cluster::SlotMap>(status);
      return ParseSlots(raw);
    }();
    if (!map.ok()) {
      last = Annotate(map.status(), HostPort(host, port));
      if (!outcome.connection_failed && !outcome.timed_out) {
        transport_only = false;
      }
      continue;
    }
    if (map->Masters().empty()) {
      last = absl::UnavailableError(absl::StrCat(
          HostPort(host, port), " knows no master (CLUSTER SLOTS is empty)"));
      continue;
    }
    result = std::make_shared<const Routes>(
        Routes{*std::move(map), std::string(host)});
    break;
  }
  std::lock_guard<std::mutex> lock(mu_);
  refreshing_ = false;
  refreshed_.notify_all();
  if (result != nullptr) {
    routes_ = result;
    ++routes_generation_;
    known_nodes_ = NodesOf(*result);
    return result;
  }
  // Unavailable when the nodes could not be reached; otherwise the code of
  // what they answered (a server without cluster support, a wrong
  // password, a malformed map), which waiting would not change.
  return absl::Status(
      transport_only ? absl::StatusCode::kUnavailable : last.code(),
      absl::StrCat(
          "redis connector (", endpoint_,
          "): no node answered CLUSTER SLOTS; the last: ", last.message()));
}

namespace {

// Waits between cluster retries: 5 ms doubling to 200 ms, and never past
// `deadline`. False once the deadline has passed.
class Backoff {
 public:
  explicit Backoff(absl::Time deadline) : deadline_(deadline) {}
  bool Wait() {
    const absl::Duration left = deadline_ - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    absl::SleepFor(std::min(next_, left));
    next_ = std::min(next_ * 2, absl::Milliseconds(200));
    return true;
  }

 private:
  const absl::Time deadline_;
  absl::Duration next_ = absl::Milliseconds(5);
};

// A redirect's or a map node's host: kSameHost is the host the map (or the
// redirect) came from.
absl::StatusOr<std::string> NodeHost(const redis_cluster::Endpoint& e,
                                     absl::string_view same_host) {
  switch (e.kind) {
    case redis_cluster::HostKind::kGiven:
      return e.host;
    case redis_cluster::HostKind::kSameHost:
      return std::string(same_host);
    case redis_cluster::HostKind::kUnknown:
      break;
  }
  return absl::UnavailableError(
      absl::StrCat("node ", e.ToString(),
                   " announces no endpoint (cluster-announce-hostname "
                   "unset with cluster-preferred-endpoint-type hostname)"));
}

}  // namespace

absl::StatusOr<RedisConnector::Pool*> RedisConnector::PoolForKey(
    absl::string_view redis_key, absl::Time deadline,
    std::shared_ptr<const Routes>* used) {
  if (main_pool_ != nullptr) return main_pool_;
  PROXYSTORE_ASSIGN_OR_RETURN(*used, CurrentRoutes(deadline));
  const Routes& routes = **used;
  const uint16_t slot = redis_cluster::KeySlot(redis_key);
  const redis_cluster::Node* node = routes.map.MasterFor(slot);
  if (node == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "hash slot ", slot, " has no master in the cluster's slot map"));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(std::string host,
                              NodeHost(node->endpoint, routes.answered_host));
  return &PoolAt(host, node->endpoint.port);
}

// What each cluster error leads to: MOVED, the slot map is read again and
// the command goes to the node named at once (the map may lag behind the
// redirect); ASK, ASKING and the command to the node named, once, map
// unchanged; TRYAGAIN and LOADING, a wait (Backoff) and another try;
// CLUSTERDOWN, READONLY (a master demoted by a failover) and a node that
// refuses or drops the connection, a wait and another try with the map
// read again. A node that does not answer within command_timeout_ms is not
// tried again (that wait was the operation's time), but the map is read
// again for the next operation (its master may have been replaced). A read
// a replica could not serve goes to the master next. Everything else is the
// operation's result.
absl::Status RedisConnector::RunKey(
    absl::string_view op, absl::string_view redis_key, bool read,
    absl::FunctionRef<absl::Status(Connection&)> fn) {
  if (main_pool_ != nullptr) {
    return RunOn(*main_pool_, op, /*check_open=*/true, /*asking=*/false, fn,
                 nullptr);
  }
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  const uint16_t slot = redis_cluster::KeySlot(redis_key);
  const absl::Time deadline =
      absl::Now() + absl::Milliseconds(settings_.command_timeout_ms);
  Backoff backoff(deadline);
  std::optional<redis_cluster::Redirect> redirect;
  std::string redirect_host;
  bool to_replica = read && settings_.read_from_replicas;
  int redirects = 0;
  absl::Status last;
  for (int attempt = 1;; ++attempt) {
    std::shared_ptr<const Routes> routes;
    Pool* pool = nullptr;
    bool asking = false;
    bool on_replica = false;
    absl::Status routed = [&]() -> absl::Status {
      if (redirect.has_value()) {
        PROXYSTORE_ASSIGN_OR_RETURN(
            std::string host, NodeHost(redirect->endpoint, redirect_host));
        pool = &PoolAt(host, redirect->endpoint.port);
        asking = redirect->kind == redis_cluster::Redirect::Kind::kAsk;
        redirect.reset();
        return absl::OkStatus();
      }
      PROXYSTORE_ASSIGN_OR_RETURN(routes, CurrentRoutes(deadline));
      const redis_cluster::Node* node = routes->map.MasterFor(slot);
      if (to_replica) {
        absl::Span<const redis_cluster::Node* const> replicas =
            routes->map.Replicas(slot);
        if (!replicas.empty()) {
          node =
              replicas[next_replica_.fetch_add(1, std::memory_order_relaxed) %
                       replicas.size()];
          on_replica = true;
        }
      }
      if (node == nullptr) {
        return absl::UnavailableError(absl::StrCat(
            "hash slot ", slot, " has no master in the cluster's slot map"));
      }
      PROXYSTORE_ASSIGN_OR_RETURN(
          std::string host, NodeHost(node->endpoint, routes->answered_host));
      pool = &PoolAt(host, node->endpoint.port);
      return absl::OkStatus();
    }();
    Outcome outcome;
    absl::Status status = routed;
    if (routed.ok()) {
      status = RunOn(*pool, op, /*check_open=*/true, asking, fn, &outcome);
      if (status.ok()) return status;
    }
    // Only what passes is retried: the network (a refused or dropped
    // connection; a map that could not be read for that reason) and the
    // cluster's own states. A malformed reply, a refused password or any
    // other answer is the result.
    bool retry =
        routed.ok() ? outcome.connection_failed : absl::IsUnavailable(routed);
    bool forget = outcome.connection_failed || outcome.timed_out;
    if (!outcome.cluster_error.empty()) {
      retry = true;
      switch (redis_cluster::ClassifyError(outcome.cluster_error)) {
        case redis_cluster::ClusterError::kMoved:
        case redis_cluster::ClusterError::kAsk: {
          absl::StatusOr<redis_cluster::Redirect> parsed =
              redis_cluster::ParseRedirect(outcome.cluster_error);
          if (!parsed.ok()) return Annotate(parsed.status(), op);
          forget = parsed->kind == redis_cluster::Redirect::Kind::kMoved;
          redirect = *std::move(parsed);
          redirect_host = pool->host;
          break;
        }
        case redis_cluster::ClusterError::kTryAgain:
        case redis_cluster::ClusterError::kLoading:
          break;
        default:  // CLUSTERDOWN, READONLY: the map changed.
          forget = true;
          break;
      }
    }
    if (forget && routes != nullptr) ForgetRoutes(routes.get());
    // A replica that failed: the master serves the read next.
    if (on_replica && !status.ok() && !outcome.timed_out) {
      to_replica = false;
      retry = true;
    }
    if (outcome.timed_out || !retry) return status;
    last = status;
    // A redirect is followed at once, a few times; anything else (or a
    // redirect loop while the cluster settles) waits first.
    if (redirect.has_value() && ++redirects <= 5) continue;
    if (!backoff.Wait()) {
      return absl::UnavailableError(absl::StrCat(
          "redis connector (", endpoint_, "): ", op, ": gave up after ",
          attempt, " attempts in ", settings_.command_timeout_ms,
          " ms (command_timeout_ms); the last: ", last.message()));
    }
  }
}

absl::Status RedisConnector::RunBatch(
    absl::string_view op, absl::string_view command,
    absl::Span<const std::string> redis_keys, bool read_replicas, bool wait,
    absl::FunctionRef<void(CommandWriter&, size_t)> add,
    absl::FunctionRef<absl::Status(Connection&, size_t, const Reply&)> read,
    std::vector<bool>* sent, bool check_open) {
  if (check_open) PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  const size_t n = redis_keys.size();
  if (sent != nullptr) sent->assign(n, false);
  const bool waits = wait && settings_.wait_replicas > 0;
  const std::string wait_count = absl::StrCat(settings_.wait_replicas);
  const std::string wait_ms = absl::StrCat(settings_.wait_timeout_ms);
  std::vector<size_t> pending(n);
  for (size_t i = 0; i < n; ++i) pending[i] = i;
  // Items sent to another node than the map says (MOVED, ASK).
  struct Redirected {
    Pool* pool = nullptr;
    bool asking = false;
  };
  absl::flat_hash_map<size_t, Redirected> redirected;
  // Reads a replica could not serve: the master serves them next.
  absl::flat_hash_set<size_t> to_master;
  const absl::Time deadline =
      absl::Now() + absl::Milliseconds(settings_.command_timeout_ms);
  Backoff backoff(deadline);
  absl::Status last;
  auto annotate = [&](const absl::Status& s, const Pool& pool) {
    return Annotate(
        s, absl::StrCat("redis connector (", pool.endpoint, "): ", op));
  };
  for (int round = 1;; ++round) {
    std::vector<size_t> retry;
    bool waits_first = false;  // A retry that is no redirect.
    bool forget = false;       // The map changed (or may have).
    absl::StatusOr<std::shared_ptr<const Routes>> routes =
        CurrentRoutes(deadline);
    struct Group {
      Pool* pool = nullptr;
      std::vector<size_t> items;
      std::vector<bool> asking;
      std::vector<bool> on_replica;
      std::unique_ptr<Connection> c;
      CommandWriter writer;
    };
    std::vector<Group> groups;
    if (!routes.ok()) {
      // A map the nodes refused to give (not the network) is the result.
      if (!absl::IsUnavailable(routes.status())) return routes.status();
      last = routes.status();
      retry = pending;
      waits_first = true;
    } else {
      absl::flat_hash_map<Pool*, size_t> group_of;
      for (size_t item : pending) {
        Pool* pool = nullptr;
        bool asking = false;
        bool on_replica = false;
        if (auto it = redirected.find(item); it != redirected.end()) {
          pool = it->second.pool;
          asking = it->second.asking;
          redirected.erase(it);
        } else {
          const uint16_t slot = redis_cluster::KeySlot(redis_keys[item]);
          const redis_cluster::Node* node = (*routes)->map.MasterFor(slot);
          if (read_replicas && settings_.read_from_replicas &&
              !to_master.contains(item)) {
            absl::Span<const redis_cluster::Node* const> replicas =
                (*routes)->map.Replicas(slot);
            if (!replicas.empty()) {
              node = replicas[next_replica_.fetch_add(
                                  1, std::memory_order_relaxed) %
                              replicas.size()];
              on_replica = true;
            }
          }
          absl::StatusOr<std::string> host =
              node == nullptr
                  ? absl::UnavailableError(absl::StrCat(
                        "hash slot ", slot,
                        " has no master in the cluster's slot map"))
                  : NodeHost(node->endpoint, (*routes)->answered_host);
          if (!host.ok()) {
            last = host.status();
            retry.push_back(item);
            waits_first = true;
            forget = true;
            continue;
          }
          pool = &PoolAt(*host, node->endpoint.port);
        }
        auto [it, added] = group_of.try_emplace(pool, groups.size());
        if (added) {
          groups.emplace_back();
          groups.back().pool = pool;
        }
        Group& g = groups[it->second];
        g.items.push_back(item);
        g.asking.push_back(asking);
        g.on_replica.push_back(on_replica);
      }
    }
    // The items of `g` from k on go again: a replica's to the master.
    auto again = [&](const Group& g, size_t k) {
      for (; k < g.items.size(); ++k) {
        retry.push_back(g.items[k]);
        if (g.on_replica[k]) to_master.insert(g.items[k]);
      }
    };
    absl::Status fatal = absl::OkStatus();
    // Every node is written before any is read: the nodes work at once.
    for (Group& g : groups) {
      g.c = TakeIdle(*g.pool);
      if (g.c == nullptr) {
        absl::StatusOr<std::unique_ptr<Connection>> made = Connect(*g.pool);
        if (!made.ok()) {
          // Unreachable: the network's; a refused password is the result.
          if (!absl::IsUnavailable(made.status())) {
            fatal.Update(annotate(made.status(), *g.pool));
            continue;
          }
          last = annotate(made.status(), *g.pool);
          again(g, 0);
          waits_first = true;
          forget = true;
          continue;
        }
        g.c = *std::move(made);
      }
      for (size_t k = 0; k < g.items.size(); ++k) {
        if (g.asking[k]) g.writer.Add({"ASKING"});
        add(g.writer, g.items[k]);
        // Never reset: an item sent once may have been carried out even if
        // a later round fails (PutBatch takes back every such item).
        if (sent != nullptr) (*sent)[g.items[k]] = true;
      }
      if (waits) g.writer.Add({"WAIT", wait_count, wait_ms});
      if (absl::Status s = g.writer.Send(g.c->context(), timeout_); !s.ok()) {
        last = annotate(s, *g.pool);
        again(g, 0);
        waits_first = true;
        forget = true;
        g.c.reset();
        DropIdle(g.pool);
      }
    }
    for (Group& g : groups) {
      if (g.c == nullptr) continue;
      Connection& c = *g.c;
      size_t k = 0;
      // Reads one reply of `g`; false if the connection failed: the items
      // from k on go again (EOF, reset) or fail the batch (a timeout, a
      // malformed reply).
      auto next = [&](Reply* reply) {
        absl::StatusOr<Reply> r = c.ReadReply(timeout_);
        if (r.ok()) {
          *reply = *r;
          return true;
        }
        if (TimedOut(c.context()) || c.context()->err == REDIS_ERR_PROTOCOL) {
          fatal.Update(annotate(r.status(), *g.pool));
          forget = true;
        } else {
          last = annotate(r.status(), *g.pool);
          again(g, k);
          waits_first = true;
          forget = true;
        }
        return false;
      };
      bool alive = true;
      for (; k < g.items.size() && alive; ++k) {
        const size_t item = g.items[k];
        Reply reply;
        if (g.asking[k]) {
          if (!(alive = next(&reply))) break;
          if (reply.type != '+') {
            fatal.Update(
                annotate(Expect(c, "ASKING", reply, '+', timeout_), *g.pool));
          }
        }
        if (!(alive = next(&reply))) break;
        if (reply.type == '-' && IsClusterRoutingError(reply.text)) {
          retry.push_back(item);
          switch (redis_cluster::ClassifyError(reply.text)) {
            case redis_cluster::ClusterError::kMoved:
            case redis_cluster::ClusterError::kAsk: {
              absl::StatusOr<redis_cluster::Redirect> r =
                  redis_cluster::ParseRedirect(reply.text);
              if (!r.ok()) {
                fatal.Update(annotate(r.status(), *g.pool));
                continue;
              }
              absl::StatusOr<std::string> host =
                  NodeHost(r->endpoint, g.pool->host);
              if (!host.ok()) {
                fatal.Update(annotate(host.status(), *g.pool));
                continue;
              }
              const bool ask = r->kind == redis_cluster::Redirect::Kind::kAsk;
              if (!ask) forget = true;
              redirected[item] = {&PoolAt(*host, r->endpoint.port), ask};
              break;
            }
            case redis_cluster::ClusterError::kTryAgain:
            case redis_cluster::ClusterError::kLoading:
              last = annotate(ErrorReplyStatus(command, reply.text), *g.pool);
              waits_first = true;
              if (g.on_replica[k]) to_master.insert(item);
              break;
            default:  // CLUSTERDOWN, READONLY: the map changed.
              last = annotate(ErrorReplyStatus(command, reply.text), *g.pool);
              waits_first = true;
              forget = true;
              break;
          }
          continue;
        }
        if (absl::Status s = read(c, item, reply); !s.ok()) {
          if (g.on_replica[k] && reply.type == '-' && c.usable()) {
            // MASTERDOWN, a replica that will not serve: the master will.
            last = annotate(s, *g.pool);
            retry.push_back(item);
            to_master.insert(item);
            waits_first = true;
            continue;
          }
          fatal.Update(annotate(s, *g.pool));
          alive = c.usable();
        }
      }
      if (alive && waits) {
        Reply reply;
        if (next(&reply)) {
          absl::Status s = Expect(c, "WAIT", reply, ':', timeout_);
          if (s.ok()) {
            s = CheckReplicated(reply.number,
                                absl::StrCat(g.items.size(), " writes"));
          }
          if (!s.ok()) fatal.Update(annotate(s, *g.pool));
        } else if (fatal.ok()) {
          // The writes may be carried out, but no replica confirmed them.
          fatal = annotate(absl::UnavailableError("WAIT was not answered"),
                           *g.pool);
        }
      }
      if (c.usable()) {
        Release(*g.pool, std::move(g.c));
      } else {
        g.c.reset();
        DropIdle(g.pool);
      }
    }
    if (forget && routes.ok()) ForgetRoutes(routes->get());
    if (!fatal.ok()) return fatal;
    if (retry.empty()) return absl::OkStatus();
    pending = std::move(retry);
    if (!waits_first && round <= 5) continue;
    if (!backoff.Wait()) {
      return absl::UnavailableError(absl::StrCat(
          "redis connector (", endpoint_, "): ", op, ": gave up on ",
          pending.size(), " of ", n, " items after ", round, " rounds in ",
          settings_.command_timeout_ms,
          " ms (command_timeout_ms); the last error: ", last.message()));
    }
  }
}

absl::Status RedisConnector::CheckReplicated(int64_t acknowledged,
                                             absl::string_view what) const {
  if (acknowledged >= settings_.wait_replicas) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      "WAIT: only ", acknowledged, " of the ", settings_.wait_replicas,
      " replicas asked for (option wait_replicas) acknowledged ", what,
      " within ", settings_.wait_timeout_ms,
      " ms (wait_timeout_ms); a failover may lose them"));
}

absl::StatusOr<Key> RedisConnector::DoPut(SharedBytes data,
                                          const PutOptions& options) {
  const absl::string_view part = data.view();
  return DoPutParts(absl::MakeConstSpan(&part, 1), options);
}

absl::StatusOr<Key> RedisConnector::DoPutParts(
    absl::Span<const absl::string_view> parts, const PutOptions& /*options*/) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("Put"));
  Key key(MintId());
  PROXYSTORE_RETURN_IF_ERROR(
      Write("Put", key, parts, /*only_if_absent=*/false));
  return key;
}

absl::StatusOr<Key> RedisConnector::DoNewKey(const NewKeyOptions& /*options*/) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("NewKey"));
  // Nothing is sent: the key reads as missing until Set writes it.
  return Key(MintId());
}

absl::Status RedisConnector::CheckMinted(const Key& key,
                                         absl::string_view op) const {
  PROXYSTORE_RETURN_IF_ERROR(CheckKey(key, op));
  // The Python layout's CheckKey already allows only minted forms.
  if (settings_.python_layout || IsObjectId(key.id())) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("redis connector (", endpoint_, "): ", op,
                   ": not a key this connector mints (32 lowercase hex "
                   "digits)"));
}

absl::Status RedisConnector::DoSet(const Key& key, SharedBytes data) {
  const std::string op = absl::StrCat("Set of key ", Quote(key.id()));
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  PROXYSTORE_RETURN_IF_ERROR(CheckMinted(key, op));
  const absl::string_view part = data.view();
  return Write("Set", key, absl::MakeConstSpan(&part, 1),
               /*only_if_absent=*/true);
}

absl::Status RedisConnector::DoSetParts(
    const Key& key, absl::Span<const absl::string_view> parts) {
  const std::string op = absl::StrCat("Set of key ", Quote(key.id()));
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  PROXYSTORE_RETURN_IF_ERROR(CheckMinted(key, op));
  return Write("Set", key, parts, /*only_if_absent=*/true);
}

absl::Status RedisConnector::Write(absl::string_view verb, const Key& key,
                                   absl::Span<const absl::string_view> parts,
                                   bool only_if_absent) {
  size_t size = 0;
  for (absl::string_view part : parts) size += part.size();
  PROXYSTORE_RETURN_IF_ERROR(CheckValueSize(size, verb));
  const std::string redis_key = RedisKey(key);
  CommandWriter writer;
  const absl::string_view nx = "NX";
  writer.AddJoining({"SET", redis_key}, parts,
                    only_if_absent ? absl::MakeConstSpan(&nx, 1)
                                   : absl::Span<const absl::string_view>());
  // Set wakes WaitFor's subscribers: the PUBLISH goes out in the same
  // sendmsg as the SET and the server runs it right after, so it costs no
  // round trip. It is sent whatever the SET answers (only a script could make
  // it depend on that): after a refused SET NX the key holds an object
  // anyway, and a waiter re-checks EXISTS after every message, so one that
  // announced nothing costs it one EXISTS. Put publishes nothing (nobody
  // waits for a key Put mints).
  const std::string channel = only_if_absent ? SetChannel(redis_key) : "";
  if (only_if_absent) writer.Add({"PUBLISH", channel, ""});
  // wait_replicas: WAIT in the same round trip, answered once enough
  // replicas have the write (or at wait_timeout_ms).
  const bool waits = settings_.wait_replicas > 0;
  const std::string wait_count = absl::StrCat(settings_.wait_replicas);
  const std::string wait_ms = absl::StrCat(settings_.wait_timeout_ms);
  if (waits) writer.Add({"WAIT", wait_count, wait_ms});
  // An earlier attempt sent the SET and lost its connection before the
  // answer: it may have written the object (RunKey and RunOn retry only
  // then, or after a redirect, which wrote nothing).
  bool maybe_written_before = false;
  bool written = false;
  const std::string op = absl::StrCat(verb, " of key ", Quote(key.id()));
  absl::Status status =
      RunKey(op, redis_key, /*read=*/false, [&](Connection& c) -> absl::Status {
        const bool earlier = maybe_written_before;
        written = false;
        PROXYSTORE_RETURN_IF_ERROR(writer.Send(c.context(), timeout_));
        absl::StatusOr<Reply> set = c.ReadReply(timeout_);
        if (!set.ok()) {
          maybe_written_before = true;
          return set.status();
        }
        const Reply& reply = *set;
        absl::Status status;
        // SET ... NX answers nil, not OK, when the key holds a value.
        if (only_if_absent && reply.type == '$' && reply.nil()) {
          status = absl::AlreadyExistsError(absl::StrCat(
              "key ", Quote(key.id()), " (Redis key ", Quote(redis_key),
              ") already holds an object; a key is written once",
              earlier ? " (an earlier attempt, on a connection that failed, "
                        "may have written it)"
                      : ""));
        } else {
          status = Expect(c, "SET", reply, '+', timeout_);
        }
        written = status.ok();
        if (!c.usable()) return status;
        // The replies of PUBLISH (how many received it) and WAIT are read
        // whatever the SET answered, so that the connection stays in step.
        // A PUBLISH the server refuses (an ACL without it) leaves the object
        // written, and waiters wake at their timeout instead. But a write
        // that had to be confirmed by replicas is not acknowledged unless
        // WAIT answered.
        auto unconfirmed = [&](const absl::Status& why) {
          if (!status.ok() || !waits) return status;
          return absl::UnavailableError(absl::StrCat(
              "the write was not confirmed: WAIT was not answered (",
              why.message(), ")"));
        };
        if (only_if_absent) {
          absl::StatusOr<Reply> published = c.ReadReply(timeout_);
          if (!published.ok()) return unconfirmed(published.status());
          (void)Expect(c, "PUBLISH", *published, ':', timeout_);
          if (!c.usable()) {
            return unconfirmed(
                absl::InternalError("a malformed PUBLISH reply"));
          }
        }
        if (waits) {
          absl::StatusOr<Reply> acked = c.ReadReply(timeout_);
          if (!acked.ok()) return unconfirmed(acked.status());
          absl::Status replicated = Expect(c, "WAIT", *acked, ':', timeout_);
          if (!status.ok()) return status;
          if (!replicated.ok()) return unconfirmed(replicated);
          status = CheckReplicated(acked->number, "the write");
        }
        return status;
      });
  if (status.ok() || !written) return status;
  // The object is on the master but not on enough replicas. A Put's key was
  // never handed out: take the object back. A Set's key is known to its
  // readers, who may hold the object already: it stays.
  if (only_if_absent) {
    return Annotate(status,
                    "the object is written and stays (a key is written once)");
  }
  const absl::Status undo = Unlink(absl::MakeConstSpan(&redis_key, 1));
  return Annotate(status, undo.ok() ? "the object was removed again"
                                    : absl::StrCat("removing it failed too: ",
                                                   undo.message()));
}

// Pub/Sub channels are one name space for the whole server, whatever the
// database: a Set of the same Redis key in another database wakes this
// waiter too, which only costs it an EXISTS (it finds nothing in its own).
std::string RedisConnector::SetChannel(absl::string_view redis_key) {
  return absl::StrCat(redis_key, kSetChannelSuffix);
}

// SUBSCRIBE first, EXISTS second: a SET the server runs before the EXISTS is
// seen by it, and one it runs after comes with a PUBLISH (Set sends both
// together) that reaches the subscription, which the server had in place
// before it answered SUBSCRIBE. The EXISTS goes through the pool: a
// subscribed RESP2 connection takes no other commands, which is also why
// that connection is never pooled. It belongs to this call, hence to this
// process and thread: a child forked meanwhile has no thread that owns it,
// so it never reads or writes its copy of the descriptor (which stays open
// in the child until it exits or execs: close-on-exec), as for a pooled
// connection in use by another thread at the fork.
absl::StatusOr<bool> RedisConnector::DoWaitFor(const Key& key,
                                               absl::Duration timeout) {
  const std::string op = absl::StrCat("WaitFor of key ", Quote(key.id()));
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  PROXYSTORE_RETURN_IF_ERROR(CheckMinted(key, op));
  if (timeout <= absl::ZeroDuration()) return ExistsFor(key, op);
  const absl::Time deadline = absl::Now() + timeout;
  auto annotate = [&](const absl::Status& s) {
    return Annotate(s, absl::StrCat("redis connector (", endpoint_, "): ", op));
  };
  // In a cluster, PUBLISH reaches the subscribers of every node: the key's
  // master is as good as any. One that cannot be reached (a failover, a
  // stale map) sends the map to be read again and the next master tried,
  // within command_timeout_ms, as other operations do.
  const std::string redis_key = RedisKey(key);
  const absl::Time connect_deadline =
      absl::Now() + absl::Milliseconds(settings_.command_timeout_ms);
  Backoff backoff(connect_deadline);
  absl::StatusOr<std::unique_ptr<Connection>> made;
  for (;;) {
    std::shared_ptr<const Routes> used;
    absl::StatusOr<Pool*> pool = PoolForKey(redis_key, connect_deadline, &used);
    made = pool.ok()
               ? Connect(**pool)
               : absl::StatusOr<std::unique_ptr<Connection>>(pool.status());
    if (made.ok()) break;
    if (main_pool_ != nullptr || !absl::IsUnavailable(made.status())) {
      return annotate(made.status());
    }
    if (used != nullptr) ForgetRoutes(used.get());
    if (!backoff.Wait()) {
      return annotate(absl::UnavailableError(absl::StrCat(
          "no master to subscribe on within ", settings_.command_timeout_ms,
          " ms (command_timeout_ms); the last: ", made.status().message())));
    }
  }
  Connection& c = **made;
  const std::string channel = SetChannel(redis_key);
  CommandWriter subscribe;
  subscribe.Add({"SUBSCRIBE", channel});
  if (absl::Status s = subscribe.Send(c.context(), timeout_); !s.ok()) {
    return annotate(s);
  }
  absl::StatusOr<Push> confirmed =
      ReadPush(c, channel, /*confirming=*/true, timeout_);
  if (!confirmed.ok()) return annotate(confirmed.status());
  if (*confirmed != Push::kSubscribed) {
    return annotate(c.Fail(REDIS_ERR_PROTOCOL,
                           "a message arrived before SUBSCRIBE was confirmed",
                           timeout_));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(bool there, ExistsFor(key, op));
  while (!there) {
    const absl::Duration left = deadline - absl::Now();
    // Not an error: one last look, for a Set that came with the deadline.
    if (left <= absl::ZeroDuration()) return ExistsFor(key, op);
    // Waits for the first byte of a message in poll(2), for the time left
    // (at most INT_MAX ms at a time); the rest of it, once it has begun,
    // within the command timeout like any reply. A server that goes away
    // wakes the poll (EOF), and reading finds it: Unavailable.
    if (!c.buffered()) {
      pollfd p{c.context()->fd, POLLIN, 0};
      const int ms = static_cast<int>(std::min<int64_t>(
          absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))),
          INT_MAX));
      const int ready = ::poll(&p, 1, ms);
      if (ready < 0 && errno != EINTR) {
        return annotate(c.Fail(
            REDIS_ERR_IO,
            absl::StrCat("poll: ", std::generic_category().message(errno)),
            timeout_));
      }
      if (ready <= 0) continue;
    }
    absl::StatusOr<Push> push =
        ReadPush(c, channel, /*confirming=*/false, timeout_);
    if (!push.ok()) return annotate(push.status());
    if (*push != Push::kMessage) {
      return annotate(c.Fail(REDIS_ERR_PROTOCOL,
                             "SUBSCRIBE was confirmed twice", timeout_));
    }
    // A message is a hint: anyone may publish on the channel, and the key
    // may have been evicted since.
    PROXYSTORE_ASSIGN_OR_RETURN(there, ExistsFor(key, op));
  }
  return true;
}

absl::StatusOr<std::vector<Key>> RedisConnector::DoPutBatch(
    absl::Span<const SharedBytes> data, const PutOptions& /*options*/) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("PutBatch"));
  for (size_t i = 0; i < data.size(); ++i) {
    PROXYSTORE_RETURN_IF_ERROR(
        CheckValueSize(data[i].size(), absl::StrCat("PutBatch item ", i)));
  }
  std::vector<Key> keys;
  if (data.empty()) return keys;
  keys.reserve(data.size());
  std::vector<std::string> redis_keys;
  redis_keys.reserve(data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    keys.emplace_back(MintId());
    redis_keys.push_back(RedisKey(keys.back()));
  }
  const std::string op = absl::StrCat("PutBatch of ", data.size(), " objects");
  // Items that may have been stored: sent, and not refused by the server.
  std::vector<bool> maybe_stored;
  absl::Status status;
  if (cluster()) {
    // The keys' slots differ, so one SET per object, pipelined per node.
    status = RunBatch(
        op, "SET", redis_keys, /*read_replicas=*/false, /*wait=*/true,
        [&](CommandWriter& w, size_t i) {
          w.Add({"SET", redis_keys[i], data[i].view()});
        },
        [&](Connection& c, size_t, const Reply& reply) {
          return Expect(c, "SET", reply, '+', timeout_);
        },
        &maybe_stored);
  } else {
    status = PutBatchOnServer(op, data, redis_keys, &maybe_stored);
  }
  if (status.ok()) return keys;
  // All or nothing: take back every object that may have been stored.
  std::vector<std::string> stored;
  for (size_t i = 0; i < maybe_stored.size(); ++i) {
    if (maybe_stored[i]) stored.push_back(redis_keys[i]);
  }
  if (stored.empty()) return status;
  const absl::Status undo = Unlink(stored);
  return absl::Status(
      status.code(),
      undo.ok()
          ? absl::StrCat(status.message(), "; the ", stored.size(),
                         " objects that may have been stored were removed "
                         "again")
          : absl::StrCat(status.message(), "; removing the ", stored.size(),
                         " objects that may have been stored failed too, "
                         "some may remain under prefix ",
                         Quote(settings_.prefix), ": ", undo.message()));
}

// MSETs of at most kMaxBatchItems pairs and about kMaxBatchBytes of values
// (a bigger value goes alone), all sent before any reply is read: one round
// trip for any batch size, while no single command grows past the server's
// query buffer limit. GetBatch splits its MGETs the same way. With
// wait_replicas, a WAIT follows.
absl::Status RedisConnector::PutBatchOnServer(
    absl::string_view op, absl::Span<const SharedBytes> data,
    absl::Span<const std::string> redis_keys, std::vector<bool>* maybe_stored) {
  CommandWriter writer;
  std::vector<size_t> chunk_starts;  // Item index where each MSET starts.
  std::vector<absl::string_view> args;
  for (size_t i = 0; i < data.size();) {
    chunk_starts.push_back(i);
    args.assign({"MSET"});
    size_t bytes = 0;
    while (i < data.size() && args.size() / 2 < kMaxBatchItems &&
           (args.size() == 1 || bytes + data[i].size() <= kMaxBatchBytes)) {
      args.push_back(redis_keys[i]);
      args.push_back(data[i].view());
      bytes += data[i].size();
      ++i;
    }
    writer.Add(args);
  }
  chunk_starts.push_back(data.size());
  const size_t chunks = writer.commands();
  const bool waits = settings_.wait_replicas > 0;
  const std::string wait_count = absl::StrCat(settings_.wait_replicas);
  const std::string wait_ms = absl::StrCat(settings_.wait_timeout_ms);
  if (waits) writer.Add({"WAIT", wait_count, wait_ms});
  return RunOn(
      *main_pool_, op, /*check_open=*/true, /*asking=*/false,
      [&](Connection& c) -> absl::Status {
        maybe_stored->assign(data.size(), true);
        PROXYSTORE_RETURN_IF_ERROR(writer.Send(c.context(), timeout_));
        absl::Status first = absl::OkStatus();
        for (size_t k = 0; k < chunks; ++k) {
          PROXYSTORE_ASSIGN_OR_RETURN(Reply reply, c.ReadReply(timeout_));
          const absl::Status s = Expect(c, "MSET", reply, '+', timeout_);
          if (s.ok()) continue;
          if (c.usable()) {
            for (size_t i = chunk_starts[k]; i < chunk_starts[k + 1]; ++i) {
              (*maybe_stored)[i] = false;
            }
          }
          first.Update(
              Annotate(s, absl::StrCat("MSET ", k + 1, " of ", chunks,
                                       " (items ", chunk_starts[k], " to ",
                                       chunk_starts[k + 1] - 1, ")")));
          if (!c.usable()) return first;
        }
        if (waits) {
          // After the MSETs' own errors, if any: those name what failed.
          absl::StatusOr<Reply> acked = c.ReadReply(timeout_);
          absl::Status replicated = acked.status();
          if (acked.ok()) {
            replicated = Expect(c, "WAIT", *acked, ':', timeout_);
            if (replicated.ok()) {
              replicated = CheckReplicated(
                  acked->number, absl::StrCat(data.size(), " writes"));
            }
          }
          first.Update(replicated);
        }
        return first;
      },
      nullptr);
}

absl::Status RedisConnector::Unlink(absl::Span<const std::string> redis_keys) {
  const std::string op = absl::StrCat("UNLINK of ", redis_keys.size(), " keys");
  if (cluster()) {
    return RunBatch(
        op, "UNLINK", redis_keys, /*read_replicas=*/false, /*wait=*/false,
        [&](CommandWriter& w, size_t i) {
          w.Add({"UNLINK", redis_keys[i]});
        },
        [&](Connection& c, size_t, const Reply& reply) {
          return Expect(c, "UNLINK", reply, ':', timeout_);
        },
        nullptr, /*check_open=*/false);
  }
  CommandWriter writer;
  std::vector<absl::string_view> args;
  for (size_t i = 0; i < redis_keys.size(); i += kMaxBatchItems) {
    args.assign({"UNLINK"});
    const size_t end = std::min(redis_keys.size(), i + kMaxBatchItems);
    for (size_t j = i; j < end; ++j) args.push_back(redis_keys[j]);
    writer.Add(args);
  }
  return RunOn(
      *main_pool_, op, /*check_open=*/false, /*asking=*/false,
      [&](Connection& c) {
        return RoundTrip(c, writer, "UNLINK", ':', timeout_);
      },
      nullptr);
}

absl::StatusOr<std::optional<SharedBytes>> RedisConnector::DoGet(
    const Key& key) {
  const std::string op = absl::StrCat("Get of key ", Quote(key.id()));
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  PROXYSTORE_RETURN_IF_ERROR(CheckKey(key, op));
  const std::string redis_key = RedisKey(key);
  CommandWriter writer;
  writer.Add({"GET", redis_key});
  std::optional<SharedBytes> result;
  auto get = [&](Connection& c) -> absl::Status {
    result.reset();
    PROXYSTORE_RETURN_IF_ERROR(writer.Send(c.context(), timeout_));
    PROXYSTORE_ASSIGN_OR_RETURN(Reply reply, c.ReadReply(timeout_));
    PROXYSTORE_RETURN_IF_ERROR(Expect(c, "GET", reply, '$', timeout_));
    if (reply.nil()) return absl::OkStatus();
    if (absl::Status s = CheckReadSize(reply.number, key); !s.ok()) {
      c.Discard();  // The value stays unread.
      return s;
    }
    PROXYSTORE_ASSIGN_OR_RETURN(
        result, c.ReadString(static_cast<size_t>(reply.number), timeout_));
    return absl::OkStatus();
  };
  PROXYSTORE_RETURN_IF_ERROR(RunKey(op, redis_key, /*read=*/true, get));
  // A replica may not have a recent write yet: what it misses, the master
  // is asked for, so a read after a write finds the object.
  if (!result.has_value() && settings_.read_from_replicas) {
    PROXYSTORE_RETURN_IF_ERROR(RunKey(op, redis_key, /*read=*/false, get));
  }
  return result;
}

absl::StatusOr<std::vector<std::optional<SharedBytes>>>
RedisConnector::DoGetBatch(absl::Span<const Key> keys) {
  const std::string op = absl::StrCat("GetBatch of ", keys.size(), " keys");
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  std::vector<std::optional<SharedBytes>> results;
  if (keys.empty()) return results;
  std::vector<std::string> redis_keys;
  redis_keys.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    PROXYSTORE_RETURN_IF_ERROR(
        CheckKey(keys[i], absl::StrCat(op, ", key ", i)));
    redis_keys.push_back(RedisKey(keys[i]));
  }
  if (cluster()) {
    // The keys' slots differ, so one GET per key, pipelined per node.
    results.assign(keys.size(), std::nullopt);
    auto get = [&](Connection& c, size_t i,
                   const Reply& reply) -> absl::Status {
      // A non-string value reads as missing, as MGET reports it on one
      // server.
      if (reply.type == '-' && absl::StartsWith(reply.text, "WRONGTYPE ")) {
        return absl::OkStatus();
      }
      PROXYSTORE_RETURN_IF_ERROR(Expect(c, "GET", reply, '$', timeout_));
      if (reply.nil()) return absl::OkStatus();
      if (absl::Status s = CheckReadSize(reply.number, keys[i]); !s.ok()) {
        c.Discard();  // The rest of the replies stay unread.
        return s;
      }
      PROXYSTORE_ASSIGN_OR_RETURN(
          results[i],
          c.ReadString(static_cast<size_t>(reply.number), timeout_));
      return absl::OkStatus();
    };
    auto add = [&](CommandWriter& w, size_t i) {
      w.Add({"GET", redis_keys[i]});
    };
    PROXYSTORE_RETURN_IF_ERROR(RunBatch(op, "GET", redis_keys,
                                        /*read_replicas=*/true,
                                        /*wait=*/false, add, get, nullptr));
    if (!settings_.read_from_replicas) return results;
    // What replicas missed, the masters are asked for (see Get).
    std::vector<size_t> missed;
    std::vector<std::string> missed_keys;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (results[i].has_value()) continue;
      missed.push_back(i);
      missed_keys.push_back(redis_keys[i]);
    }
    if (missed.empty()) return results;
    PROXYSTORE_RETURN_IF_ERROR(RunBatch(
        op, "GET", missed_keys, /*read_replicas=*/false, /*wait=*/false,
        [&](CommandWriter& w, size_t j) { add(w, missed[j]); },
        [&](Connection& c, size_t j, const Reply& reply) {
          return get(c, missed[j], reply);
        },
        nullptr));
    return results;
  }
  // MGETs of at most kMaxBatchItems keys, all sent before any reply is read.
  CommandWriter writer;
  std::vector<absl::string_view> args;
  for (size_t i = 0; i < keys.size(); i += kMaxBatchItems) {
    const size_t n = std::min(kMaxBatchItems, keys.size() - i);
    args.assign({"MGET"});
    for (size_t j = i; j < i + n; ++j) args.push_back(redis_keys[j]);
    writer.Add(args);
  }
  PROXYSTORE_RETURN_IF_ERROR(RunOn(
      *main_pool_, op, /*check_open=*/true, /*asking=*/false,
      [&](Connection& c) -> absl::Status {
        results.clear();
        results.reserve(keys.size());
        PROXYSTORE_RETURN_IF_ERROR(writer.Send(c.context(), timeout_));
        absl::Status first = absl::OkStatus();
        for (size_t i = 0; i < keys.size(); i += kMaxBatchItems) {
          const size_t n = std::min(kMaxBatchItems, keys.size() - i);
          PROXYSTORE_ASSIGN_OR_RETURN(Reply reply, c.ReadReply(timeout_));
          if (absl::Status s = Expect(c, "MGET", reply, '*', timeout_);
              !s.ok()) {
            if (!c.usable()) return s;
            first.Update(s);
            results.resize(results.size() + n);
            continue;
          }
          if (reply.number != static_cast<int64_t>(n)) {
            return c.Fail(REDIS_ERR_PROTOCOL,
                          absl::StrCat("MGET of ", n, " keys returned ",
                                       reply.number, " values"),
                          timeout_);
          }
          for (size_t j = i; j < i + n; ++j) {
            PROXYSTORE_ASSIGN_OR_RETURN(Reply e, c.ReadReply(timeout_));
            if (e.type != '$') {
              return c.Fail(REDIS_ERR_PROTOCOL,
                            absl::StrCat("MGET returned an unexpected ",
                                         ReplyTypeName(e), " element"),
                            timeout_);
            }
            if (e.nil()) {
              results.emplace_back();
              continue;
            }
            if (absl::Status s = CheckReadSize(e.number, keys[j]); !s.ok()) {
              c.Discard();  // The rest of the reply stays unread.
              return s;
            }
            PROXYSTORE_ASSIGN_OR_RETURN(
                SharedBytes value,
                c.ReadString(static_cast<size_t>(e.number), timeout_));
            results.emplace_back(std::move(value));
          }
        }
        return first;
      },
      nullptr));
  return results;
}

absl::StatusOr<bool> RedisConnector::DoExists(const Key& key) {
  const std::string op = absl::StrCat("Exists of key ", Quote(key.id()));
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  PROXYSTORE_RETURN_IF_ERROR(CheckKey(key, op));
  return ExistsFor(key, op);
}

absl::StatusOr<bool> RedisConnector::ExistsFor(const Key& key,
                                               absl::string_view op) {
  const std::string redis_key = RedisKey(key);
  CommandWriter writer;
  writer.Add({"EXISTS", redis_key});
  bool exists = false;
  PROXYSTORE_RETURN_IF_ERROR(
      RunKey(op, redis_key, /*read=*/false, [&](Connection& c) -> absl::Status {
        PROXYSTORE_RETURN_IF_ERROR(writer.Send(c.context(), timeout_));
        PROXYSTORE_ASSIGN_OR_RETURN(Reply reply, c.ReadReply(timeout_));
        PROXYSTORE_RETURN_IF_ERROR(Expect(c, "EXISTS", reply, ':', timeout_));
        exists = reply.number > 0;
        return absl::OkStatus();
      }));
  return exists;
}

absl::Status RedisConnector::DoEvict(const Key& key) {
  const std::string op = absl::StrCat("Evict of key ", Quote(key.id()));
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  PROXYSTORE_RETURN_IF_ERROR(CheckKey(key, op));
  const std::string redis_key = RedisKey(key);
  CommandWriter writer;
  writer.Add({"UNLINK", redis_key});
  return RunKey(op, redis_key, /*read=*/false, [&](Connection& c) {
    return RoundTrip(c, writer, "UNLINK", ':', timeout_);
  });
}

// SCAN MATCH <escaped prefix>* and UNLINK in batches: only the keys under
// this connector's prefix (ProxyStore's connector runs FLUSHDB, which wipes
// the whole database). With the default prefix those are this connector's
// objects only. A prefix given in the options is cleared whole, whoever
// wrote under it: clearing it is what the user asked for by configuring it
// together with clear (so share a configured prefix only with connectors
// meant to share its data). A connector re-created from a serialized proxy
// never clears unless its process says so (KindTraits()).
absl::Status RedisConnector::ClearKeys() {
  if (main_pool_ != nullptr) return ClearKeysOn(*main_pool_);
  // Every master holds a part of the keys; replicas hold copies.
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::shared_ptr<const Routes> routes,
      RefreshRoutes(absl::Now() +
                    absl::Milliseconds(settings_.command_timeout_ms)));
  absl::Status status = absl::OkStatus();
  for (const redis_cluster::SlotMap::Master& m : routes->map.Masters()) {
    absl::StatusOr<std::string> host =
        NodeHost(m.node->endpoint, routes->answered_host);
    if (!host.ok()) {
      status.Update(host.status());
      continue;
    }
    status.Update(ClearKeysOn(PoolAt(*host, m.node->endpoint.port)));
  }
  return status;
}

absl::Status RedisConnector::ClearKeysOn(Pool& pool) {
  const std::string pattern = absl::StrCat(EscapeGlob(settings_.prefix), "*");
  return RunOn(
      pool, absl::StrCat("Close, clearing keys matching ", Quote(pattern)),
      /*check_open=*/false, /*asking=*/false,
      [&](Connection& c) -> absl::Status {
        auto malformed = [&](absl::string_view what) {
          return c.Fail(REDIS_ERR_PROTOCOL,
                        absl::StrCat("SCAN returned ", what), timeout_);
        };
        std::string cursor = "0";
        do {
          CommandWriter scan;
          scan.Add({"SCAN", cursor, "MATCH", pattern, "COUNT", kScanCount});
          PROXYSTORE_RETURN_IF_ERROR(scan.Send(c.context(), timeout_));
          // [cursor, [key, ...]]
          PROXYSTORE_ASSIGN_OR_RETURN(Reply reply, c.ReadReply(timeout_));
          PROXYSTORE_RETURN_IF_ERROR(Expect(c, "SCAN", reply, '*', timeout_));
          if (reply.number != 2) return malformed("a malformed reply");
          PROXYSTORE_ASSIGN_OR_RETURN(Reply head, c.ReadReply(timeout_));
          if (head.type != '$' || head.nil() || head.number > kMaxCursorSize) {
            return malformed("a malformed cursor");
          }
          PROXYSTORE_ASSIGN_OR_RETURN(
              SharedBytes next,
              c.ReadString(static_cast<size_t>(head.number), timeout_));
          PROXYSTORE_ASSIGN_OR_RETURN(Reply found, c.ReadReply(timeout_));
          if (found.type != '*' ||
              found.number > static_cast<int64_t>(kMaxScanKeys)) {
            return malformed("a malformed or oversized list of keys");
          }
          std::vector<SharedBytes> names;
          std::vector<absl::string_view> args = {"UNLINK"};
          size_t bytes = 0;
          for (int64_t i = 0; i < found.number; ++i) {
            PROXYSTORE_ASSIGN_OR_RETURN(Reply k, c.ReadReply(timeout_));
            if (k.type != '$' || k.nil() ||
                static_cast<uint64_t>(k.number) > kMaxBatchBytes - bytes) {
              return malformed("a non-string key or too many key bytes");
            }
            bytes += static_cast<size_t>(k.number);
            PROXYSTORE_ASSIGN_OR_RETURN(
                SharedBytes name,
                c.ReadString(static_cast<size_t>(k.number), timeout_));
            names.push_back(std::move(name));
          }
          cursor = next.ToString();
          // Only keys under the prefix (a server that ignores MATCH could
          // name others), and in the Python layout only uuid-named ones:
          // what this layout could have written.
          std::erase_if(names, [&](const SharedBytes& name) {
            absl::string_view id = name.view();
            if (!absl::ConsumePrefix(&id, settings_.prefix)) return true;
            return settings_.python_layout && !IsPythonObjectId(id) &&
                   !IsObjectId(id);
          });
          if (names.empty()) continue;
          if (cluster()) {
            // The keys' slots differ: one UNLINK each, routed by slot.
            std::vector<std::string> keys;
            keys.reserve(names.size());
            for (const SharedBytes& name : names)
              keys.push_back(name.ToString());
            PROXYSTORE_RETURN_IF_ERROR(Unlink(keys));
            continue;
          }
          for (const SharedBytes& name : names) args.push_back(name.view());
          CommandWriter unlink;
          unlink.Add(args);
          PROXYSTORE_RETURN_IF_ERROR(
              RoundTrip(c, unlink, "UNLINK", ':', timeout_));
        } while (cursor != "0");
        return absl::OkStatus();
      },
      nullptr);
}

absl::Status RedisConnector::DoClose(const CloseOptions& options) {
  closed_.store(true, std::memory_order_release);
  absl::Status status = absl::OkStatus();
  if (options.clear.value_or(settings_.clear)) status = ClearKeys();
  DropIdle();
  return status;
}

PROXYSTORE_REGISTER_CONNECTOR("redis", &RedisConnector::FromConfig,
                              RedisConnector::KindTraits());

}  // namespace proxystore
