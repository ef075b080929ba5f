// The process-wide tables of named serializers and deserializers
// (RegisterSerializer, FindDeserializer, ...).
#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/store/store.h"

namespace proxystore {

// ---------------------------------------------------------------------------
// Named (de)serializers.

namespace store_internal {
namespace {

struct FnRegistry {
  Mutex mu;
  // (serializer?, name) -> type tag -> std::function
  std::map<std::pair<bool, std::string>,
           absl::flat_hash_map<const void*, std::shared_ptr<const void>>>
      fns ABSL_GUARDED_BY(mu);
};

FnRegistry& Fns() {
  static NoDestructor<FnRegistry> registry;
  return *registry;
}

}  // namespace

absl::Status RegisterFn(bool serializer, absl::string_view name,
                        const void* type_tag, std::shared_ptr<const void> fn) {
  const char* what = serializer ? "serializer" : "deserializer";
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", what, " name must not be empty"));
  }
  FnRegistry& r = Fns();
  MutexLock lock(r.mu);
  auto& by_type = r.fns[{serializer, std::string(name)}];
  if (!by_type.emplace(type_tag, std::move(fn)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("a ", what, " named \"", name,
                     "\" is already registered for this type"));
  }
  return absl::OkStatus();
}

std::shared_ptr<const void> FindFn(bool serializer, absl::string_view name,
                                   const void* type_tag) {
  FnRegistry& r = Fns();
  ReaderMutexLock lock(r.mu);
  auto it = r.fns.find({serializer, std::string(name)});
  if (it == r.fns.end()) return nullptr;
  auto fn = it->second.find(type_tag);
  return fn == it->second.end() ? nullptr : fn->second;
}

bool IsRegistered(bool serializer, absl::string_view name) {
  FnRegistry& r = Fns();
  ReaderMutexLock lock(r.mu);
  auto it = r.fns.find({serializer, std::string(name)});
  return it != r.fns.end() && !it->second.empty();
}

}  // namespace store_internal

bool IsSerializerRegistered(absl::string_view name) {
  return store_internal::IsRegistered(true, name);
}
bool IsDeserializerRegistered(absl::string_view name) {
  return store_internal::IsRegistered(false, name);
}

}  // namespace proxystore
