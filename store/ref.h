// Ownership and borrowing of store objects (ProxyStore's
// proxystore.store.ref): an OwnedProxy<T> owns one object in a store and
// evicts it when it goes away; RefProxy<T> and RefMutProxy<T> borrow it.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(OwnedProxy<Matrix> m,
//                               OwnedProxyOf(*store, matrix));
//   {
//     PROXYSTORE_ASSIGN_OR_RETURN(RefProxy<Matrix> a, Borrow(m));
//     PROXYSTORE_ASSIGN_OR_RETURN(RefProxy<Matrix> b, Borrow(m));
//     ... (*a.Get())->At(0, 0) ...
//   }  // the shared borrows end
//   {
//     PROXYSTORE_ASSIGN_OR_RETURN(RefMutProxy<Matrix> w, MutBorrow(m));
//     PROXYSTORE_RETURN_IF_ERROR(Update(w, Scaled(**w.Get(), 2.0)));
//   }
//   // m goes out of scope: the object is evicted from the store.
//
// Contracts
//  - One owner per object. Destroying the owner evicts its object, unless
//    local borrows of it are still live: then the last of them to go evicts
//    it. An owner never evicts under a live local borrow. Eviction at
//    destruction never throws and never fails the caller: an object that is
//    already gone is fine, other errors are logged ("proxystore" logger).
//    std::move(owner).Evict() evicts now and returns the store's status.
//  - Any number of RefProxy, or exactly one RefMutProxy, at a time.
//  - Borrows read the object through the owner's state: a borrow of a
//    resolved owner starts resolved, and resolving one resolves the others.
//  - Update() replaces the object. Connectors mint keys and cannot overwrite
//    one, so the new value is put under a NEW key, the owner and its
//    RefMutProxy move to that key, and the old key is evicted (which also
//    clears it from this store's cache: no stale read is possible through
//    the owner, its borrows or the store). owner.key() tells the current key.
//  - Clone() copies the stored bytes under a new key with a new owner.
//
// Rules checked at compile time (static):
//  - OwnedProxy, RefProxy and RefMutProxy are move-only (copies are deleted):
//    a second owner needs Clone(), a second borrow needs Borrow().
//  - Consuming an owner (Release, Serialize, Evict) is &&-qualified:
//    std::move(owner).Release().
//  - MutBorrow and Update take a non-const owner / a RefMutProxy; Borrow
//    takes a const owner; a RefProxy cannot be updated or borrowed from.
//  - IntoOwned takes a plain Proxy<T>, so a borrow cannot become an owner.
//  - Every factory and consuming result is [[nodiscard]].
// Rules checked at run time (dynamic), each a FailedPrecondition naming it:
//  - Borrow while a RefMutProxy is live.
//  - MutBorrow while a RefProxy or a RefMutProxy is live.
//  - Get / Clone through the owner while a RefMutProxy is live.
//  - Update through the owner while any borrow is live.
//  - Release / Serialize / Evict of an owner with live borrows (moving out
//    of a borrowed value); the owner is left unchanged and still owns.
//  - Any use of an owner or borrow that was moved from or consumed.
//  Borrow counts live in a block shared by the owner and its borrows and
//  are updated under its mutex, so borrows may be taken and dropped from
//  many threads at once.
//
// Across processes
//  - std::move(owner).Serialize() hands ownership to the receiver: this
//    process no longer evicts; ParseOwnedProxy<T>() there gives the one new
//    owner. The bytes are a plain proxy's: parsing them twice (or with
//    ParseProxy) makes handles that nothing counts, and the first
//    ParseOwnedProxy owner to go evicts the object.
//  - A borrow serializes as a plain, non-owning proxy (ParseProxy<T>() on the
//    receiving side; resolving it never evicts). Nothing is counted across
//    processes: the remote copy does not keep the object alive. It stays in
//    the store only while the owner or a local borrow of it lives here; once
//    they are gone the object is evicted and the remote proxy's resolution
//    fails with NotFound (a value it already resolved stays valid, and the
//    receiving process's store cache may still serve it, as for any evicted
//    object). Keep the local borrow alive until the receiver is done with
//    the object. Update() evicts the key a RefMutProxy was sent under.
//
// Thread-safety: const methods may be called concurrently on the same
// handle; non-const ones (assignment, MutBorrow, Update, the && methods)
// need the usual exclusion for that handle. Different handles of one object
// (the owner and its borrows) may be used from different threads freely.
#ifndef PROXYSTORE_STORE_REF_H_
#define PROXYSTORE_STORE_REF_H_

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/key.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/status.h"
#include "proxystore/proxy/proxy.h"
#include "proxystore/store/store.h"

