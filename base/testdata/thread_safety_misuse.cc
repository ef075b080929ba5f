// Compiled by //base:mutex_annotations_test with clang -Wthread-safety: each
// function marked MISUSE must be rejected, the others accepted.
#include "proxystore/base/mutex.h"

namespace {

struct Guarded {
  proxystore::Mutex mu;
  int value ABSL_GUARDED_BY(mu) = 0;

  void LockedWrite() {
    proxystore::MutexLock lock(mu);
    value = 1;
  }
  int SharedRead() {
    proxystore::ReaderMutexLock lock(mu);
    return value;
  }
#ifdef MISUSE_UNLOCKED_WRITE
  void UnlockedWrite() { value = 2; }
#endif
#ifdef MISUSE_WRITE_UNDER_READER_LOCK
  void WriteUnderReaderLock() {
    proxystore::ReaderMutexLock lock(mu);
    value = 3;
  }
#endif
};

}  // namespace

int main() {
  Guarded g;
  g.LockedWrite();
  return g.SharedRead() == 1 ? 0 : 1;
}
