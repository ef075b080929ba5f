#include "proxystore/base/key.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace proxystore {

absl::StatusOr<Key> Key::Parse(absl::string_view serialized) {
  if (serialized.empty()) {
    return absl::InvalidArgumentError("Key::Parse: empty key");
  }
  if (serialized.size() > kMaxIdSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("Key::Parse: key of ", serialized.size(),
                     " bytes exceeds the limit of ", kMaxIdSize));
  }
  return Key(std::string(serialized));
}

}  // namespace proxystore
