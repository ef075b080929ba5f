#include "proxystore/store/signing.h"

#include <sodium.h>

#include <array>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/no_destructor.h"

namespace proxystore {
namespace {

static_assert(signing_internal::kMacSize == crypto_auth_BYTES);

using MacKey = std::array<unsigned char, crypto_auth_KEYBYTES>;

struct KeyState {
  Mutex mu;
  std::optional<MacKey> key ABSL_GUARDED_BY(mu);
};

KeyState& State() {
  static NoDestructor<KeyState> state;
  return *state;
}

std::optional<MacKey> CurrentKey() {
  KeyState& s = State();
  ReaderMutexLock lock(s.mu);
  return s.key;
}

}  // namespace

absl::Status SetProxySigningKey(absl::string_view key) {
  if (key.size() < kMinProxyKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("SetProxySigningKey: a key of ", key.size(),
                     " bytes is too short (at least ", kMinProxyKeySize, ")"));
  }
  if (sodium_init() < 0) {
    return absl::InternalError("SetProxySigningKey: libsodium failed to start");
  }
  MacKey mac_key;
  crypto_generichash(mac_key.data(), mac_key.size(),
                     reinterpret_cast<const unsigned char*>(key.data()),
                     key.size(), nullptr, 0);
  KeyState& s = State();
  MutexLock lock(s.mu);
  s.key = mac_key;
  sodium_memzero(mac_key.data(), mac_key.size());
  return absl::OkStatus();
}

void ClearProxySigningKey() {
  KeyState& s = State();
  MutexLock lock(s.mu);
  if (s.key.has_value()) sodium_memzero(s.key->data(), s.key->size());
  s.key.reset();
}

bool ProxySigningEnabled() { return CurrentKey().has_value(); }

namespace signing_internal {

std::string Sign(std::string proxy) {
  std::optional<MacKey> key = CurrentKey();
  if (!key.has_value()) return proxy;
  std::string out;
  out.resize(kMagic.size() + kMacSize + proxy.size());
  std::memcpy(out.data(), kMagic.data(), kMagic.size());
  std::memcpy(out.data() + kMagic.size() + kMacSize, proxy.data(),
              proxy.size());
  crypto_auth(reinterpret_cast<unsigned char*>(out.data() + kMagic.size()),
              reinterpret_cast<const unsigned char*>(proxy.data()),
              proxy.size(), key->data());
  sodium_memzero(key->data(), key->size());
  return out;
}

absl::StatusOr<absl::string_view> Verify(absl::string_view wire) {
  const bool is_signed = wire.size() >= kMagic.size() + kMacSize &&
                         wire.substr(0, kMagic.size()) == kMagic;
  std::optional<MacKey> key = CurrentKey();
  if (!key.has_value()) {
    return is_signed ? wire.substr(kMagic.size() + kMacSize) : wire;
  }
  if (!is_signed) {
    sodium_memzero(key->data(), key->size());
    return absl::PermissionDeniedError(
        "ParseProxy: the proxy is not signed, and this process requires "
        "signed proxies (SetProxySigningKey)");
  }
  absl::string_view proxy = wire.substr(kMagic.size() + kMacSize);
  const int ok = crypto_auth_verify(
      reinterpret_cast<const unsigned char*>(wire.data() + kMagic.size()),
      reinterpret_cast<const unsigned char*>(proxy.data()), proxy.size(),
      key->data());
  sodium_memzero(key->data(), key->size());
  if (ok != 0) {
    return absl::PermissionDeniedError(
        "ParseProxy: the proxy's signature does not verify with this "
        "process's key (signed with another key, or changed in transit)");
  }
  return proxy;
}

}  // namespace signing_internal
}  // namespace proxystore
