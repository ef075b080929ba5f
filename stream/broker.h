// The broker side of a proxy stream (ProxyStore's Publisher / Subscriber
// protocols): StreamProducer publishes events through a StreamPublisher and
// StreamConsumer reads them through a StreamSubscriber. redis_broker.h has
// the Redis Streams implementation.
//
// Thread-safety: implementations say; StreamProducer and StreamConsumer use
// one from one thread at a time.
#ifndef PROXYSTORE_STREAM_BROKER_H_
#define PROXYSTORE_STREAM_BROKER_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "proxystore/stream/event.h"

namespace proxystore {

class StreamPublisher {
 public:
  virtual ~StreamPublisher() = default;
  // Appends `events` to `topic`, in order, each exactly once.
  virtual absl::Status Publish(absl::string_view topic,
                               absl::Span<const StreamEvent> events) = 0;
  virtual absl::Status Close() = 0;
};

class StreamSubscriber {
 public:
  virtual ~StreamSubscriber() = default;
  // The next event of the subscribed topic; std::nullopt if none arrived
  // within `timeout` (std::nullopt: wait as long as it takes). After an
  // end-of-stream event, every call returns one.
  virtual absl::StatusOr<std::optional<StreamEvent>> Next(
      std::optional<absl::Duration> timeout) = 0;
  virtual absl::Status Close() = 0;
};

}  // namespace proxystore

#endif  // PROXYSTORE_STREAM_BROKER_H_