namespace proxystore {

template <typename T>
class OwnedProxy;
template <typename T>
class RefProxy;
template <typename T>
class RefMutProxy;

namespace ref_internal {

// Evicts `key` through `store` after its last owning handle went away; an
// error (of the store or of finding it) is logged, never returned.
void EvictDropped(const absl::StatusOr<std::shared_ptr<Store>>& store,
                  const Key& key);

// The FailedPrecondition errors of the dynamic rules; `op` names the call.
absl::Status EmptyError(absl::string_view op, absl::string_view handle);
absl::Status MutablyBorrowedError(absl::string_view op);
absl::Status BorrowedError(absl::string_view op, int shared_borrows,
                           bool mutably_borrowed);

// What an owner and its local borrows share: the current proxy and key of
// the object, the store it lives in and the borrow counts. The object is
// evicted when the block goes, i.e. with the last of its handles, unless
// ownership was released or sent.
template <typename T>
class Control {
 public:
  Control(Proxy<T> proxy, Key key, std::shared_ptr<Store> store)
      : proxy_(std::move(proxy)),
        key_(std::move(key)),
        store_(std::move(store)) {}
  Control(const Control&) = delete;
  Control& operator=(const Control&) = delete;

  ~Control() {
    absl::StatusOr<std::shared_ptr<Store>> store;
    Key key;
    {
      MutexLock lock(mu_);
      if (!evict_on_drop_) return;
      store = StoreLocked();
      key = key_;
    }
    EvictDropped(store, key);
  }

  // A shared borrow: the proxy it reads through.
  absl::StatusOr<Proxy<T>> BeginShared() {
    MutexLock lock(mu_);
    if (mut_borrowed_) return MutablyBorrowedError("Borrow");
    ++shared_borrows_;
    return proxy_;
  }
  void EndShared() {
    MutexLock lock(mu_);
    --shared_borrows_;
  }
  absl::Status BeginMut() {
    MutexLock lock(mu_);
    if (mut_borrowed_ || shared_borrows_ > 0) {
      return BorrowedError("MutBorrow", shared_borrows_, mut_borrowed_);
    }
    mut_borrowed_ = true;
    return absl::OkStatus();
  }
  void EndMut() {
    MutexLock lock(mu_);
    mut_borrowed_ = false;
  }

  // The proxy, for a read through the owner (not while mutably borrowed).
  absl::StatusOr<Proxy<T>> OwnerProxy(absl::string_view op) {
    MutexLock lock(mu_);
    if (mut_borrowed_) return MutablyBorrowedError(op);
    return proxy_;
  }
  Proxy<T> CurrentProxy() {
    MutexLock lock(mu_);
    return proxy_;
  }
  Key CurrentKey() {
    MutexLock lock(mu_);
    return key_;
  }
  int shared_borrows() {
    MutexLock lock(mu_);
    return shared_borrows_;
  }
  bool mutably_borrowed() {
    MutexLock lock(mu_);
    return mut_borrowed_;
  }

