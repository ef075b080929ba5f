#include "proxystore/stream/redis_broker.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/connector.h"

namespace proxystore {
namespace {

struct FreeReply {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, FreeReply>;

// A transport failure (connection refused, reset, timed out): the command
// may be retried on a new connection. Anything else is the server's answer.
constexpr absl::string_view kTransportPayload = "proxystore/redis-transport";

absl::Status TransportError(absl::string_view what) {
  absl::Status s = absl::UnavailableError(what);
  s.SetPayload(kTransportPayload, absl::Cord("1"));
  return s;
}
bool IsTransport(const absl::Status& s) {
  return s.GetPayload(kTransportPayload).has_value();
}
const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

timeval BrokerTimeval(absl::Duration d) {
  d = std::max(d, absl::Milliseconds(1));
  return absl::ToTimeval(d);
}

std::string Str(const redisReply* r) {
  if (r == nullptr || r->str == nullptr) return "";
  return std::string(r->str, r->len);
}

bool IsBulk(const redisReply* r) {
  return r != nullptr &&
         (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

// [field, value, ...] of a stream entry; DataLoss for any other shape.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> EntryFields(
    const redisReply* fields) {
  if (fields == nullptr || fields->type != REDIS_REPLY_ARRAY ||
      fields->elements % 2 != 0) {
    return absl::DataLossError("stream entry: fields are not name/value pairs");
  }
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(fields->elements / 2);
  for (size_t i = 0; i < fields->elements; i += 2) {
    if (!IsBulk(fields->element[i]) || !IsBulk(fields->element[i + 1])) {
      return absl::DataLossError("stream entry: a field is not a string");
    }
    out.emplace_back(Str(fields->element[i]), Str(fields->element[i + 1]));
  }
  return out;
}

}  // namespace

// One connection, owned by the process that opened it.
class RedisStreamPublisher::Client {
 public:
  explicit Client(const RedisBrokerOptions& options) : options_(options) {}
  ~Client() { Drop(); }

  // One command on the current (or a new) connection. A transport failure
  // drops the connection and is an Unavailable marked as transport; a
  // server error is FailedPrecondition with the server's message.
  absl::StatusOr<ReplyPtr> Command(const std::vector<std::string>& argv,
                                   absl::Duration read_timeout) {
    PROXYSTORE_ASSIGN_OR_RETURN(std::vector<ReplyPtr> replies,
                                Pipeline({argv}, read_timeout));
    return std::move(replies[0]);
  }

