#include "proxystore/store/ref.h"

#include <atomic>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Pointee;

// --- Static rules -----------------------------------------------------------

template <typename O>
concept CanReleaseLvalue = requires(O& o) {
  o.Release();
};
template <typename O>
concept CanSerializeLvalue = requires(O& o) {
  o.Serialize();
};
template <typename O>
concept CanEvictLvalue = requires(O& o) {
  o.Evict();
};
template <typename O>
concept CanReleaseRvalue = requires(O&& o) {
  std::move(o).Release();
};
template <typename O>
concept CanMutBorrowConst = requires(const O& o) {
  MutBorrow(o);
};
template <typename O>
concept CanBorrow = requires(const O& o) {
  Borrow(o);
};
template <typename R>
concept CanUpdate = requires(R& r) {
  Update(r, std::string());
};
template <typename P>
concept CanIntoOwned = requires(P p) {
  IntoOwned(std::move(p));
};

using Owned = OwnedProxy<std::string>;
using Ref = RefProxy<std::string>;
using RefMut = RefMutProxy<std::string>;

static_assert(!std::is_copy_constructible_v<Owned>);
static_assert(!std::is_copy_assignable_v<Owned>);
static_assert(std::is_nothrow_move_constructible_v<Owned>);
static_assert(std::is_nothrow_move_assignable_v<Owned>);
static_assert(!std::is_default_constructible_v<Owned>);
static_assert(!std::is_copy_constructible_v<Ref>);
static_assert(!std::is_copy_assignable_v<Ref>);
static_assert(std::is_nothrow_move_constructible_v<Ref>);
static_assert(!std::is_copy_constructible_v<RefMut>);
static_assert(!std::is_copy_assignable_v<RefMut>);
static_assert(std::is_nothrow_move_constructible_v<RefMut>);
// Consuming an owner needs an rvalue: std::move(owner).Release().
static_assert(!CanReleaseLvalue<Owned>);
static_assert(!CanSerializeLvalue<Owned>);
static_assert(!CanEvictLvalue<Owned>);
static_assert(CanReleaseRvalue<Owned>);
// A mutable borrow needs a mutable owner; borrows cannot be borrowed from.
static_assert(!CanMutBorrowConst<Owned>);
static_assert(CanBorrow<Owned>);
static_assert(!CanBorrow<Ref>);
static_assert(!CanBorrow<RefMut>);
// Only the owner or the mutable borrow update.
static_assert(CanUpdate<RefMut>);
static_assert(CanUpdate<Owned>);
static_assert(!CanUpdate<Ref>);
// Only a plain proxy becomes an owner.
static_assert(CanIntoOwned<Proxy<std::string>>);
static_assert(!CanIntoOwned<Ref>);

// --- Helpers
// ------------------------------------------------------------------

std::shared_ptr<Store> MakeStore(StoreOptions options = {}) {
  absl::StatusOr<std::unique_ptr<Connector>> c =
      MakeConnector(ConnectorConfig{"local", {}});
  EXPECT_THAT(c.status(), IsOk());
  // A name per store: a proxy parsed here finds its store by name.
  static std::atomic<int> next{0};
  absl::StatusOr<std::shared_ptr<Store>> s = Store::Create(
      absl::StrCat("ref-test-", next.fetch_add(1)), *std::move(c), options);
  EXPECT_THAT(s.status(), IsOk());
  return *std::move(s);
}

// Whether the connector holds `key` (not the cache).
bool InConnector(Store& store, const Key& key) {
  absl::StatusOr<bool> e = store.connector().Exists(key);
  EXPECT_THAT(e.status(), IsOk());
  return e.ok() && *e;
}

class RefTest : public ::testing::Test {
 protected:
  std::shared_ptr<Store> store_ = MakeStore();
};

// --- Ownership
// ----------------------------------------------------------------

TEST_F(RefTest, OwnerGetsItsObjectAndEvictsItWhenDestroyed) {
  Key key;
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                    OwnedProxyOf(*store_, std::string("v")));
    key = owner.key();
    EXPECT_FALSE(key.empty());
    EXPECT_TRUE(owner.valid());
    EXPECT_THAT(owner.Get(), IsOkAndHolds(Pointee(std::string("v"))));
    EXPECT_THAT(store_->Exists(key), IsOkAndHolds(true));
  }
  EXPECT_THAT(store_->Exists(key), IsOkAndHolds(false));
  EXPECT_FALSE(InConnector(*store_, key));
}

