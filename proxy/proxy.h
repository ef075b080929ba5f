// Proxy<T>: a small, copyable handle that resolves to a T on first use.
//
// A Proxy wraps a Factory<T>, the callable that produces the target object.
// Nothing is fetched until the target is first needed; then the factory runs
// exactly once, even when several threads touch the proxy at the same time,
// and every later access is a pointer load. This is ProxyStore's transparent
// lazy object proxy in C++ form:
//
//   Proxy<Matrix> p = *store->Proxy(matrix);  // a ~16-byte handle
//   std::string wire = *p.Serialize();        // a few hundred bytes
//   ... send `wire` to another process ...
//   Proxy<Matrix> q = *ParseProxy<Matrix>(wire);   // unresolved
//   absl::StatusOr<std::shared_ptr<const Matrix>> m = q.Get();  // resolves
//   double x = q->At(0, 0);                        // no further fetch
//
// Access:
//  - Checked: Get() / Resolve() / Extract() return the error of a failed
//    resolution (e.g. NotFound for an evicted key). Use them wherever
//    resolution can fail.
//  - Unchecked: operator-> and operator* resolve on first use and, if that
//    fails, print the error to stderr and call std::abort(). This is a
//    defined, diagnosable stop (as absl::StatusOr::value() without
//    exceptions), never undefined behaviour; it is meant for code that has
//    already resolved the proxy or that treats a missing object as fatal.
//  - A failed resolution is not remembered: the next access runs the factory
//    again (a transient outage does not poison the proxy). Once resolved, the
//    target stays (ProxyStore's "resolve once").
//
// The target is shared and immutable (const T): the store's cache, other
// copies of the proxy and other threads may hold the same object. Copy it to
// change it.
//
// Copies of a Proxy share one state: resolving any copy resolves all of them.
// A serialized proxy carries only its factory (never the target), so it
// deserializes unresolved.
//
// ProxyLocker<T> wraps a proxy so that it cannot be resolved by accident;
// Unlock() gives it back.
//
// Thread-safety: const methods of Proxy and ProxyLocker (all but
// assignment) and the factories here may be called concurrently on the same
// or different copies; assigning to a Proxy needs the usual exclusion.
#ifndef PROXYSTORE_PROXY_PROXY_H_
#define PROXYSTORE_PROXY_PROXY_H_

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace proxystore {

// Produces the target of a proxy. Implementations must be thread-safe.
template <typename T>
class Factory {
 public:
  virtual ~Factory() = default;

  // Produces the target. Called by a Proxy at most once successfully.
  virtual absl::StatusOr<std::shared_ptr<const T>> Resolve() = 0;

  // Starts resolving in the background, if the factory can; a later Resolve()
  // returns that result. Default: no-op (Resolve does the work).
  virtual void ResolveAsync() {}

  // Wire form of the factory, for sending the proxy to another process.
  // Unimplemented for factories that cannot travel.
  virtual absl::StatusOr<std::string> Serialize() const {
    return absl::UnimplementedError(
        "this proxy's factory cannot be serialized (only store-backed "
        "proxies travel between processes)");
  }
};

// Returns a fixed object (ProxyStore's SimpleFactory).
template <typename T>
class SimpleFactory final : public Factory<T> {
 public:
  explicit SimpleFactory(std::shared_ptr<const T> object)
      : object_(std::move(object)) {}
  explicit SimpleFactory(T object)
      : object_(std::make_shared<const T>(std::move(object))) {}
  absl::StatusOr<std::shared_ptr<const T>> Resolve() override {
    if (object_ == nullptr) {
      return absl::FailedPreconditionError("SimpleFactory holds no object");
    }
    return object_;
  }

 private:
  std::shared_ptr<const T> object_;
};

// Calls a function (ProxyStore's LambdaFactory).
template <typename T>
class LambdaFactory final : public Factory<T> {
 public:
  using Fn = std::function<absl::StatusOr<std::shared_ptr<const T>>()>;
  explicit LambdaFactory(Fn fn) : fn_(std::move(fn)) {}
  absl::StatusOr<std::shared_ptr<const T>> Resolve() override {
    if (!fn_)
      return absl::FailedPreconditionError("LambdaFactory has no function");
    return fn_();
  }

 private:
  Fn fn_;
};

template <typename T>
class Proxy {
 public:
  static_assert(!std::is_same_v<std::remove_cv_t<T>, bool>,
                "bool is not proxiable (as in ProxyStore)");
  static_assert(!std::is_reference_v<T>, "Proxy<T&> is not a thing");

  // A proxy over `factory`. A null factory yields a proxy whose resolution
  // fails with FailedPrecondition ("not initialized").
  explicit Proxy(std::shared_ptr<Factory<T>> factory)
      : state_(std::make_shared<State>(std::move(factory))) {}

  // A proxy that starts resolved with `target` (ProxyStore's populate_target);
  // `factory` is still what gets serialized.
  Proxy(std::shared_ptr<Factory<T>> factory, std::shared_ptr<const T> target)
      : state_(std::make_shared<State>(std::move(factory))) {
    if (target != nullptr) state_->Set(std::move(target));
  }

  // Copying or moving a Proxy copies the handle (a moved-from proxy stays a
  // valid copy, never a null state).
  Proxy(const Proxy&) = default;
  Proxy& operator=(const Proxy&) = default;
  Proxy(Proxy&& other) noexcept : state_(other.state_) {}
  Proxy& operator=(Proxy&& other) noexcept {
    state_ = other.state_;
    return *this;
  }

  // Resolves if needed and returns the target, or the resolution error.
  absl::StatusOr<std::shared_ptr<const T>> Get() const {
    return state_->Resolve();
  }
  // Forces resolution; OK once resolved.
  absl::Status Resolve() const { return state_->Resolve().status(); }
  // The target (resolving if needed); ProxyStore's extract().
  absl::StatusOr<std::shared_ptr<const T>> Extract() const { return Get(); }
  bool IsResolved() const { return state_->resolved(); }
  // Starts resolving in the background (no-op once resolved).
  void ResolveAsync() const {
    if (!IsResolved() && state_->factory != nullptr) {
      state_->factory->ResolveAsync();
    }
  }

  // Unchecked access; see the header comment for what happens on failure.
  const T* operator->() const { return &state_->ResolveOrDie(); }
  const T& operator*() const { return state_->ResolveOrDie(); }

  // The factory's wire form (never the target).
  absl::StatusOr<std::string> Serialize() const {
    if (state_->factory == nullptr) {
      return absl::FailedPreconditionError(
          "Proxy is not initialized: it has no factory");
    }
    return state_->factory->Serialize();
  }

  const std::shared_ptr<Factory<T>>& factory() const { return state_->factory; }

  // True if both handles share one state (copies of one proxy).
  bool SharesStateWith(const Proxy& other) const {
    return state_ == other.state_;
  }

 private:
  struct State {
    explicit State(std::shared_ptr<Factory<T>> f) : factory(std::move(f)) {}

    bool resolved() const {
      return fast.load(std::memory_order_acquire) != nullptr;
    }

    void Set(std::shared_ptr<const T> t) {
      target = std::move(t);
      fast.store(target.get(), std::memory_order_release);
    }

    absl::StatusOr<std::shared_ptr<const T>> Resolve() {
      // `target` is written once, before the release store to `fast`, and
      // never again: after an acquire load it can be read without the lock.
      if (resolved()) return target;
      std::lock_guard<std::mutex> lock(mu);
      if (target != nullptr) return target;  // Another thread won.
      if (factory == nullptr) {
        return absl::FailedPreconditionError(
            "Proxy is not initialized: it has no factory");
      }
      absl::StatusOr<std::shared_ptr<const T>> got = factory->Resolve();
      if (!got.ok()) return got.status();
      if (*got == nullptr) {
        return absl::InternalError("proxy factory returned a null object");
      }
      Set(*got);
      return target;
    }

    const T& ResolveOrDie() {
      if (const T* p = fast.load(std::memory_order_acquire)) return *p;
      absl::StatusOr<std::shared_ptr<const T>> got = Resolve();
      if (!got.ok()) {
        std::fprintf(stderr,
                     "proxystore: unchecked access to a proxy whose "
                     "resolution failed: %s\n",
                     got.status().ToString().c_str());
        std::abort();
      }
      return **got;
    }

    const std::shared_ptr<Factory<T>> factory;
    std::mutex mu;
    // Written once under mu; `fast` publishes it for lock-free reads.
    std::shared_ptr<const T> target;
    std::atomic<const T*> fast{nullptr};
  };

  std::shared_ptr<State> state_;
};

// ProxyStore's helpers.
template <typename T>
absl::StatusOr<std::shared_ptr<const T>> Extract(const Proxy<T>& p) {
  return p.Extract();
}
template <typename T>
bool IsResolved(const Proxy<T>& p) {
  return p.IsResolved();
}
template <typename T>
absl::Status Resolve(const Proxy<T>& p) {
  return p.Resolve();
}

// Holds a proxy so that code it passes through cannot resolve it by accident.
template <typename T>
class ProxyLocker {
 public:
  explicit ProxyLocker(Proxy<T> proxy) : proxy_(std::move(proxy)) {}
  // The proxy, still unresolved if it was.
  Proxy<T> Unlock() const { return proxy_; }
  absl::StatusOr<std::string> Serialize() const { return proxy_.Serialize(); }

 private:
  Proxy<T> proxy_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_PROXY_PROXY_H_
