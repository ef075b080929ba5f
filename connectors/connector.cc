#include "connectors/connector.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "connectors/connector_config_generated.h"
#include "flatbuffers/flatbuffers.h"
#include "store/mutex.h"
#include "store/no_destructor.h"

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

namespace {

// Bumped in every forked child, so that a thread_local generator copied from
// the parent re-seeds instead of repeating the parent's ids.
std::atomic<uint64_t> fork_generation{0};

void OnForkChild() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

std::string NewObjectId() {
  // absl::BitGen is seeded from OS entropy per instance; thread_local avoids
  // a lock. A forked child inherits the generator's state, so it re-seeds
  // when the fork generation changed (one relaxed atomic load per id).
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, &OnForkChild);
    return true;
  }();
  (void)registered;
  thread_local absl::BitGen gen;
  thread_local uint64_t seeded_generation = 0;
  const uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (generation != seeded_generation) {
    gen = absl::BitGen();
    seeded_generation = generation;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t hi = absl::Uniform<uint64_t>(gen);
  uint64_t lo = absl::Uniform<uint64_t>(gen);
  std::string id(32, '0');
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[(hi >> (60 - 4 * i)) & 0xf];
    id[16 + i] = kHex[(lo >> (60 - 4 * i)) & 0xf];
  }
  return id;
}

absl::StatusOr<std::string> ConnectorConfig::GetString(
    absl::string_view name, std::string fallback) const {
  auto it = options.find(std::string(name));
  if (it == options.end()) return fallback;
  return it->second;
}

absl::StatusOr<int64_t> ConnectorConfig::GetInt(absl::string_view name,
                                                int64_t fallback) const {
  auto it = options.find(std::string(name));
  if (it == options.end()) return fallback;
  int64_t value;
  if (!absl::SimpleAtoi(it->second, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("connector \"", kind, "\": option \"", name,
                     "\" must be an integer, got \"", it->second, "\""));
  }
  return value;
}

absl::StatusOr<bool> ConnectorConfig::GetBool(absl::string_view name,
                                              bool fallback) const {
  auto it = options.find(std::string(name));
  if (it == options.end()) return fallback;
  if (it->second == "true" || it->second == "1") return true;
  if (it->second == "false" || it->second == "0") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("connector \"", kind, "\": option \"", name,
                   "\" must be true or false, got \"", it->second, "\""));
}