  // Several commands sent at once; replies in order. Every reply is read
  // before any is judged, so a server error leaves the connection in step;
  // the first error is returned. On a transport failure the whole call
  // fails (some commands may have run).
  absl::StatusOr<std::vector<ReplyPtr>> Pipeline(
      const std::vector<std::vector<std::string>>& commands,
      absl::Duration read_timeout) {
    PROXYSTORE_RETURN_IF_ERROR(Connect());
    PROXYSTORE_RETURN_IF_ERROR(SetTimeout(read_timeout));
    for (const std::vector<std::string>& argv : commands) {
      std::vector<const char*> args;
      std::vector<size_t> lens;
      for (const std::string& a : argv) {
        args.push_back(a.data());
        lens.push_back(a.size());
      }
      if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()),
                                 args.data(), lens.data()) != REDIS_OK) {
        return Broken("append").status();
      }
    }
    std::vector<ReplyPtr> replies;
    for (size_t i = 0; i < commands.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK) {
        return Broken(commands[i].empty() ? "" : commands[i][0]).status();
      }
      replies.emplace_back(static_cast<redisReply*>(raw));
    }
    for (size_t i = 0; i < replies.size(); ++i) {
      PROXYSTORE_RETURN_IF_ERROR(
          Checked(replies[i].get(), commands[i].empty() ? "" : commands[i][0]));
    }
    return replies;
  }

  // Runs `attempt` until it succeeds, fails with a non-transport error, or
  // `retry_for` has passed since the first failure; waits a growing pause
  // (up to 1 s) between attempts while the broker is away.
  template <typename F>
  auto Retrying(F attempt) -> decltype(attempt()) {
    absl::Time first_failure = absl::InfiniteFuture();
    absl::Duration pause = absl::Milliseconds(20);
    for (;;) {
      auto result = attempt();
      if (result.ok() || !IsTransport(StatusOf(result))) return result;
      const absl::Time now = absl::Now();
      if (first_failure == absl::InfiniteFuture()) first_failure = now;
      if (now - first_failure >= options_.retry_for) {
        return Annotate(
            StatusOf(result),
            absl::StrCat("redis stream broker ", Where(), ": gave up after ",
                         absl::FormatDuration(options_.retry_for)));
      }
      absl::SleepFor(pause);
      pause = std::min(pause * 2, absl::Seconds(1));
    }
  }

  std::string Where() const {
    return options_.unix_socket.empty()
               ? absl::StrCat(options_.host, ":", options_.port)
               : options_.unix_socket;
  }

  void Drop() {
    if (ctx_ != nullptr) {
      // Frees this process's descriptor; no I/O, so a forked child may drop
      // its parent's connection.
      redisFree(ctx_);
      ctx_ = nullptr;
    }
  }

 private:
  absl::Status Connect() {
    if (ctx_ != nullptr && pid_ != getpid()) {
      Drop();  // the parent's; never shared with it
    }
    if (ctx_ != nullptr) return absl::OkStatus();
    const timeval tv = BrokerTimeval(options_.timeout);
    redisContext* c =
        options_.unix_socket.empty()
            ? redisConnectWithTimeout(options_.host.c_str(), options_.port, tv)
            : redisConnectUnixWithTimeout(options_.unix_socket.c_str(), tv);
    if (c == nullptr || c->err != 0) {
      const std::string why = c != nullptr ? c->errstr : "out of memory";
      if (c != nullptr) redisFree(c);
      return TransportError(absl::StrCat("redis stream broker ", Where(),
                                         ": cannot connect: ", why));
    }
    ctx_ = c;
    pid_ = getpid();
    if (!options_.password.empty()) {
      absl::StatusOr<ReplyPtr> auth =
          Command({"AUTH", options_.password}, options_.timeout);
      if (!auth.ok()) {
        Drop();
        return auth.status();
      }
    }
    return absl::OkStatus();
  }

  absl::Status SetTimeout(absl::Duration d) {
    if (redisSetTimeout(ctx_, BrokerTimeval(d)) != REDIS_OK) {
      return Broken("setting the socket timeout").status();
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ReplyPtr> Broken(absl::string_view what) {
    const std::string why = ctx_ != nullptr ? ctx_->errstr : "";
    Drop();
    return TransportError(absl::StrCat("redis stream broker ", Where(), ": ",
                                       what, " failed: ", why));
  }

  absl::Status Checked(const redisReply* reply, absl::string_view command) {
    if (reply == nullptr) return Broken(command).status();
    if (reply->type == REDIS_REPLY_ERROR) {
      return absl::FailedPreconditionError(
          absl::StrCat("redis stream broker ", Where(), ": ", command, ": ",
                       Str(reply).substr(0, 300)));
    }
    return absl::OkStatus();
  }

  const RedisBrokerOptions options_;
  redisContext* ctx_ = nullptr;
  pid_t pid_ = 0;
};

// --- Publisher --------------------------------------------------------------

absl::StatusOr<std::unique_ptr<RedisStreamPublisher>>
RedisStreamPublisher::Create(const RedisBrokerOptions& options) {
  auto client = std::make_unique<Client>(options);
  // Fail early, with retries, if the broker is not there at all.
  PROXYSTORE_RETURN_IF_ERROR(
      client
          ->Retrying([&] { return client->Command({"PING"}, options.timeout); })
          .status());
  return std::unique_ptr<RedisStreamPublisher>(
      new RedisStreamPublisher(std::move(client), options));
}

RedisStreamPublisher::RedisStreamPublisher(std::unique_ptr<Client> client,
                                           RedisBrokerOptions options)
    : client_(std::move(client)), options_(std::move(options)) {}

RedisStreamPublisher::~RedisStreamPublisher() = default;

absl::Status RedisStreamPublisher::Publish(
    absl::string_view topic, absl::Span<const StreamEvent> events) {
  if (client_ == nullptr) {
    return absl::FailedPreconditionError(
        "stream publisher: Publish after Close");
  }
  if (events.empty()) return absl::OkStatus();
  const std::string stream = absl::StrCat(options_.prefix, topic);
  std::vector<std::string> nonces;
  std::vector<std::vector<std::string>> commands;
  for (const StreamEvent& event : events) {
    nonces.push_back(NewObjectId());
    std::vector<std::string> argv = {"XADD", stream};
    if (options_.max_len.has_value()) {
      argv.insert(argv.end(), {"MAXLEN", "~", absl::StrCat(*options_.max_len)});
    }
    argv.push_back("*");
    for (auto& [name, value] : StreamEntryFields(event)) {
      argv.push_back(std::move(name));
      argv.push_back(std::move(value));
    }
    argv.insert(argv.end(), {"n", nonces.back()});
    commands.push_back(std::move(argv));
  }
  std::vector<bool> done(events.size(), false);
  // After a failure the XADDs may or may not have run: the nonces among
  // the newest entries say which did.
  auto find_done = [&]() -> absl::Status {
    PROXYSTORE_ASSIGN_OR_RETURN(
        ReplyPtr r, client_->Command({"XREVRANGE", stream, "+", "-", "COUNT",
                                      absl::StrCat(events.size() + 1000)},
                                     options_.timeout));
    if (r->type != REDIS_REPLY_ARRAY) return absl::OkStatus();
    for (size_t i = 0; i < r->elements; ++i) {
      const redisReply* entry = r->element[i];
      if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) continue;
      absl::StatusOr<std::vector<std::pair<std::string, std::string>>> f =
          EntryFields(entry->element[1]);
      if (!f.ok()) continue;
      for (const auto& [name, value] : *f) {
        if (name != "n") continue;
        for (size_t j = 0; j < nonces.size(); ++j) {
          if (nonces[j] == value) done[j] = true;
        }
      }
    }
    return absl::OkStatus();
  };
  bool failed_before = false;
  PROXYSTORE_RETURN_IF_ERROR(client_->Retrying([&]() -> absl::Status {
    if (failed_before) PROXYSTORE_RETURN_IF_ERROR(find_done());
    failed_before = true;
    std::vector<std::vector<std::string>> todo;
    for (size_t i = 0; i < commands.size(); ++i) {
      if (!done[i]) todo.push_back(commands[i]);
    }
    if (todo.empty()) return absl::OkStatus();
    PROXYSTORE_RETURN_IF_ERROR(
        client_->Pipeline(todo, options_.timeout).status());
    std::fill(done.begin(), done.end(), true);
    return absl::OkStatus();
  }));
  // The end marker goes after the end entry (subscribers rely on the order).
  const bool ends = std::any_of(
      events.begin(), events.end(),
      [](const StreamEvent& e) { return e.kind == StreamEvent::Kind::kEnd; });
  if (!ends) return absl::OkStatus();
  return client_
      ->Retrying([&] {
        return client_->Command({"SET", absl::StrCat(stream, ":end"), "1"},
                                options_.timeout);
      })
      .status();
}

