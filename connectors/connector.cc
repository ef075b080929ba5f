#include "proxystore/connectors/connector.h"

#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "flatbuffers/flatbuffers.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/connectors/connector_wire.h"
#include "proxystore/wire/wire.h"

namespace proxystore {

namespace {

// Bumped in every forked child, so that a thread's generator copied from the
// parent re-seeds instead of repeating the parent's ids.
std::atomic<uint64_t> fork_generation{0};

void OnForkChild() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

// xoshiro256** seeded with 256 bits from getrandom(2) per thread. (Not
// absl::BitGen: its lazily initialized entropy pool synchronizes inside
// Debian's uninstrumented Abseil, which ThreadSanitizer reports as a race.)
struct IdGenerator {
  uint64_t s[4] = {0, 0, 0, 0};
  uint64_t generation = ~uint64_t{0};

  void Seed() {
    size_t got = 0;
    auto* bytes = reinterpret_cast<unsigned char*>(s);
    while (got < sizeof(s)) {
      ssize_t n = getrandom(bytes + got, sizeof(s) - got, 0);
      if (n > 0) {
        got += static_cast<size_t>(n);
      } else if (n < 0 && errno != EINTR) {
        // No kernel entropy interface: fall back to clock, address and pid
        // mixed through splitmix64 (ids stay unique per process/thread).
        uint64_t x =
            static_cast<uint64_t>(
                std::chrono::steady_clock::now().time_since_epoch().count()) ^
            reinterpret_cast<uintptr_t>(this) ^
            (static_cast<uint64_t>(getpid()) << 32);
        for (uint64_t& word : s) {
          x += 0x9E3779B97F4A7C15ull;
          uint64_t z = x;
          z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
          z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
          word = z ^ (z >> 31);
        }
        break;
      }
    }
    if ((s[0] | s[1] | s[2] | s[3]) == 0) s[0] = 1;  // Never the zero state.
  }

  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  uint64_t Next() {
    const uint64_t result = Rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = Rotl(s[3], 45);
    return result;
  }
};

}  // namespace

std::string NewObjectId() {
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, &OnForkChild);
    return true;
  }();
  (void)registered;
  thread_local IdGenerator gen;
  const uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (generation != gen.generation) {
    gen.Seed();
    gen.generation = generation;
  }
  const uint64_t hi = gen.Next();
  const uint64_t lo = gen.Next();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[(hi >> (60 - 4 * i)) & 0xf];
    id[16 + i] = kHex[(lo >> (60 - 4 * i)) & 0xf];
  }
  return id;
}

std::string NewPythonObjectId() {
  std::string hex = NewObjectId();  // 128 random bits as 32 hex digits
  hex[12] = '4';                    // version 4
  const char y = hex[16];
  const int v = y <= '9' ? y - '0' : y - 'a' + 10;
  hex[16] = "89ab"[v & 3];  // variant 10xx
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-",
                      hex.substr(12, 4), "-", hex.substr(16, 4), "-",
                      hex.substr(20));
}

bool IsPythonObjectId(absl::string_view id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
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

bool operator==(const ConnectorConfig& a, const ConnectorConfig& b) {
  return a.kind == b.kind && a.options == b.options && a.children == b.children;
}

namespace connector_internal {
namespace {

flatbuffers::Offset<
    flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>>
WriteStrings(flatbuffers::FlatBufferBuilder& fbb,
             const std::vector<std::string>& items) {
  if (items.empty()) return 0;
  return fbb.CreateVectorOfStrings(items);
}

// Only fields that differ from Policy's defaults are written; absent fields
// read back as those defaults.
flatbuffers::Offset<fb::Policy> WritePolicy(flatbuffers::FlatBufferBuilder& fbb,
                                            const Policy& policy) {
  if (policy == Policy()) return 0;
  auto hosts = WriteStrings(fbb, policy.host_patterns);
  auto subset = WriteStrings(fbb, policy.subset_tags);
  auto superset = WriteStrings(fbb, policy.superset_tags);
  fb::PolicyBuilder b(fbb);
  b.add_priority(policy.priority);
  b.add_host_patterns(hosts);
  b.add_min_size_bytes(policy.min_size_bytes);
  b.add_max_size_bytes(policy.max_size_bytes);
  b.add_subset_tags(subset);
  b.add_superset_tags(superset);
  return b.Finish();
}

std::vector<std::string> ReadStrings(
    const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
  std::vector<std::string> out;
  if (v == nullptr) return out;
  out.reserve(v->size());
  for (const flatbuffers::String* s : *v) out.emplace_back(wire::View(s));
  return out;
}

Policy ReadPolicy(const fb::Policy* table) {
  Policy policy;
  if (table == nullptr) return policy;
  policy.priority = table->priority();
  policy.host_patterns = ReadStrings(table->host_patterns());
  policy.min_size_bytes = table->min_size_bytes();
  policy.max_size_bytes = table->max_size_bytes();
  policy.subset_tags = ReadStrings(table->subset_tags());
  policy.superset_tags = ReadStrings(table->superset_tags());
  return policy;
}

absl::StatusOr<ConnectorConfig> Read(const fb::ConnectorConfig& table,
                                     int depth) {
  if (depth > wire::kMaxNesting) {
    return absl::InvalidArgumentError(
        absl::StrCat("connector configs nest more than ", wire::kMaxNesting,
                     " levels deep"));
  }
  ConnectorConfig out;
  out.kind = std::string(wire::View(table.kind()));
  if (out.kind.empty()) {
    return absl::InvalidArgumentError("connector config has no kind");
  }
  if (table.options() != nullptr) {
    for (const fb::ConnectorOption* opt : *table.options()) {
      if (!out.options
               .emplace(std::string(wire::View(opt->name())),
                        std::string(wire::View(opt->value())))
               .second) {
        return absl::DataLossError(absl::StrCat("connector config \"", out.kind,
                                                "\" repeats option \"",
                                                opt->name()->str(), "\""));
      }
    }
  }
  if (table.children() != nullptr) {
    out.children.reserve(table.children()->size());
    for (const fb::ConnectorChild* child : *table.children()) {
      ConnectorChild c;
      c.name = std::string(wire::View(child->name()));
      if (c.name.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "connector config \"", out.kind, "\" has a child without a name"));
      }
      PROXYSTORE_ASSIGN_OR_RETURN(c.config, Read(*child->config(), depth + 1));
      c.policy = ReadPolicy(child->policy());
      out.children.push_back(std::move(c));
    }
  }
  return out;
}

}  // namespace

