// Serialized proxies (FactoryData), the background pool of ResolveAsync,
// and the error of a proxy whose object is missing.

#include "proxystore/store/factory.h"

#include <unistd.h>

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

#include "absl/strings/str_cat.h"
#include "flatbuffers/flatbuffers.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/store/factory_generated.h"
#include "proxystore/store/signing.h"

namespace proxystore {

// ---------------------------------------------------------------------------
// Factories.

std::string FactoryData::Serialize() const {
  flatbuffers::FlatBufferBuilder fbb(512);
  std::string config = store_config.Serialize();
  auto key_off = fbb.CreateString(key.id());
  // A nested FlatBuffer: keep it 8-aligned so Parse needs no copy.
  fbb.ForceVectorAlignment(config.size(), sizeof(uint8_t), 8);
  auto config_off = fbb.CreateVector(
      reinterpret_cast<const uint8_t*>(config.data()), config.size());
  auto deser_off = fbb.CreateString(deserializer);
  auto type_off = fbb.CreateString(type_name);
  fb::StoreFactoryBuilder b(fbb);
  b.add_key(key_off);
  b.add_store_config(config_off);
  b.add_evict(evict);
  b.add_deserializer(deser_off);
  b.add_type_name(type_off);
  // Size-prefixed, so that a truncated proxy is always detected (trailing
  // padding would otherwise verify).
  fbb.FinishSizePrefixed(b.Finish());
  return signing_internal::Sign(std::string(
      reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()));
}

absl::StatusOr<FactoryData> FactoryData::Parse(absl::string_view wire) {
  // With a signing key set, nothing is read before the MAC checks out.
  PROXYSTORE_ASSIGN_OR_RETURN(absl::string_view unaligned,
                              signing_internal::Verify(wire));
  // The FlatBuffers verifier asserts on buffers this large: refuse them first
  // (and before AlignedView could copy them).
  if (unaligned.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return absl::DataLossError(
        absl::StrCat("ParseProxy: ", unaligned.size(),
                     " bytes are too large for a serialized proxy"));
  }
  AlignedView bytes(unaligned);
  const uint8_t* data = bytes.data();
  if (bytes.size() < sizeof(flatbuffers::uoffset_t) ||
      flatbuffers::GetPrefixedSize(data) !=
          bytes.size() - sizeof(flatbuffers::uoffset_t)) {
    return absl::DataLossError(absl::StrCat(
        "ParseProxy: ", bytes.size(),
        " bytes are not a serialized proxy (truncated or extended)"));
  }
  flatbuffers::Verifier verifier(data, bytes.size());
  if (!fb::VerifySizePrefixedStoreFactoryBuffer(verifier)) {
    return absl::DataLossError(absl::StrCat(
        "ParseProxy: ", bytes.size(), " bytes are not a serialized proxy"));
  }
  const fb::StoreFactory* root = fb::GetSizePrefixedStoreFactory(data);
  if (root->version() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ParseProxy: unsupported proxy version ", root->version(),
                     " (this build reads version 1)"));
  }
  if (root->key() == nullptr || root->store_config() == nullptr ||
      root->type_name() == nullptr) {
    return absl::DataLossError(
        "ParseProxy: serialized proxy lacks its key, store config or type");
  }
  FactoryData out;
  PROXYSTORE_ASSIGN_OR_RETURN(
      out.key,
      Key::Parse(absl::string_view(root->key()->data(), root->key()->size())));
  PROXYSTORE_ASSIGN_OR_RETURN(
      out.store_config,
      StoreConfig::Parse(absl::string_view(
          reinterpret_cast<const char*>(root->store_config()->data()),
          root->store_config()->size())));
  out.evict = root->evict();
  out.deserializer = root->deserializer() ? root->deserializer()->str() : "";
  out.type_name = root->type_name()->str();
  return out;
}

namespace store_internal {
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

}  // namespace store_internal
}  // namespace proxystore