  // OK if no borrow is live.
  absl::Status CheckUnborrowed(absl::string_view op) {
    MutexLock lock(mu_);
    return CheckUnborrowedLocked(op);
  }
  // Gives up eviction (the caller evicts, releases or sends the object) if
  // no borrow is live.
  absl::Status Consume(absl::string_view op) {
    MutexLock lock(mu_);
    PROXYSTORE_RETURN_IF_ERROR(CheckUnborrowedLocked(op));
    evict_on_drop_ = false;
    return absl::OkStatus();
  }

  // The store the object lives in: the owner's, or, if that one was closed,
  // the one the proxy's factory finds (as a proxy resolve would).
  absl::StatusOr<std::shared_ptr<Store>> GetStore() {
    MutexLock lock(mu_);
    return StoreLocked();
  }

  // Points the handles at a new copy of the object (Update).
  void Replace(Proxy<T> proxy, Key key, std::shared_ptr<Store> store) {
    MutexLock lock(mu_);
    proxy_ = std::move(proxy);
    key_ = std::move(key);
    store_ = std::move(store);
  }

 private:
  absl::Status CheckUnborrowedLocked(absl::string_view op)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (shared_borrows_ > 0 || mut_borrowed_) {
      return BorrowedError(op, shared_borrows_, mut_borrowed_);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::shared_ptr<Store>> StoreLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (store_ != nullptr && !store_->closed()) return store_;
    return proxystore::GetStore(proxy_);
  }

  Mutex mu_;
  Proxy<T> proxy_ ABSL_GUARDED_BY(mu_);
  Key key_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Store> store_ ABSL_GUARDED_BY(mu_);
  int shared_borrows_ ABSL_GUARDED_BY(mu_) = 0;
  bool mut_borrowed_ ABSL_GUARDED_BY(mu_) = false;
  bool evict_on_drop_ ABSL_GUARDED_BY(mu_) = true;
};

// Builds handles and reads their control blocks for the free functions.
struct Access {
  template <typename T>
  static const std::shared_ptr<Control<T>>& control(const OwnedProxy<T>& o) {
    return o.control_;
  }
  template <typename T>
  static const std::shared_ptr<Control<T>>& control(const RefMutProxy<T>& r) {
    return r.control_;
  }
  template <typename T>
  static OwnedProxy<T> MakeOwned(std::shared_ptr<Control<T>> control) {
    return OwnedProxy<T>(std::move(control));
  }
  template <typename T>
  static RefProxy<T> MakeRef(std::shared_ptr<Control<T>> control,
                             Proxy<T> proxy) {
    return RefProxy<T>(std::move(control), std::move(proxy));
  }
  template <typename T>
  static RefMutProxy<T> MakeRefMut(std::shared_ptr<Control<T>> control) {
    return RefMutProxy<T>(std::move(control));
  }
};

// An owner of `key` in `store` (whose config `factory` carries), resolved
// to `target` unless it is null.
template <typename T>
OwnedProxy<T> Own(Key key, const StoreFactory<T>& factory,
                  std::shared_ptr<Store> store,
                  std::shared_ptr<const T> target) {
  // A factory of its own that never evicts on resolve: the owner does.
  Proxy<T> proxy(
      MakeStoreFactory<T>(
          key, std::make_shared<const StoreConfig>(factory.store_config()),
          /*evict=*/false, factory.deserializer(), store),
      std::move(target));
  return Access::MakeOwned(std::make_shared<Control<T>>(
      std::move(proxy), std::move(key), std::move(store)));
}

}  // namespace ref_internal

// Owns one object in a store; see the header comment.
template <typename T>
class [[nodiscard]] OwnedProxy {
 public:
  OwnedProxy(const OwnedProxy&) = delete;
  OwnedProxy& operator=(const OwnedProxy&) = delete;
  // The moved-from owner is empty: it owns nothing and evicts nothing.
  OwnedProxy(OwnedProxy&& other) noexcept
      : control_(std::move(other.control_)) {}
  // Drops what this owner owned (evicting it unless borrowed), then takes
  // `other`'s object.
  OwnedProxy& operator=(OwnedProxy&& other) noexcept {
    if (this != &other) control_ = std::move(other.control_);
    return *this;
  }
  // Evicts the object, or leaves that to the last live local borrow.
  ~OwnedProxy() = default;