flatbuffers::Offset<fb::ConnectorConfig> WriteConnectorConfig(
    flatbuffers::FlatBufferBuilder& fbb, const ConnectorConfig& config,
    uint16_t version) {
  std::vector<flatbuffers::Offset<fb::ConnectorChild>> children;
  children.reserve(config.children.size());
  for (const ConnectorChild& child : config.children) {
    auto name = fbb.CreateString(child.name);
    auto child_config = WriteConnectorConfig(fbb, child.config, 0);
    auto policy = WritePolicy(fbb, child.policy);
    children.push_back(
        fb::CreateConnectorChild(fbb, name, child_config, policy));
  }
  std::vector<flatbuffers::Offset<fb::ConnectorOption>> opts;
  opts.reserve(config.options.size());
  for (const auto& [name, value] : config.options) {
    opts.push_back(fb::CreateConnectorOption(fbb, fbb.CreateString(name),
                                             fbb.CreateString(value)));
  }
  auto kind = fbb.CreateString(config.kind);
  auto options = opts.empty() ? 0 : fbb.CreateVectorOfSortedTables(&opts);
  auto child_vector = children.empty() ? 0 : fbb.CreateVector(children);
  return fb::CreateConnectorConfig(fbb, version, kind, options, child_vector);
}

absl::StatusOr<ConnectorConfig> ReadConnectorConfig(
    const fb::ConnectorConfig& table) {
  return Read(table, 0);
}

}  // namespace connector_internal

std::string ConnectorConfig::Serialize() const {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto root =
      connector_internal::WriteConnectorConfig(fbb, *this, wire::kVersion);
  return wire::Finish(fbb, root, wire::kConnectorConfig);
}

absl::StatusOr<ConnectorConfig> ConnectorConfig::Parse(
    absl::string_view unaligned) {
  PROXYSTORE_RETURN_IF_ERROR(
      Annotate(wire::CheckSize(unaligned, wire::kConnectorConfig),
               "ConnectorConfig::Parse"));
  AlignedView bytes(unaligned);
  absl::StatusOr<const fb::ConnectorConfig*> root =
      wire::ReadRoot<fb::ConnectorConfig>(bytes, wire::kConnectorConfig);
  if (!root.ok()) return Annotate(root.status(), "ConnectorConfig::Parse");
  absl::StatusOr<ConnectorConfig> out =
      connector_internal::ReadConnectorConfig(**root);
  if (!out.ok()) return Annotate(out.status(), "ConnectorConfig::Parse");
  return out;
}

std::string ConnectorConfig::DebugString() const {
  std::string out = absl::StrCat(
      kind, "{",
      absl::StrJoin(options, ", ",
                    [](std::string* out, const auto& kv) {
                      absl::StrAppend(out, kv.first, "=", kv.second);
                    }),
      "}");
  if (!children.empty()) {
    absl::StrAppend(
        &out, "[",
        absl::StrJoin(children, ", ",
                      [](std::string* out, const ConnectorChild& c) {
                        absl::StrAppend(out, c.name, ": ",
                                        c.config.DebugString(), " ",
                                        c.policy.DebugString());
                      }),
        "]");
  }
  return out;
}

