#include "proxystore/connectors/multi/multi_connector.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/multi/host_pattern.h"

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

// "s" with C escapes: the string token of the text forms.
std::string QuoteString(absl::string_view s) { return QuoteForMessage(s); }

// ["a", "b"]: the list form of Policy::Serialize, also used in messages.
std::string StringList(absl::Span<const std::string> items) {
  return absl::StrCat("[",
                      absl::StrJoin(items, ", ",
                                    [](std::string* out, const std::string& s) {
                                      absl::StrAppend(out, QuoteString(s));
                                    }),
                      "]");
}

bool Contains(absl::Span<const std::string> set, const std::string& item) {
  return std::find(set.begin(), set.end(), item) != set.end();
}

// A cursor over the text forms of Policy and of child configs, with the
// tokens both share. Errors name `what` ("Policy::Parse", ...), the offset
// and the (truncated) text.
class TextReader {
 public:
  TextReader(absl::string_view what, absl::string_view text)
      : what_(what), text_(text), rest_(text) {}

  absl::Status Error(absl::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat(what_, ": ", problem, " at offset ",
                     text_.size() - rest_.size(), " of ", Quote(text_)));
  }

  bool AtEnd() {
    SkipSpace();
    return rest_.empty();
  }

  // Skips spaces, then consumes `c` if it is next.
  bool Consume(char c) {
    SkipSpace();
    if (rest_.empty() || rest_.front() != c) return false;
    rest_.remove_prefix(1);
    return true;
  }

  absl::Status Expect(char c) {
    if (Consume(c)) return absl::OkStatus();
    return Error(absl::StrCat("expected '", std::string(1, c), "'"));
  }

  // [A-Za-z0-9_]*, possibly empty.
  absl::string_view Identifier() {
    SkipSpace();
    size_t n = 0;
    while (n < rest_.size() &&
           (absl::ascii_isalnum(rest_[n]) || rest_[n] == '_')) {
      ++n;
    }
    absl::string_view id = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return id;
  }

  // A decimal integer that fits `Int`.
  template <typename Int>
  absl::Status Number(Int* out) {
    SkipSpace();
    size_t n = 0;
    while (n < rest_.size() &&
           (absl::ascii_isdigit(rest_[n]) || (n == 0 && rest_[n] == '-'))) {
      ++n;
    }
    absl::string_view token = rest_.substr(0, n);
    if (token.empty() || token == "-" || !absl::SimpleAtoi(token, out)) {
      return Error(
          absl::StrCat("expected an integer in range, got ",
                       Quote(rest_.substr(0, std::max<size_t>(n, 1)))));
    }
    rest_.remove_prefix(n);
    return absl::OkStatus();
  }

  // A double-quoted string with C escapes (what QuoteString writes).
  absl::StatusOr<std::string> String() {
    if (!Consume('"')) return Error("expected '\"'");
    size_t i = 0;
    while (i < rest_.size() && rest_[i] != '"') {
      i += rest_[i] == '\\' ? 2 : 1;
    }
    if (i >= rest_.size()) return Error("unterminated string");
    std::string value;
    std::string error;
    if (!absl::CUnescape(rest_.substr(0, i), &value, &error)) {
      return Error(absl::StrCat("bad escape in string (", error, ")"));
    }
    rest_.remove_prefix(i + 1);
    return value;
  }

  // ["a", "b"]
  absl::Status StringList(std::vector<std::string>* out) {
    PROXYSTORE_RETURN_IF_ERROR(Expect('['));
    if (Consume(']')) return absl::OkStatus();
    while (true) {
      PROXYSTORE_ASSIGN_OR_RETURN(std::string item, String());
      out->push_back(std::move(item));
      if (Consume(']')) return absl::OkStatus();
      if (!Consume(',')) return Error("expected ',' or ']' in a list");
    }
  }

 private:
  void SkipSpace() {
    while (!rest_.empty() && absl::ascii_isspace(rest_.front())) {
      rest_.remove_prefix(1);
    }
  }

  const absl::string_view what_;
  const absl::string_view text_;
  absl::string_view rest_;
};