  // The object (resolving on first use). FailedPrecondition while mutably
  // borrowed or if empty; NotFound if the object is gone from the store.
  [[nodiscard]] absl::StatusOr<std::shared_ptr<const T>> Get() const {
    if (control_ == nullptr) return ref_internal::EmptyError("Get", kName);
    PROXYSTORE_ASSIGN_OR_RETURN(Proxy<T> proxy, control_->OwnerProxy("Get"));
    return proxy.Get();
  }
  // The object's current key (it changes with Update); empty if the owner is.
  [[nodiscard]] Key key() const {
    return control_ == nullptr ? Key() : control_->CurrentKey();
  }
  // False once moved from or consumed.
  [[nodiscard]] bool valid() const { return control_ != nullptr; }
  // The live local borrows.
  [[nodiscard]] int shared_borrows() const {
    return control_ == nullptr ? 0 : control_->shared_borrows();
  }
  [[nodiscard]] bool mutably_borrowed() const {
    return control_ != nullptr && control_->mutably_borrowed();
  }

  // Gives up ownership: the plain proxy of the object, which nothing evicts
  // (it never evicts on resolve either). FailedPrecondition with live
  // borrows or if empty; then the owner is unchanged.
  [[nodiscard]] absl::StatusOr<Proxy<T>> Release() && {
    if (control_ == nullptr) return ref_internal::EmptyError("Release", kName);
    PROXYSTORE_RETURN_IF_ERROR(control_->Consume("Release"));
    Proxy<T> proxy = control_->CurrentProxy();
    control_.reset();
    return proxy;
  }

  // Hands ownership to whoever parses the bytes (ParseOwnedProxy<T>); this
  // process no longer evicts the object. FailedPrecondition with live
  // borrows or if empty; on any error the owner is unchanged.
  [[nodiscard]] absl::StatusOr<std::string> Serialize() && {
    if (control_ == nullptr) {
      return ref_internal::EmptyError("Serialize", kName);
    }
    PROXYSTORE_RETURN_IF_ERROR(control_->CheckUnborrowed("Serialize"));
    PROXYSTORE_ASSIGN_OR_RETURN(std::string wire,
                                control_->CurrentProxy().Serialize());
    PROXYSTORE_RETURN_IF_ERROR(control_->Consume("Serialize"));
    control_.reset();
    return wire;
  }

  // Evicts the object now and returns the store's status (OK if it was
  // already gone); the owner is empty afterwards, whatever the outcome.
  // FailedPrecondition with live borrows or if empty; then the owner is
  // unchanged.
  [[nodiscard]] absl::Status Evict() && {
    if (control_ == nullptr) return ref_internal::EmptyError("Evict", kName);
    PROXYSTORE_RETURN_IF_ERROR(control_->Consume("Evict"));
    std::shared_ptr<ref_internal::Control<T>> control = std::move(control_);
    const Key key = control->CurrentKey();
    PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<Store> store,
                                control->GetStore());
    return store->Evict(key);
  }

 private:
  friend struct ref_internal::Access;
  static constexpr absl::string_view kName = "OwnedProxy";

  explicit OwnedProxy(std::shared_ptr<ref_internal::Control<T>> control)
      : control_(std::move(control)) {}

  std::shared_ptr<ref_internal::Control<T>> control_;
};