absl::Status RedisStreamPublisher::Close() {
  client_.reset();
  return absl::OkStatus();
}

// --- Subscriber -------------------------------------------------------------

absl::StatusOr<std::unique_ptr<RedisStreamSubscriber>>
RedisStreamSubscriber::Create(const RedisBrokerOptions& options,
                              const RedisSubscriberOptions& subscriber) {
  if (subscriber.topic.empty() || subscriber.group.empty() ||
      subscriber.consumer.empty()) {
    return absl::InvalidArgumentError(
        "stream subscriber: topic, group and consumer must be non-empty");
  }
  auto client = std::make_unique<RedisStreamPublisher::Client>(options);
  std::unique_ptr<RedisStreamSubscriber> s(
      new RedisStreamSubscriber(std::move(client), options, subscriber));
  PROXYSTORE_RETURN_IF_ERROR(
      s->client_->Retrying([&] { return s->EnsureGroup(); }));
  return s;
}

RedisStreamSubscriber::RedisStreamSubscriber(
    std::unique_ptr<RedisStreamPublisher::Client> client,
    RedisBrokerOptions options, RedisSubscriberOptions subscriber)
    : client_(std::move(client)),
      options_(std::move(options)),
      sub_(std::move(subscriber)),
      stream_(absl::StrCat(options_.prefix, sub_.topic)) {}

RedisStreamSubscriber::~RedisStreamSubscriber() { Close().IgnoreError(); }

absl::Status RedisStreamSubscriber::EnsureGroup() {
  absl::StatusOr<ReplyPtr> r = client_->Command(
      {"XGROUP", "CREATE", stream_, sub_.group, "0", "MKSTREAM"},
      options_.timeout);
  if (!r.ok() && absl::StrContains(r.status().message(), "BUSYGROUP")) {
    return absl::OkStatus();  // the group is there
  }
  return r.status();
}