// Policy::Serialize's form: {field: value, ...}.
absl::StatusOr<Policy> ParsePolicy(absl::string_view text) {
  TextReader in("Policy::Parse", text);
  Policy policy;
  bool seen[6] = {};
  PROXYSTORE_RETURN_IF_ERROR(in.Expect('{'));
  if (!in.Consume('}')) {
    while (true) {
      absl::string_view field = in.Identifier();
      if (field.empty()) return in.Error("expected a field name");
      if (!in.Consume(':')) return in.Error("expected ':' after a field name");
      int index;
      absl::Status s;
      if (field == "priority") {
        index = 0;
        s = in.Number(&policy.priority);
      } else if (field == "host_patterns") {
        index = 1;
        s = in.StringList(&policy.host_patterns);
      } else if (field == "min_size_bytes") {
        index = 2;
        s = in.Number(&policy.min_size_bytes);
      } else if (field == "max_size_bytes") {
        index = 3;
        s = in.Number(&policy.max_size_bytes);
      } else if (field == "subset_tags") {
        index = 4;
        s = in.StringList(&policy.subset_tags);
      } else if (field == "superset_tags") {
        index = 5;
        s = in.StringList(&policy.superset_tags);
      } else {
        return in.Error(absl::StrCat("unknown field ", Quote(field)));
      }
      PROXYSTORE_RETURN_IF_ERROR(s);
      if (seen[index]) {
        return in.Error(absl::StrCat("field ", Quote(field), " appears twice"));
      }
      seen[index] = true;
      if (in.Consume('}')) break;
      if (!in.Consume(',')) return in.Error("expected ',' or '}'");
    }
  }
  if (!in.AtEnd()) return in.Error("unexpected text after '}'");
  return policy;
}

// MultiConnector::SerializeChildConfig's form: "kind" {"name": "value", ...}.
absl::StatusOr<ConnectorConfig> ParseConfigText(absl::string_view text) {
  TextReader in("MultiConnector::ParseChildConfig", text);
  ConnectorConfig config;
  PROXYSTORE_ASSIGN_OR_RETURN(config.kind, in.String());
  if (config.kind.empty()) return in.Error("empty connector kind");
  PROXYSTORE_RETURN_IF_ERROR(in.Expect('{'));
  if (!in.Consume('}')) {
    while (true) {
      PROXYSTORE_ASSIGN_OR_RETURN(std::string name, in.String());
      if (!in.Consume(':')) {
        return in.Error("expected ':' after an option name");
      }
      PROXYSTORE_ASSIGN_OR_RETURN(std::string value, in.String());
      if (!config.options.emplace(name, std::move(value)).second) {
        return in.Error(absl::StrCat("option ", Quote(name), " appears twice"));
      }
      if (in.Consume('}')) break;
      if (!in.Consume(',')) return in.Error("expected ',' or '}'");
    }
  }
  if (!in.AtEnd()) return in.Error("unexpected text after '}'");
  return config;
}

// "child.<i>.<field>" -> (i, field); nullopt for any other shape.
std::optional<std::pair<size_t, std::string>> ParseChildOption(
    absl::string_view name) {
  constexpr absl::string_view kPrefix = "child.";
  if (name.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  name.remove_prefix(kPrefix.size());
  size_t dot = name.find('.');
  if (dot == absl::string_view::npos || dot == 0 || dot > 6) {
    return std::nullopt;
  }
  absl::string_view digits = name.substr(0, dot);
  size_t index = 0;
  for (char c : digits) {
    if (!absl::ascii_isdigit(c)) return std::nullopt;
    index = index * 10 + static_cast<size_t>(c - '0');
  }
  // Canonical decimal only, so that one child has one spelling.
  if (digits.size() > 1 && digits.front() == '0') return std::nullopt;
  absl::string_view field = name.substr(dot + 1);
  if (field != "name" && field != "config" && field != "policy") {
    return std::nullopt;
  }
  return std::make_pair(index, std::string(field));
}

}  // namespace

