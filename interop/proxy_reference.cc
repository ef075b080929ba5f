#include "proxystore/interop/proxy_reference.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "proxystore/base/bytes.h"
#include "proxystore/base/status.h"
#include "proxystore/interop/npy.h"
#include "proxystore/interop/python_format.h"
#include "proxystore/store/store.h"

namespace proxystore::interop {
namespace {

using Json = nlohmann::json;

constexpr absl::string_view kPythonLayout = "proxystore-python";

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(
      "proxy reference: ", what, " (docs/python_interop.md has the format)"));
}

// The object's fields must be exactly `names`.
absl::Status ExactFields(const Json& object, absl::string_view where,
                         const std::vector<std::string>& names) {
  if (!object.is_object()) {
    return Invalid(absl::StrCat(where, " must be a JSON object"));
  }
  for (const auto& [field, value] : object.items()) {
    if (std::find(names.begin(), names.end(), field) == names.end()) {
      return Invalid(absl::StrCat(where, " has an unknown field ",
                                  QuoteForMessage(field, 64)));
    }
  }
  for (const std::string& name : names) {
    if (!object.contains(name)) {
      return Invalid(absl::StrCat(where, " lacks the field \"", name, "\""));
    }
  }
  return absl::OkStatus();
}

// A value for a message: a string or number as it is, anything else by its
// type (dump() of a deeply nested array would recurse as deep).
std::string Shown(const Json& value) {
  if (value.is_string()) {
    return QuoteForMessage(value.get_ref<const std::string&>(), 64);
  }
  if (value.is_number() || value.is_boolean() || value.is_null()) {
    return value.dump();
  }
  return absl::StrCat("a JSON ", value.type_name());
}

absl::StatusOr<std::string> String(const Json& object, const char* field,
                                   absl::string_view where) {
  const Json& value = object.at(field);
  if (!value.is_string() || value.get_ref<const std::string&>().empty()) {
    return Invalid(
        absl::StrCat(where, ".", field, " must be a non-empty string"));
  }
  return value.get<std::string>();
}

// Python's connector kind spellings: "file", "FileConnector",
// "proxystore.connectors.file.FileConnector" (any case), likewise redis.
absl::StatusOr<std::string> SharedKind(absl::string_view kind) {
  const std::string lower = absl::AsciiStrToLower(kind);
  for (const char* k : {"file", "redis"}) {
    if (lower == k || lower == absl::StrCat(k, "connector") ||
        lower ==
            absl::StrCat("proxystore.connectors.", k, ".", k, "connector")) {
      return std::string(k);
    }
  }
  return Invalid(absl::StrCat("store.connector.kind ",
                              QuoteForMessage(kind, 100),
                              " is not one both languages share (file, "
                              "redis)"));
}

template <typename T>
absl::Status RegisterNumpy() {
  PROXYSTORE_RETURN_IF_ERROR(RegisterSerializer<std::vector<T>>(
      kNumpyCodecName,
      [](const std::vector<T>& v) -> absl::StatusOr<SharedBytes> {
        return EncodePythonNumpy<T>(absl::MakeConstSpan(v));
      }));
  return RegisterDeserializer<std::vector<T>>(
      kNumpyCodecName,
      [](const SharedBytes& data) -> absl::StatusOr<std::vector<T>> {
        PROXYSTORE_ASSIGN_OR_RETURN(NpyArray array, DecodePythonNumpy(data));
        return array.ToVector<T>();
      });
}

