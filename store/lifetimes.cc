#include "proxystore/store/lifetimes.h"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/store/log.h"

namespace proxystore {
namespace lifetimes_internal {

class KeySet {
 public:
  KeySet(std::shared_ptr<Store> store, std::string name)
      : store_(std::move(store)),
        name_(name.empty() ? NewObjectId() : std::move(name)) {
    store_internal::Logger().info("Initialized lifetime (name={}, store={})",
                                  name_, store_->name());
  }

  const std::string& name() const { return name_; }

  absl::Status Add(absl::Span<const Key> keys) {
    {
      MutexLock lock(mu_);
      if (done_) {
        return absl::FailedPreconditionError(absl::StrCat(
            "lifetime \"", name_, "\" has ended: it cannot take new keys"));
      }
      keys_.insert(keys.begin(), keys.end());
    }
    PROXYSTORE_LOG_DEBUG("Added {} key(s) to lifetime (name={})", keys.size(),
                         name_);
    return absl::OkStatus();
  }

  bool done() const {
    MutexLock lock(mu_);
    return done_;
  }

  std::vector<Key> keys() const {
    MutexLock lock(mu_);
    return std::vector<Key>(keys_.begin(), keys_.end());
  }

  // Ends the set and evicts its keys. `*closed_now` tells whether this call
  // ended it (false if it had already ended).
  absl::Status Close(bool* closed_now = nullptr) {
    absl::flat_hash_set<Key> keys;
    {
      MutexLock lock(mu_);
      if (closed_now != nullptr) *closed_now = !done_;
      if (done_) return absl::OkStatus();
      done_ = true;
      keys.swap(keys_);
    }
    absl::Status first;
    for (const Key& key : keys) {
      absl::Status s = store_->Evict(key);
      if (!s.ok() && first.ok()) {
        first =
            Annotate(s, absl::StrCat("lifetime \"", name_,
                                     "\": evicting key \"", key.id(), "\""));
      }
    }
    store_internal::Logger().info(
        "Closed lifetime and evicted {} associated object(s) (name={})",
        keys.size(), name_);
    return first;
  }

 private:
  const std::shared_ptr<Store> store_;
  const std::string name_;
  mutable Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<Key> keys_ ABSL_GUARDED_BY(mu_);
};

namespace {

absl::Status MovedFrom() {
  return absl::FailedPreconditionError(
      "lifetime was moved from: it cannot take new keys");
}

void LogCloseError(absl::string_view name, const absl::Status& s) {
  if (!s.ok()) {
    store_internal::Logger().error("Closing lifetime \"{}\" failed: {}",
                                   std::string(name), s.ToString());
  }
}

const std::string& EmptyName() {
  static NoDestructor<std::string> empty;
  return *empty;
}

// `tp + d`, saturated at the clock's range.
LeaseLifetime::Clock::time_point AddSaturated(
    LeaseLifetime::Clock::time_point tp, absl::Duration d) {
  using TimePoint = LeaseLifetime::Clock::time_point;
  using Nanos = std::chrono::nanoseconds;
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  const int64_t now =
      std::chrono::duration_cast<Nanos>(tp.time_since_epoch()).count();
  int64_t sum = 0;
  if (__builtin_add_overflow(now, ns, &sum)) {
    return ns > 0 ? TimePoint::max() : TimePoint::min();
  }
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(Nanos(sum)));
}

}  // namespace
}  // namespace lifetimes_internal

using lifetimes_internal::KeySet;

// --- ContextLifetime ------------------------------------------------------

ContextLifetime::ContextLifetime(std::shared_ptr<Store> store, std::string name)
    : set_(std::make_unique<KeySet>(std::move(store), std::move(name))) {}

ContextLifetime::~ContextLifetime() {
  if (set_ != nullptr) {
    lifetimes_internal::LogCloseError(set_->name(), set_->Close());
  }
}

ContextLifetime::ContextLifetime(ContextLifetime&& other) noexcept = default;

ContextLifetime& ContextLifetime::operator=(ContextLifetime&& other) noexcept {
  if (this != &other) {
    if (set_ != nullptr) {
      lifetimes_internal::LogCloseError(set_->name(), set_->Close());
    }
    set_ = std::move(other.set_);
  }
  return *this;
}

absl::Status ContextLifetime::AddKeys(absl::Span<const Key> keys) {
  if (set_ == nullptr) return lifetimes_internal::MovedFrom();
  return set_->Add(keys);
}
bool ContextLifetime::done() const { return set_ == nullptr || set_->done(); }
absl::Status ContextLifetime::Close() {
  return set_ == nullptr ? absl::OkStatus() : set_->Close();
}
const std::string& ContextLifetime::name() const {
  return set_ == nullptr ? lifetimes_internal::EmptyName() : set_->name();
}
std::vector<Key> ContextLifetime::keys() const {
  return set_ == nullptr ? std::vector<Key>() : set_->keys();
}

// --- LeaseLifetime --------------------------------------------------------

LeaseLifetime::LeaseLifetime(std::shared_ptr<Store> store,
                             absl::Duration expiry, LeaseOptions options)
    : pid_(getpid()),
      set_(std::make_unique<KeySet>(std::move(store), std::move(options.name))),
      deadline_(lifetimes_internal::AddSaturated(Clock::now(), expiry)) {
  thread_ = std::make_unique<std::thread>([this] { Run(); });
}