std::string CurrentHostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return std::string(buf, ::strnlen(buf, sizeof(buf)));
}

// --- Policy -----------------------------------------------------------------

bool Policy::IsValid(uint64_t size_bytes, absl::Span<const std::string> subset,
                     absl::Span<const std::string> superset) const {
  return IsValidIgnoringHost(size_bytes, subset, superset) && IsValidOnHost();
}

bool Policy::IsValidIgnoringHost(uint64_t size_bytes,
                                 absl::Span<const std::string> subset,
                                 absl::Span<const std::string> superset) const {
  if (size_bytes < min_size_bytes || size_bytes > max_size_bytes) return false;
  for (const std::string& tag : subset) {
    if (!Contains(subset_tags, tag)) return false;
  }
  for (const std::string& tag : superset_tags) {
    if (!Contains(superset, tag)) return false;
  }
  return true;
}

bool Policy::IsValidOnHost() const {
  if (host_patterns.empty()) return true;
  return IsValidOnHost(CurrentHostname());
}

bool Policy::IsValidOnHost(absl::string_view hostname) const {
  if (host_patterns.empty()) return true;
  for (const std::string& pattern : host_patterns) {
    absl::StatusOr<HostPattern> compiled = HostPattern::Compile(pattern);
    if (compiled.ok() && compiled->FullMatch(hostname)) return true;
  }
  return false;
}

absl::Status Policy::Validate() const {
  for (const std::string& pattern : host_patterns) {
    absl::Status compiled = HostPattern::Compile(pattern).status();
    if (!compiled.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy ", compiled.message()));
    }
  }
  if (min_size_bytes > max_size_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "policy min_size_bytes ", min_size_bytes, " exceeds max_size_bytes ",
        max_size_bytes, ": it would accept nothing"));
  }
  return absl::OkStatus();
}

std::string Policy::Serialize() const {
  // Fields at their defaults are left out: configs travel inside every proxy.
  const Policy defaults;
  std::vector<std::string> fields;
  if (priority != defaults.priority) {
    fields.push_back(absl::StrCat("priority: ", priority));
  }
  if (!host_patterns.empty()) {
    fields.push_back(
        absl::StrCat("host_patterns: ", StringList(host_patterns)));
  }
  if (min_size_bytes != defaults.min_size_bytes) {
    fields.push_back(absl::StrCat("min_size_bytes: ", min_size_bytes));
  }
  if (max_size_bytes != defaults.max_size_bytes) {
    fields.push_back(absl::StrCat("max_size_bytes: ", max_size_bytes));
  }
  if (!subset_tags.empty()) {
    fields.push_back(absl::StrCat("subset_tags: ", StringList(subset_tags)));
  }
  if (!superset_tags.empty()) {
    fields.push_back(
        absl::StrCat("superset_tags: ", StringList(superset_tags)));
  }
  return absl::StrCat("{", absl::StrJoin(fields, ", "), "}");
}