// A shared (immutable) borrow of an OwnedProxy's object: Borrow(owner).
template <typename T>
class [[nodiscard]] RefProxy {
 public:
  RefProxy(const RefProxy&) = delete;
  RefProxy& operator=(const RefProxy&) = delete;
  RefProxy(RefProxy&& other) noexcept
      : control_(std::move(other.control_)), proxy_(other.proxy_) {}
  RefProxy& operator=(RefProxy&& other) noexcept {
    if (this != &other) {
      End();
      control_ = std::move(other.control_);
      proxy_ = other.proxy_;
    }
    return *this;
  }
  // Ends the borrow (evicting the object if the owner is gone and this was
  // its last borrow).
  ~RefProxy() { End(); }

  // The object. FailedPrecondition if moved from; NotFound if the object was
  // evicted by other means (Store::Evict) before it was first resolved.
  [[nodiscard]] absl::StatusOr<std::shared_ptr<const T>> Get() const {
    if (control_ == nullptr) return ref_internal::EmptyError("Get", kName);
    return proxy_.Get();
  }
  // The object's key (stable while any shared borrow lives).
  [[nodiscard]] Key key() const {
    return control_ == nullptr ? Key() : control_->CurrentKey();
  }
  [[nodiscard]] bool valid() const { return control_ != nullptr; }
  // A plain, non-owning proxy's bytes (ParseProxy<T>); see "Across
  // processes" above for what the receiver may rely on.
  [[nodiscard]] absl::StatusOr<std::string> Serialize() const {
    if (control_ == nullptr) {
      return ref_internal::EmptyError("Serialize", kName);
    }
    return proxy_.Serialize();
  }

 private:
  friend struct ref_internal::Access;
  static constexpr absl::string_view kName = "RefProxy";

  RefProxy(std::shared_ptr<ref_internal::Control<T>> control, Proxy<T> proxy)
      : control_(std::move(control)), proxy_(std::move(proxy)) {}

  void End() {
    if (control_ == nullptr) return;
    control_->EndShared();
    control_.reset();
  }

  std::shared_ptr<ref_internal::Control<T>> control_;
  // The owner's proxy when borrowed; no Update can change it while a shared
  // borrow lives.
  Proxy<T> proxy_;
};

// The one mutable borrow of an OwnedProxy's object: MutBorrow(owner).
template <typename T>
class [[nodiscard]] RefMutProxy {
 public:
  RefMutProxy(const RefMutProxy&) = delete;
  RefMutProxy& operator=(const RefMutProxy&) = delete;
  RefMutProxy(RefMutProxy&& other) noexcept
      : control_(std::move(other.control_)) {}
  RefMutProxy& operator=(RefMutProxy&& other) noexcept {
    if (this != &other) {
      End();
      control_ = std::move(other.control_);
    }
    return *this;
  }
  // Ends the borrow (evicting the object if the owner is gone).
  ~RefMutProxy() { End(); }

  // The object, as last updated. FailedPrecondition if moved from.
  [[nodiscard]] absl::StatusOr<std::shared_ptr<const T>> Get() const {
    if (control_ == nullptr) return ref_internal::EmptyError("Get", kName);
    return control_->CurrentProxy().Get();
  }
  [[nodiscard]] Key key() const {
    return control_ == nullptr ? Key() : control_->CurrentKey();
  }
  [[nodiscard]] bool valid() const { return control_ != nullptr; }
  // A plain, non-owning, read-only proxy's bytes (ParseProxy<T>); the next
  // Update evicts the key they name.
  [[nodiscard]] absl::StatusOr<std::string> Serialize() const {
    if (control_ == nullptr) {
      return ref_internal::EmptyError("Serialize", kName);
    }
    return control_->CurrentProxy().Serialize();
  }

 private:
  friend struct ref_internal::Access;
  static constexpr absl::string_view kName = "RefMutProxy";

  explicit RefMutProxy(std::shared_ptr<ref_internal::Control<T>> control)
      : control_(std::move(control)) {}

  void End() {
    if (control_ == nullptr) return;
    control_->EndMut();
    control_.reset();
  }

  std::shared_ptr<ref_internal::Control<T>> control_;
};

