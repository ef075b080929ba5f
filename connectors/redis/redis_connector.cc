#include "connectors/redis/redis_connector.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "store/status.h"

namespace proxystore {
namespace {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// Command arguments at least this long are sent from the caller's memory;
// shorter ones are copied next to the protocol framing.
constexpr size_t kExternalArgMin = size_t{16} << 10;
// A connection going back to the pool keeps at most this much hiredis read
// buffer (a big GET grows it to the reply's size; hiredis itself would only
// shrink it at the connection's next read).
constexpr size_t kMaxIdleReadBuffer = size_t{64} << 10;
// Keys per SCAN step of a clearing Close.
constexpr absl::string_view kScanCount = "1000";

std::string Quote(absl::string_view s) { return QuoteForMessage(s); }

timeval ToTimeval(int64_t ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

// hiredis's text for a socket timeout (SO_RCVTIMEO/SO_SNDTIMEO -> EAGAIN).
const std::string& TimeoutText() {
  static const std::string text = std::generic_category().message(EAGAIN);
  return text;
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

absl::string_view ReplyTypeName(int type) {
  switch (type) {
    case REDIS_REPLY_STRING:
      return "string";
    case REDIS_REPLY_ARRAY:
      return "array";
    case REDIS_REPLY_INTEGER:
      return "integer";
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_STATUS:
      return "status";
    case REDIS_REPLY_ERROR:
      return "error";
  }
  return "unknown";
}

// An error reply, as a status naming the command and quoting the server.
absl::Status ErrorReplyStatus(absl::string_view command,
                              const redisReply& reply) {
  const absl::string_view message(reply.str, reply.len);
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

// OK if `reply` has type `type`; an error reply becomes ErrorReplyStatus.
absl::Status ExpectType(absl::string_view command, const redisReply& reply,
                        int type) {
  if (reply.type == type) return absl::OkStatus();
  if (reply.type == REDIS_REPLY_ERROR) return ErrorReplyStatus(command, reply);
  return absl::InternalError(
      absl::StrCat(command, " returned a ", ReplyTypeName(reply.type),
                   " reply, expected ", ReplyTypeName(type)));
}

// The bytes of a string reply, owned by the reply itself: no copy.
SharedBytes ReplyBytes(ReplyPtr reply) {
  const absl::string_view view(reply->str, reply->len);
  std::shared_ptr<const void> owner(reply.release(),
                                    [](redisReply* r) { freeReplyObject(r); });
  return SharedBytes::FromOwner(std::move(owner), view);
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

// Reads one reply; a transport failure leaves c->err set.
absl::StatusOr<ReplyPtr> ReadReply(redisContext* c, absl::string_view timeout) {
  void* raw = nullptr;
  if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
    if (c->err == 0) SetContextError(c, REDIS_ERR_OTHER, "no reply");
    return TransportError(c, timeout);
  }
  return ReplyPtr(static_cast<redisReply*>(raw));
}

// RESP commands, pipelined, sent with sendmsg(2) straight from the callers'
// buffers: long arguments (values) are iovecs pointing at the caller's bytes
// and only the framing and short arguments are copied. hiredis's own writer
// would copy each value twice into its output buffer and memmove the rest
// after every partial write; and its write(2) raises SIGPIPE on a dead
// connection, where MSG_NOSIGNAL gives EPIPE. The viewed arguments must
// outlive Send(). Replies are read with hiredis (ReadReply); hiredis's
// output buffer stays empty throughout.
class CommandWriter {
 public:
  void Add(absl::Span<const absl::string_view> args) {
    absl::StrAppend(&framing_, "*", args.size(), "\r\n");
    for (const absl::string_view& arg : args) {
      AppendArg(absl::MakeConstSpan(&arg, 1));
    }
    ++commands_;
  }
  // A command of `args` and then one more argument: the concatenation of
  // `last_parts`, sent from the parts themselves.
  void AddJoiningLast(absl::Span<const absl::string_view> args,
                      absl::Span<const absl::string_view> last_parts) {
    absl::StrAppend(&framing_, "*", args.size() + 1, "\r\n");
    for (const absl::string_view& arg : args) {
      AppendArg(absl::MakeConstSpan(&arg, 1));
    }
    AppendArg(last_parts);
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

// Sends `writer`'s commands and checks that each reply has `type`. Reads
// every reply even after an error reply, so the connection stays in step.
absl::Status RoundTrip(redisContext* c, const CommandWriter& writer,
                       absl::string_view command, int type,
                       absl::string_view timeout) {
  PROXYSTORE_RETURN_IF_ERROR(writer.Send(c, timeout));
  absl::Status first = absl::OkStatus();
  for (size_t i = 0; i < writer.commands(); ++i) {
    PROXYSTORE_ASSIGN_OR_RETURN(ReplyPtr reply, ReadReply(c, timeout));
    first.Update(ExpectType(command, *reply, type));
  }
  return first;
}

// Frees a big, fully consumed read buffer, as hiredis would on its next read,
// by swapping in a fresh reader (sds.h lacks extern "C", so its sdsfree and
// sdsempty cannot be called from C++). False if the connection is unusable.
bool TrimReadBuffer(redisContext* c) {
  redisReader* r = c->reader;
  if (r == nullptr || r->buf == nullptr) return false;
  const bool idle = r->pos == r->len && r->ridx == -1;
  if (!idle || sdsalloc(r->buf) <= kMaxIdleReadBuffer) return true;
  redisReader* fresh = redisReaderCreate();
  if (fresh == nullptr) return false;
  redisReaderFree(r);
  c->reader = fresh;
  return true;
}

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

}  // namespace

void RedisConnector::ContextDeleter::operator()(redisContext* c) const {
  redisFree(c);
}

RedisConnector::RedisConnector(Settings settings)
    : settings_(std::move(settings)),
      endpoint_(settings_.unix_socket.empty()
                    ? absl::StrCat(settings_.host, ":", settings_.port)
                    : settings_.unix_socket) {}

RedisConnector::~RedisConnector() = default;

absl::StatusOr<std::unique_ptr<RedisConnector>> RedisConnector::Create(
    const ConnectorConfig& options) {
  PROXYSTORE_RETURN_IF_ERROR(options.CheckKnownOptions(
      {"host", "port", "unix_socket", "db", "password", "prefix",
       "connect_timeout_ms", "command_timeout_ms", "clear"}));
  auto has = [&options](const char* name) {
    return options.options.count(name) > 0;
  };
  Settings s;
  if (has("unix_socket")) {
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
    if (s.host.empty() || s.host.find('\0') != std::string::npos) {
      return OptionError(absl::StrCat(
          "option \"host\" must be a non-empty host name without NUL bytes, "
          "got ",
          Quote(s.host)));
    }
    PROXYSTORE_ASSIGN_OR_RETURN(
        int64_t port, GetIntInRange(options, "port", kDefaultPort, 1, 65535));
    s.port = static_cast<int>(port);
  }
  PROXYSTORE_ASSIGN_OR_RETURN(s.db,
                              GetIntInRange(options, "db", 0, 0, INT_MAX));
  PROXYSTORE_ASSIGN_OR_RETURN(s.password, options.GetString("password"));
  if (has("prefix")) {
    PROXYSTORE_ASSIGN_OR_RETURN(s.prefix, options.GetString("prefix"));
    if (s.prefix.empty()) {
      // Clearing deletes every key that starts with the prefix.
      return OptionError(
          "option \"prefix\" must not be empty (a clearing Close would delete "
          "every key in the database)");
    }
    if (s.prefix.size() > kMaxPrefixSize) {
      return OptionError(absl::StrCat("option \"prefix\" is longer than ",
                                      kMaxPrefixSize, " bytes"));
    }
  } else {
    s.prefix = absl::StrCat("proxystore:", NewObjectId(), ":");
  }
  PROXYSTORE_ASSIGN_OR_RETURN(
      s.connect_timeout_ms,
      GetIntInRange(options, "connect_timeout_ms", kDefaultConnectTimeoutMs, 1,
                    kMaxTimeoutMs));
  PROXYSTORE_ASSIGN_OR_RETURN(
      s.command_timeout_ms,
      GetIntInRange(options, "command_timeout_ms", kDefaultCommandTimeoutMs, 1,
                    kMaxTimeoutMs));
  PROXYSTORE_ASSIGN_OR_RETURN(s.clear, options.GetBool("clear", false));
  // Not make_unique: the constructor is private.
  return std::unique_ptr<RedisConnector>(new RedisConnector(std::move(s)));
}

absl::StatusOr<std::unique_ptr<Connector>> RedisConnector::FromConfig(
    const ConnectorConfig& config) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<RedisConnector> c,
                              Create(config));
  return std::unique_ptr<Connector>(std::move(c));
}

ConnectorConfig RedisConnector::Config() const {
  ConnectorConfig config{
      std::string(kKind),
      {{"db", absl::StrCat(settings_.db)},
       {"prefix", settings_.prefix},
       {"connect_timeout_ms", absl::StrCat(settings_.connect_timeout_ms)},
       {"command_timeout_ms", absl::StrCat(settings_.command_timeout_ms)},
       {"clear", settings_.clear ? "true" : "false"}}};
  if (settings_.unix_socket.empty()) {
    config.options["host"] = settings_.host;
    config.options["port"] = absl::StrCat(settings_.port);
  } else {
    config.options["unix_socket"] = settings_.unix_socket;
  }
  if (!settings_.password.empty()) {
    config.options["password"] = settings_.password;
  }
  return config;
}

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
  if (!key.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "redis connector (", endpoint_, "): ", op, ": the key is empty"));
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

absl::StatusOr<RedisConnector::ContextPtr> RedisConnector::Connect() const {
  const timeval connect_tv = ToTimeval(settings_.connect_timeout_ms);
  ContextPtr c(settings_.unix_socket.empty()
                   ? redisConnectWithTimeout(settings_.host.c_str(),
                                             settings_.port, connect_tv)
                   : redisConnectUnixWithTimeout(settings_.unix_socket.c_str(),
                                                 connect_tv));
  if (c == nullptr) {
    return absl::ResourceExhaustedError(
        "hiredis could not allocate a connection");
  }
  if (c->err != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to ", endpoint_, ": ", c->errstr,
        // hiredis reports its own connect timeout as ETIMEDOUT.
        TimedOut(c.get()) || std::strstr(c->errstr, "timed out") != nullptr
            ? absl::StrCat(
                  " (connect_timeout_ms=", settings_.connect_timeout_ms, ")")
            : ""));
  }
  // AUTH and SELECT are bounded by the connect timeout too.
  if (redisSetTimeout(c.get(), connect_tv) != REDIS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot set socket timeouts: ", c->errstr));
  }
  if (settings_.unix_socket.empty()) {
    // Detects a vanished peer on idle pooled connections; best effort.
    (void)redisEnableKeepAlive(c.get());
  }
  const std::string timeout =
      absl::StrCat("connect_timeout_ms=", settings_.connect_timeout_ms, " ms");
  // Both in one round trip.
  CommandWriter setup;
  const std::string db = absl::StrCat(settings_.db);
  if (!settings_.password.empty()) setup.Add({"AUTH", settings_.password});
  if (settings_.db != 0) setup.Add({"SELECT", db});
  if (setup.commands() > 0) {
    PROXYSTORE_RETURN_IF_ERROR(setup.Send(c.get(), timeout));
    absl::Status first = absl::OkStatus();
    if (!settings_.password.empty()) {
      PROXYSTORE_ASSIGN_OR_RETURN(ReplyPtr r, ReadReply(c.get(), timeout));
      first.Update(ExpectType("AUTH", *r, REDIS_REPLY_STATUS));
    }
    if (settings_.db != 0) {
      PROXYSTORE_ASSIGN_OR_RETURN(ReplyPtr r, ReadReply(c.get(), timeout));
      first.Update(
          ExpectType(absl::StrCat("SELECT ", db), *r, REDIS_REPLY_STATUS));
    }
    PROXYSTORE_RETURN_IF_ERROR(first);
  }
  if (redisSetTimeout(c.get(), ToTimeval(settings_.command_timeout_ms)) !=
      REDIS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot set socket timeouts: ", c->errstr));
  }
  return c;
}

absl::Status RedisConnector::Run(
    absl::string_view op, bool check_open,
    absl::FunctionRef<absl::Status(redisContext*)> fn) {
  if (check_open) PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  auto annotate = [&](const absl::Status& s) {
    return Annotate(s, absl::StrCat("redis connector (", endpoint_, "): ", op));
  };
  for (int attempt = 0;; ++attempt) {
    ContextPtr c;
    bool reused = false;
    if (attempt == 0) {
      MutexLock lock(mu_);
      if (!idle_.empty()) {
        c = std::move(idle_.back());
        idle_.pop_back();
        reused = true;
      }
    }
    if (c == nullptr) {
      absl::StatusOr<ContextPtr> made = Connect();
      if (!made.ok()) return annotate(made.status());
      c = *std::move(made);
    }
    absl::Status status = fn(c.get());
    if (c->err == 0) {
      Release(std::move(c));
      return annotate(status);
    }
    // The connection is broken. Idle ones probably are too (a restarted or
    // crashed server): drop them all.
    const bool timed_out = TimedOut(c.get());
    c.reset();
    DropIdle();
    // A connection that sat in the pool may have died while idle: try once
    // more on a new one. Not after a timeout: that would double the wait.
    if (!reused || timed_out || attempt > 0) return annotate(status);
  }
}

void RedisConnector::Release(ContextPtr context) {
  if (!TrimReadBuffer(context.get())) return;
  ContextPtr surplus;  // Closed outside the lock.
  MutexLock lock(mu_);
  if (closed_.load(std::memory_order_acquire) ||
      idle_.size() >= kMaxIdleConnections) {
    surplus = std::move(context);
  } else {
    idle_.push_back(std::move(context));
  }
}

void RedisConnector::DropIdle() {
  std::vector<ContextPtr> idle;
  {
    MutexLock lock(mu_);
    idle.swap(idle_);
  }
}

absl::StatusOr<Key> RedisConnector::DoPut(SharedBytes data,
                                          const PutOptions& options) {
  const absl::string_view part = data.view();
  return DoPutParts(absl::MakeConstSpan(&part, 1), options);
}

absl::StatusOr<Key> RedisConnector::DoPutParts(
    absl::Span<const absl::string_view> parts, const PutOptions& /*options*/) {
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen("Put"));
  size_t size = 0;
  for (absl::string_view part : parts) size += part.size();
  PROXYSTORE_RETURN_IF_ERROR(CheckValueSize(size, "Put"));
  Key key(NewObjectId());
  const std::string redis_key = RedisKey(key);
  CommandWriter writer;
  writer.AddJoiningLast({"SET", redis_key}, parts);
  const std::string timeout =
      absl::StrCat("command_timeout_ms=", settings_.command_timeout_ms, " ms");
  PROXYSTORE_RETURN_IF_ERROR(
      Run(absl::StrCat("Put of key ", Quote(key.id())), /*check_open=*/true,
          [&](redisContext* c) {
            return RoundTrip(c, writer, "SET", REDIS_REPLY_STATUS, timeout);
          }));
  return key;
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
    keys.emplace_back(NewObjectId());
    redis_keys.push_back(RedisKey(keys.back()));
  }
  // MSETs of at most kMaxBatchItems pairs and about kMaxBatchBytes of values
  // (a bigger value goes alone), all sent before any reply is read.
  CommandWriter writer;
  std::vector<absl::string_view> args;
  for (size_t i = 0; i < data.size();) {
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
  const std::string timeout =
      absl::StrCat("command_timeout_ms=", settings_.command_timeout_ms, " ms");
  PROXYSTORE_RETURN_IF_ERROR(
      Run(absl::StrCat("PutBatch of ", data.size(), " objects"),
          /*check_open=*/true, [&](redisContext* c) {
            return RoundTrip(c, writer, "MSET", REDIS_REPLY_STATUS, timeout);
          }));
  return keys;
}