absl::StatusOr<Policy> Policy::Parse(absl::string_view text) {
  return ParsePolicy(text);
}

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
  absl::flat_hash_map<std::string, size_t> seen;
  for (size_t i = 0; i < children.size(); ++i) {
    const Child& c = children[i];
    if (c.name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("multi connector: child ", i, " has an empty name"));
    }
    if (c.name.size() > MultiKey::kMaxNameSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("multi connector: child name ", Quote(c.name),
                       " is longer than ", MultiKey::kMaxNameSize, " bytes"));
    }
    if (!seen.emplace(c.name, i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("multi connector: child name ", QuoteName(c.name),
                       " is used more than once"));
    }
    if (c.connector == nullptr && c.dormant_config.kind.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("multi connector: child ", QuoteName(c.name),
                       " has no connector (or, if dormant, no config kind)"));
    }
    absl::Status valid = c.policy.Validate();
    if (!valid.ok()) {
      return Annotate(
          valid, absl::StrCat("multi connector: child ", QuoteName(c.name)));
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
  struct Fields {
    std::optional<std::string> name, config, policy;
  };
  std::map<size_t, Fields> by_index;
  for (const auto& [option, value] : config.options) {
    std::optional<std::pair<size_t, std::string>> parsed =
        ParseChildOption(option);
    if (!parsed.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("connector \"multi\": unknown option ", Quote(option),
                       " (expected \"child.<i>.name\", \"child.<i>.config\" or "
                       "\"child.<i>.policy\")"));
    }
    Fields& f = by_index[parsed->first];
    if (parsed->second == "name") f.name = value;
    if (parsed->second == "config") f.config = value;
    if (parsed->second == "policy") f.policy = value;
  }
  if (by_index.empty()) {
    return absl::InvalidArgumentError(
        "connector \"multi\": no \"child.<i>.*\" options: needs at least one "
        "child connector");
  }

  const std::string host = CurrentHostname();
  std::vector<Child> children;
  children.reserve(by_index.size());
  size_t expected = 0;
  for (auto& [index, f] : by_index) {
    if (index != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "connector \"multi\": options for child ", expected,
          " are missing (children must be numbered 0, 1, ... without gaps)"));
    }
    ++expected;
    for (const auto& [field, present] :
         {std::make_pair("name", f.name.has_value()),
          std::make_pair("config", f.config.has_value()),
          std::make_pair("policy", f.policy.has_value())}) {
      if (!present) {
        return absl::InvalidArgumentError(
            absl::StrCat("connector \"multi\": option \"child.", index, ".",
                         field, "\" is missing"));
      }
    }
    const std::string context = absl::StrCat(
        "connector \"multi\": child ", index, " (", QuoteName(*f.name), ")");
    absl::StatusOr<ConnectorConfig> child_config = ParseChildConfig(*f.config);
    if (!child_config.ok()) {
      return Annotate(
          child_config.status(),
          absl::StrCat(context, ": option \"child.", index, ".config\""));
    }
    absl::StatusOr<Policy> policy = Policy::Parse(*f.policy);
    if (!policy.ok()) {
      return Annotate(
          policy.status(),
          absl::StrCat(context, ": option \"child.", index, ".policy\""));
    }
    absl::Status valid = policy->Validate();
    if (!valid.ok()) return Annotate(valid, context);

    Child child{std::move(*f.name), *std::move(policy), nullptr,
                ConnectorConfig{}};
    if (child.policy.IsValidOnHost(host)) {
      absl::StatusOr<std::unique_ptr<Connector>> made =
          MakeConnector(*child_config);
      if (!made.ok()) return Annotate(made.status(), context);
      child.connector = *std::move(made);
    } else {
      child.dormant_config = *std::move(child_config);
    }
    children.push_back(std::move(child));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<MultiConnector> multi,
                              CreateFromChildren(std::move(children)));
  return std::unique_ptr<Connector>(std::move(multi));
}

ConnectorConfig MultiConnector::Config() const {
  ConnectorConfig config{std::string(kKind), {}};
  for (size_t i = 0; i < children_.size(); ++i) {
    const Child& c = children_[i];
    const ConnectorConfig child_config =
        c.connector != nullptr ? c.connector->Config() : c.dormant_config;
    const std::string prefix = absl::StrCat("child.", i, ".");
    config.options[absl::StrCat(prefix, "name")] = c.name;
    config.options[absl::StrCat(prefix, "config")] =
        SerializeChildConfig(child_config);
    config.options[absl::StrCat(prefix, "policy")] = c.policy.Serialize();
  }
  return config;
}