TEST_F(RefTest, OwnedProxyOfRejectsEvictOption) {
  ProxyOptions<std::string> options;
  options.evict = true;
  EXPECT_THAT(OwnedProxyOf(*store_, std::string("v"), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("evict")));
}

TEST_F(RefTest, OwnerResolveNeverEvicts) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("v")));
  ASSERT_THAT(owner.Get(), IsOk());
  EXPECT_TRUE(InConnector(*store_, owner.key()));
}

TEST_F(RefTest, DroppingAnAlreadyEvictedObjectIsFine) {
  Key key;
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                    OwnedProxyOf(*store_, std::string("v")));
    key = owner.key();
    ASSERT_THAT(store_->Evict(key), IsOk());
    EXPECT_THAT(owner.Get(), StatusIs(absl::StatusCode::kNotFound));
  }
  EXPECT_THAT(store_->Exists(key), IsOkAndHolds(false));
}

TEST_F(RefTest, ReleaseKeepsTheObject) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("kept")));
  const Key key = owner.key();
  std::optional<Proxy<std::string>> plain;
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> p,
                                    std::move(owner).Release());
    plain = p;
  }
  EXPECT_FALSE(owner.valid());
  { Owned gone = std::move(owner); }  // An empty owner evicts nothing.
  EXPECT_THAT(store_->Exists(key), IsOkAndHolds(true));
  EXPECT_THAT(GetKey(*plain), IsOkAndHolds(key));
  EXPECT_THAT(plain->Get(), IsOkAndHolds(Pointee(std::string("kept"))));
  EXPECT_TRUE(InConnector(*store_, key));  // Its resolve does not evict.
}

TEST_F(RefTest, EvictNowReportsAndEmptiesTheOwner) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("v")));
  const Key key = owner.key();
  EXPECT_THAT(std::move(owner).Evict(), IsOk());
  EXPECT_FALSE(owner.valid());
  EXPECT_FALSE(InConnector(*store_, key));
}

TEST_F(RefTest, MoveTransfersOwnershipWithoutEvicting) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned a,
                                  OwnedProxyOf(*store_, std::string("a")));
  const Key key = a.key();
  Owned b = std::move(a);
  EXPECT_FALSE(a.valid());
  EXPECT_TRUE(b.valid());
  EXPECT_EQ(b.key(), key);
  EXPECT_TRUE(InConnector(*store_, key));
  EXPECT_THAT(b.Get(), IsOkAndHolds(Pointee(std::string("a"))));
}

TEST_F(RefTest, MoveAssignEvictsWhatTheTargetOwned) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned a,
                                  OwnedProxyOf(*store_, std::string("a")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned b,
                                  OwnedProxyOf(*store_, std::string("b")));
  const Key ka = a.key();
  const Key kb = b.key();
  b = std::move(a);
  EXPECT_FALSE(InConnector(*store_, kb));
  EXPECT_TRUE(InConnector(*store_, ka));
  EXPECT_EQ(b.key(), ka);
  Owned& self = b;
  b = std::move(self);  // Self-move keeps the object.
  EXPECT_TRUE(b.valid());
  EXPECT_TRUE(InConnector(*store_, ka));
}

TEST_F(RefTest, AnEmptyOwnerRefusesEveryUseWithAStatus) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned a,
                                  OwnedProxyOf(*store_, std::string("a")));
  Owned b = std::move(a);
  const auto empty =
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("empty"));
  EXPECT_THAT(a.Get().status(), empty);
  EXPECT_TRUE(a.key().empty());
  EXPECT_EQ(a.shared_borrows(), 0);
  EXPECT_FALSE(a.mutably_borrowed());
  EXPECT_THAT(Borrow(a).status(), empty);
  EXPECT_THAT(MutBorrow(a).status(), empty);
  EXPECT_THAT(Clone(a).status(), empty);
  EXPECT_THAT(Update(a, std::string("x")), empty);
  EXPECT_THAT(std::move(a).Release().status(), empty);
  EXPECT_THAT(std::move(a).Serialize().status(), empty);
  EXPECT_THAT(std::move(a).Evict(), empty);
  EXPECT_TRUE(InConnector(*store_, b.key()));
}