absl::Status RegisterNumpyCodecs() {
  PROXYSTORE_RETURN_IF_ERROR(RegisterNumpy<int8_t>());
  PROXYSTORE_RETURN_IF_ERROR(RegisterNumpy<int16_t>());
  PROXYSTORE_RETURN_IF_ERROR(RegisterNumpy<int32_t>());
  PROXYSTORE_RETURN_IF_ERROR(RegisterNumpy<int64_t>());
  PROXYSTORE_RETURN_IF_ERROR(RegisterNumpy<uint8_t>());
  PROXYSTORE_RETURN_IF_ERROR(RegisterNumpy<uint16_t>());
  PROXYSTORE_RETURN_IF_ERROR(RegisterNumpy<uint32_t>());
  PROXYSTORE_RETURN_IF_ERROR(RegisterNumpy<uint64_t>());
  PROXYSTORE_RETURN_IF_ERROR(RegisterNumpy<float>());
  PROXYSTORE_RETURN_IF_ERROR(RegisterNumpy<double>());
  PROXYSTORE_RETURN_IF_ERROR(RegisterSerializer<NpyArray>(
      kNumpyCodecName, [](const NpyArray& a) -> absl::StatusOr<SharedBytes> {
        return EncodePythonNumpy(a);
      }));
  return RegisterDeserializer<NpyArray>(kNumpyCodecName, &DecodePythonNumpy);
}

// ParseProxy's reader of references (store_internal::SetReferenceParser).
absl::StatusOr<FactoryData> ParseForStore(absl::string_view text,
                                          absl::string_view type_name) {
  PROXYSTORE_ASSIGN_OR_RETURN(ProxyReference ref, ReadProxyReference(text));
  FactoryData data;
  data.key = std::move(ref.key);
  data.store_config = std::move(ref.store);
  if (ref.format == ReferenceFormat::kNumpy) {
    data.deserializer = std::string(kNumpyCodecName);
  }
  data.type_name = std::string(type_name);
  return data;
}

// Linking this library registers the codecs and the reference parser.
const bool registered = [] {
  store_internal::SetReferenceParser(&ParseForStore);
  return RegisterNumpyCodecs().ok();
}();

}  // namespace

absl::string_view ReferenceFormatName(ReferenceFormat format) {
  switch (format) {
    case ReferenceFormat::kBytes:
      return "bytes";
    case ReferenceFormat::kStr:
      return "str";
    case ReferenceFormat::kNumpy:
      return "numpy";
  }
  return "?";
}

