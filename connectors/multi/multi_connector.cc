#include "proxystore/connectors/multi/multi_connector.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "proxystore/base/status.h"

namespace proxystore {
namespace {

// At most this much of a bad input is echoed in an error message.
constexpr size_t kMaxQuotedSize = 200;

std::string Quote(absl::string_view s) {
  return QuoteForMessage(s, kMaxQuotedSize);
}

// 'name', as in ProxyStore's messages, with unprintable bytes escaped.
std::string QuoteName(absl::string_view name) {
  return absl::StrCat("'", absl::CHexEscape(name), "'");
}

// InvalidArgument unless child `index`'s name is non-empty, at most
// MultiKey::kMaxNameSize bytes and not in `seen` (which it is added to), and
// its policy validates.
absl::Status CheckChild(size_t index, const std::string& name,
                        const Policy& policy,
                        absl::flat_hash_set<std::string>& seen) {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("multi connector: child ", index, " has an empty name"));
  }
  if (name.size() > MultiKey::kMaxNameSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("multi connector: child name ", Quote(name),
                     " is longer than ", MultiKey::kMaxNameSize, " bytes"));
  }
  if (!seen.insert(name).second) {
    return absl::InvalidArgumentError(
        absl::StrCat("multi connector: child name ", QuoteName(name),
                     " is used more than once"));
  }
  absl::Status valid = policy.Validate();
  if (!valid.ok()) {
    return Annotate(valid,
                    absl::StrCat("multi connector: child ", QuoteName(name)));
  }
  return absl::OkStatus();
}

}  // namespace

// --- MultiKey ---------------------------------------------------------------

Key MultiKey::Encode() const {
  return Key(absl::StrCat(connector_name.size(), ":", connector_name, ":",
                          connector_key.id()));
}

absl::StatusOr<MultiKey> MultiKey::Decode(const Key& key) {
  absl::string_view id = key.id();
  auto malformed = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed multi key ", Quote(id), ": ", why,
                     " (expected \"<name length>:<name>:<key>\")"));
  };
  size_t colon = id.find(':');
  if (colon == absl::string_view::npos) return malformed("no ':'");
  absl::string_view digits = id.substr(0, colon);
  if (digits.empty()) return malformed("no name length");
  if (digits.size() > 3) return malformed("name length too long");
  size_t length = 0;
  for (char c : digits) {
    if (!absl::ascii_isdigit(c)) {
      return malformed("name length is not a decimal number");
    }
    length = length * 10 + static_cast<size_t>(c - '0');
  }
  if (digits.front() == '0') {
    return malformed("name length is zero or has a leading zero");
  }
  if (length > kMaxNameSize) {
    return malformed(
        absl::StrCat("name length exceeds ", kMaxNameSize, " bytes"));
  }
  absl::string_view rest = id.substr(colon + 1);
  if (rest.size() < length) return malformed("shorter than its name length");
  absl::string_view name = rest.substr(0, length);
  rest.remove_prefix(length);
  if (rest.empty() || rest.front() != ':') {
    return malformed("no ':' after the name");
  }
  rest.remove_prefix(1);
  if (rest.empty()) return malformed("empty connector key");
  return MultiKey{std::string(name), Key(std::string(rest))};
}

// --- MultiConnector ---------------------------------------------------------

namespace {

absl::flat_hash_map<std::string, size_t> IndexByName(
    absl::Span<const std::string> names) {
  absl::flat_hash_map<std::string, size_t> out;
  for (size_t i = 0; i < names.size(); ++i) out.emplace(names[i], i);
  return out;
}

}  // namespace

MultiConnector::MultiConnector(std::vector<Child> children)
    : children_(std::move(children)),
      by_name_(IndexByName(names())),
      put_order_([this] {
        std::vector<size_t> order;
        const std::string host = CurrentHostname();
        for (size_t i = 0; i < children_.size(); ++i) {
          const Child& c = children_[i];
          if (c.connector != nullptr && c.policy.IsValidOnHost(host)) {
            order.push_back(i);
          }
        }
        std::stable_sort(order.begin(), order.end(),
                         [this](size_t a, size_t b) {
                           return children_[a].policy.priority >
                                  children_[b].policy.priority;
                         });
        return order;
      }()) {}