absl::StatusOr<std::optional<SharedBytes>> RedisConnector::DoGet(
    const Key& key) {
  const std::string op = absl::StrCat("Get of key ", Quote(key.id()));
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  PROXYSTORE_RETURN_IF_ERROR(CheckKey(key, op));
  const std::string redis_key = RedisKey(key);
  CommandWriter writer;
  writer.Add({"GET", redis_key});
  const std::string timeout =
      absl::StrCat("command_timeout_ms=", settings_.command_timeout_ms, " ms");
  std::optional<SharedBytes> result;
  PROXYSTORE_RETURN_IF_ERROR(
      Run(op, /*check_open=*/true, [&](redisContext* c) -> absl::Status {
        result.reset();
        PROXYSTORE_RETURN_IF_ERROR(writer.Send(c, timeout));
        PROXYSTORE_ASSIGN_OR_RETURN(ReplyPtr reply, ReadReply(c, timeout));
        if (reply->type == REDIS_REPLY_NIL) return absl::OkStatus();
        PROXYSTORE_RETURN_IF_ERROR(
            ExpectType("GET", *reply, REDIS_REPLY_STRING));
        result = ReplyBytes(std::move(reply));
        return absl::OkStatus();
      }));
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
  // MGETs of at most kMaxBatchItems keys, all sent before any reply is read.
  CommandWriter writer;
  std::vector<size_t> chunk_sizes;
  std::vector<absl::string_view> args;
  for (size_t i = 0; i < keys.size(); i += kMaxBatchItems) {
    const size_t n = std::min(kMaxBatchItems, keys.size() - i);
    args.assign({"MGET"});
    for (size_t j = i; j < i + n; ++j) args.push_back(redis_keys[j]);
    writer.Add(args);
    chunk_sizes.push_back(n);
  }
  const std::string timeout =
      absl::StrCat("command_timeout_ms=", settings_.command_timeout_ms, " ms");
  PROXYSTORE_RETURN_IF_ERROR(
      Run(op, /*check_open=*/true, [&](redisContext* c) -> absl::Status {
        results.clear();
        results.reserve(keys.size());
        PROXYSTORE_RETURN_IF_ERROR(writer.Send(c, timeout));
        absl::Status first = absl::OkStatus();
        for (size_t n : chunk_sizes) {
          PROXYSTORE_ASSIGN_OR_RETURN(ReplyPtr reply, ReadReply(c, timeout));
          absl::Status s = ExpectType("MGET", *reply, REDIS_REPLY_ARRAY);
          if (s.ok() && reply->elements != n) {
            s = absl::InternalError(absl::StrCat(
                "MGET of ", n, " keys returned ", reply->elements, " values"));
          }
          if (!s.ok()) {
            first.Update(s);
            continue;
          }
          // Each value takes its own element out of the array, so that it
          // keeps only its own bytes alive. The emptied array is freed here.
          std::vector<ReplyPtr> elements;
          elements.reserve(n);
          for (size_t j = 0; j < n; ++j) {
            elements.emplace_back(reply->element[j]);
            reply->element[j] = nullptr;
          }
          reply->elements = 0;
          reply.reset();
          for (ReplyPtr& e : elements) {
            if (e == nullptr || e->type == REDIS_REPLY_NIL) {
              results.emplace_back();
            } else if (e->type == REDIS_REPLY_STRING) {
              results.emplace_back(ReplyBytes(std::move(e)));
            } else {
              first.Update(ExpectType("MGET", *e, REDIS_REPLY_STRING));
              results.emplace_back();
            }
          }
        }
        return first;
      }));
  return results;
}

