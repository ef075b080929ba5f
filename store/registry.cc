// The process-wide registry of stores (RegisterStore, GetStore,
// GetOrCreateStore, StoreRegistration) and how a proxy finds its store.

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/store/log.h"
#include "proxystore/store/store.h"

namespace proxystore {

using store_internal::Logger;

// ---------------------------------------------------------------------------
// Registry.

namespace {

// A store being created by GetOrCreateStore: later callers for the same name
// wait for it instead of creating a second one (ProxyStore issue #319).
struct Creation {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;  // Guarded by mu.
  absl::StatusOr<std::shared_ptr<Store>> result =
      absl::InternalError("store creation did not finish");  // Guarded by mu.
};

struct StoreRegistry {
  Mutex mu;
  absl::flat_hash_map<std::string, std::shared_ptr<Store>> stores
      ABSL_GUARDED_BY(mu);
  // Stores re-created from proxies whose store name is taken here by a store
  // that reaches other data (a name collision), keyed by ShadowSlot(): the
  // proxy's own config wins, without touching the registered store.
  absl::flat_hash_map<std::string, std::shared_ptr<Store>> shadowed
      ABSL_GUARDED_BY(mu);
  // Creations under way, keyed by slot ("n:" + name, or "s:" + ShadowSlot).
  absl::flat_hash_map<std::string, std::shared_ptr<Creation>> creating
      ABSL_GUARDED_BY(mu);
};

StoreRegistry& Registry() {
  // Never destroyed: proxies may resolve from other statics' destructors.
  static NoDestructor<StoreRegistry> registry;
  return *registry;
}

// Where a store re-created from a proxy goes when its name is taken.
std::string ShadowSlot(const std::string& name,
                       const ConnectorConfig& location) {
  return absl::StrCat(name.size(), ":", name, location.Serialize());
}

// Moves the store under `it` in `r.stores`, one a proxy made, aside to the
// shadowed stores, where later proxies of its name and location still find
// it: the application's own store takes the name. A proxy that arrived
// first must not decide which store (and which data) the application's
// GetOrCreateStore or GetStore of that name gets.
void DisplaceWireStore(
    StoreRegistry& r,
    absl::flat_hash_map<std::string, std::shared_ptr<Store>>::iterator it,
    std::vector<std::shared_ptr<Store>>& dropped)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(r.mu) {
  std::shared_ptr<Store> wire = std::move(it->second);
  r.stores.erase(it);
  if (const ConnectorConfig* location = wire->location()) {
    auto [slot, inserted] =
        r.shadowed.try_emplace(ShadowSlot(wire->name(), *location), wire);
    if (!inserted && slot->second->closed()) {
      dropped.push_back(std::exchange(slot->second, wire));
    }
  }
  // Either way the store lives on while proxies or callers hold it.
  dropped.push_back(std::move(wire));
}

}  // namespace

absl::Status RegisterStore(std::shared_ptr<Store> store, bool exist_ok) {
  if (store == nullptr) {
    return absl::InvalidArgumentError("RegisterStore: store is null");
  }
  std::shared_ptr<Store> replaced;  // Destroyed after the lock is released.
  std::vector<std::shared_ptr<Store>> dropped;  // Likewise.
  StoreRegistry& r = Registry();
  MutexLock lock(r.mu);
  auto it = r.stores.find(store->name());
  if (it != r.stores.end() && it->second != store && it->second->from_wire() &&
      !store->from_wire()) {
    DisplaceWireStore(r, it, dropped);
  }
  auto [at, inserted] = r.stores.try_emplace(store->name(), store);
  it = at;
  if (!inserted) {
    if (!exist_ok && !it->second->closed()) {
      return absl::AlreadyExistsError(
          absl::StrCat("A store named \"", store->name(),
                       "\" already exists (use GetStore(name) to reuse it)"));
    }
    replaced = std::exchange(it->second, std::move(store));
  }
  return absl::OkStatus();
}

std::shared_ptr<Store> GetStore(absl::string_view name) {
  StoreRegistry& r = Registry();
  ReaderMutexLock lock(r.mu);
  auto it = r.stores.find(name);
  return it == r.stores.end() || it->second->closed() ? nullptr : it->second;
}

namespace store_internal {

void UnregisterIf(absl::string_view name, const Store* only) {
  std::vector<std::shared_ptr<Store>> removed;  // Destroyed after unlocking.
  StoreRegistry& r = Registry();
  MutexLock lock(r.mu);
  auto it = r.stores.find(name);
  if (it != r.stores.end() && (only == nullptr || it->second.get() == only)) {
    removed.push_back(std::move(it->second));
    r.stores.erase(it);
  }
  if (only != nullptr) {
    for (auto s = r.shadowed.begin(); s != r.shadowed.end();) {
      if (s->second.get() == only) {
        removed.push_back(std::move(s->second));
        r.shadowed.erase(s++);
      } else {
        ++s;
      }
    }
  }
}

}  // namespace store_internal

namespace {

// The store name in a ShadowSlot.
absl::string_view ShadowName(absl::string_view slot) {
  size_t size = 0;
  const size_t colon = slot.find(':');
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(slot.substr(0, colon), &size)) {
    return slot;
  }
  return slot.substr(colon + 1, size);
}

enum class Found { kUse, kCreate, kCollision };

// Returns the store in `map` under `key` if `accept` says so (kUse); makes
// way for a new one if there is none or it is closed (kCreate); kCollision
// if it is open but not acceptable.
Found Lookup(absl::flat_hash_map<std::string, std::shared_ptr<Store>>& map,
             const std::string& key,
             const std::function<bool(const Store&)>& accept,
             std::shared_ptr<Store>* out, std::shared_ptr<Store>* stale) {
  auto it = map.find(key);
  if (it == map.end()) return Found::kCreate;
  if (it->second->closed()) {
    *stale = std::move(it->second);
    map.erase(it);
    return Found::kCreate;
  }
  if (accept(*it->second)) {
    *out = it->second;
    return Found::kUse;
  }
  return Found::kCollision;
}

// The store under `key` in the registry's stores (or, with `shadow`, its
// shadowed stores) if `accept` takes it, else a new one from `make`, kept
// there when `keep`. Concurrent callers for the same slot make it once
// (ProxyStore issue #319). A collision (an open store there that `accept`
// refuses) is FailedPrecondition with the payload "proxystore/collision",
// unless `displace_wire` and a proxy made that store: it is moved aside
// (DisplaceWireStore) for the new one.
absl::StatusOr<std::shared_ptr<Store>> GetOrCreateIn(
    bool shadow, const std::string& key, bool keep, bool displace_wire,
    const std::function<bool(const Store&)>& accept,
    absl::FunctionRef<absl::StatusOr<std::shared_ptr<Store>>()> make) {
  StoreRegistry& r = Registry();
  {
    // The common case, every resolve of a proxy from another process: an
    // open, acceptable store is there. Readers do not exclude each other.
    ReaderMutexLock lock(r.mu);
    const auto& map = shadow ? r.shadowed : r.stores;
    auto it = map.find(key);
    if (it != map.end() && !it->second->closed() && accept(*it->second)) {
      return it->second;
    }
  }
  const std::string slot = absl::StrCat(shadow ? "s:" : "n:", key);
  std::shared_ptr<Creation> creation;
  std::shared_ptr<Store> stale;  // Destroyed after the lock is released.
  std::vector<std::shared_ptr<Store>> dropped;  // Likewise.
  const bool displace = displace_wire && !shadow;
  bool creator = false;
  for (;;) {
    {
      MutexLock lock(r.mu);
      auto& map = shadow ? r.shadowed : r.stores;
      if (displace) {
        auto it = map.find(key);
        if (it != map.end() && !it->second->closed() &&
            it->second->from_wire() && !accept(*it->second)) {
          DisplaceWireStore(r, it, dropped);
        }
      }
      std::shared_ptr<Store> found;
      switch (Lookup(map, key, accept, &found, &stale)) {
        case Found::kUse:
          return found;
        case Found::kCollision: {
          absl::Status s = absl::FailedPreconditionError(absl::StrCat(
              "store name ", QuoteForMessage(shadow ? ShadowName(key) : key),
              " is taken",
              shadow ? " (by a store kept apart for proxies)" : ""));
          s.SetPayload("proxystore/collision", absl::Cord("1"));
          return s;
        }
        case Found::kCreate:
          break;
      }
      auto [c, inserted] = r.creating.try_emplace(slot);
      if (inserted) c->second = std::make_shared<Creation>();
      creation = c->second;
      creator = inserted;
    }
    if (creator) break;
    // Someone else is creating this store: wait for their result, and use it
    // if it is acceptable (it was made for another config otherwise).
    std::unique_lock<std::mutex> lock(creation->mu);
    creation->cv.wait(lock, [&] { return creation->done; });
    if (!creation->result.ok()) return creation->result;
    if (accept(**creation->result) && !(*creation->result)->closed()) {
      return creation->result;
    }
  }
  // Created without any registry lock held (connecting may take a while);
  // registered here, not by the store itself.
  absl::StatusOr<std::shared_ptr<Store>> result = make();
  {
    MutexLock lock(r.mu);
    if (result.ok() && keep) {
      auto& map = shadow ? r.shadowed : r.stores;
      auto [it, inserted] = map.try_emplace(key, *result);
      // A store registered meanwhile under this name wins: everyone in the
      // process gets the same store.
      if (!inserted) {
        if (it->second->closed()) {
          it->second = *result;
        } else if (accept(*it->second)) {
          result = it->second;
        } else if (displace && it->second->from_wire()) {
          DisplaceWireStore(r, it, dropped);
          map.try_emplace(key, *result);
        }
      }
    }
    r.creating.erase(slot);
  }
  {
    std::lock_guard<std::mutex> lock(creation->mu);
    creation->result = result;
    creation->done = true;
  }
  creation->cv.notify_all();
  return result;
}

}  // namespace