// --- Borrowing
// ----------------------------------------------------------------

TEST_F(RefTest, ManySharedBorrowsAtOnce) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("v")));
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r1, Borrow(owner));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r2, Borrow(owner));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r3, Borrow(owner));
    EXPECT_EQ(owner.shared_borrows(), 3);
    EXPECT_THAT(r1.Get(), IsOkAndHolds(Pointee(std::string("v"))));
    EXPECT_THAT(r2.Get(), IsOkAndHolds(Pointee(std::string("v"))));
    EXPECT_EQ(r3.key(), owner.key());
    // The owner can still be read while shared-borrowed.
    EXPECT_THAT(owner.Get(), IsOkAndHolds(Pointee(std::string("v"))));
  }
  EXPECT_EQ(owner.shared_borrows(), 0);
}

TEST_F(RefTest, BorrowsShareTheOwnersResolution) {
  ProxyOptions<std::string> options;
  options.populate_target = false;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Owned owner, OwnedProxyOf(*store_, std::string("v"), options));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r, Borrow(owner));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const std::string> a,
                                  owner.Get());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const std::string> b,
                                  r.Get());
  EXPECT_EQ(a.get(), b.get());
}

TEST_F(RefTest, MutBorrowWhileBorrowedFails) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("v")));
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r, Borrow(owner));
    EXPECT_THAT(MutBorrow(owner).status(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("already borrowed (1 RefProxy")));
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RefMut w, MutBorrow(owner));
  EXPECT_TRUE(owner.mutably_borrowed());
  EXPECT_THAT(MutBorrow(owner).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("1 RefMutProxy")));
}

TEST_F(RefTest, BorrowAndOwnerReadsWhileMutablyBorrowedFail) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("v")));
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(RefMut w, MutBorrow(owner));
    const auto mut = StatusIs(absl::StatusCode::kFailedPrecondition,
                              HasSubstr("mutably borrowed"));
    EXPECT_THAT(Borrow(owner).status(), mut);
    EXPECT_THAT(owner.Get().status(), mut);
    EXPECT_THAT(Clone(owner).status(), mut);
    EXPECT_THAT(w.Get(), IsOkAndHolds(Pointee(std::string("v"))));
    EXPECT_EQ(w.key(), owner.key());  // Metadata stays readable.
  }
  EXPECT_FALSE(owner.mutably_borrowed());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r, Borrow(owner));
  EXPECT_THAT(owner.Get(), IsOk());
}

TEST_F(RefTest, MovingABorrowKeepsOneCount) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("v")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r1, Borrow(owner));
  Ref r2 = std::move(r1);
  EXPECT_EQ(owner.shared_borrows(), 1);
  EXPECT_FALSE(r1.valid());
  EXPECT_THAT(r1.Get().status(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                          HasSubstr("empty")));
  EXPECT_THAT(r1.Serialize().status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(r1.key().empty());
  EXPECT_THAT(r2.Get(), IsOkAndHolds(Pointee(std::string("v"))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r3, Borrow(owner));
  r2 = std::move(r3);  // Ends r2's borrow, takes r3's.
  EXPECT_EQ(owner.shared_borrows(), 1);
  { Ref end = std::move(r2); }
  EXPECT_EQ(owner.shared_borrows(), 0);

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RefMut w1, MutBorrow(owner));
  RefMut w2 = std::move(w1);
  EXPECT_TRUE(owner.mutably_borrowed());
  EXPECT_THAT(w1.Get().status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Update(w1, std::string("x")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  { RefMut end = std::move(w2); }
  EXPECT_FALSE(owner.mutably_borrowed());
}

// --- Lifetime with live borrows ---------------------------------------------

TEST_F(RefTest, OwnerDestroyedWithLiveBorrowEvictsWhenTheBorrowEnds) {
  std::optional<Ref> ref;
  Key key;
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                    OwnedProxyOf(*store_, std::string("v")));
    key = owner.key();
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r, Borrow(owner));
    ref.emplace(std::move(r));
  }
  EXPECT_TRUE(InConnector(*store_, key));
  EXPECT_THAT(ref->Get(), IsOkAndHolds(Pointee(std::string("v"))));
  ref.reset();
  EXPECT_FALSE(InConnector(*store_, key));
}