std::string MultiConnector::SerializeChildConfig(
    const ConnectorConfig& config) {
  return absl::StrCat(QuoteString(config.kind), " {",
                      absl::StrJoin(config.options, ", ",
                                    [](std::string* out, const auto& option) {
                                      absl::StrAppend(
                                          out, QuoteString(option.first), ": ",
                                          QuoteString(option.second));
                                    }),
                      "}");
}

absl::StatusOr<ConnectorConfig> MultiConnector::ParseChildConfig(
    absl::string_view text) {
  return ParseConfigText(text);
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
      ", subset_tags=", StringList(options.subset_tags),
      ", superset_tags=", StringList(options.superset_tags)));
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

absl::StatusOr<Key> MultiConnector::WrapKey(size_t child, Key inner) const {
  if (inner.empty()) {
    return absl::InternalError(absl::StrCat("multi connector Put: child ",
                                            QuoteName(children_[child].name),
                                            " returned an empty key"));
  }
  Key key = MultiKey{children_[child].name, std::move(inner)}.Encode();
  if (key.id().size() > Key::kMaxIdSize) {
    return absl::InternalError(absl::StrCat(
        "multi connector Put: child ", QuoteName(children_[child].name),
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
  absl::StatusOr<Key> key = WrapKey(child, *inner);
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
      absl::StatusOr<Key> key = WrapKey(child, (*inner)[j]);
      if (!key.ok()) {
        undo();
        return key.status();
      }
      keys[items[j]] = *std::move(key);
    }
  }
  return keys;
}

absl::StatusOr<std::optional<SharedBytes>> MultiConnector::DoGet(
    const Key& key) {
  PROXYSTORE_ASSIGN_OR_RETURN(Route route, RouteKey(key, "Get"));
  absl::StatusOr<std::optional<SharedBytes>> got =
      children_[route.child].connector->Get(route.inner);
  if (!got.ok()) return ChildError(got.status(), "Get", route.child);
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
  // Children (their names, configs and policies) are where the data is.
  traits.location_options = {"child.*"};
  // A multi connector reaches nothing itself: its children's destinations
  // are checked when `nested` visits them.
  traits.destinations = [](const ConnectorConfig&) {
    return absl::StatusOr<std::vector<std::string>>(std::vector<std::string>{});
  };
  traits.map_nested = [](const ConnectorConfig& config,
                         const ConnectorKindTraits::NestedFn& nested)
      -> absl::StatusOr<ConnectorConfig> {
    const std::string host = CurrentHostname();
    ConnectorConfig out = config;
    for (auto& [option, value] : out.options) {
      std::optional<std::pair<size_t, std::string>> parsed =
          ParseChildOption(option);
      if (!parsed.has_value() || parsed->second != "config") continue;
      // A child that is dormant on this host is never instantiated here
      // (FromConfig): its config is carried as it came, unread.
      const std::string policy_option =
          absl::StrCat("child.", parsed->first, ".policy");
      auto policy_text = config.options.find(policy_option);
      if (policy_text != config.options.end()) {
        absl::StatusOr<Policy> policy = Policy::Parse(policy_text->second);
        if (policy.ok() && policy->Validate().ok() &&
            !policy->IsValidOnHost(host)) {
          continue;
        }
      }
      absl::StatusOr<ConnectorConfig> child = ParseChildConfig(value);
      if (!child.ok()) {
        return Annotate(
            child.status(),
            absl::StrCat("connector \"multi\": option ", Quote(option)));
      }
      absl::StatusOr<ConnectorConfig> mapped = nested(*child);
      if (!mapped.ok()) {
        return Annotate(
            mapped.status(),
            absl::StrCat("connector \"multi\": option ", Quote(option)));
      }
      value = SerializeChildConfig(*mapped);
    }
    return out;
  };
  return traits;
}

PROXYSTORE_REGISTER_CONNECTOR("multi", &MultiConnector::FromConfig,
                              MultiConnector::KindTraits());

}  // namespace proxystore