absl::StatusOr<std::unique_ptr<MultiConnector>>
MultiConnector::CreateFromChildren(std::vector<Child> children) {
  if (children.empty()) {
    return absl::InvalidArgumentError(
        "multi connector: needs at least one child connector");
  }
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < children.size(); ++i) {
    const Child& c = children[i];
    PROXYSTORE_RETURN_IF_ERROR(CheckChild(i, c.name, c.policy, seen));
    if (c.connector == nullptr && c.dormant_config.kind.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("multi connector: child ", QuoteName(c.name),
                       " has no connector (or, if dormant, no config kind)"));
    }
  }
  // Not make_unique: the constructor is private.
  return std::unique_ptr<MultiConnector>(
      new MultiConnector(std::move(children)));
}

absl::StatusOr<std::unique_ptr<MultiConnector>> MultiConnector::Create(
    std::vector<Entry> entries, std::vector<DormantEntry> dormant) {
  std::vector<Child> children;
  children.reserve(entries.size() + dormant.size());
  for (Entry& e : entries) {
    if (e.connector == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("multi connector: child ",
                                                     QuoteName(e.name),
                                                     " has a null connector"));
    }
    children.push_back(Child{std::move(e.name), std::move(e.policy),
                             std::move(e.connector), ConnectorConfig{}});
  }
  for (DormantEntry& d : dormant) {
    if (d.config.kind.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("multi connector: dormant child ", QuoteName(d.name),
                       " has a config without a kind"));
    }
    children.push_back(Child{std::move(d.name), std::move(d.policy), nullptr,
                             std::move(d.config)});
  }
  return CreateFromChildren(std::move(children));
}

absl::StatusOr<std::unique_ptr<Connector>> MultiConnector::FromConfig(
    const ConnectorConfig& config) {
  PROXYSTORE_RETURN_IF_ERROR(config.CheckKnownOptions({}));
  if (config.children.empty()) {
    return absl::InvalidArgumentError(
        "connector \"multi\": no children: needs at least one child "
        "connector");
  }
  // Names and policies are checked before any child is made: a bad config
  // creates nothing (a "file" child would make its directory).
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < config.children.size(); ++i) {
    const ConnectorChild& c = config.children[i];
    PROXYSTORE_RETURN_IF_ERROR(CheckChild(i, c.name, c.policy, seen));
  }
  const std::string host = CurrentHostname();
  std::vector<Child> children;
  children.reserve(config.children.size());
  for (size_t i = 0; i < config.children.size(); ++i) {
    const ConnectorChild& c = config.children[i];
    Child child{c.name, c.policy, nullptr, ConnectorConfig{}};
    if (c.policy.IsValidOnHost(host)) {
      absl::StatusOr<std::unique_ptr<Connector>> made = MakeConnector(c.config);
      if (!made.ok()) {
        return Annotate(made.status(),
                        absl::StrCat("connector \"multi\": child ", i, " (",
                                     QuoteName(c.name), ")"));
      }
      child.connector = *std::move(made);
    } else {
      // Dormant: never instantiated here, kept as it came.
      child.dormant_config = c.config;
    }
    children.push_back(std::move(child));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<MultiConnector> multi,
                              CreateFromChildren(std::move(children)));
  return std::unique_ptr<Connector>(std::move(multi));
}

ConnectorConfig MultiConnector::Config() const {
  ConnectorConfig config{std::string(kKind), {}, {}};
  config.children.reserve(children_.size());
  for (const Child& c : children_) {
    config.children.push_back(ConnectorChild{
        c.name,
        c.connector != nullptr ? c.connector->Config() : c.dormant_config,
        c.policy});
  }
  return config;
}

std::vector<std::string> MultiConnector::names() const {
  std::vector<std::string> out;
  out.reserve(children_.size());
  for (const Child& c : children_) out.push_back(c.name);
  return out;
}

Connector* MultiConnector::connector(absl::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return nullptr;
  return children_[it->second].connector.get();
}

bool MultiConnector::IsDormant(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it != by_name_.end() && children_[it->second].connector == nullptr;
}

const Policy* MultiConnector::policy(absl::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return nullptr;
  return &children_[it->second].policy;
}