TEST_F(RefTest, OwnerDestroyedWithLiveMutBorrowKeepsUpdatesUntilItEnds) {
  std::optional<RefMut> ref;
  Key old_key;
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                    OwnedProxyOf(*store_, std::string("v")));
    old_key = owner.key();
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(RefMut w, MutBorrow(owner));
    ref.emplace(std::move(w));
  }
  EXPECT_TRUE(InConnector(*store_, old_key));
  ASSERT_THAT(Update(*ref, std::string("w")), IsOk());
  const Key new_key = ref->key();
  EXPECT_NE(new_key, old_key);
  EXPECT_FALSE(InConnector(*store_, old_key));
  EXPECT_THAT(ref->Get(), IsOkAndHolds(Pointee(std::string("w"))));
  ref.reset();
  EXPECT_FALSE(InConnector(*store_, new_key));
}

TEST_F(RefTest, ConsumingABorrowedOwnerFailsAndLeavesItOwning) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("v")));
  const Key key = owner.key();
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r, Borrow(owner));
    const auto borrowed = StatusIs(absl::StatusCode::kFailedPrecondition,
                                   HasSubstr("ownership rule"));
    EXPECT_THAT(std::move(owner).Release().status(), borrowed);
    EXPECT_THAT(std::move(owner).Serialize().status(), borrowed);
    EXPECT_THAT(std::move(owner).Evict(), borrowed);
    EXPECT_THAT(Update(owner, std::string("x")), borrowed);
    EXPECT_TRUE(owner.valid());
  }
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(RefMut w, MutBorrow(owner));
    EXPECT_THAT(std::move(owner).Release().status(),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_TRUE(owner.valid());
  }
  EXPECT_THAT(owner.Get(), IsOkAndHolds(Pointee(std::string("v"))));
  EXPECT_THAT(std::move(owner).Evict(), IsOk());
  EXPECT_FALSE(InConnector(*store_, key));
}

TEST_F(RefTest, MovedOwnerKeepsCountingItsBorrows) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned a,
                                  OwnedProxyOf(*store_, std::string("v")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r, Borrow(a));
  Owned b = std::move(a);
  EXPECT_EQ(b.shared_borrows(), 1);
  EXPECT_THAT(MutBorrow(b).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.Get(), IsOkAndHolds(Pointee(std::string("v"))));
}

TEST_F(RefTest, BorrowOfAnObjectEvictedElsewhereIsNotFound) {
  ProxyOptions<std::string> options;
  options.populate_target = false;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Owned owner, OwnedProxyOf(*store_, std::string("v"), options));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r, Borrow(owner));
  ASSERT_THAT(store_->Evict(owner.key()), IsOk());
  EXPECT_THAT(r.Get().status(), StatusIs(absl::StatusCode::kNotFound));
}

// --- Clone, Update, IntoOwned ----------------------------------------------

TEST_F(RefTest, CloneGivesAnIndependentOwnerUnderANewKey) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned original,
                                  OwnedProxyOf(*store_, std::string("c")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned copy, Clone(original));
  const Key ko = original.key();
  const Key kc = copy.key();
  EXPECT_NE(ko, kc);
  EXPECT_THAT(copy.Get(), IsOkAndHolds(Pointee(std::string("c"))));
  EXPECT_THAT(store_->Get<std::string>(kc),
              IsOkAndHolds(Pointee(std::string("c"))));
  // Borrowing one does not borrow the other.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RefMut w, MutBorrow(original));
  EXPECT_THAT(Borrow(copy), IsOk());
  { RefMut end = std::move(w); }
  { Owned drop = std::move(original); }
  EXPECT_FALSE(InConnector(*store_, ko));
  EXPECT_TRUE(InConnector(*store_, kc));
  EXPECT_THAT(copy.Get(), IsOkAndHolds(Pointee(std::string("c"))));
  { Owned drop = std::move(copy); }
  EXPECT_FALSE(InConnector(*store_, kc));
}