absl::StatusOr<bool> RedisConnector::DoExists(const Key& key) {
  const std::string op = absl::StrCat("Exists of key ", Quote(key.id()));
  PROXYSTORE_RETURN_IF_ERROR(CheckOpen(op));
  PROXYSTORE_RETURN_IF_ERROR(CheckKey(key, op));
  const std::string redis_key = RedisKey(key);
  CommandWriter writer;
  writer.Add({"EXISTS", redis_key});
  const std::string timeout =
      absl::StrCat("command_timeout_ms=", settings_.command_timeout_ms, " ms");
  bool exists = false;
  PROXYSTORE_RETURN_IF_ERROR(
      Run(op, /*check_open=*/true, [&](redisContext* c) -> absl::Status {
        PROXYSTORE_RETURN_IF_ERROR(writer.Send(c, timeout));
        PROXYSTORE_ASSIGN_OR_RETURN(ReplyPtr reply, ReadReply(c, timeout));
        PROXYSTORE_RETURN_IF_ERROR(
            ExpectType("EXISTS", *reply, REDIS_REPLY_INTEGER));
        exists = reply->integer > 0;
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
  const std::string timeout =
      absl::StrCat("command_timeout_ms=", settings_.command_timeout_ms, " ms");
  return Run(op, /*check_open=*/true, [&](redisContext* c) {
    return RoundTrip(c, writer, "UNLINK", REDIS_REPLY_INTEGER, timeout);
  });
}

absl::Status RedisConnector::ClearKeys() {
  const std::string pattern = absl::StrCat(EscapeGlob(settings_.prefix), "*");
  const std::string timeout =
      absl::StrCat("command_timeout_ms=", settings_.command_timeout_ms, " ms");
  return Run(
      absl::StrCat("Close, clearing keys matching ", Quote(pattern)),
      /*check_open=*/false, [&](redisContext* c) -> absl::Status {
        std::string cursor = "0";
        do {
          CommandWriter scan;
          scan.Add({"SCAN", cursor, "MATCH", pattern, "COUNT", kScanCount});
          PROXYSTORE_RETURN_IF_ERROR(scan.Send(c, timeout));
          PROXYSTORE_ASSIGN_OR_RETURN(ReplyPtr reply, ReadReply(c, timeout));
          PROXYSTORE_RETURN_IF_ERROR(
              ExpectType("SCAN", *reply, REDIS_REPLY_ARRAY));
          if (reply->elements != 2 ||
              reply->element[0]->type != REDIS_REPLY_STRING ||
              reply->element[1]->type != REDIS_REPLY_ARRAY) {
            return absl::InternalError("SCAN returned a malformed reply");
          }
          cursor.assign(reply->element[0]->str, reply->element[0]->len);
          const redisReply& found = *reply->element[1];
          if (found.elements == 0) continue;
          std::vector<absl::string_view> args = {"UNLINK"};
          for (size_t i = 0; i < found.elements; ++i) {
            const redisReply& k = *found.element[i];
            if (k.type != REDIS_REPLY_STRING) {
              return absl::InternalError("SCAN returned a non-string key");
            }
            args.emplace_back(k.str, k.len);
          }
          CommandWriter unlink;
          unlink.Add(args);
          PROXYSTORE_RETURN_IF_ERROR(
              RoundTrip(c, unlink, "UNLINK", REDIS_REPLY_INTEGER, timeout));
        } while (cursor != "0");
        return absl::OkStatus();
      });
}

absl::Status RedisConnector::DoClose(const CloseOptions& options) {
  closed_.store(true, std::memory_order_release);
  absl::Status status = absl::OkStatus();
  if (options.clear.value_or(settings_.clear)) status = ClearKeys();
  DropIdle();
  return status;
}

PROXYSTORE_REGISTER_CONNECTOR("redis", &RedisConnector::FromConfig);

}  // namespace proxystore