// Puts `obj` into `store` and returns its owner (ProxyStore's
// Store.owned_proxy). InvalidArgument if options.evict is set: the owner is
// what evicts.
template <typename T>
[[nodiscard]] absl::StatusOr<OwnedProxy<T>> OwnedProxyOf(
    Store& store, const T& obj,
    const std::type_identity_t<ProxyOptions<T>>& options = {}) {
  if (options.evict) {
    return absl::InvalidArgumentError(
        "OwnedProxyOf: options.evict must be false (the owner evicts the "
        "object when it goes away)");
  }
  PROXYSTORE_ASSIGN_OR_RETURN(Proxy<T> proxy, store.Proxy(obj, options));
  PROXYSTORE_ASSIGN_OR_RETURN(Key key, GetKey(proxy));
  std::shared_ptr<Store> shared = store.weak_from_this().lock();
  if (shared == nullptr) {
    PROXYSTORE_ASSIGN_OR_RETURN(shared, GetStore(proxy));
  }
  return ref_internal::Access::MakeOwned(
      std::make_shared<ref_internal::Control<T>>(
          std::move(proxy), std::move(key), std::move(shared)));
}

// Adopts a plain store proxy (ProxyStore's into_owned): the owner evicts the
// object when it goes away, and resolving through it never evicts whatever
// `proxy`'s evict flag says. A resolved proxy gives a resolved owner. The
// caller guarantees no other owner of the object exists (copies of `proxy`
// are not tracked). InvalidArgument if `proxy` is not store-backed; the
// error of finding its store otherwise.
template <typename T>
[[nodiscard]] absl::StatusOr<OwnedProxy<T>> IntoOwned(Proxy<T> proxy) {
  absl::StatusOr<const StoreFactory<T>*> factory = GetStoreFactory(proxy);
  if (!factory.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("IntoOwned: only a store-backed proxy (one with a "
                     "StoreFactory) can be owned: ",
                     factory.status().message()));
  }
  absl::StatusOr<std::shared_ptr<Store>> store = (*factory)->GetStore();
  if (!store.ok()) {
    return Annotate(store.status(),
                    absl::StrCat("IntoOwned: the store of key \"",
                                 (*factory)->key().id(), "\""));
  }
  std::shared_ptr<const T> target;
  if (proxy.IsResolved()) {
    PROXYSTORE_ASSIGN_OR_RETURN(target, proxy.Get());
  }
  return ref_internal::Own((*factory)->key(), **factory, *std::move(store),
                           std::move(target));
}

// The receiving side of std::move(owner).Serialize(): the object's one new
// owner. The errors of ParseProxy<T> and IntoOwned.
template <typename T>
[[nodiscard]] absl::StatusOr<OwnedProxy<T>> ParseOwnedProxy(
    absl::string_view bytes) {
  PROXYSTORE_ASSIGN_OR_RETURN(Proxy<T> proxy, ParseProxy<T>(bytes));
  return IntoOwned(std::move(proxy));
}

// A shared borrow; any number may live at once. FailedPrecondition if the
// owner is mutably borrowed or empty.
template <typename T>
[[nodiscard]] absl::StatusOr<RefProxy<T>> Borrow(const OwnedProxy<T>& owner) {
  const auto& control = ref_internal::Access::control(owner);
  if (control == nullptr) {
    return ref_internal::EmptyError("Borrow", "OwnedProxy");
  }
  PROXYSTORE_ASSIGN_OR_RETURN(Proxy<T> proxy, control->BeginShared());
  return ref_internal::Access::MakeRef(control, std::move(proxy));
}

// The mutable borrow. FailedPrecondition if the owner is borrowed (shared or
// mutably) or empty.
template <typename T>
[[nodiscard]] absl::StatusOr<RefMutProxy<T>> MutBorrow(OwnedProxy<T>& owner) {
  const auto& control = ref_internal::Access::control(owner);
  if (control == nullptr) {
    return ref_internal::EmptyError("MutBorrow", "OwnedProxy");
  }
  PROXYSTORE_RETURN_IF_ERROR(control->BeginMut());
  return ref_internal::Access::MakeRefMut(control);
}