absl::StatusOr<Key> Connector::DoPutParts(
    absl::Span<const absl::string_view> parts, const PutOptions& options) {
  if (parts.size() == 1) return DoPut(SharedBytes::Copy(parts[0]), options);
  size_t n = 0;
  for (absl::string_view p : parts) n += p.size();
  std::string joined;
  joined.reserve(n);
  for (absl::string_view p : parts) joined.append(p.data(), p.size());
  return DoPut(SharedBytes::FromString(std::move(joined)), options);
}

absl::Status Connector::DoSetParts(const Key& key,
                                   absl::Span<const absl::string_view> parts) {
  size_t n = 0;
  for (absl::string_view p : parts) n += p.size();
  std::string joined;
  joined.reserve(n);
  for (absl::string_view p : parts) joined.append(p.data(), p.size());
  return DoSet(key, SharedBytes::FromString(std::move(joined)));
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

absl::Status GetIntoReadMisuse(const Key& key, uint64_t offset, uint64_t size) {
  return absl::InvalidArgumentError(absl::StrCat(
      "GetInto of key ", QuoteForMessage(key.id()), ": read(offset ", offset,
      ") called twice or past the object's ", size, " bytes"));
}

absl::StatusOr<Key> Connector::DoNewKey(const NewKeyOptions& /*options*/) {
  return absl::UnimplementedError(absl::StrCat(
      "connector \"", kind(), "\" cannot defer writes (NewKey/Set)"));
}

absl::StatusOr<bool> Connector::DoWaitFor(const Key& /*key*/,
                                          absl::Duration /*timeout*/) {
  return absl::UnimplementedError(absl::StrCat(
      "connector \"", kind(), "\" cannot wait for a key; poll it"));
}

absl::Status Connector::DoSet(const Key& /*key*/, SharedBytes /*data*/) {
  return absl::UnimplementedError(absl::StrCat(
      "connector \"", kind(), "\" cannot defer writes (NewKey/Set)"));
}

absl::StatusOr<GetIntoResult> Connector::DoGetInto(const Key& key,
                                                   GetIntoFn fn) {
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<SharedBytes> got, DoGet(key));
  GetIntoResult result;
  if (!got.has_value()) return result;
  result.found = true;
  PROXYSTORE_ASSIGN_OR_RETURN(const bool consumed,
                              GetIntoInMemory(key, got->view(), fn));
  if (!consumed) result.whole = *std::move(got);
  return result;
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

namespace connector_internal {

std::string NormalizeKind(absl::string_view kind) {
  std::string k = absl::AsciiStrToLower(kind);
  if (k.size() > 9 && absl::EndsWith(k, "connector")) {
    k.resize(k.size() - 9);
  }
  return k;
}

}  // namespace connector_internal

namespace {

using connector_internal::NormalizeKind;

struct KindEntry {
  ConnectorFactory factory;
  ConnectorKindTraits traits;
};

struct Registry {
  Mutex mu;
  absl::flat_hash_map<std::string, KindEntry> factories ABSL_GUARDED_BY(mu);
};

Registry& GetRegistry() {
  // Never destroyed: connectors may be made from other statics' destructors.
  static NoDestructor<Registry> registry;
  return *registry;
}

}  // namespace

absl::Status RegisterConnectorKind(absl::string_view kind,
                                   ConnectorFactory factory,
                                   ConnectorKindTraits traits) {
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
  if (!r.factories.emplace(k, KindEntry{std::move(factory), std::move(traits)})
           .second) {
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

namespace {

absl::StatusOr<KindEntry> FindKind(absl::string_view kind) {
  std::string k = NormalizeKind(kind);
  {
    Registry& r = GetRegistry();
    MutexLock lock(r.mu);
    auto it = r.factories.find(k);
    if (it != r.factories.end()) return it->second;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown connector kind \"", kind, "\"; kinds linked into this process: ",
      absl::StrJoin(RegisteredConnectorKinds(), ", ")));
}

}  // namespace

absl::StatusOr<ConnectorKindTraits> GetConnectorKindTraits(
    absl::string_view kind) {
  PROXYSTORE_ASSIGN_OR_RETURN(KindEntry entry, FindKind(kind));
  return std::move(entry.traits);
}

absl::StatusOr<std::unique_ptr<Connector>> MakeConnector(
    const ConnectorConfig& config) {
  PROXYSTORE_ASSIGN_OR_RETURN(KindEntry entry, FindKind(config.kind));
  if (!config.children.empty() && !entry.traits.has_children) {
    return absl::InvalidArgumentError(
        absl::StrCat("connector \"", NormalizeKind(config.kind),
                     "\" takes no children, got ", config.children.size()));
  }
  // The factory runs without the registry lock: it may do I/O.
  return entry.factory(config);
}

connector_internal::Registrar::Registrar(absl::string_view kind,
                                         ConnectorFactory factory,
                                         ConnectorKindTraits traits) {
  absl::Status s =
      RegisterConnectorKind(kind, std::move(factory), std::move(traits));
  if (!s.ok()) {
    std::fprintf(stderr, "proxystore: %s\n", s.ToString().c_str());
    std::abort();
  }
}

}  // namespace proxystore
