// Proxy references: proxies that cross between proxystore-cpp and Python
// ProxyStore. A reference is a small JSON document naming an object in a
// store both languages reach (a shared directory, a shared Redis server):
//
//   {"proxystore_reference": 1,
//    "store": {"name": "shared",
//              "connector": {"kind": "redis",
//                            "options": {"hostname": "10.0.0.5",
//                                        "port": 6379}}},
//    "key": "9f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
//    "format": "str"}
//
// "store" is the subset of a Python StoreConfig both languages share: a
// name and a connector in Python's terms, kind "file" with option
// "store_dir" or kind "redis" with "hostname" and "port" (our "file" and
// "redis" connectors in layout "proxystore-python": connectors/file and
// connectors/redis). "key" is the key id (Python's FileKey.filename or
// RedisKey.redis_key). "format" is what Python's serialize() made of the
// object (interop/python_format.h): "bytes", "str" or "numpy". The format is
// documented in docs/python_interop.md; interop/python/proxystore_reference.py
// turns a reference into a real Python ProxyStore proxy (Store.proxy_from_key)
// and a Python proxy into a reference.
//
// Linking this library makes ParseProxy<T>() (store/factory.h) accept
// references: the store they name is found or made as for any proxy (the
// trust policy checks its connector, connectors/trust.h), and the object is
// read as Python wrote it: bytes and str into std::string or SharedBytes
// (the serializer reads Python's "BS"/"US" data), numpy into std::vector of
// the array's element type or an interop::NpyArray (the deserializer
// kNumpyCodecName, registered here for those types). A reference carries no
// signature, so a process that requires signed proxies refuses it.
//
//   // C++ producer, Python consumer:
//   PROXYSTORE_ASSIGN_OR_RETURN(Key key, store->Put(std::string("hello")));
//   PROXYSTORE_ASSIGN_OR_RETURN(
//       std::string ref,
//       interop::WriteProxyReference(store->Config(), key,
//                                    interop::ReferenceFormat::kStr));
//   // Python: proxy_from_reference(ref) == "hello"
//
//   // Python producer, C++ consumer:
//   PROXYSTORE_ASSIGN_OR_RETURN(Proxy<std::string> p,
//                               ParseProxy<std::string>(ref_from_python));
//
// The store must write Python's format for str and bytes
// (StoreOptions::python_format) and arrays with the serializer
// kNumpyCodecName, and its connector must use layout "proxystore-python".
//
// Every reference is untrusted: its size is bounded (kMaxReferenceSize)
// before it is parsed, unknown fields and wrong types are InvalidArgument
// naming them, and only the two shared connector kinds are accepted.
//
// Thread-safety: stateless functions.
#ifndef PROXYSTORE_INTEROP_PROXY_REFERENCE_H_
#define PROXYSTORE_INTEROP_PROXY_REFERENCE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proxystore/base/key.h"
#include "proxystore/store/store_config.h"

namespace proxystore::interop {

inline constexpr int kReferenceVersion = 1;
// Longest reference read, in bytes.
inline constexpr size_t kMaxReferenceSize = 64 << 10;
// The serializer and deserializer this library registers for NumPy arrays
// (std::vector of bool excluded, of int8..uint64, float and double; and
// NpyArray): Python's "NP\n" + .npy data.
inline constexpr absl::string_view kNumpyCodecName = "proxystore-python-numpy";

enum class ReferenceFormat { kBytes, kStr, kNumpy };
absl::string_view ReferenceFormatName(ReferenceFormat format);

struct ProxyReference {
  // Ours: the name, and the connector in layout "proxystore-python";
  // python_format set (str and bytes are read and written as Python's).
  StoreConfig store;
  Key key;
  ReferenceFormat format = ReferenceFormat::kBytes;
};

// Parses and checks a reference. InvalidArgument naming what is wrong (not
// JSON, too large, a missing, unknown or mistyped field, another version,
// a connector kind or option the languages do not share, an empty key).
absl::StatusOr<ProxyReference> ReadProxyReference(absl::string_view text);

// The reference of `key` in the store `store` configures. InvalidArgument
// unless the store's connector is "file" or "redis" in layout
// "proxystore-python" (redis: TCP, database 0, no prefix, no password and no
// cluster: what Python's RedisConnector reaches).
absl::StatusOr<std::string> WriteProxyReference(const StoreConfig& store,
                                                const Key& key,
                                                ReferenceFormat format);

}  // namespace proxystore::interop

#endif  // PROXYSTORE_INTEROP_PROXY_REFERENCE_H_