TEST_F(RefTest, CloneOfAnUnresolvedOwnerAndOfAMissingObject) {
  ProxyOptions<std::string> options;
  options.populate_target = false;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      Owned owner, OwnedProxyOf(*store_, std::string("u"), options));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned copy, Clone(owner));
  EXPECT_THAT(copy.Get(), IsOkAndHolds(Pointee(std::string("u"))));
  ASSERT_THAT(store_->Evict(owner.key()), IsOk());
  EXPECT_THAT(Clone(owner).status(), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(RefTest, UpdateIsVisibleThroughEveryFreshRead) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("old")));
  const Key old_key = owner.key();
  // Cache the old value in the store.
  ASSERT_THAT(store_->Get<std::string>(old_key),
              IsOkAndHolds(Pointee(std::string("old"))));
  ASSERT_TRUE(store_->IsCached(old_key));
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(RefMut w, MutBorrow(owner));
    ASSERT_THAT(Update(w, std::string("new")), IsOk());
    EXPECT_THAT(w.Get(), IsOkAndHolds(Pointee(std::string("new"))));
  }
  const Key new_key = owner.key();
  EXPECT_NE(new_key, old_key);
  EXPECT_THAT(owner.Get(), IsOkAndHolds(Pointee(std::string("new"))));
  EXPECT_THAT(store_->Get<std::string>(new_key),
              IsOkAndHolds(Pointee(std::string("new"))));
  // Nothing serves the old value any more: not the cache, not the connector.
  EXPECT_FALSE(store_->IsCached(old_key));
  EXPECT_THAT(store_->Get<std::string>(old_key), IsOkAndHolds(nullptr));
  EXPECT_FALSE(InConnector(*store_, old_key));
  // A borrow taken now, and a proxy parsed from it, read the new value.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r, Borrow(owner));
  EXPECT_THAT(r.Get(), IsOkAndHolds(Pointee(std::string("new"))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, r.Serialize());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> parsed,
                                  ParseProxy<std::string>(wire));
  EXPECT_THAT(parsed.Get(), IsOkAndHolds(Pointee(std::string("new"))));
}

TEST_F(RefTest, UpdateThroughAnUnborrowedOwner) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("a")));
  const Key old_key = owner.key();
  ASSERT_THAT(Update(owner, std::string("b")), IsOk());
  EXPECT_FALSE(owner.mutably_borrowed());
  EXPECT_THAT(owner.Get(), IsOkAndHolds(Pointee(std::string("b"))));
  EXPECT_FALSE(InConnector(*store_, old_key));
  const Key new_key = owner.key();
  { Owned drop = std::move(owner); }
  EXPECT_FALSE(InConnector(*store_, new_key));
}

TEST_F(RefTest, IntoOwnedAdoptsAStoreProxy) {
  ProxyOptions<std::string> options;
  options.evict = true;  // The owner's resolves must not evict.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> plain,
                                  store_->Proxy(std::string("p"), options));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, GetKey(plain));
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner, IntoOwned(plain));
    EXPECT_EQ(owner.key(), key);
    EXPECT_THAT(owner.Get(), IsOkAndHolds(Pointee(std::string("p"))));
    EXPECT_TRUE(InConnector(*store_, key));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r, Borrow(owner));
    EXPECT_THAT(r.Get(), IsOk());
    EXPECT_TRUE(InConnector(*store_, key));
  }
  EXPECT_FALSE(InConnector(*store_, key));
}

TEST_F(RefTest, IntoOwnedKeepsAResolvedTarget) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> plain,
                                  store_->Proxy(std::string("p")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const std::string> target,
                                  plain.Get());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner, IntoOwned(plain));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const std::string> got,
                                  owner.Get());
  EXPECT_EQ(got.get(), target.get());
}

TEST_F(RefTest, IntoOwnedRejectsAProxyThatIsNotStoreBacked) {
  Proxy<std::string> local(
      std::make_shared<SimpleFactory<std::string>>(std::string("x")));
  EXPECT_THAT(
      IntoOwned(local).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("store-backed")));
}

// --- Serialization (in one process) -----------------------------------------

