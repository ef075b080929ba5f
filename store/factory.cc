// Serialized proxies (FactoryData), the background pool of ResolveAsync,
// and the error of a proxy whose object is missing.

#include "proxystore/store/factory.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "flatbuffers/flatbuffers.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/base/status.h"
#include "proxystore/store/signing.h"
#include "proxystore/store/store_config_wire.h"
#include "proxystore/wire/wire.h"

namespace proxystore {

// ---------------------------------------------------------------------------
// Factories.

std::string FactoryData::Serialize() const {
  flatbuffers::FlatBufferBuilder fbb(512);
  auto config_off = store_internal::WriteStoreConfig(fbb, store_config,
                                                     /*version=*/0);
  auto key_off = fbb.CreateString(key.id());
  auto deser_off = fbb.CreateString(deserializer);
  auto type_off = fbb.CreateString(type_name);
  flatbuffers::Offset<fb::Polling> polling_off;
  if (polling.has_value()) {
    polling_off = fb::CreatePolling(
        fbb, absl::ToInt64Nanoseconds(polling->interval),
        polling->backoff_factor,
        polling->interval_limit.has_value()
            ? absl::ToInt64Nanoseconds(*polling->interval_limit)
            : -1,
        polling->timeout.has_value()
            ? absl::ToInt64Nanoseconds(*polling->timeout)
            : -1);
  }
  fb::ProxyBuilder b(fbb);
  b.add_version(wire::kVersion);
  b.add_key(key_off);
  b.add_store_config(config_off);
  b.add_evict(evict);
  b.add_deserializer(deser_off);
  b.add_type_name(type_off);
  if (polling.has_value()) b.add_polling(polling_off);
  // Size-prefixed, so that a truncated proxy is always detected (trailing
  // padding would otherwise verify).
  return signing_internal::Sign(wire::Finish(fbb, b.Finish(), wire::kProxy));
}

absl::StatusOr<FactoryData> FactoryData::Parse(absl::string_view serialized) {
  // With a signing key set, nothing is read before the MAC checks out.
  PROXYSTORE_ASSIGN_OR_RETURN(absl::string_view unaligned,
                              signing_internal::Verify(serialized));
  PROXYSTORE_RETURN_IF_ERROR(
      Annotate(wire::CheckSize(unaligned, wire::kProxy), "ParseProxy"));
  AlignedView bytes(unaligned);
  absl::StatusOr<const fb::Proxy*> root =
      wire::ReadRoot<fb::Proxy>(bytes, wire::kProxy);
  if (!root.ok()) return Annotate(root.status(), "ParseProxy");
  FactoryData out;
  absl::StatusOr<Key> key = Key::Parse(wire::View((*root)->key()));
  if (!key.ok()) return Annotate(key.status(), "ParseProxy");
  out.key = *std::move(key);
  absl::StatusOr<StoreConfig> config =
      store_internal::ReadStoreConfig(*(*root)->store_config());
  if (!config.ok()) return Annotate(config.status(), "ParseProxy");
  out.store_config = *std::move(config);
  out.evict = (*root)->evict();
  out.deserializer = std::string(wire::View((*root)->deserializer()));
  out.type_name = std::string(wire::View((*root)->type_name()));
  if (const fb::Polling* p = (*root)->polling(); p != nullptr) {
    PollingOptions polling;
    polling.interval = absl::Nanoseconds(p->interval_ns());
    polling.backoff_factor = p->backoff_factor();
    polling.interval_limit =
        p->interval_limit_ns() < 0
            ? std::nullopt
            : std::optional(absl::Nanoseconds(p->interval_limit_ns()));
    polling.timeout = p->timeout_ns() < 0
                          ? std::nullopt
                          : std::optional(absl::Nanoseconds(p->timeout_ns()));
    // The wire decides how this process waits only within fixed bounds.
    absl::Status valid = polling.Validate();
    if (!valid.ok()) return Annotate(valid, "ParseProxy: future's polling");
    out.polling = polling;
  }
  return out;
}

namespace store_internal {
namespace {

std::atomic<ReferenceParser> reference_parser{nullptr};

}  // namespace

void SetReferenceParser(ReferenceParser parser) {
  reference_parser.store(parser, std::memory_order_release);
}

bool LooksLikeReference(absl::string_view bytes) {
  const absl::string_view text = absl::StripLeadingAsciiWhitespace(bytes);
  return absl::StartsWith(text, "{") &&
         absl::StrContains(text, "\"proxystore_reference\"");
}

absl::StatusOr<FactoryData> ParseReference(absl::string_view bytes,
                                           absl::string_view type_name) {
  if (ProxySigningEnabled()) {
    return absl::PermissionDeniedError(
        "ParseProxy: a proxy reference carries no signature, and this "
        "process accepts signed proxies only (SetProxySigningKey)");
  }
  const ReferenceParser parser =
      reference_parser.load(std::memory_order_acquire);
  if (parser == nullptr) {
    return absl::FailedPreconditionError(
        "ParseProxy: this is a proxy reference (JSON), and no reference "
        "parser is linked in (depend on //interop:proxy_reference)");
  }
  return parser(bytes, type_name);
}

namespace {

// A small fixed pool for ResolveAsync, never destroyed (tasks may still be
// queued when the process exits; they simply never run).
class ResolvePool {
 public:
  static constexpr int kThreads = 4;

