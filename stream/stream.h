// Proxy streams (ProxyStore's StreamProducer / StreamConsumer, TPDS'24
// "proxy streams"): events travel through a broker (broker.h; Redis Streams
// in redis_broker.h) while the objects go through a store, so a consumer
// gets a small proxy per event and the bulk data moves once, from the store
// to where the proxy is resolved, and only if it is.
//
//   StreamProducer<Frame> producer(std::move(publisher),
//                                  {.default_store = store});
//   producer.Send("frames", frame, {.metadata = {{"step", "7"}}});
//   producer.CloseTopics({"frames"});            // end of stream
//
//   StreamConsumer<Frame> consumer(std::move(subscriber));
//   while (true) {
//     PROXYSTORE_ASSIGN_OR_RETURN(std::optional<Proxy<Frame>> p,
//                                 consumer.Next());
//     if (!p.has_value()) break;                 // end of stream
//     ... p->Get() resolves (and, with evict, removes) the object ...
//   }
//
// Topics map to stores (StreamProducerOptions::stores, else default_store);
// a topic without a store carries its objects inside the events. A filter
// drops objects by their metadata before they are sent (producer) or
// handed out (consumer; a dropped object sent with evict is evicted).
// Batching: `batch_size` objects per flush, one store PutBatch and one
// broker round trip for all of them; with an `aggregator`, the batch is
// combined into one object first (metadata merged, later entries win).
// Objects sent with `evict` (the default, as in ProxyStore) are evicted when
// their proxy is resolved: each object is consumed once.
//
// Thread-safety: a producer or consumer is used by one thread at a time
// (as ProxyStore's); use one per thread.
#ifndef PROXYSTORE_STREAM_STREAM_H_
#define PROXYSTORE_STREAM_STREAM_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "proxystore/base/status.h"
#include "proxystore/serializer/serializer.h"
#include "proxystore/store/store.h"
#include "proxystore/stream/broker.h"
#include "proxystore/stream/event.h"

namespace proxystore {

template <typename T>
struct StreamProducerOptions {
  // Where objects of topics not in `stores` go; null: inside the events.
  std::shared_ptr<Store> default_store;
  // Per topic; a null store: inside the events.
  std::map<std::string, std::shared_ptr<Store>> stores;
  // True: the object is not sent.
  std::function<bool(const StreamMetadata&)> filter;
  // Objects per flush of a topic (>= 1).
  size_t batch_size = 1;
  // Combines a full batch into one object.
  std::function<absl::StatusOr<T>(std::vector<T>)> aggregator;
};

struct StreamSendOptions {
  // Evict the object when its proxy is resolved (consumed once).
  bool evict = true;
  StreamMetadata metadata;
};

template <typename T>
class StreamProducer {
 public:
  explicit StreamProducer(std::unique_ptr<StreamPublisher> publisher,
                          StreamProducerOptions<T> options = {})
      : publisher_(std::move(publisher)), options_(std::move(options)) {
    if (options_.batch_size == 0) options_.batch_size = 1;
  }
  ~StreamProducer() { Close().IgnoreError(); }
  StreamProducer(StreamProducer&&) noexcept = default;
  StreamProducer& operator=(StreamProducer&&) noexcept = default;

  // Buffers `obj` for `topic` and flushes the topic when its batch is full.
  absl::Status Send(const std::string& topic, T obj,
                    const StreamSendOptions& options = {}) {
    PROXYSTORE_RETURN_IF_ERROR(CheckOpen());
    if (options_.filter && options_.filter(options.metadata)) {
      return absl::OkStatus();
    }
    std::vector<Buffered>& buffer = buffers_[topic];
    buffer.push_back(Buffered{std::move(obj), options.evict, options.metadata});
    if (buffer.size() >= options_.batch_size) return FlushTopic(topic);
    return absl::OkStatus();
  }

  // Sends what is buffered for `topic` (a partial batch too). On an error
  // the batch is dropped; objects it had already put in the store stay
  // there (the publisher retries a broker that went away for
  // RedisBrokerOptions::retry_for before it gives up).
  absl::Status FlushTopic(const std::string& topic) {
    PROXYSTORE_RETURN_IF_ERROR(CheckOpen());
    return Publish(topic, /*end=*/false);
  }
  absl::Status Flush() {
    for (auto& [topic, buffer] : buffers_) {
      PROXYSTORE_RETURN_IF_ERROR(FlushTopic(topic));
    }
    return absl::OkStatus();
  }