absl::StatusOr<ProxyReference> ReadProxyReference(absl::string_view text) {
  (void)registered;
  if (text.size() > kMaxReferenceSize) {
    return Invalid(absl::StrCat("a reference is at most ", kMaxReferenceSize,
                                " bytes, got ", text.size()));
  }
  // No exceptions: a malformed document is a discarded value.
  const Json doc = Json::parse(text.begin(), text.end(), nullptr,
                               /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Invalid("not valid JSON");
  PROXYSTORE_RETURN_IF_ERROR(
      ExactFields(doc, "the reference",
                  {"proxystore_reference", "store", "key", "format"}));
  const Json& version = doc.at("proxystore_reference");
  if (!version.is_number_integer() ||
      version.get<int64_t>() != kReferenceVersion) {
    return Invalid(absl::StrCat("proxystore_reference must be ",
                                kReferenceVersion, ", got ", Shown(version)));
  }
  const Json& store = doc.at("store");
  PROXYSTORE_RETURN_IF_ERROR(
      ExactFields(store, "store", {"name", "connector"}));
  const Json& connector = store.at("connector");
  PROXYSTORE_RETURN_IF_ERROR(
      ExactFields(connector, "store.connector", {"kind", "options"}));
  ProxyReference ref;
  PROXYSTORE_ASSIGN_OR_RETURN(ref.store.name, String(store, "name", "store"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string kind_text,
                              String(connector, "kind", "store.connector"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string kind, SharedKind(kind_text));
  const Json& options = connector.at("options");
  ref.store.connector.kind = kind;
  ref.store.connector.options["layout"] = std::string(kPythonLayout);
  if (kind == "file") {
    PROXYSTORE_RETURN_IF_ERROR(
        ExactFields(options, "store.connector.options", {"store_dir"}));
    PROXYSTORE_ASSIGN_OR_RETURN(
        ref.store.connector.options["directory"],
        String(options, "store_dir", "store.connector.options"));
  } else {
    PROXYSTORE_RETURN_IF_ERROR(
        ExactFields(options, "store.connector.options", {"hostname", "port"}));
    PROXYSTORE_ASSIGN_OR_RETURN(
        ref.store.connector.options["host"],
        String(options, "hostname", "store.connector.options"));
    const Json& port = options.at("port");
    if (!port.is_number_integer() || port.get<int64_t>() < 1 ||
        port.get<int64_t>() > 65535) {
      return Invalid(
          "store.connector.options.port must be an integer in "
          "1..65535");
    }
    ref.store.connector.options["port"] = absl::StrCat(port.get<int64_t>());
    // As the connector's own Config() names its location, so that a store
    // this process made for an earlier reference is found again.
    ref.store.connector.options["db"] = "0";
    ref.store.connector.options["prefix"] = "";
  }
  // Python's serialize() format for str and bytes.
  ref.store.python_format = true;
  PROXYSTORE_ASSIGN_OR_RETURN(std::string key,
                              String(doc, "key", "the reference"));
  ref.key = Key(std::move(key));
  const Json& format = doc.at("format");
  if (format == "bytes") {
    ref.format = ReferenceFormat::kBytes;
  } else if (format == "str") {
    ref.format = ReferenceFormat::kStr;
  } else if (format == "numpy") {
    ref.format = ReferenceFormat::kNumpy;
  } else {
    return Invalid(
        absl::StrCat("format must be \"bytes\", \"str\" or "
                     "\"numpy\", got ",
                     Shown(format)));
  }
  return ref;
}

absl::StatusOr<std::string> WriteProxyReference(const StoreConfig& store,
                                                const Key& key,
                                                ReferenceFormat format) {
  const ConnectorConfig& c = store.connector;
  auto option = [&](const char* name) -> std::string {
    auto it = c.options.find(name);
    return it == c.options.end() ? "" : it->second;
  };
  if ((c.kind != "file" && c.kind != "redis") ||
      option("layout") != kPythonLayout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "WriteProxyReference: store \"", store.name, "\" uses connector \"",
        c.kind, "\"",
        c.kind == "file" || c.kind == "redis"
            ? " without layout \"proxystore-python\""
            : "",
        "; Python ProxyStore shares \"file\" and \"redis\" in that layout"));
  }
  if (key.empty()) {
    return absl::InvalidArgumentError("WriteProxyReference: the key is empty");
  }
  // JSON text is UTF-8: a name, path or key that is not would change.
  for (const auto& [what, text] :
       {std::pair<const char*, std::string>{"store name", store.name},
        {"directory", option("directory")},
        {"host", option("host")},
        {"key", key.id()}}) {
    if (FirstInvalidUtf8(text) != text.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("WriteProxyReference: the ", what,
                       " is not valid UTF-8: ", QuoteForMessage(text, 100)));
    }
  }
  Json options = Json::object();
  if (c.kind == "file") {
    options["store_dir"] = option("directory");
  } else {
    std::vector<std::string> unshared;
    for (const char* name : {"unix_socket", "cluster", "password", "prefix"}) {
      if (!option(name).empty()) unshared.push_back(name);
    }
    if (!option("db").empty() && option("db") != "0") unshared.push_back("db");
    if (!unshared.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "WriteProxyReference: store \"", store.name, "\" sets redis option",
          unshared.size() > 1 ? "s " : " ", absl::StrJoin(unshared, ", "),
          ", which Python's RedisConnector (hostname and port only) cannot "
          "follow"));
    }
    int port = 0;
    if (!absl::SimpleAtoi(option("port"), &port)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "WriteProxyReference: store \"", store.name, "\" has no TCP port"));
    }
    options["hostname"] = option("host");
    options["port"] = port;
  }
  Json doc = {
      {"proxystore_reference", kReferenceVersion},
      {"store",
       {{"name", store.name},
        {"connector", {{"kind", c.kind}, {"options", std::move(options)}}}}},
      {"key", key.id()},
      {"format", std::string(ReferenceFormatName(format))},
  };
  // Checked above; never throws.
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace proxystore::interop