  ResolvePool() : pid_(getpid()) {}

  // Runs `task` on a worker. In a forked child the parent's workers do not
  // exist and its mutex may have been held at fork time, so the child never
  // touches them: each task gets a thread of its own instead.
  void Submit(std::function<void()> task) {
    if (getpid() != pid_) {
      if (!StartThread(task)) task();
      return;
    }
    std::unique_lock<std::mutex> lock(mu_);
    while (started_ < kThreads && started_ <= static_cast<int>(queue_.size())) {
      if (!StartThread([this] { Work(); })) break;
      ++started_;
    }
    if (started_ == 0) {
      // No thread could be started: run it here rather than never.
      lock.unlock();
      task();
      return;
    }
    queue_.push_back(std::move(task));
    cv_.notify_one();
  }

 private:
  // Starts a detached thread running a copy of `fn`; false if the system
  // refused (std::thread reports that by throwing; nothing else here throws).
  static bool StartThread(const std::function<void()>& fn) {
    try {
      std::thread(fn).detach();
      return true;
    } catch (const std::system_error&) {
      return false;
    }
  }

  void Work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  const pid_t pid_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // Guarded by mu_.
  int started_ = 0;                          // Guarded by mu_.
};

}  // namespace

void RunInBackground(std::function<void()> task) {
  static NoDestructor<ResolvePool> pool;
  pool->Submit(std::move(task));
}

absl::Status CheckSerializedProxySize(absl::string_view serialized) {
  size_t size = serialized.size();
  if (absl::StartsWith(serialized, signing_internal::kMagic) &&
      size >= signing_internal::kMagic.size() + signing_internal::kMacSize) {
    size -= signing_internal::kMagic.size() + signing_internal::kMacSize;
  }
  if (size > wire::kProxy.max_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Proxy::Serialize: the proxy would take ", size,
        " bytes, more than a receiver reads (", wire::kProxy.max_size,
        "); its store config is too large"));
  }
  return absl::OkStatus();
}

absl::Status MissingKeyError(const Key& key, const Store& store) {
  absl::Status s = absl::NotFoundError(absl::StrCat(
      "Cannot resolve target object with key='", key.id(),
      "' from Store(name='", store.name(), "', connector='",
      store.connector().kind(),
      "') because there is no object associated with the key. This can often "
      "occur when the target object is evicted from the store while proxies "
      "of the target still exist."));
  s.SetPayload("proxystore/missing-key", absl::Cord(key.id()));
  return s;
}

absl::Status FutureTimeoutError(const Key& key, const Store& store,
                                absl::Duration waited) {
  absl::Status s = absl::DeadlineExceededError(absl::StrCat(
      "future with key='", key.id(), "' in Store(name='", store.name(),
      "', connector='", store.connector().kind(), "') was not set within ",
      absl::FormatDuration(waited), " (polling timeout)"));
  s.SetPayload("proxystore/missing-key", absl::Cord(key.id()));
  return s;
}

void SleepFor(absl::Duration d) { absl::SleepFor(d); }

}  // namespace store_internal
}  // namespace proxystore