void UnregisterStore(absl::string_view name) {
  store_internal::UnregisterIf(name, nullptr);
}

// Store's private constructors, for the registry.
struct StoreFactoryAccess {
  static absl::StatusOr<std::shared_ptr<Store>> Make(const StoreConfig& config,
                                                     bool from_wire) {
    return Store::FromConfigImpl(config, /*register_now=*/false, from_wire);
  }
};

absl::StatusOr<std::shared_ptr<Store>> GetOrCreateStore(
    const StoreConfig& config, bool register_store) {
  // A store a proxy made under this name is not the application's: it is
  // moved aside (proxies of its name and location still find it), and the
  // application gets a store of its own config.
  return GetOrCreateIn(
      /*shadow=*/false, config.name, register_store, /*displace_wire=*/true,
      [](const Store& s) { return !s.from_wire(); },
      [&] { return StoreFactoryAccess::Make(config, /*from_wire=*/false); });
}

absl::StatusOr<StoreRegistration> StoreRegistration::Create(
    std::vector<std::shared_ptr<Store>> stores, bool exist_ok) {
  std::vector<std::string> names;
  for (std::shared_ptr<Store>& s : stores) {
    absl::Status status = RegisterStore(s, exist_ok);
    if (!status.ok()) {
      for (const std::string& n : names) UnregisterStore(n);
      return status;
    }
    names.push_back(s->name());
  }
  return StoreRegistration(std::move(names));
}

