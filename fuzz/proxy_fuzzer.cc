// Fuzz target: serialized proxies (store/factory.h). The input is what
// Proxy<T>::Serialize() sends to another process: FactoryData::Parse reads
// it, and ParseProxy<T> / ParseProxyLocker<T> rebuild an unresolved proxy for
// several T. A proxy of std::string that parses is then RESOLVED, as a
// receiving process would, under the receiver-side authority of
// connectors/trust.h: every "local", "file", "shm" and "multi" destination
// is allowed (as by TrustPolicy::Default()), while "redis" is narrowed to
// 127.0.0.1 port 1 where nothing listens (fuzzed endpoints must never be
// contacted). Invariants checked:
//  - errors are DataLoss (not a serialized proxy) or InvalidArgument (bad
//    values, another type); the same from an aligned and an odd address;
//  - ParseProxy<T> succeeds exactly when FactoryData::Parse does and the
//    type name is T's, and then fails with FactoryData::Parse's status;
//  - what parses round-trips: FactoryData::Parse(data.Serialize()) and
//    FactoryData::Parse(proxy.Serialize()) give the same fields, Serialize
//    is deterministic, the key is valid and the store config validates;
//  - resolving ends in a Status of the expected kinds (never a crash, a
//    sanitizer report or an escaped exception), and a "file" directory that
//    did not exist before the resolve does not exist after it.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/trust.h"
#include "proxystore/fuzz/fuzz_util.h"
#include "proxystore/serializer/serializer.h"
#include "proxystore/store/factory.h"