// A new owner of a copy of the object under a new key (the stored bytes are
// copied; a resolved owner's target is shared, being immutable).
// FailedPrecondition if the owner is mutably borrowed or empty; NotFound if
// the object is gone from the store.
template <typename T>
[[nodiscard]] absl::StatusOr<OwnedProxy<T>> Clone(const OwnedProxy<T>& owner) {
  const auto& control = ref_internal::Access::control(owner);
  if (control == nullptr) {
    return ref_internal::EmptyError("Clone", "OwnedProxy");
  }
  PROXYSTORE_ASSIGN_OR_RETURN(Proxy<T> proxy, control->OwnerProxy("Clone"));
  PROXYSTORE_ASSIGN_OR_RETURN(const StoreFactory<T>* factory,
                              GetStoreFactory(proxy));
  PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<Store> store,
                              control->GetStore());
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<SharedBytes> bytes,
                              store->connector().Get(factory->key()));
  if (!bytes.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("Clone: key \"", factory->key().id(),
                     "\" is no longer in store \"", store->name(), "\""));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(Key key,
                              store->connector().Put(*std::move(bytes)));
  std::shared_ptr<const T> target;
  if (proxy.IsResolved()) {
    PROXYSTORE_ASSIGN_OR_RETURN(target, proxy.Get());
  }
  return ref_internal::Own(std::move(key), *factory, std::move(store),
                           std::move(target));
}

// Replaces the borrowed object with `value`: puts it under a new key, moves
// the owner and `ref` to that key and evicts the old one (see the header
// comment). The store's serializer applies; the deserializer choice is
// kept. FailedPrecondition if `ref` is empty. If evicting the old copy
// fails, the update has still taken effect and that error is returned.
template <typename T>
[[nodiscard]] absl::Status Update(RefMutProxy<T>& ref, T value) {
  const auto& control = ref_internal::Access::control(ref);
  if (control == nullptr) {
    return ref_internal::EmptyError("Update", "RefMutProxy");
  }
  Proxy<T> old = control->CurrentProxy();
  PROXYSTORE_ASSIGN_OR_RETURN(const StoreFactory<T>* factory,
                              GetStoreFactory(old));
  PROXYSTORE_ASSIGN_OR_RETURN(std::shared_ptr<Store> store,
                              control->GetStore());
  ProxyOptions<T> options;
  options.deserializer = factory->deserializer();
  options.populate_target = true;
  PROXYSTORE_ASSIGN_OR_RETURN(Proxy<T> fresh,
                              store->Proxy(std::move(value), options));
  PROXYSTORE_ASSIGN_OR_RETURN(Key key, GetKey(fresh));
  const Key old_key = factory->key();
  control->Replace(std::move(fresh), std::move(key), store);
  return Annotate(store->Evict(old_key),
                  absl::StrCat("Update: the new value is in place, but "
                               "evicting the previous copy (key \"",
                               old_key.id(), "\") failed"));
}

// Update through an unborrowed owner. FailedPrecondition if it is borrowed
// or empty.
template <typename T>
[[nodiscard]] absl::Status Update(OwnedProxy<T>& owner, T value) {
  const auto& control = ref_internal::Access::control(owner);
  if (control == nullptr) {
    return ref_internal::EmptyError("Update", "OwnedProxy");
  }
  PROXYSTORE_RETURN_IF_ERROR(control->CheckUnborrowed("Update"));
  // Held for the update, so that a concurrent Borrow cannot read a value
  // that is being replaced.
  PROXYSTORE_ASSIGN_OR_RETURN(RefMutProxy<T> ref, MutBorrow(owner));
  return Update(ref, std::move(value));
}

}  // namespace proxystore

#endif  // PROXYSTORE_STORE_REF_H_