absl::StatusOr<size_t> MultiConnector::ChooseChild(
    uint64_t size, const PutOptions& options) const {
  for (size_t i : put_order_) {
    if (children_[i].policy.IsValidIgnoringHost(size, options.subset_tags,
                                                options.superset_tags)) {
      return i;
    }
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "No connector policy was suitable for the constraints: size=", size,
      ", subset_tags=", QuoteListForMessage(options.subset_tags),
      ", superset_tags=", QuoteListForMessage(options.superset_tags)));
}

absl::StatusOr<size_t> MultiConnector::ChooseChildForNewKey(
    const NewKeyOptions& options) const {
  const PutOptions tags{options.subset_tags, options.superset_tags};
  if (options.size_hint.has_value()) {
    return ChooseChild(*options.size_hint, tags);
  }
  // No size to route by: only a child that would take an object of any
  // size may hold a key whose object is not known yet.
  for (size_t i : put_order_) {
    const Policy& p = children_[i].policy;
    if (p.min_size_bytes == 0 &&
        p.max_size_bytes == std::numeric_limits<uint64_t>::max() &&
        p.IsValidIgnoringHost(0, tags.subset_tags, tags.superset_tags)) {
      return i;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "multi connector NewKey: a size hint is needed "
      "(NewKeyOptions::size_hint): no child accepts objects of every size "
      "(a policy without min_size_bytes/max_size_bytes) with subset_tags=",
      QuoteListForMessage(tags.subset_tags),
      ", superset_tags=", QuoteListForMessage(tags.superset_tags)));
}

absl::StatusOr<MultiConnector::Route> MultiConnector::RouteKey(
    const Key& key, absl::string_view op) const {
  absl::StatusOr<MultiKey> decoded = MultiKey::Decode(key);
  if (!decoded.ok()) {
    return Annotate(decoded.status(), absl::StrCat("multi connector ", op));
  }
  auto it = by_name_.find(decoded->connector_name);
  if (it == by_name_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("multi connector ", op, " of key ", Quote(key.id()), ": ",
                     QuoteName(decoded->connector_name), " does not exist"));
  }
  if (children_[it->second].connector == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("multi connector ", op, " of key ", Quote(key.id()), ": ",
                     QuoteName(decoded->connector_name),
                     " is dormant (not instantiated in this process, on host ",
                     Quote(CurrentHostname()), ")"));
  }
  return Route{it->second, std::move(decoded->connector_key)};
}

absl::Status MultiConnector::ChildError(const absl::Status& status,
                                        absl::string_view op,
                                        size_t child) const {
  if (status.ok()) return status;
  return Annotate(status, absl::StrCat("multi connector ", op, " via child ",
                                       QuoteName(children_[child].name)));
}

absl::StatusOr<Key> MultiConnector::WrapKey(size_t child, Key inner,
                                            absl::string_view op) const {
  if (inner.empty()) {
    return absl::InternalError(absl::StrCat("multi connector ", op, ": child ",
                                            QuoteName(children_[child].name),
                                            " returned an empty key"));
  }
  Key key = MultiKey{children_[child].name, std::move(inner)}.Encode();
  if (key.id().size() > Key::kMaxIdSize) {
    return absl::InternalError(absl::StrCat(
        "multi connector ", op, ": child ", QuoteName(children_[child].name),
        " returned a key too long to wrap (the multi key would be ",
        key.id().size(), " bytes, over Key::kMaxIdSize)"));
  }
  return key;
}

absl::StatusOr<Key> MultiConnector::PutThroughChild(
    size_t size, const PutOptions& options,
    absl::FunctionRef<absl::StatusOr<Key>(Connector&)> put) {
  PROXYSTORE_ASSIGN_OR_RETURN(size_t child, ChooseChild(size, options));
  Connector& c = *children_[child].connector;
  absl::StatusOr<Key> inner = put(c);
  if (!inner.ok()) {
    return ChildError(inner.status(), "Put", child);
  }
  absl::StatusOr<Key> key = WrapKey(child, *inner, "Put");
  if (!key.ok()) c.Evict(*inner).IgnoreError();
  return key;
}

absl::StatusOr<Key> MultiConnector::DoPut(SharedBytes data,
                                          const PutOptions& options) {
  const size_t size = data.size();
  return PutThroughChild(size, options, [&](Connector& c) {
    return c.Put(std::move(data), options);
  });
}