namespace proxystore::fuzz {
namespace {

bool SameData(const FactoryData& a, const FactoryData& b) {
  return a.key == b.key && a.store_config == b.store_config &&
         a.evict == b.evict && a.deserializer == b.deserializer &&
         a.type_name == b.type_name;
}

template <typename T>
void CheckProxy(absl::string_view input,
                const absl::StatusOr<FactoryData>& data) {
  const std::string type(TypeName<T>());
  absl::StatusOr<Proxy<T>> proxy = ParseProxy<T>(input);
  if (!data.ok()) {
    PROXYSTORE_FUZZ_CHECK(!proxy.ok() && proxy.status() == data.status(),
                          absl::StrCat(type, ": ", proxy.status().ToString()));
    return;
  }
  const bool for_t = data->type_name == TypeName<T>();
  PROXYSTORE_FUZZ_CHECK(proxy.ok() == for_t,
                        absl::StrCat(type, ": ", proxy.status().ToString()));
  if (!proxy.ok()) {
    PROXYSTORE_FUZZ_CHECK(
        HasCode(proxy.status(), {absl::StatusCode::kInvalidArgument}),
        proxy.status().ToString());
    return;
  }
  PROXYSTORE_FUZZ_CHECK(!proxy->IsResolved(), "parsed proxy is resolved");
  absl::StatusOr<std::string> wire = proxy->Serialize();
  PROXYSTORE_FUZZ_CHECK(wire.ok(), wire.status().ToString());
  absl::StatusOr<FactoryData> again = FactoryData::Parse(*wire);
  PROXYSTORE_FUZZ_CHECK(again.ok(), again.status().ToString());
  PROXYSTORE_FUZZ_CHECK(SameData(*again, *data), "proxy round trip");
  absl::StatusOr<Key> key = GetKey(*proxy);
  PROXYSTORE_FUZZ_CHECK(key.ok() && *key == data->key, "GetKey");
  absl::StatusOr<ProxyLocker<T>> locker = ParseProxyLocker<T>(input);
  PROXYSTORE_FUZZ_CHECK(locker.ok(), locker.status().ToString());
}

// A "file" directory this config names (directly), or "".
std::string FileDirectory(const ConnectorConfig& c) {
  if (absl::AsciiStrToLower(c.kind) != "file") return "";
  auto it = c.options.find("directory");
  return it == c.options.end() ? "" : it->second;
}

void ResolveUnderPolicy(absl::string_view input,
                        const absl::StatusOr<FactoryData>& data) {
  if (!data.ok() || data->type_name != TypeName<std::string>()) return;
  static const bool policy_set = [] {
    SetTrustPolicy(TrustPolicy::DenyAll()
                       .AllowKind("local")
                       .AllowKind("file")
                       .AllowKind("shm")
                       .AllowDestination("redis:127.0.0.1:1/"));
    return true;
  }();
  (void)policy_set;
  const std::string dir = FileDirectory(data->store_config.connector);
  std::error_code ec;
  const bool existed = !dir.empty() && std::filesystem::exists(dir, ec);
  absl::StatusOr<Proxy<std::string>> proxy = ParseProxy<std::string>(input);
  PROXYSTORE_FUZZ_CHECK(proxy.ok(), proxy.status().ToString());
  absl::StatusOr<std::shared_ptr<const std::string>> got = proxy->Get();
  if (!got.ok()) {
    PROXYSTORE_FUZZ_CHECK(
        HasCode(
            got.status(),
            {absl::StatusCode::kNotFound, absl::StatusCode::kPermissionDenied,
             absl::StatusCode::kInvalidArgument, absl::StatusCode::kDataLoss,
             absl::StatusCode::kResourceExhausted,
             absl::StatusCode::kFailedPrecondition,
             absl::StatusCode::kUnavailable,
             absl::StatusCode::kDeadlineExceeded}),
        got.status().ToString());
  }
  if (!dir.empty() && !existed) {
    PROXYSTORE_FUZZ_CHECK(!std::filesystem::exists(dir, ec),
                          absl::StrCat("resolving created ", dir));
  }
  // Close what the resolve made, so that stores do not pile up.
  absl::StatusOr<std::shared_ptr<Store>> store = GetStore(*proxy);
  if (store.ok() && *store != nullptr) (*store)->Close().IgnoreError();
}

void TestOneInput(absl::string_view input) {
  const MisalignedCopy odd(input);
  absl::StatusOr<FactoryData> data = FactoryData::Parse(input);
  absl::StatusOr<FactoryData> data_odd = FactoryData::Parse(odd.view());
  PROXYSTORE_FUZZ_CHECK(data.status() == data_odd.status(),
                        absl::StrCat(data.status().ToString(), " vs ",
                                     data_odd.status().ToString()));
  if (!data.ok()) {
    PROXYSTORE_FUZZ_CHECK(
        HasCode(data.status(), {absl::StatusCode::kDataLoss,
                                absl::StatusCode::kInvalidArgument}),
        data.status().ToString());
  } else {
    PROXYSTORE_FUZZ_CHECK(SameData(*data, *data_odd), "address changed data");
    absl::StatusOr<Key> key = Key::Parse(data->key.Serialize());
    PROXYSTORE_FUZZ_CHECK(key.ok(), key.status().ToString());
    absl::Status valid = data->store_config.Validate();
    PROXYSTORE_FUZZ_CHECK(valid.ok(), valid.ToString());
    const std::string wire = data->Serialize();
    absl::StatusOr<FactoryData> again = FactoryData::Parse(wire);
    PROXYSTORE_FUZZ_CHECK(again.ok(), again.status().ToString());
    PROXYSTORE_FUZZ_CHECK(SameData(*again, *data), "FactoryData round trip");
    PROXYSTORE_FUZZ_CHECK(again->Serialize() == wire,
                          "FactoryData::Serialize is not deterministic");
  }
  CheckProxy<std::string>(input, data);
  CheckProxy<int32_t>(input, data);
  CheckProxy<std::vector<double>>(input, data);
  CheckProxy<Pod>(input, data);
  ResolveUnderPolicy(input, data);
}

}  // namespace
}  // namespace proxystore::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  proxystore::fuzz::TestOneInput(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