StoreRegistration& StoreRegistration::operator=(
    StoreRegistration&& other) noexcept {
  if (this != &other) {
    for (const std::string& n : names_) UnregisterStore(n);
    names_ = std::move(other.names_);
    other.names_.clear();
  }
  return *this;
}

StoreRegistration::~StoreRegistration() {
  for (const std::string& n : names_) UnregisterStore(n);
}

namespace store_internal {

absl::StatusOr<std::shared_ptr<Store>> FindStore(
    const std::weak_ptr<Store>& origin, const StoreConfig& config) {
  if (std::shared_ptr<Store> s = origin.lock(); s != nullptr && !s->closed()) {
    return s;
  }
  // From here on the config is the proxy's, and may have come from anywhere:
  // a store of this process is used only if it reaches the same data.
  absl::StatusOr<ConnectorConfig> location = LocationConfig(config.connector);
  if (!location.ok()) {
    return Annotate(location.status(),
                    absl::StrCat("store \"", config.name, "\" from a proxy"));
  }
  auto same_data = [&location](const Store& s) {
    return s.location() != nullptr && *s.location() == *location;
  };
  auto make = [&] {
    return StoreFactoryAccess::Make(config, /*from_wire=*/true);
  };
  absl::StatusOr<std::shared_ptr<Store>> named =
      GetOrCreateIn(/*shadow=*/false, config.name, /*keep=*/true,
                    /*displace_wire=*/false, same_data, make);
  if (named.ok() || !named.status().GetPayload("proxystore/collision")) {
    return named;
  }
  // The name is taken here by a store that reaches other data: the proxy's
  // own config wins, in a store kept apart from the registered one.
  return GetOrCreateIn(
      /*shadow=*/true, ShadowSlot(config.name, *location), /*keep=*/true,
      /*displace_wire=*/false, same_data,
      [&]() -> absl::StatusOr<std::shared_ptr<Store>> {
        Logger().warn(
            "proxies of store \"{}\" ({}) resolve through their own config: "
            "the store registered under that name here reaches other data",
            config.name, location->DebugString());
        return make();
      });
}

}  // namespace store_internal
}  // namespace proxystore