absl::Status RedisStreamSubscriber::AckLast() {
  if (last_id_.empty()) return absl::OkStatus();
  PROXYSTORE_RETURN_IF_ERROR(client_
                                 ->Retrying([&] {
                                   return client_->Command(
                                       {"XACK", stream_, sub_.group, last_id_},
                                       options_.timeout);
                                 })
                                 .status());
  last_id_.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::optional<StreamEvent>> RedisStreamSubscriber::ReadOne(
    bool pending, absl::Duration block) {
  for (;;) {
    std::vector<std::string> argv = {"XREADGROUP",  "GROUP", sub_.group,
                                     sub_.consumer, "COUNT", "1"};
    if (!pending) {
      argv.insert(argv.end(),
                  {"BLOCK", absl::StrCat(std::max<int64_t>(
                                1, absl::ToInt64Milliseconds(block)))});
    }
    argv.insert(argv.end(), {"STREAMS", stream_, pending ? "0" : ">"});
    absl::StatusOr<ReplyPtr> r =
        client_->Command(argv, block + options_.timeout);
    if (!r.ok()) {
      if (IsTransport(r.status())) {
        // What the server handed out before the failure is pending now.
        read_pending_ = true;
      } else if (absl::StrContains(r.status().message(), "NOGROUP")) {
        // The broker lost the stream (restarted without persistence).
        PROXYSTORE_RETURN_IF_ERROR(EnsureGroup());
        continue;
      }
      return r.status();
    }
    const redisReply* top = r->get();
    if (top->type == REDIS_REPLY_NIL) return std::nullopt;
    if (top->type != REDIS_REPLY_ARRAY || top->elements != 1 ||
        top->element[0]->type != REDIS_REPLY_ARRAY ||
        top->element[0]->elements != 2 ||
        top->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
      return absl::DataLossError("XREADGROUP: unexpected reply shape");
    }
    const redisReply* entries = top->element[0]->element[1];
    if (entries->elements == 0) return std::nullopt;
    const redisReply* entry = entries->element[0];
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        !IsBulk(entry->element[0])) {
      return absl::DataLossError("XREADGROUP: unexpected entry shape");
    }
    last_id_ = Str(entry->element[0]);
    if (entry->element[1]->type == REDIS_REPLY_NIL) {
      // A pending entry trimmed away (MAXLEN) before it was acknowledged.
      PROXYSTORE_RETURN_IF_ERROR(AckLast());
      continue;
    }
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> fields =
        EntryFields(entry->element[1]);
    absl::StatusOr<StreamEvent> event =
        fields.ok() ? ParseStreamEntry(*fields, options_.limits)
                    : absl::StatusOr<StreamEvent>(fields.status());
    if (!event.ok()) {
      // Acknowledged, or it would come back forever.
      const std::string id = last_id_;
      PROXYSTORE_RETURN_IF_ERROR(AckLast());
      return Annotate(event.status(),
                      absl::StrCat("stream ", stream_, " entry ", id));
    }
    return *std::move(event);
  }
}

absl::StatusOr<std::optional<StreamEvent>> RedisStreamSubscriber::Next(
    std::optional<absl::Duration> timeout) {
  if (client_ == nullptr) {
    return absl::FailedPreconditionError("stream subscriber: Next after Close");
  }
  if (ended_) return StreamEvent{.kind = StreamEvent::Kind::kEnd};
  PROXYSTORE_RETURN_IF_ERROR(AckLast());
  const absl::Time deadline =
      timeout.has_value() ? absl::Now() + *timeout : absl::InfiniteFuture();
  auto got = [&](std::optional<StreamEvent> e) {
    if (e.has_value() && e->kind == StreamEvent::Kind::kEnd) ended_ = true;
    return e;
  };
  for (;;) {
    while (read_pending_) {
      PROXYSTORE_ASSIGN_OR_RETURN(std::optional<StreamEvent> e,
                                  client_->Retrying([&] {
                                    return ReadOne(true, absl::ZeroDuration());
                                  }));
      if (e.has_value()) return got(std::move(e));
      read_pending_ = false;
    }
    const absl::Duration block =
        std::min(options_.block_slice,
                 std::max(deadline - absl::Now(), absl::ZeroDuration()));
    PROXYSTORE_ASSIGN_OR_RETURN(
        std::optional<StreamEvent> e,
        client_->Retrying([&] { return ReadOne(false, block); }));
    if (e.has_value()) return got(std::move(e));
    if (read_pending_) continue;  // reconnected: pending first
    // Nothing new: ended if the end marker is set and, read after it, the
    // group still has nothing new (the end entry was appended before the
    // marker, so it and everything before it were handed out).
    PROXYSTORE_ASSIGN_OR_RETURN(ReplyPtr marker, client_->Retrying([&] {
      return client_->Command({"GET", absl::StrCat(stream_, ":end")},
                              options_.timeout);
    }));
    if (marker->type != REDIS_REPLY_NIL) {
      PROXYSTORE_ASSIGN_OR_RETURN(
          std::optional<StreamEvent> after, client_->Retrying([&] {
            return ReadOne(false, absl::Milliseconds(1));
          }));
      if (after.has_value()) return got(std::move(after));
      if (!read_pending_) {
        ended_ = true;
        return StreamEvent{.kind = StreamEvent::Kind::kEnd};
      }
      continue;
    }
    if (absl::Now() >= deadline) return std::nullopt;
  }
}

absl::Status RedisStreamSubscriber::Close() {
  if (client_ == nullptr) return absl::OkStatus();
  absl::Status acked = AckLast();
  client_.reset();
  return acked;
}

}  // namespace proxystore
