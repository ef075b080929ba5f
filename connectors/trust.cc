#include "proxystore/connectors/trust.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proxystore/base/mutex.h"
#include "proxystore/base/no_destructor.h"
#include "proxystore/base/status.h"
#include "proxystore/wire/wire.h"

namespace proxystore {
namespace {

// Nested configs ("multi" children of "multi" children ...) deeper than this
// are refused: a proxy must not make the receiver recurse without bound.
constexpr int kMaxNesting = wire::kMaxNesting;

absl::Status TooDeep() {
  return absl::InvalidArgumentError(absl::StrCat(
      "connector configs nest more than ", kMaxNesting, " levels deep"));
}

bool IsLocationOption(const ConnectorKindTraits& traits,
                      absl::string_view name) {
  for (absl::string_view pattern : traits.location_options) {
    if (absl::EndsWith(pattern, "*")) {
      if (absl::StartsWith(name, pattern.substr(0, pattern.size() - 1))) {
        return true;
      }
    } else if (pattern == name) {
      return true;
    }
  }
  return false;
}

// `destination` equals `prefix` or continues it at a boundary: after the
// prefix comes '/' or ':' (or the prefix itself ends in one of them, or in a
// Redis key prefix's last character when it names db and prefix).
bool DestinationMatches(absl::string_view destination,
                        absl::string_view prefix) {
  if (!absl::StartsWith(destination, prefix)) return false;
  if (destination.size() == prefix.size()) return true;
  const char last = prefix.back();
  if (last == '/' || last == ':') return true;
  const char next = destination[prefix.size()];
  if (next == '/') return true;
  // "redis:host:port/db/app:" style rules: a rule naming a key prefix
  // (three '/'-separated parts after the endpoint) matches longer prefixes.
  return absl::StartsWith(prefix, "redis:") &&
         std::count(prefix.begin(), prefix.end(), '/') >= 2;
}

struct Settings {
  Mutex mu;
  TrustPolicy policy ABSL_GUARDED_BY(mu) = TrustPolicy::Default();
  absl::flat_hash_map<std::string, std::map<std::string, std::string>>
      receiver_options ABSL_GUARDED_BY(mu);
};

Settings& GetSettings() {
  static NoDestructor<Settings> settings;
  return *settings;
}

// `status` prefixed with the parent's kind and the child's name.
absl::Status ChildError(const absl::Status& status,
                        const ConnectorConfig& parent,
                        const ConnectorChild& child) {
  return Annotate(status,
                  absl::StrCat("connector \"", parent.kind, "\": child ",
                               QuoteForMessage(child.name)));
}

// Only `config`'s location options, and its children's, recursively. A
// child of a kind this process does not link is kept whole: its location
// options are unknown here (docs/wire_format.md).
absl::StatusOr<ConnectorConfig> Location(const ConnectorConfig& config,
                                         int depth) {
  if (depth > kMaxNesting) return TooDeep();
  PROXYSTORE_ASSIGN_OR_RETURN(ConnectorKindTraits traits,
                              GetConnectorKindTraits(config.kind));
  ConnectorConfig out{connector_internal::NormalizeKind(config.kind), {}, {}};
  for (const auto& [name, value] : config.options) {
    if (IsLocationOption(traits, name)) out.options.emplace(name, value);
  }
  if (!traits.has_children) return out;
  out.children.reserve(config.children.size());
  for (const ConnectorChild& child : config.children) {
    ConnectorChild reduced{child.name, {}, child.policy};
    if (GetConnectorKindTraits(child.config.kind).ok()) {
      absl::StatusOr<ConnectorConfig> location =
          Location(child.config, depth + 1);
      if (!location.ok()) return ChildError(location.status(), out, child);
      reduced.config = *std::move(location);
    } else if (depth + 1 > kMaxNesting) {
      return TooDeep();
    } else {
      reduced.config = child.config;
    }
    out.children.push_back(std::move(reduced));
  }
  return out;
}

absl::Status CheckDestinations(const ConnectorKindTraits& traits,
                               const ConnectorConfig& location,
                               const TrustPolicy& policy) {
  if (!traits.destinations) {
    return policy.CheckDestination(absl::StrCat(location.kind, ":"));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(std::vector<std::string> destinations,
                              traits.destinations(location));
  for (const std::string& d : destinations) {
    PROXYSTORE_RETURN_IF_ERROR(policy.CheckDestination(d));
  }
  return absl::OkStatus();
}

absl::StatusOr<ConnectorConfig> Receiver(const ConnectorConfig& wire,
                                         const TrustPolicy& policy, int depth) {
  if (depth > kMaxNesting) return TooDeep();
  PROXYSTORE_ASSIGN_OR_RETURN(ConnectorKindTraits traits,
                              GetConnectorKindTraits(wire.kind));
  // A kind that only nests others ("multi") is allowed when its children
  // are: they are checked one by one below.
  if (!traits.has_children) {
    PROXYSTORE_RETURN_IF_ERROR(
        policy.CheckKind(connector_internal::NormalizeKind(wire.kind)));
  }
  ConnectorConfig out{connector_internal::NormalizeKind(wire.kind), {}, {}};
  for (const auto& [name, value] : wire.options) {
    if (IsLocationOption(traits, name)) out.options.emplace(name, value);
  }
  if (traits.has_children) {
    out.children.reserve(wire.children.size());
    for (const ConnectorChild& child : wire.children) {
      ConnectorChild checked{child.name, {}, child.policy};
      if (child.policy.IsValidOnHost()) {
        absl::StatusOr<ConnectorConfig> received =
            Receiver(child.config, policy, depth + 1);
        if (!received.ok()) return ChildError(received.status(), out, child);
        checked.config = *std::move(received);
      } else {
        // Dormant here: never instantiated, so kept as it came.
        if (depth + 1 > kMaxNesting) return TooDeep();
        checked.config = child.config;
      }
      out.children.push_back(std::move(checked));
    }
  }
  PROXYSTORE_RETURN_IF_ERROR(CheckDestinations(traits, out, policy));
  for (const auto& [name, value] : traits.receiver_defaults) {
    out.options[name] = value;
  }
  Settings& s = GetSettings();
  MutexLock lock(s.mu);
  auto it = s.receiver_options.find(out.kind);
  if (it != s.receiver_options.end()) {
    for (const auto& [name, value] : it->second) out.options[name] = value;
  }
  return out;
}

// Appends the destinations of `config` (a location config) and of its
// children that are active on this host.
absl::Status AppendDestinations(const ConnectorConfig& config,
                                std::vector<std::string>* out, int depth) {
  if (depth > kMaxNesting) return TooDeep();
  PROXYSTORE_ASSIGN_OR_RETURN(ConnectorKindTraits traits,
                              GetConnectorKindTraits(config.kind));
  if (traits.has_children) {
    for (const ConnectorChild& child : config.children) {
      if (!child.policy.IsValidOnHost()) continue;
      PROXYSTORE_RETURN_IF_ERROR(
          AppendDestinations(child.config, out, depth + 1));
    }
  }
  if (!traits.destinations) {
    out->push_back(
        absl::StrCat(connector_internal::NormalizeKind(config.kind), ":"));
    return absl::OkStatus();
  }
  PROXYSTORE_ASSIGN_OR_RETURN(std::vector<std::string> d,
                              traits.destinations(config));
  out->insert(out->end(), d.begin(), d.end());
  return absl::OkStatus();
}

}  // namespace

TrustPolicy TrustPolicy::Default() { return TrustPolicy(true); }
TrustPolicy TrustPolicy::DenyAll() { return TrustPolicy(false); }

TrustPolicy& TrustPolicy::AllowKind(absl::string_view kind) {
  kinds_.insert(connector_internal::NormalizeKind(kind));
  return *this;
}

TrustPolicy& TrustPolicy::AllowDestination(absl::string_view prefix) {
  destinations_.emplace_back(prefix);
  return *this;
}

absl::Status TrustPolicy::CheckKind(absl::string_view kind) const {
  if (allow_all_ || kinds_.contains(connector_internal::NormalizeKind(kind)))
    return absl::OkStatus();
  const std::string k = connector_internal::NormalizeKind(kind);
  for (const std::string& d : destinations_) {
    if (absl::StartsWith(d, absl::StrCat(k, ":"))) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("the trust policy does not allow connector kind \"", k,
                   "\" from serialized proxies (", DebugString(), ")"));
}

absl::Status TrustPolicy::CheckDestination(
    absl::string_view destination) const {
  if (allow_all_) return absl::OkStatus();
  const size_t colon = destination.find(':');
  if (colon != absl::string_view::npos &&
      kinds_.contains(std::string(destination.substr(0, colon)))) {
    return absl::OkStatus();
  }
  for (const std::string& d : destinations_) {
    if (DestinationMatches(destination, d)) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "the trust policy does not allow destination \"", destination,
      "\" from serialized proxies (", DebugString(), ")"));
}

std::string TrustPolicy::DebugString() const {
  if (allow_all_) return "TrustPolicy::Default(): every kind and destination";
  return absl::StrCat("TrustPolicy::DenyAll(), allowed kinds: [",
                      absl::StrJoin(kinds_, ", "), "], destinations: [",
                      absl::StrJoin(destinations_, ", "), "]");
}

void SetTrustPolicy(TrustPolicy policy) {
  Settings& s = GetSettings();
  MutexLock lock(s.mu);
  s.policy = std::move(policy);
}

TrustPolicy GetTrustPolicy() {
  Settings& s = GetSettings();
  ReaderMutexLock lock(s.mu);
  return s.policy;
}

absl::Status SetReceiverOptions(absl::string_view kind,
                                std::map<std::string, std::string> options) {
  PROXYSTORE_ASSIGN_OR_RETURN(ConnectorKindTraits traits,
                              GetConnectorKindTraits(kind));
  for (const auto& [name, value] : options) {
    if (IsLocationOption(traits, name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SetReceiverOptions(\"", connector_internal::NormalizeKind(kind),
          "\"): \"", name,
          "\" is a location option; it always comes from the proxy"));
    }
  }
  Settings& s = GetSettings();
  MutexLock lock(s.mu);
  s.receiver_options[connector_internal::NormalizeKind(kind)] =
      std::move(options);
  return absl::OkStatus();
}

absl::StatusOr<ConnectorConfig> LocationConfig(const ConnectorConfig& config) {
  return Location(config, 0);
}

absl::StatusOr<std::vector<std::string>> ConnectorDestinations(
    const ConnectorConfig& config) {
  std::vector<std::string> out;
  PROXYSTORE_ASSIGN_OR_RETURN(ConnectorConfig location, LocationConfig(config));
  PROXYSTORE_RETURN_IF_ERROR(AppendDestinations(location, &out, 0));
  return out;
}

absl::StatusOr<ConnectorConfig> ReceiverConfig(const ConnectorConfig& wire,
                                               const TrustPolicy& policy) {
  return Receiver(wire, policy, 0);
}

absl::StatusOr<std::unique_ptr<Connector>> MakeConnectorFromWire(
    const ConnectorConfig& wire) {
  PROXYSTORE_ASSIGN_OR_RETURN(ConnectorConfig config,
                              ReceiverConfig(wire, GetTrustPolicy()));
  return MakeConnector(config);
}

namespace trust_internal {

absl::StatusOr<std::string> CanonicalDirectory(absl::string_view kind,
                                               absl::string_view directory) {
  if (directory.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "connector \"", kind, "\": directory contains a NUL byte"));
  }
  std::filesystem::path path{std::string(directory)};
  if (!path.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat("connector \"", kind, "\": directory ",
                     QuoteForMessage(directory), " is not absolute"));
  }
  std::error_code ec;
  // Resolves symbolic links in the part that exists, normalizes the rest.
  std::filesystem::path canonical = std::filesystem::weakly_canonical(path, ec);
  if (ec) canonical = path.lexically_normal();
  std::string out = canonical.string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

}  // namespace trust_internal
}  // namespace proxystore
