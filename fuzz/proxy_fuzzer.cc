// Fuzz target: serialized proxies (store/factory.h). The input is what
// Proxy<T>::Serialize() sends to another process: FactoryData::Parse reads
// it, and ParseProxy<T> / ParseProxyLocker<T> rebuild an unresolved proxy for
// several T (never resolved here: that would create stores and connectors
// from fuzzed configs). Invariants checked:
//  - errors are DataLoss (not a serialized proxy) or InvalidArgument (bad
//    values, another type); the same from an aligned and an odd address;
//  - ParseProxy<T> succeeds exactly when FactoryData::Parse does and the
//    type name is T's, and then fails with FactoryData::Parse's status;
//  - what parses round-trips: FactoryData::Parse(data.Serialize()) and
//    FactoryData::Parse(proxy.Serialize()) give the same fields, Serialize
//    is deterministic, the key is valid and the store config validates.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "connectors/connector.h"
#include "fuzz/fuzz_util.h"
#include "store/factory.h"
#include "store/serializer.h"

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
}

}  // namespace
}  // namespace proxystore::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  proxystore::fuzz::TestOneInput(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
