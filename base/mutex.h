// Mutex (std::shared_mutex) and ExclusiveMutex (std::mutex) with Clang
// thread-safety annotations.
//
// Why not absl::Mutex: the project links Debian's prebuilt Abseil, which is
// not built with ThreadSanitizer, so TSan cannot see absl::Mutex hand-offs
// and would report false races. std::mutex goes through pthreads, which TSan
// intercepts. These wrappers keep ABSL_GUARDED_BY & co. meaningful on Clang.
//
//   Mutex mu_;
//   int count_ ABSL_GUARDED_BY(mu_);
//   void Inc() { MutexLock lock(mu_); ++count_; }
//
// Thread-safety: that is the point.
#ifndef PROXYSTORE_BASE_MUTEX_H_
#define PROXYSTORE_BASE_MUTEX_H_

#include <mutex>
#include <shared_mutex>

#include "absl/base/thread_annotations.h"

namespace proxystore {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION() { mu_.lock_shared(); }
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
};

// An exclusive-only mutex (std::mutex: glibc's plain pthread mutex) for
// short critical sections that are rarely contended, such as LruCache's
// per-CPU slots: cheaper to lock and unlock than Mutex's writer side. (An
// adaptive mutex, which spins before it sleeps, cost ~3 ns more per
// uncontended lock on our machines: it pays off only where hand-offs
// between threads are the common case.)
class ABSL_LOCKABLE ExclusiveMutex {
 public:
  ExclusiveMutex() = default;
  ExclusiveMutex(const ExclusiveMutex&) = delete;
  ExclusiveMutex& operator=(const ExclusiveMutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // Tells Clang's analysis that the caller holds this mutex (it was locked
  // through a capability that stands for several mutexes); checks nothing.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  std::mutex mu_;
};

// Holds Mutex or ExclusiveMutex exclusively for its scope.
template <typename M = Mutex>
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(M& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_.Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  M& mu_;
};

// Holds `mu` shared (many readers) for its scope.
class ABSL_SCOPED_LOCKABLE ReaderMutexLock {
 public:
  explicit ReaderMutexLock(Mutex& mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_.ReaderLock();
  }
  ~ReaderMutexLock() ABSL_UNLOCK_FUNCTION() { mu_.ReaderUnlock(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_BASE_MUTEX_H_