TEST_F(RefTest, SerializeHandsOwnershipToTheParser) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("s")));
  const Key key = owner.key();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire,
                                  std::move(owner).Serialize());
  EXPECT_FALSE(owner.valid());
  { Owned gone = std::move(owner); }
  EXPECT_TRUE(InConnector(*store_, key));
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned received,
                                    ParseOwnedProxy<std::string>(wire));
    EXPECT_EQ(received.key(), key);
    EXPECT_THAT(received.Get(), IsOkAndHolds(Pointee(std::string("s"))));
  }
  EXPECT_FALSE(InConnector(*store_, key));
}

TEST_F(RefTest, ParseOwnedProxyRejectsOtherTypesAndGarbage) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("s")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire,
                                  std::move(owner).Serialize());
  EXPECT_THAT(ParseOwnedProxy<int64_t>(wire).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(ParseOwnedProxy<std::string>("not a proxy").ok());
  // Take the object back so that it is evicted.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned back,
                                  ParseOwnedProxy<std::string>(wire));
}

TEST_F(RefTest, SerializedBorrowIsAPlainProxyThatNothingCounts) {
  ProxyOptions<std::string> options;
  options.populate_target = false;
  std::string wire;
  Key key;
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        Owned owner, OwnedProxyOf(*store_, std::string("b"), options));
    key = owner.key();
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r, Borrow(owner));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(wire, r.Serialize());
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> remote,
                                    ParseProxy<std::string>(wire));
    EXPECT_THAT(remote.Get(), IsOkAndHolds(Pointee(std::string("b"))));
    EXPECT_TRUE(InConnector(*store_, key));  // Resolving it never evicts.
    EXPECT_EQ(owner.shared_borrows(), 1);    // Only the local borrow.
  }
  // The owner and its local borrow are gone: so is the object. (A receiving
  // process's store may still have it cached, as for any evicted object.)
  EXPECT_FALSE(InConnector(*store_, key));
}

// --- Threads
// ------------------------------------------------------------------

TEST_F(RefTest, BorrowCountingAcrossThreads) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("t")));
  constexpr int kThreads = 8;
  constexpr int kRounds = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&owner, &failures] {
      for (int i = 0; i < kRounds; ++i) {
        absl::StatusOr<Ref> r = Borrow(owner);
        if (!r.ok()) {
          ++failures;
          continue;
        }
        absl::StatusOr<std::shared_ptr<const std::string>> v = r->Get();
        if (!v.ok() || **v != "t") ++failures;
        if (i % 2 == 0) Ref moved = *std::move(r);  // Ends here instead.
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(owner.shared_borrows(), 0);
  EXPECT_THAT(MutBorrow(owner), IsOk());
}

TEST_F(RefTest, BorrowsHeldByManyThreadsAtOnceBlockMutBorrow) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned owner,
                                  OwnedProxyOf(*store_, std::string("t")));
  constexpr int kThreads = 6;
  std::latch holding(kThreads);
  std::latch release(1);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      absl::StatusOr<Ref> r = Borrow(owner);
      if (!r.ok()) ++failures;
      holding.count_down();
      release.wait();
    });
  }
  holding.wait();
  EXPECT_EQ(owner.shared_borrows(), kThreads);
  EXPECT_THAT(MutBorrow(owner).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  release.count_down();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(owner.shared_borrows(), 0);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(RefMut w, MutBorrow(owner));
  EXPECT_THAT(Update(w, std::string("u")), IsOk());
}

TEST_F(RefTest, OwnerDroppedWhileThreadsHoldBorrowsEvictsAfterTheLast) {
  std::optional<Owned> owner;
  {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Owned o,
                                    OwnedProxyOf(*store_, std::string("t")));
    owner.emplace(std::move(o));
  }
  const Key key = owner->key();
  constexpr int kThreads = 6;
  std::vector<Ref> refs;
  for (int t = 0; t < kThreads; ++t) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Ref r, Borrow(*owner));
    refs.push_back(std::move(r));
  }
  std::latch start(1);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (Ref& r : refs) {
    threads.emplace_back([&start, &failures, ref = std::move(r)]() mutable {
      start.wait();
      absl::StatusOr<std::shared_ptr<const std::string>> v = ref.Get();
      if (!v.ok() || **v != "t") ++failures;
      Ref end = std::move(ref);
    });
  }
  owner.reset();
  start.count_down();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_FALSE(InConnector(*store_, key));
}

}  // namespace
}  // namespace proxystore
