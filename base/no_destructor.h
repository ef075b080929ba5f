// NoDestructor<T>: a function-local static that is never destroyed.
//
// Process-wide singletons (registries, the resolve pool, the logger handle)
// must stay usable until the very end: background threads and other statics'
// destructors may still reach them during exit, in an order nobody controls.
// So they are constructed on first use and deliberately never destroyed (the
// OS reclaims the memory). Abseil has absl::NoDestructor from 2023 on; Debian's
// 20220623 does not, hence this copy of the idea.
//
//   Registry& GetRegistry() {
//     static NoDestructor<Registry> registry;
//     return *registry;
//   }
//
// Thread-safety: construction is the usual thread-safe static initialization.
#ifndef PROXYSTORE_BASE_NO_DESTRUCTOR_H_
#define PROXYSTORE_BASE_NO_DESTRUCTOR_H_

#include <new>
#include <utility>

namespace proxystore {

template <typename T>
class NoDestructor {
 public:
  template <typename... Args>
  explicit NoDestructor(Args&&... args) {
    ::new (static_cast<void*>(storage_)) T(std::forward<Args>(args)...);
  }
  NoDestructor(const NoDestructor&) = delete;
  NoDestructor& operator=(const NoDestructor&) = delete;
  // Intentionally does not destroy the T.
  ~NoDestructor() = default;

  T& operator*() { return *get(); }
  T* operator->() { return get(); }
  T* get() { return std::launder(reinterpret_cast<T*>(storage_)); }

 private:
  alignas(T) unsigned char storage_[sizeof(T)];
};

}  // namespace proxystore

#endif  // PROXYSTORE_BASE_NO_DESTRUCTOR_H_
