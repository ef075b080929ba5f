// Mutex (std::shared_mutex) and ExclusiveMutex (an adaptive pthread mutex)
// with Clang thread-safety annotations.
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

#include <pthread.h>

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

// An exclusive-only mutex for short critical sections on state that is
// nearly always written (an LRU list that every hit reorders): cheaper to
// lock and unlock than Mutex's writer side, and adaptive (glibc's
// PTHREAD_MUTEX_ADAPTIVE_NP: a contended Lock spins briefly before it
// sleeps, so a hand-off between threads rarely costs a futex call).
class ABSL_LOCKABLE ExclusiveMutex {
 public:
  ExclusiveMutex() {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    pthread_mutex_init(&mu_, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  ~ExclusiveMutex() { pthread_mutex_destroy(&mu_); }
  ExclusiveMutex(const ExclusiveMutex&) = delete;
  ExclusiveMutex& operator=(const ExclusiveMutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { pthread_mutex_lock(&mu_); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { pthread_mutex_unlock(&mu_); }
  // Tells Clang's analysis that the caller holds this mutex (it was locked
  // through a capability that stands for several mutexes); checks nothing.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  pthread_mutex_t mu_;
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
