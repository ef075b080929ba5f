// Redis Streams as a proxy stream's broker.
//
// Why Redis Streams and not pub/sub: pub/sub delivers a message only to the
// subscribers connected at that moment, so a consumer that restarts (or
// starts late) loses what was published meanwhile. A stream keeps its
// entries (XADD); a consumer group hands each entry to one consumer of the
// group (load balancing over processes) and remembers what each consumer
// was handed and has not acknowledged (XREADGROUP, XACK). Several groups on
// one topic each see every event.
//
// Topic `t` is the stream key `<prefix><t>`. The publisher appends one
// entry per event (event.h lists the fields) plus a nonce: if the
// connection fails after an XADD was sent, it reconnects and looks for the
// nonce among the newest entries (the batch's size + 1000) before sending
// again, so a broker restart or a lost reply neither drops nor duplicates an
// event (unless other producers appended over 1000 entries to the topic in
// between). Entries stay in the stream after they are acknowledged (Redis
// keeps them): `max_len` trims each topic to about that many.
//
// The subscriber is one named consumer of a group (the group is created,
// with the stream, at the first entry when missing). It acknowledges an
// event when asked for the next one (or at Close), so an event is
// acknowledged only once the application came back for more. After a
// crash, a consumer that restarts under the same name first gets the events
// it was handed and had not acknowledged: nothing is lost; the event it was
// working on when it died is delivered again (at-least-once for the one
// in-flight event; a clean Close loses and repeats nothing).
//
// End of stream: the producer appends an end entry and only then sets the
// marker key `<prefix><t>:end`. The consumer handed the end entry ends at
// once; the others of the group end when the marker is set and the group
// has nothing new for them (it is handed out in order, so everything before
// the end has been handed to someone), within one `block_slice`.
//
// Connections belong to the process that opened them: after fork a child
// opens its own. A broker that goes away is retried until `retry_for`
// passes, then Unavailable.
//
// Thread-safety: a publisher or subscriber is used by one thread at a time.
#ifndef PROXYSTORE_STREAM_REDIS_BROKER_H_
#define PROXYSTORE_STREAM_REDIS_BROKER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proxystore/stream/broker.h"
#include "proxystore/stream/event.h"

namespace proxystore {

struct RedisBrokerOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  // Non-empty: connect over this Unix socket instead of TCP.
  std::string unix_socket;
  std::string password;
  // Stream keys are <prefix><topic>.
  std::string prefix = "proxystore:stream:";
  // Each connect and command (besides a consumer's blocking wait).
  absl::Duration timeout = absl::Seconds(5);
  // How long a failing broker is retried (reconnects) before Unavailable.
  absl::Duration retry_for = absl::Seconds(30);
  // Publisher: keep about this many entries per topic (XADD MAXLEN ~).
  std::optional<int64_t> max_len;
  // Subscriber: the longest single blocking read (end-of-stream checks
  // happen between them).
  absl::Duration block_slice = absl::Milliseconds(100);
  // Subscriber: what an entry may hold. Checked once hiredis has read the
  // reply (Debian 12's hiredis 0.14 has no reader limits of its own); one
  // entry per read (COUNT 1) bounds a reply to one entry.
  StreamEventLimits limits;
};

class RedisStreamPublisher final : public StreamPublisher {
 public:
  static absl::StatusOr<std::unique_ptr<RedisStreamPublisher>> Create(
      const RedisBrokerOptions& options);
  ~RedisStreamPublisher() override;

  absl::Status Publish(absl::string_view topic,
                       absl::Span<const StreamEvent> events) override;
  absl::Status Close() override;

  class Client;

 private:
  explicit RedisStreamPublisher(std::unique_ptr<Client> client,
                                RedisBrokerOptions options);
  std::unique_ptr<Client> client_;
  RedisBrokerOptions options_;
};

struct RedisSubscriberOptions {
  std::string topic;
  // Consumers of one group share the events; each group sees all of them.
  std::string group = "proxystore";
  // Stable across restarts: a consumer that restarts under its name gets
  // what it was handed and had not acknowledged.
  std::string consumer;
};

class RedisStreamSubscriber final : public StreamSubscriber {
 public:
  // InvalidArgument for an empty topic, group or consumer.
  static absl::StatusOr<std::unique_ptr<RedisStreamSubscriber>> Create(
      const RedisBrokerOptions& options,
      const RedisSubscriberOptions& subscriber);
  ~RedisStreamSubscriber() override;

  absl::StatusOr<std::optional<StreamEvent>> Next(
      std::optional<absl::Duration> timeout) override;
  // Acknowledges the last event handed out.
  absl::Status Close() override;

 private:
  RedisStreamSubscriber(std::unique_ptr<RedisStreamPublisher::Client> client,
                        RedisBrokerOptions options,
                        RedisSubscriberOptions subscriber);
  absl::Status EnsureGroup();
  absl::Status AckLast();
  // One XREADGROUP: pending (own unacknowledged entries) or new ones,
  // blocking up to `block` for new ones.
  absl::StatusOr<std::optional<StreamEvent>> ReadOne(bool pending,
                                                     absl::Duration block);

  std::unique_ptr<RedisStreamPublisher::Client> client_;
  RedisBrokerOptions options_;
  RedisSubscriberOptions sub_;
  std::string stream_;
  std::string last_id_;  // handed out, not yet acknowledged
  bool read_pending_ = true;
  bool ended_ = false;
};

}  // namespace proxystore

#endif  // PROXYSTORE_STREAM_REDIS_BROKER_H_