absl::StatusOr<Key> MultiConnector::DoPutParts(
    absl::Span<const absl::string_view> parts, const PutOptions& options) {
  size_t size = 0;
  for (absl::string_view part : parts) size += part.size();
  return PutThroughChild(
      size, options, [&](Connector& c) { return c.PutParts(parts, options); });
}

absl::StatusOr<std::vector<Key>> MultiConnector::DoPutBatch(
    absl::Span<const SharedBytes> data, const PutOptions& options) {
  // Route everything first: an unroutable item stores nothing.
  std::vector<size_t> child_of(data.size());
  // Per child (in first-use order): the item indexes it takes.
  std::vector<std::pair<size_t, std::vector<size_t>>> groups;
  for (size_t i = 0; i < data.size(); ++i) {
    PROXYSTORE_ASSIGN_OR_RETURN(child_of[i],
                                ChooseChild(data[i].size(), options));
    auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& p) {
      return p.first == child_of[i];
    });
    if (g == groups.end()) {
      groups.emplace_back(child_of[i], std::vector<size_t>{});
      g = groups.end() - 1;
    }
    g->second.push_back(i);
  }

  std::vector<Key> keys(data.size());
  // (child, inner keys) stored so far, to undo on failure.
  std::vector<std::pair<size_t, std::vector<Key>>> stored;
  auto undo = [&] {
    for (const auto& [child, inner] : stored) {
      for (const Key& k : inner) {
        children_[child].connector->Evict(k).IgnoreError();
      }
    }
  };
  for (const auto& [child, items] : groups) {
    std::vector<SharedBytes> batch;
    batch.reserve(items.size());
    for (size_t i : items) batch.push_back(data[i]);
    absl::StatusOr<std::vector<Key>> inner =
        children_[child].connector->PutBatch(batch, options);
    if (!inner.ok()) {
      undo();
      return ChildError(inner.status(), "PutBatch", child);
    }
    stored.emplace_back(child, *inner);
    if (inner->size() != items.size()) {
      undo();
      return absl::InternalError(absl::StrCat(
          "multi connector PutBatch: child ", QuoteName(children_[child].name),
          " returned ", inner->size(), " keys for ", items.size(), " items"));
    }
    for (size_t j = 0; j < items.size(); ++j) {
      absl::StatusOr<Key> key = WrapKey(child, (*inner)[j], "PutBatch");
      if (!key.ok()) {
        undo();
        return key.status();
      }
      keys[items[j]] = *std::move(key);
    }
  }
  return keys;
}

absl::StatusOr<Key> MultiConnector::DoNewKey(const NewKeyOptions& options) {
  PROXYSTORE_ASSIGN_OR_RETURN(size_t child, ChooseChildForNewKey(options));
  // The options go on, so that a nested "multi" routes further.
  absl::StatusOr<Key> inner = children_[child].connector->NewKey(options);
  if (!inner.ok()) return ChildError(inner.status(), "NewKey", child);
  return WrapKey(child, *std::move(inner), "NewKey");
}

absl::Status MultiConnector::DoSet(const Key& key, SharedBytes data) {
  // The key names its child: the object goes there whatever its size.
  PROXYSTORE_ASSIGN_OR_RETURN(Route route, RouteKey(key, "Set"));
  return ChildError(
      children_[route.child].connector->Set(route.inner, std::move(data)),
      "Set", route.child);
}

absl::Status MultiConnector::DoSetParts(
    const Key& key, absl::Span<const absl::string_view> parts) {
  PROXYSTORE_ASSIGN_OR_RETURN(Route route, RouteKey(key, "Set"));
  return ChildError(
      children_[route.child].connector->SetParts(route.inner, parts), "Set",
      route.child);
}

absl::StatusOr<bool> MultiConnector::DoWaitFor(const Key& key,
                                               absl::Duration timeout) {
  PROXYSTORE_ASSIGN_OR_RETURN(Route route, RouteKey(key, "WaitFor"));
  absl::StatusOr<bool> woke =
      children_[route.child].connector->WaitFor(route.inner, timeout);
  if (!woke.ok()) return ChildError(woke.status(), "WaitFor", route.child);
  return woke;
}