  // Flushes each topic and ends its stream: consumers get what was sent,
  // then the end.
  absl::Status CloseTopics(absl::Span<const std::string> topics) {
    PROXYSTORE_RETURN_IF_ERROR(CheckOpen());
    for (const std::string& topic : topics) {
      PROXYSTORE_RETURN_IF_ERROR(Publish(topic, /*end=*/true));
    }
    return absl::OkStatus();
  }
  absl::Status CloseTopics(std::initializer_list<std::string> topics) {
    return CloseTopics(absl::MakeConstSpan(topics.begin(), topics.size()));
  }

  // Flushes every topic and closes the publisher (not the stores).
  absl::Status Close() {
    if (publisher_ == nullptr) return absl::OkStatus();
    absl::Status flushed = Flush();
    absl::Status closed = publisher_->Close();
    publisher_.reset();
    return flushed.ok() ? closed : flushed;
  }

 private:
  struct Buffered {
    T obj;
    bool evict;
    StreamMetadata metadata;
  };

  absl::Status CheckOpen() const {
    if (publisher_ == nullptr) {
      return absl::FailedPreconditionError("StreamProducer is closed");
    }
    return absl::OkStatus();
  }

  std::shared_ptr<Store> StoreFor(const std::string& topic) const {
    auto it = options_.stores.find(topic);
    return it != options_.stores.end() ? it->second : options_.default_store;
  }

  absl::Status Publish(const std::string& topic, bool end) {
    std::vector<Buffered> objects = std::move(buffers_[topic]);
    buffers_[topic].clear();
    if (objects.empty() && !end) return absl::OkStatus();
    if (options_.aggregator && objects.size() > 1) {
      std::vector<T> parts;
      bool evict = false;
      StreamMetadata metadata;
      for (Buffered& b : objects) {
        parts.push_back(std::move(b.obj));
        evict = evict || b.evict;
        for (auto& [k, v] : b.metadata) metadata[k] = v;
      }
      PROXYSTORE_ASSIGN_OR_RETURN(T combined,
                                  options_.aggregator(std::move(parts)));
      objects.clear();
      objects.push_back(
          Buffered{std::move(combined), evict, std::move(metadata)});
    }
    std::vector<StreamEvent> events;
    const std::shared_ptr<Store> store = StoreFor(topic);
    if (!objects.empty() && store != nullptr) {
      std::vector<T> values;
      values.reserve(objects.size());
      for (Buffered& b : objects) values.push_back(std::move(b.obj));
      PROXYSTORE_ASSIGN_OR_RETURN(std::vector<Key> keys,
                                  store->PutBatch(values));
      for (size_t i = 0; i < keys.size(); ++i) {
        ProxyOptions<T> po;
        po.evict = objects[i].evict;
        PROXYSTORE_ASSIGN_OR_RETURN(
            std::string wire, store->ProxyFromKey<T>(keys[i], po).Serialize());
        events.push_back(StreamEvent{StreamEvent::Kind::kProxy, std::move(wire),
                                     std::move(objects[i].metadata)});
      }
    } else {
      for (Buffered& b : objects) {
        PROXYSTORE_ASSIGN_OR_RETURN(SharedBytes bytes, Serialize<T>(b.obj));
        events.push_back(StreamEvent{StreamEvent::Kind::kObject,
                                     bytes.ToString(), std::move(b.metadata)});
      }
    }
    if (end) events.push_back(StreamEvent{.kind = StreamEvent::Kind::kEnd});
    return Annotate(publisher_->Publish(topic, events),
                    absl::StrCat("stream topic \"", topic, "\""));
  }

  std::unique_ptr<StreamPublisher> publisher_;
  StreamProducerOptions<T> options_;
  std::map<std::string, std::vector<Buffered>> buffers_;
};

struct StreamConsumerOptions {
  // True: the event is dropped (and its object evicted if sent with evict).
  std::function<bool(const StreamMetadata&)> filter;
};

template <typename T>
struct StreamItem {
  StreamMetadata metadata;
  // Resolves to the object: from the store (lazily, on first use), or at
  // once for objects carried inside the event.
  Proxy<T> proxy;
};

template <typename T>
class StreamConsumer {
 public:
  explicit StreamConsumer(std::unique_ptr<StreamSubscriber> subscriber,
                          StreamConsumerOptions options = {})
      : subscriber_(std::move(subscriber)), options_(std::move(options)) {}
  ~StreamConsumer() { Close().IgnoreError(); }
  StreamConsumer(StreamConsumer&&) noexcept = default;
  StreamConsumer& operator=(StreamConsumer&&) noexcept = default;