absl::Status ConnectorConfig::CheckKnownOptions(
    std::initializer_list<absl::string_view> known) const {
  for (const auto& [name, value] : options) {
    bool found = false;
    for (absl::string_view k : known) found = found || (k == name);
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("connector \"", kind, "\": unknown option \"", name,
                       "\" (known: ", absl::StrJoin(known, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

std::string ConnectorConfig::Serialize() const {
  flatbuffers::FlatBufferBuilder fbb(256);
  std::vector<flatbuffers::Offset<fb::ConnectorOption>> opts;
  opts.reserve(options.size());
  for (const auto& [name, value] : options) {
    opts.push_back(fb::CreateConnectorOption(fbb, fbb.CreateString(name),
                                             fbb.CreateString(value)));
  }
  auto root = fb::CreateConnectorConfig(fbb, fbb.CreateString(kind),
                                        fbb.CreateVectorOfSortedTables(&opts));
  fbb.Finish(root);
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
                     fbb.GetSize());
}

absl::StatusOr<ConnectorConfig> ConnectorConfig::Parse(
    absl::string_view unaligned) {
  AlignedView bytes(unaligned);
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  if (!fb::VerifyConnectorConfigBuffer(verifier)) {
    return absl::DataLossError(
        absl::StrCat("ConnectorConfig::Parse: ", bytes.size(),
                     " bytes are not a valid serialized connector config"));
  }
  const fb::ConnectorConfig* root = fb::GetConnectorConfig(bytes.data());
  ConnectorConfig out;
  if (root->kind() == nullptr || root->kind()->size() == 0) {
    return absl::InvalidArgumentError(
        "ConnectorConfig::Parse: connector config has no kind");
  }
  out.kind = root->kind()->str();
  if (root->options() != nullptr) {
    for (const fb::ConnectorOption* opt : *root->options()) {
      if (opt->name() == nullptr) {
        return absl::DataLossError(
            "ConnectorConfig::Parse: option without a name");
      }
      std::string value = opt->value() ? opt->value()->str() : "";
      if (!out.options.emplace(opt->name()->str(), std::move(value)).second) {
        return absl::DataLossError(
            absl::StrCat("ConnectorConfig::Parse: duplicate option \"",
                         opt->name()->str(), "\""));
      }
    }
  }
  return out;
}

std::string ConnectorConfig::DebugString() const {
  return absl::StrCat(kind, "{",
                      absl::StrJoin(options, ", ",
                                    [](std::string* out, const auto& kv) {
                                      absl::StrAppend(out, kv.first, "=",
                                                      kv.second);
                                    }),
                      "}");
}

absl::StatusOr<std::vector<Key>> Connector::DoPutBatch(
    absl::Span<const SharedBytes> data, const PutOptions& options) {
  std::vector<Key> keys;
  keys.reserve(data.size());
  for (const SharedBytes& item : data) {
    absl::StatusOr<Key> key = DoPut(item, options);
    if (!key.ok()) {
      // Nothing half-done stays behind: undo the puts that succeeded.
      for (const Key& k : keys) DoEvict(k).IgnoreError();
      return key.status();
    }
    keys.push_back(*std::move(key));
  }
  return keys;
}

absl::StatusOr<std::vector<std::optional<SharedBytes>>> Connector::DoGetBatch(
    absl::Span<const Key> keys) {
  std::vector<std::optional<SharedBytes>> out;
  out.reserve(keys.size());
  for (const Key& key : keys) {
    absl::StatusOr<std::optional<SharedBytes>> got = DoGet(key);
    if (!got.ok()) return got.status();
    out.push_back(*std::move(got));
  }
  return out;
}

namespace {

// "LocalConnector" / "LOCAL" / "local" -> "local".
std::string NormalizeKind(absl::string_view kind) {
  std::string k = absl::AsciiStrToLower(kind);
  if (k.size() > 9 && absl::EndsWith(k, "connector")) {
    k.resize(k.size() - 9);
  }
  return k;
}

struct Registry {
  Mutex mu;
  absl::flat_hash_map<std::string, ConnectorFactory> factories
      ABSL_GUARDED_BY(mu);
};

Registry& GetRegistry() {
  // Never destroyed: connectors may be made from other statics' destructors.
  static NoDestructor<Registry> registry;
  return *registry;
}

}  // namespace

absl::Status RegisterConnectorKind(absl::string_view kind,
                                   ConnectorFactory factory) {
  std::string k = NormalizeKind(kind);
  if (k.empty()) {
    return absl::InvalidArgumentError("RegisterConnectorKind: empty kind");
  }
  if (!factory) {
    return absl::InvalidArgumentError(
        absl::StrCat("RegisterConnectorKind(\"", kind, "\"): null factory"));
  }
  Registry& r = GetRegistry();
  MutexLock lock(r.mu);
  if (!r.factories.emplace(k, std::move(factory)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("connector kind \"", k, "\" is already registered"));
  }
  return absl::OkStatus();
}

std::vector<std::string> RegisteredConnectorKinds() {
  Registry& r = GetRegistry();
  std::vector<std::string> kinds;
  {
    MutexLock lock(r.mu);
    for (const auto& [k, f] : r.factories) kinds.push_back(k);
  }
  std::sort(kinds.begin(), kinds.end());
  return kinds;
}

absl::StatusOr<std::unique_ptr<Connector>> MakeConnector(
    const ConnectorConfig& config) {
  std::string k = NormalizeKind(config.kind);
  ConnectorFactory factory;
  {
    Registry& r = GetRegistry();
    MutexLock lock(r.mu);
    auto it = r.factories.find(k);
    if (it != r.factories.end()) factory = it->second;
  }
  if (!factory) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown connector kind \"", config.kind,
                     "\"; kinds linked into this process: ",
                     absl::StrJoin(RegisteredConnectorKinds(), ", ")));
  }
  // The factory runs without the registry lock: it may do I/O.
  return factory(config);
}

connector_internal::Registrar::Registrar(absl::string_view kind,
                                         ConnectorFactory factory) {
  absl::Status s = RegisterConnectorKind(kind, std::move(factory));
  if (!s.ok()) {
    std::fprintf(stderr, "proxystore: %s\n", s.ToString().c_str());
    std::abort();
  }
}

}  // namespace proxystore