absl::StatusOr<std::optional<SharedBytes>> MultiConnector::DoGet(
    const Key& key) {
  PROXYSTORE_ASSIGN_OR_RETURN(Route route, RouteKey(key, "Get"));
  absl::StatusOr<std::optional<SharedBytes>> got =
      children_[route.child].connector->Get(route.inner);
  if (!got.ok()) return ChildError(got.status(), "Get", route.child);
  return got;
}

absl::StatusOr<GetIntoResult> MultiConnector::DoGetInto(const Key& key,
                                                        GetIntoFn fn) {
  PROXYSTORE_ASSIGN_OR_RETURN(Route route, RouteKey(key, "Get"));
  // The fn's own errors go back as they are; the child's are annotated.
  bool fn_failed = false;
  auto forward = [&](const ObjectReader& reader) -> absl::StatusOr<bool> {
    absl::StatusOr<bool> r = fn(reader);
    fn_failed = !r.ok();
    return r;
  };
  absl::StatusOr<GetIntoResult> got =
      children_[route.child].connector->GetInto(route.inner, forward);
  if (!got.ok() && !fn_failed) {
    return ChildError(got.status(), "Get", route.child);
  }
  return got;
}

absl::StatusOr<std::vector<std::optional<SharedBytes>>>
MultiConnector::DoGetBatch(absl::Span<const Key> keys) {
  // Per child (in first-use order): positions in `keys` and child keys.
  struct Group {
    size_t child;
    std::vector<size_t> positions;
    std::vector<Key> inner;
  };
  std::vector<Group> groups;
  for (size_t i = 0; i < keys.size(); ++i) {
    PROXYSTORE_ASSIGN_OR_RETURN(Route route, RouteKey(keys[i], "GetBatch"));
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) {
      return x.child == route.child;
    });
    if (g == groups.end()) {
      groups.push_back(Group{route.child, {}, {}});
      g = groups.end() - 1;
    }
    g->positions.push_back(i);
    g->inner.push_back(std::move(route.inner));
  }
  std::vector<std::optional<SharedBytes>> out(keys.size());
  for (Group& g : groups) {
    absl::StatusOr<std::vector<std::optional<SharedBytes>>> got =
        children_[g.child].connector->GetBatch(g.inner);
    if (!got.ok()) {
      return ChildError(got.status(), "GetBatch", g.child);
    }
    if (got->size() != g.inner.size()) {
      return absl::InternalError(
          absl::StrCat("multi connector GetBatch: child ",
                       QuoteName(children_[g.child].name), " returned ",
                       got->size(), " values for ", g.inner.size(), " keys"));
    }
    for (size_t j = 0; j < g.positions.size(); ++j) {
      out[g.positions[j]] = std::move((*got)[j]);
    }
  }
  return out;
}

absl::StatusOr<bool> MultiConnector::DoExists(const Key& key) {
  PROXYSTORE_ASSIGN_OR_RETURN(Route route, RouteKey(key, "Exists"));
  absl::StatusOr<bool> exists =
      children_[route.child].connector->Exists(route.inner);
  if (!exists.ok()) return ChildError(exists.status(), "Exists", route.child);
  return exists;
}

absl::Status MultiConnector::DoEvict(const Key& key) {
  PROXYSTORE_ASSIGN_OR_RETURN(Route route, RouteKey(key, "Evict"));
  return ChildError(children_[route.child].connector->Evict(route.inner),
                    "Evict", route.child);
}

absl::Status MultiConnector::DoClose(const CloseOptions& options) {
  absl::Status first;
  for (const Child& c : children_) {
    if (c.connector == nullptr) continue;
    absl::Status s = c.connector->Close(options);
    if (!s.ok() && first.ok()) {
      first = Annotate(s, absl::StrCat("multi connector Close via child ",
                                       QuoteName(c.name)));
    }
  }
  return first;
}

ConnectorKindTraits MultiConnector::KindTraits() {
  ConnectorKindTraits traits;
  // No options: the children say where the data is, and the trust layer
  // reduces and checks each as a config of its own kind.
  traits.has_children = true;
  // A multi connector reaches nothing itself.
  traits.destinations = [](const ConnectorConfig&) {
    return absl::StatusOr<std::vector<std::string>>(std::vector<std::string>{});
  };
  return traits;
}

PROXYSTORE_REGISTER_CONNECTOR("multi", &MultiConnector::FromConfig,
                              MultiConnector::KindTraits());

}  // namespace proxystore