  // The next item, or std::nullopt at the end of the stream.
  // DeadlineExceeded if nothing came within `timeout` (std::nullopt: wait
  // as long as it takes). DataLoss for an event that is not a proxy or
  // object of T (it is skipped: the next call goes on).
  absl::StatusOr<std::optional<StreamItem<T>>> NextWithMetadata(
      std::optional<absl::Duration> timeout = std::nullopt) {
    if (subscriber_ == nullptr) {
      return absl::FailedPreconditionError("StreamConsumer is closed");
    }
    for (;;) {
      PROXYSTORE_ASSIGN_OR_RETURN(std::optional<StreamEvent> event,
                                  subscriber_->Next(timeout));
      if (!event.has_value()) {
        return absl::DeadlineExceededError(absl::StrCat(
            "no stream event within ",
            absl::FormatDuration(timeout.value_or(absl::InfiniteDuration()))));
      }
      if (event->kind == StreamEvent::Kind::kEnd) return std::nullopt;
      PROXYSTORE_ASSIGN_OR_RETURN(Proxy<T> proxy, ProxyOf(*event));
      if (options_.filter && options_.filter(event->metadata)) {
        PROXYSTORE_RETURN_IF_ERROR(Drop(proxy));
        continue;
      }
      return StreamItem<T>{std::move(event->metadata), std::move(proxy)};
    }
  }

  absl::StatusOr<std::optional<Proxy<T>>> Next(
      std::optional<absl::Duration> timeout = std::nullopt) {
    PROXYSTORE_ASSIGN_OR_RETURN(std::optional<StreamItem<T>> item,
                                NextWithMetadata(timeout));
    if (!item.has_value()) return std::nullopt;
    return std::move(item->proxy);
  }

  // The next object, resolved now (and evicted if it was sent with evict).
  absl::StatusOr<std::optional<std::shared_ptr<const T>>> NextObject(
      std::optional<absl::Duration> timeout = std::nullopt) {
    PROXYSTORE_ASSIGN_OR_RETURN(std::optional<Proxy<T>> p, Next(timeout));
    if (!p.has_value()) return std::nullopt;
    PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const T> obj, p->Get());
    return obj;
  }

  // Calls `fn` with each item until the end of the stream, the first
  // error, or an error from `fn`.
  absl::Status ForEach(absl::FunctionRef<absl::Status(StreamItem<T>&)> fn) {
    for (;;) {
      PROXYSTORE_ASSIGN_OR_RETURN(std::optional<StreamItem<T>> item,
                                  NextWithMetadata());
      if (!item.has_value()) return absl::OkStatus();
      PROXYSTORE_RETURN_IF_ERROR(fn(*item));
    }
  }

  // Acknowledges the last event (redis_broker.h) and closes the subscriber.
  absl::Status Close() {
    if (subscriber_ == nullptr) return absl::OkStatus();
    absl::Status s = subscriber_->Close();
    subscriber_.reset();
    return s;
  }

 private:
  absl::StatusOr<Proxy<T>> ProxyOf(const StreamEvent& event) {
    if (event.kind == StreamEvent::Kind::kProxy) {
      // The proxy's checks (type, signature, trusted destinations) apply.
      return ParseProxy<T>(event.payload);
    }
    PROXYSTORE_ASSIGN_OR_RETURN(
        T obj, Deserialize<T>(SharedBytes::Copy(event.payload)));
    auto target = std::make_shared<const T>(std::move(obj));
    return Proxy<T>(std::make_shared<SimpleFactory<T>>(target), target);
  }

  // A filtered event: its object is not wanted; evict it if it was sent
  // to be consumed once.
  absl::Status Drop(const Proxy<T>& proxy) {
    absl::StatusOr<const StoreFactory<T>*> f = GetStoreFactory(proxy);
    if (!f.ok() || !(*f)->evict()) return absl::OkStatus();
    PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, (*f)->GetStore());
    return store->Evict((*f)->key());
  }

  std::unique_ptr<StreamSubscriber> subscriber_;
  StreamConsumerOptions options_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_STREAM_STREAM_H_
