#include "proxystore/store/ref.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "proxystore/store/log.h"

namespace proxystore::ref_internal {

void EvictDropped(const absl::StatusOr<std::shared_ptr<Store>>& store,
                  const Key& key) {
  absl::Status status = store.ok()
                            ? (*store)->Evict(key)
                            : Annotate(store.status(), "cannot find the store");
  if (status.ok()) {
    if (store.ok()) {
      PROXYSTORE_LOG_DEBUG("Store(name=\"{}\"): owner of {} dropped, evicted",
                           (*store)->name(), key.id());
    }
    return;
  }
  store_internal::Logger().warn(
      "an OwnedProxy went away but evicting its object (key \"{}\") failed; "
      "the object stays in the store: {}",
      key.id(), status.ToString());
}

absl::Status EmptyError(absl::string_view op, absl::string_view handle) {
  return absl::FailedPreconditionError(
      absl::StrCat(op, ": the ", handle,
                   " is empty (moved from, or consumed by Release, Serialize "
                   "or Evict); it refers to no object"));
}

absl::Status MutablyBorrowedError(absl::string_view op) {
  return absl::FailedPreconditionError(absl::StrCat(
      op,
      ": the object is mutably borrowed (a RefMutProxy of it is live); "
      "borrow rule: a mutable borrow excludes every other borrow and every "
      "read through the owner until it is dropped"));
}

absl::Status BorrowedError(absl::string_view op, int shared_borrows,
                           bool mutably_borrowed) {
  if (op == "MutBorrow") {
    return absl::FailedPreconditionError(absl::StrCat(
        op, ": the object is already borrowed (", shared_borrows,
        " RefProxy and ", mutably_borrowed ? 1 : 0,
        " RefMutProxy live); borrow rule: a mutable borrow needs the object "
        "not to be borrowed at all"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      op, ": the object is borrowed (", shared_borrows, " RefProxy and ",
      mutably_borrowed ? 1 : 0,
      " RefMutProxy live); ownership rule: a borrowed OwnedProxy cannot be "
      "consumed or updated until its borrows are dropped (the owner is "
      "unchanged)"));
}

}  // namespace proxystore::ref_internal
