// Lifetimes of objects in stores (ProxyStore's proxystore.store.lifetimes).
//
// A lifetime records the keys of objects a store put and evicts them all when
// it ends. Pass one to a store call through StorePutOptions::lifetime or
// ProxyOptions::lifetime, or add keys and proxies yourself:
//
//   {
//     ContextLifetime lifetime(store);
//     PROXYSTORE_ASSIGN_OR_RETURN(
//         Key key, store->Put(std::string("value"),
//                             StorePutOptions<std::string>{.lifetime =
//                                                              &lifetime}));
//     ...
//   }  // The object under `key` is evicted here.
//
// ContextLifetime ends when destroyed (or closed); LeaseLifetime ends when
// its lease expires; StaticLifetime ends when the process exits.
//
// Thread-safety: every method may be called from many threads at once.
#ifndef PROXYSTORE_STORE_LIFETIMES_H_
#define PROXYSTORE_STORE_LIFETIMES_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "proxystore/base/key.h"
#include "proxystore/store/lifetime_base.h"
#include "proxystore/store/store.h"

namespace proxystore {
namespace lifetimes_internal {

// The keys of one lifetime and whether it has ended.
class KeySet;

}  // namespace lifetimes_internal

// A lifetime that ends when closed or destroyed (ProxyStore's
// ContextLifetime used as a context manager). Move-only; a moved-from
// lifetime has ended and evicts nothing.
class ContextLifetime final : public Lifetime {
 public:
  // `name` is used in logs and errors; empty = a random id.
  explicit ContextLifetime(std::shared_ptr<Store> store, std::string name = "");
  // Closes the lifetime; an eviction error is logged.
  ~ContextLifetime() override;
  ContextLifetime(ContextLifetime&& other) noexcept;
  // Closes this lifetime (logging an error), then takes `other`'s.
  ContextLifetime& operator=(ContextLifetime&& other) noexcept;

  using Lifetime::AddKey;
  absl::Status AddKeys(absl::Span<const Key> keys) override;
  bool done() const override;
  absl::Status Close() override;
  const std::string& name() const override;
  // The keys associated now (empty once ended), in no particular order.
  std::vector<Key> keys() const;

 private:
  std::unique_ptr<lifetimes_internal::KeySet> set_;
};

struct LeaseOptions {
  // Used in logs and errors; empty = a random id.
  std::string name;
};

// A lifetime with a lease (ProxyStore's LeaseLifetime): it ends `expiry`
// after creation unless extended, or when closed or destroyed.
//
// One background thread per lease waits on a condition variable until the
// deadline (steady clock; no polling) and then closes the lease, so the
// objects are evicted at the deadline plus the thread's scheduling latency
// plus the time the evictions take. Destroying the lease closes it and joins
// the thread.
//
// Fork: a forked child does not have the parent's lease thread. In a child,
// a lease inherited from the parent does nothing: it refuses keys, Close
// and the destructor evict nothing, and done() is true; the parent's lease
// still ends the objects.
class LeaseLifetime final : public Lifetime {
 public:
  using Clock = std::chrono::steady_clock;

  LeaseLifetime(std::shared_ptr<Store> store, absl::Duration expiry,
                LeaseOptions options = {});
  ~LeaseLifetime() override;
  LeaseLifetime(const LeaseLifetime&) = delete;
  LeaseLifetime& operator=(const LeaseLifetime&) = delete;

  using Lifetime::AddKey;
  absl::Status AddKeys(absl::Span<const Key> keys) override;
  bool done() const override;
  // Ends the lease early.
  absl::Status Close() override;
  const std::string& name() const override;
  std::vector<Key> keys() const;

  // Moves the deadline by `duration` (which may be negative).
  // FailedPrecondition naming the lease if it has ended.
  absl::Status Extend(absl::Duration duration);
  // When the lease expires unless extended.
  Clock::time_point deadline() const;
  // Waits until the lease has ended and its evictions have finished, or
  // `max` has passed; true if it ended.
  bool WaitUntilDone(absl::Duration max) const;

 private:
  void Run();
  // Close(), recording completion for WaitUntilDone.
  absl::Status CloseAndNotify();

  const pid_t pid_;
  std::unique_ptr<lifetimes_internal::KeySet> set_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  Clock::time_point deadline_;  // guarded by mu_
  bool stop_ = false;           // guarded by mu_; the thread is to exit
  bool finished_ = false;       // guarded by mu_; Close's evictions are done
  std::unique_ptr<std::thread> thread_;
};

// The lifetime of the process (ProxyStore's StaticLifetime): one per store,
// ended at normal process exit (std::atexit; not on a signal, _exit or
// abort). The exit handler evicts the objects of every static lifetime but
// does not close the stores; the stores are kept alive until then.
//
// Fork: the exit handler only acts in the process that created the first
// static lifetime; a forked child's exit evicts nothing of the parent's.
class StaticLifetime final : public Lifetime {
 public:
  // The static lifetime of `store` (created on first use). Never null.
  static StaticLifetime& For(const std::shared_ptr<Store>& store);
  // Closes every static lifetime now (what the exit handler does); the first
  // eviction error.
  static absl::Status CloseAll();

  using Lifetime::AddKey;
  absl::Status AddKeys(absl::Span<const Key> keys) override;
  bool done() const override;
  // Ends this store's static lifetime early; it cannot be restarted.
  absl::Status Close() override;
  const std::string& name() const override;
  std::vector<Key> keys() const;

  // Public for the registry's container only; use For().
  explicit StaticLifetime(std::shared_ptr<Store> store);
  ~StaticLifetime() override;

 private:
  std::unique_ptr<lifetimes_internal::KeySet> set_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_STORE_LIFETIMES_H_