LeaseLifetime::~LeaseLifetime() {
  if (getpid() != pid_) {
    // A forked child: the thread does not exist here and the parent may have
    // held the mutexes at the fork. Touch nothing.
    thread_.release();  // NOLINT(bugprone-unused-return-value)
    set_.release();     // NOLINT(bugprone-unused-return-value)
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_->join();
  lifetimes_internal::LogCloseError(set_->name(), CloseAndNotify());
}

void LeaseLifetime::Run() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_ && Clock::now() < deadline_) {
      if (deadline_ == Clock::time_point::max()) {
        cv_.wait(lock);
      } else {
        cv_.wait_until(lock, deadline_);
      }
    }
    if (stop_) return;
    // Expired: from here Extend refuses.
    stop_ = true;
  }
  PROXYSTORE_LOG_DEBUG("Lease expired (name={})", set_->name());
  lifetimes_internal::LogCloseError(set_->name(), CloseAndNotify());
}

absl::Status LeaseLifetime::CloseAndNotify() {
  bool closed_now = false;
  absl::Status s = set_->Close(&closed_now);
  if (closed_now) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
    }
    cv_.notify_all();
  }
  return s;
}

absl::Status LeaseLifetime::AddKeys(absl::Span<const Key> keys) {
  if (getpid() != pid_) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease \"", set_->name(), "\" belongs to process ", pid_,
                     ": it cannot take keys in a forked child"));
  }
  return set_->Add(keys);
}

bool LeaseLifetime::done() const { return getpid() != pid_ || set_->done(); }

absl::Status LeaseLifetime::Close() {
  if (getpid() != pid_) return absl::OkStatus();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  return CloseAndNotify();
}

const std::string& LeaseLifetime::name() const { return set_->name(); }

std::vector<Key> LeaseLifetime::keys() const {
  if (getpid() != pid_) return {};
  return set_->keys();
}

absl::Status LeaseLifetime::Extend(absl::Duration duration) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ || getpid() != pid_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "lease \"", set_->name(), "\" has ended: it cannot be extended"));
    }
    deadline_ = lifetimes_internal::AddSaturated(deadline_, duration);
  }
  cv_.notify_all();
  return absl::OkStatus();
}

LeaseLifetime::Clock::time_point LeaseLifetime::deadline() const {
  std::lock_guard<std::mutex> lock(mu_);
  return deadline_;
}

bool LeaseLifetime::WaitUntilDone(absl::Duration max) const {
  if (getpid() != pid_) return true;
  std::unique_lock<std::mutex> lock(mu_);
  const Clock::time_point until =
      lifetimes_internal::AddSaturated(Clock::now(), max);
  while (!finished_) {
    if (until == Clock::time_point::max()) {
      cv_.wait(lock);
    } else if (cv_.wait_until(lock, until) == std::cv_status::timeout) {
      return finished_;
    }
  }
  return true;
}

// --- StaticLifetime -------------------------------------------------------

namespace {

struct StaticRegistry {
  StaticRegistry() : pid(getpid()) {}
  // The process that made the registry; only it evicts at exit.
  const pid_t pid;
  Mutex mu;
  absl::flat_hash_map<const Store*, std::unique_ptr<StaticLifetime>> lifetimes
      ABSL_GUARDED_BY(mu);
};

void CloseStaticLifetimesAtExit();

StaticRegistry& Registry() {
  // Never destroyed: the exit handler runs among static destructors.
  static NoDestructor<StaticRegistry> registry;
  static const bool registered = [] {
    std::atexit(&CloseStaticLifetimesAtExit);
    return true;
  }();
  (void)registered;
  return *registry;
}

void CloseStaticLifetimesAtExit() {
  // A forked child must not evict its parent's objects (and may have
  // inherited the registry's mutex locked).
  if (Registry().pid != getpid()) return;
  absl::Status s = StaticLifetime::CloseAll();
  if (!s.ok()) {
    store_internal::Logger().error("Closing static lifetimes at exit: {}",
                                   s.ToString());
  }
}

}  // namespace

StaticLifetime::StaticLifetime(std::shared_ptr<Store> store)
    : set_(std::make_unique<KeySet>(store,
                                    absl::StrCat("static:", store->name()))) {}

StaticLifetime::~StaticLifetime() = default;

StaticLifetime& StaticLifetime::For(const std::shared_ptr<Store>& store) {
  StaticRegistry& r = Registry();
  MutexLock lock(r.mu);
  std::unique_ptr<StaticLifetime>& slot = r.lifetimes[store.get()];
  if (slot == nullptr) slot = std::make_unique<StaticLifetime>(store);
  return *slot;
}

absl::Status StaticLifetime::CloseAll() {
  std::vector<StaticLifetime*> all;
  {
    StaticRegistry& r = Registry();
    MutexLock lock(r.mu);
    for (auto& [store, lifetime] : r.lifetimes) all.push_back(lifetime.get());
  }
  absl::Status first;
  for (StaticLifetime* lifetime : all) {
    absl::Status s = lifetime->Close();
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

absl::Status StaticLifetime::AddKeys(absl::Span<const Key> keys) {
  return set_->Add(keys);
}
bool StaticLifetime::done() const { return set_->done(); }
absl::Status StaticLifetime::Close() { return set_->Close(); }
const std::string& StaticLifetime::name() const { return set_->name(); }
std::vector<Key> StaticLifetime::keys() const { return set_->keys(); }

}  // namespace proxystore
