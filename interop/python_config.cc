#include "proxystore/interop/python_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "proxystore/base/status.h"
#include "proxystore/connectors/file/file_connector.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/connectors/secret.h"
// TOML_EXCEPTIONS=0 (this target's local_defines): parse() returns a
// parse_result instead of throwing.
#include "toml++/toml.h"

namespace proxystore::interop {
namespace {

constexpr absl::string_view kPythonLayout = "proxystore-python";
// Python StoreConfig's defaults (proxystore/store/config.py).
constexpr int64_t kPythonCacheSize = 16;
constexpr bool kPythonMetrics = false;
constexpr bool kPythonPopulateTarget = true;
constexpr bool kPythonAutoRegister = false;
// Longest environment variable name and file path a reference may hold.
constexpr size_t kMaxPathSize = 4096;
// Most unknown names one message lists.
constexpr size_t kMaxNamesListed = 10;

absl::Status ConfigError(absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat("Python store config: ", message));
}

std::string Quote(absl::string_view s) { return QuoteForMessage(s, 100); }
// Paths are shown whole (up to PATH_MAX): a path cut short names nothing.
std::string QuotePath(absl::string_view path) {
  return QuoteForMessage(path, kMaxPathSize);
}

// ---------------------------------------------------------------------------
// A parsed document, whichever parser read it: the mapping below is written
// once for both formats.

struct Member;

struct Node {
  enum class Type {
    kNull,  // JSON null (TOML has none)
    kBool,
    kInt,     // fits int64_t
    kBigInt,  // a JSON integer beyond int64_t
    kFloat,
    kString,
    kTable,  // TOML table, JSON object
    kArray,
    kDateTime,  // TOML date, time or date-time
  };
  Type type = Type::kNull;
  bool boolean = false;
  int64_t integer = 0;
  std::string string;
  // A table's members, in document order (JSON) or key order (TOML): only
  // for tables less than kMaxDepth deep, as nothing deeper is ever read.
  // (Member, not std::pair: a pair of an incomplete type may not be named
  // here, and libstdc++ checks it under clang.)
  std::vector<Member> members;
  // How many members a table has, however deep (LocalConnector's store_dict
  // is read by it).
  size_t size = 0;
};

struct Member {
  std::string name;
  Node value;
};

// The document (0), "connector" (1) and "connector.options" (2) are read
// member by member; deeper tables only by their size.
constexpr int kMaxDepth = 3;

std::string TypeName(Node::Type type) {
  switch (type) {
    case Node::Type::kNull:
      return "null";
    case Node::Type::kBool:
      return "a boolean";
    case Node::Type::kInt:
      return "an integer";
    case Node::Type::kBigInt:
      return "an integer beyond 64 bits";
    case Node::Type::kFloat:
      return "a float";
    case Node::Type::kString:
      return "a string";
    case Node::Type::kTable:
      return "a table";
    case Node::Type::kArray:
      return "an array";
    case Node::Type::kDateTime:
      return "a date or time";
  }
  return "a value";
}

Node FromToml(const toml::node& n, int depth) {
  Node out;
  switch (n.type()) {
    case toml::node_type::table: {
      const toml::table& table = *n.as_table();
      out.type = Node::Type::kTable;
      out.size = table.size();
      if (depth < kMaxDepth) {
        for (auto&& [key, value] : table) {
          out.members.push_back(
              Member{std::string(key.str()), FromToml(value, depth + 1)});
        }
      }
      break;
    }
    case toml::node_type::array:
      out.type = Node::Type::kArray;
      break;
    case toml::node_type::string:
      out.type = Node::Type::kString;
      out.string = n.as_string()->get();
      break;
    case toml::node_type::integer:
      out.type = Node::Type::kInt;
      out.integer = n.as_integer()->get();
      break;
    case toml::node_type::floating_point:
      out.type = Node::Type::kFloat;
      break;
    case toml::node_type::boolean:
      out.type = Node::Type::kBool;
      out.boolean = n.as_boolean()->get();
      break;
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      out.type = Node::Type::kDateTime;
      break;
    case toml::node_type::none:
      break;
  }
  return out;
}

absl::StatusOr<Node> ParseToml(absl::string_view text) {
  toml::parse_result result =
      toml::parse(std::string_view(text.data(), text.size()));
  if (!result) {
    const toml::parse_error& error = result.error();
    const std::string_view description = error.description();
    return ConfigError(absl::StrCat(
        "TOML syntax error at line ", error.source().begin.line, ", column ",
        error.source().begin.column, ": ",
        absl::string_view(description.data(), description.size())));
  }
  return FromToml(result.table(), 0);
}

// Builds the Node tree from nlohmann's SAX events: nothing throws (a syntax
// error is an event), the raw text of each number is seen (an integer too
// large for 64 bits is an integer, as Python reads it, not a float), and
// what lies deeper than kMaxDepth, or inside an array, is skipped without
// being stored, however deep it goes.
class JsonNodeBuilder : public nlohmann::json_sax<nlohmann::json> {
 public:
  Node& root() { return root_; }
  const std::string& error() const { return error_; }

  bool null() override { return Value(Node{}); }
  bool boolean(bool b) override {
    Node n{.type = Node::Type::kBool};
    n.boolean = b;
    return Value(std::move(n));
  }
  bool number_integer(number_integer_t i) override {
    Node n{.type = Node::Type::kInt};
    n.integer = i;
    return Value(std::move(n));
  }
  bool number_unsigned(number_unsigned_t u) override {
    Node n;
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      n.type = Node::Type::kInt;
      n.integer = static_cast<int64_t>(u);
    } else {
      n.type = Node::Type::kBigInt;
    }
    return Value(std::move(n));
  }
  bool number_float(number_float_t, const string_t& text) override {
    // nlohmann reads an integer that overflows 64 bits as a float.
    const bool integer = text.find_first_of(".eE") == string_t::npos;
    return Value(
        Node{.type = integer ? Node::Type::kBigInt : Node::Type::kFloat});
  }
  bool string(string_t& s) override {
    Node n{.type = Node::Type::kString};
    if (skipped_ == 0) n.string = std::move(s);
    return Value(std::move(n));
  }
  bool binary(binary_t&) override { return Value(Node{}); }
  bool start_object(std::size_t) override {
    if (skipped_ > 0) {
      ++skipped_;
      return true;
    }
    const bool parent_records = frames_.empty() || frames_.back().record;
    Node* table = Place(Node{.type = Node::Type::kTable});
    if (!parent_records) {
      ++skipped_;
    } else {
      frames_.push_back({table, frames_.size() < kMaxDepth});
    }
    return true;
  }
  bool key(string_t& k) override {
    if (skipped_ == 0) key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    if (skipped_ > 0) {
      --skipped_;
    } else {
      frames_.pop_back();
    }
    return true;
  }
  bool start_array(std::size_t) override {
    if (skipped_ == 0) Place(Node{.type = Node::Type::kArray});
    ++skipped_;
    return true;
  }
  bool end_array() override {
    --skipped_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& e) override {
    error_ = e.what();
    return false;
  }

 private:
  struct Frame {
    Node* table;
    bool record;  // its members are stored, not only counted
  };

  bool Value(Node n) {
    if (skipped_ == 0) Place(std::move(n));
    return true;
  }

  // Puts `n` where the document is: the root, or the open table's member
  // key_. Returns where it went (null if only counted). The pointer stays
  // valid while `n` is open: its parent gains no member until it closes.
  Node* Place(Node n) {
    if (frames_.empty()) {
      root_ = std::move(n);
      return &root_;
    }
    Frame& parent = frames_.back();
    if (!parent.record) {
      ++parent.table->size;
      return nullptr;
    }
    auto& members = parent.table->members;
    // A repeated key keeps its last value, as Python's JSON parser does.
    for (auto& [name, value] : members) {
      if (name == key_) {
        value = std::move(n);
        return &value;
      }
    }
    members.push_back(Member{std::move(key_), std::move(n)});
    parent.table->size = members.size();
    return &members.back().value;
  }

  Node root_;
  std::vector<Frame> frames_;
  // How many containers deep the parser is inside one whose contents are
  // not kept.
  size_t skipped_ = 0;
  std::string key_;
  std::string error_;
};

absl::StatusOr<Node> ParseJson(absl::string_view text) {
  JsonNodeBuilder builder;
  if (!nlohmann::json::sax_parse(text.begin(), text.end(), &builder)) {
    return ConfigError(absl::StrCat(
        "JSON syntax error: ",
        builder.error().empty() ? "malformed document" : builder.error()));
  }
  return std::move(builder.root());
}

// ---------------------------------------------------------------------------
// Reading: a table's fields by name; CheckKnown first, so that a misspelt
// field is reported as unknown rather than the right one as missing.

class TableReader {
 public:
  // `path`: the table's dotted name in messages ("" for the document).
  TableReader(const Node& table, std::string path)
      : table_(table), path_(std::move(path)) {}

  std::string FieldName(absl::string_view key) const {
    return Quote(path_.empty() ? std::string(key)
                               : absl::StrCat(path_, ".", key));
  }

  // The member named `key`, or null. (A JSON object with a repeated key
  // keeps its last value, as Python's JSON parser does.)
  const Node* Find(absl::string_view key) const {
    for (const auto& [name, value] : table_.members) {
      if (name == key) return &value;
    }
    return nullptr;
  }

  // InvalidArgument listing the members not in `known`: `whose` says who
  // does not know them ("unknown", "Python's FileConnector takes no").
  absl::Status CheckKnown(std::initializer_list<absl::string_view> known,
                          absl::string_view whose) const {
    std::vector<std::string> unknown;
    for (const auto& [name, value] : table_.members) {
      bool found = false;
      for (absl::string_view k : known) found = found || name == k;
      if (!found) unknown.push_back(Quote(name));
    }
    if (unknown.empty()) return absl::OkStatus();
    const size_t total = unknown.size();
    if (unknown.size() > kMaxNamesListed) unknown.resize(kMaxNamesListed);
    return ConfigError(absl::StrCat(
        whose, " ", total == 1 ? "field " : "fields ",
        absl::StrJoin(unknown, ", "),
        total > unknown.size()
            ? absl::StrCat(" (and ", total - unknown.size(), " more)")
            : "",
        path_.empty() ? "" : absl::StrCat(" in ", Quote(path_))));
  }

  absl::Status TypeError(absl::string_view key, absl::string_view expected,
                         const Node& got) const {
    return ConfigError(absl::StrCat("field ", FieldName(key), " must be ",
                                    expected, ", got ", TypeName(got.type)));
  }

  absl::StatusOr<std::optional<std::string>> OptString(absl::string_view key) {
    const Node* n = Find(key);
    if (n == nullptr) return std::nullopt;
    if (n->type != Node::Type::kString) return TypeError(key, "a string", *n);
    if (n->string.find('\0') != std::string::npos) {
      return ConfigError(
          absl::StrCat("field ", FieldName(key), " holds a NUL character"));
    }
    return n->string;
  }
  absl::StatusOr<std::string> String(absl::string_view key) {
    PROXYSTORE_ASSIGN_OR_RETURN(std::optional<std::string> s, OptString(key));
    if (!s.has_value()) return Missing(key);
    return *std::move(s);
  }
  absl::StatusOr<std::optional<int64_t>> OptInt(absl::string_view key) {
    const Node* n = Find(key);
    if (n == nullptr) return std::nullopt;
    if (n->type != Node::Type::kInt) return TypeError(key, "an integer", *n);
    return n->integer;
  }
  absl::StatusOr<int64_t> Int(absl::string_view key) {
    PROXYSTORE_ASSIGN_OR_RETURN(std::optional<int64_t> i, OptInt(key));
    if (!i.has_value()) return Missing(key);
    return *i;
  }
  absl::StatusOr<std::optional<bool>> OptBool(absl::string_view key) {
    const Node* n = Find(key);
    if (n == nullptr) return std::nullopt;
    if (n->type != Node::Type::kBool) return TypeError(key, "a boolean", *n);
    return n->boolean;
  }

  absl::Status Missing(absl::string_view key) const {
    return ConfigError(
        absl::StrCat("required field ", FieldName(key), " is missing"));
  }

 private:
  const Node& table_;
  std::string path_;
};

// The Python connectors a config's kind may name.
enum class PythonKind { kEndpoint, kFile, kGlobus, kLocal, kMulti, kRedis };

struct KnownConnector {
  PythonKind kind;
  absl::string_view path;  // what Python's get_object_path() returns
};

// proxystore.store.config._KNOWN_CONNECTORS.
constexpr KnownConnector kKnownConnectors[] = {
    {PythonKind::kEndpoint, "proxystore.connectors.endpoint.EndpointConnector"},
    {PythonKind::kFile, "proxystore.connectors.file.FileConnector"},
    {PythonKind::kGlobus, "proxystore.connectors.globus.GlobusConnector"},
    {PythonKind::kLocal, "proxystore.connectors.local.LocalConnector"},
    {PythonKind::kMulti, "proxystore.connectors.multi.MultiConnector"},
    {PythonKind::kRedis, "proxystore.connectors.redis.RedisConnector"},
};

absl::string_view ClassName(const KnownConnector& c) {
  return c.path.substr(c.path.rfind('.') + 1);
}

// As ConnectorConfig.get_connector_type() resolves a kind: the exact import
// path of a built-in connector, or its class name, with or without
// "connector", in any case.
std::optional<KnownConnector> ResolvePythonKind(absl::string_view kind) {
  for (const KnownConnector& c : kKnownConnectors) {
    if (kind == c.path) return c;
  }
  const std::string lower = absl::AsciiStrToLower(kind);
  for (const KnownConnector& c : kKnownConnectors) {
    const std::string name = absl::AsciiStrToLower(ClassName(c));
    std::string short_name = name;
    short_name.resize(short_name.size() - std::string("connector").size());
    if (lower == name || lower == short_name) return c;
  }
  return std::nullopt;
}

// `what` names the option in messages (connectors/secret.h checks).
absl::Status CheckSecretReference(absl::string_view option,
                                  absl::string_view value,
                                  absl::string_view what) {
  return proxystore::CheckSecretReference(option == kPasswordEnvOption
                                              ? SecretSource::kEnvironment
                                              : SecretSource::kFile,
                                          value, what);
}

absl::StatusOr<ConnectorConfig> ReadFileOptions(TableReader& options) {
  PROXYSTORE_RETURN_IF_ERROR(options.CheckKnown(
      {"store_dir", "clear", "buffering"}, "Python's FileConnector takes no"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string store_dir,
                              options.String("store_dir"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<bool> clear,
                              options.OptBool("clear"));
  // open()'s buffering in the Python process: nothing to carry here.
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<int64_t> buffering,
                              options.OptInt("buffering"));
  (void)buffering;
  if (store_dir.empty()) {
    return ConfigError(absl::StrCat("field ", options.FieldName("store_dir"),
                                    " must not be empty"));
  }
  ConnectorConfig out{"file",
                      {{"directory", std::move(store_dir)},
                       {"layout", std::string(kPythonLayout)}}};
  if (clear.has_value()) out.options["clear"] = *clear ? "true" : "false";
  return out;
}

absl::StatusOr<ConnectorConfig> ReadRedisOptions(TableReader& options) {
  if (options.Find("password") != nullptr) {
    return ConfigError(absl::StrCat(
        "field ", options.FieldName("password"),
        ": a password is not written in a config file (it would be copied "
        "into every proxy, and Python's RedisConnector takes none); name "
        "where it is with \"password_env\" or \"password_file\""));
  }
  PROXYSTORE_RETURN_IF_ERROR(options.CheckKnown(
      {"hostname", "port", "clear", kPasswordEnvOption, kPasswordFileOption},
      "Python's RedisConnector takes no"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string hostname, options.String("hostname"));
  PROXYSTORE_ASSIGN_OR_RETURN(int64_t port, options.Int("port"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<bool> clear,
                              options.OptBool("clear"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<std::string> password_env,
                              options.OptString(kPasswordEnvOption));
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<std::string> password_file,
                              options.OptString(kPasswordFileOption));
  if (hostname.empty()) {
    return ConfigError(absl::StrCat("field ", options.FieldName("hostname"),
                                    " must not be empty"));
  }
  if (port < 1 || port > 65535) {
    return ConfigError(absl::StrCat("field ", options.FieldName("port"),
                                    " must be in 1..65535, got ", port));
  }
  if (password_env.has_value() && password_file.has_value()) {
    return ConfigError(
        absl::StrCat("fields ", options.FieldName(kPasswordEnvOption), " and ",
                     options.FieldName(kPasswordFileOption),
                     " both reference the password: give one"));
  }
  ConnectorConfig out{"redis",
                      {{"host", std::move(hostname)},
                       {"port", absl::StrCat(port)},
                       {"layout", std::string(kPythonLayout)}}};
  if (clear.has_value()) out.options["clear"] = *clear ? "true" : "false";
  for (const auto& [option, value] :
       {std::pair{kPasswordEnvOption, &password_env},
        std::pair{kPasswordFileOption, &password_file}}) {
    if (!value->has_value()) continue;
    absl::Status status = CheckSecretReference(
        option, **value, absl::StrCat("field ", options.FieldName(option)));
    if (!status.ok()) return ConfigError(status.message());
    out.options[std::string(option)] = **value;
    // The referenced password is for this server only (our connector
    // sends it nowhere else).
    const std::string& host = out.options["host"];
    out.options["password_for"] =
        host.find(':') == std::string::npos
            ? absl::StrCat(host, ":", out.options["port"])
            : absl::StrCat("[", host, "]:", out.options["port"]);
  }
  return out;
}

absl::StatusOr<ConnectorConfig> ReadLocalOptions(TableReader& options) {
  PROXYSTORE_RETURN_IF_ERROR(
      options.CheckKnown({"include_data_in_config", "store_dict"},
                         "Python's LocalConnector takes no"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<bool> include_data,
                              options.OptBool("include_data_in_config"));
  const Node* store_dict = options.Find("store_dict");
  if (include_data.value_or(false)) {
    return absl::UnimplementedError(absl::StrCat(
        "Python store config: field ",
        options.FieldName("include_data_in_config"),
        " is true: our \"local\" connector never carries its objects in its "
        "config"));
  }
  if (store_dict != nullptr && store_dict->type != Node::Type::kNull) {
    if (store_dict->type != Node::Type::kTable) {
      return options.TypeError("store_dict", "a table or null", *store_dict);
    }
    if (store_dict->size != 0) {
      return absl::UnimplementedError(absl::StrCat(
          "Python store config: field ", options.FieldName("store_dict"),
          " holds objects: a \"local\" connector's objects live in one "
          "process and cannot come from a config file"));
    }
  }
  // In-process memory: a Python process and this one never share it.
  return ConnectorConfig{"local", {}};
}

absl::StatusOr<ConnectorConfig> ReadConnector(const Node& node) {
  if (node.type != Node::Type::kTable) {
    return ConfigError(absl::StrCat("field \"connector\" must be a table, got ",
                                    TypeName(node.type)));
  }
  TableReader connector(node, "connector");
  PROXYSTORE_RETURN_IF_ERROR(
      connector.CheckKnown({"kind", "options"}, "unknown"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string kind, connector.String("kind"));
  const Node* options_node = connector.Find("options");
  static const Node kNoOptions{.type = Node::Type::kTable};
  if (options_node == nullptr) options_node = &kNoOptions;
  if (options_node->type != Node::Type::kTable) {
    return connector.TypeError("options", "a table", *options_node);
  }
  std::optional<KnownConnector> known = ResolvePythonKind(kind);
  if (!known.has_value()) {
    return absl::UnimplementedError(absl::StrCat(
        "Python store config: connector kind ", Quote(kind),
        " has no C++ counterpart (the kinds read are Python ProxyStore's "
        "file, redis and local connectors)"));
  }
  TableReader options(*options_node, "connector.options");
  switch (known->kind) {
    case PythonKind::kFile:
      return ReadFileOptions(options);
    case PythonKind::kRedis:
      return ReadRedisOptions(options);
    case PythonKind::kLocal:
      return ReadLocalOptions(options);
    case PythonKind::kMulti:
      return absl::UnimplementedError(absl::StrCat(
          "Python store config: connector kind ", Quote(kind),
          " (MultiConnector) is not read: its options are live connector "
          "objects, which no config file holds"));
    case PythonKind::kEndpoint:
    case PythonKind::kGlobus:
      break;
  }
  return absl::UnimplementedError(
      absl::StrCat("Python store config: connector kind ", Quote(kind), " (",
                   known->path, ") has no C++ counterpart"));
}

absl::StatusOr<StoreConfig> ReadDocument(const Node& root) {
  if (root.type != Node::Type::kTable) {
    return ConfigError(absl::StrCat("the document must be a table, got ",
                                    TypeName(root.type)));
  }
  TableReader top(root, "");
  PROXYSTORE_RETURN_IF_ERROR(top.CheckKnown(
      {"name", "connector", "serializer", "deserializer", "cache_size",
       "metrics", "populate_target", "auto_register"},
      "unknown"));
  StoreConfig config;
  PROXYSTORE_ASSIGN_OR_RETURN(config.name, top.String("name"));
  const Node* connector = top.Find("connector");
  for (absl::string_view field : {"serializer", "deserializer"}) {
    const Node* n = top.Find(field);
    if (n != nullptr && n->type != Node::Type::kNull) {
      return ConfigError(absl::StrCat(
          "field ", Quote(field),
          " is set: Python's serializers are callables, which a config file "
          "cannot name (leave it out, or null)"));
    }
  }
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<int64_t> cache_size,
                              top.OptInt("cache_size"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<bool> metrics,
                              top.OptBool("metrics"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<bool> populate_target,
                              top.OptBool("populate_target"));
  PROXYSTORE_ASSIGN_OR_RETURN(std::optional<bool> auto_register,
                              top.OptBool("auto_register"));
  if (connector == nullptr) return top.Missing("connector");
  PROXYSTORE_ASSIGN_OR_RETURN(config.connector, ReadConnector(*connector));
  config.cache_size = cache_size.value_or(kPythonCacheSize);
  config.metrics = metrics.value_or(kPythonMetrics);
  config.populate_target = populate_target.value_or(kPythonPopulateTarget);
  config.auto_register = auto_register.value_or(kPythonAutoRegister);
  config.python_format = true;
  absl::Status valid = config.Validate();
  if (!valid.ok()) return ConfigError(valid.message());
  return config;
}

// ---------------------------------------------------------------------------
// Writing.

bool IsUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i - 1 < n) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates, beyond U+10FFFF.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
        (n == 3 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) ||
        cp > 0x10FFFF) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

absl::Status CheckWritable(absl::string_view what, absl::string_view s) {
  if (s.find('\0') != absl::string_view::npos) {
    return ConfigError(absl::StrCat(what, " holds a NUL character"));
  }
  if (!IsUtf8(s)) {
    return ConfigError(absl::StrCat(
        what,
        " is not UTF-8 (TOML, JSON and Python strings are text): ", Quote(s)));
  }
  return absl::OkStatus();
}

// A Node table under construction, members in the order Python writes them.
struct TableBuilder {
  Node node{.type = Node::Type::kTable};

  void String(std::string key, std::string value) {
    Node n{.type = Node::Type::kString};
    n.string = std::move(value);
    Add(std::move(key), std::move(n));
  }
  void Int(std::string key, int64_t value) {
    Node n{.type = Node::Type::kInt};
    n.integer = value;
    Add(std::move(key), std::move(n));
  }
  void Bool(std::string key, bool value) {
    Node n{.type = Node::Type::kBool};
    n.boolean = value;
    Add(std::move(key), std::move(n));
  }
  void Add(std::string key, Node value) {
    node.members.push_back(Member{std::move(key), std::move(value)});
    node.size = node.members.size();
  }
};

absl::Status OptionError(absl::string_view kind, absl::string_view option,
                         absl::string_view why) {
  return ConfigError(absl::StrCat("connector ", Quote(kind), ": option ",
                                  Quote(option), " ", why));
}

// InvalidArgument unless integer option `option` is absent or `fallback`
// (our default, which Python's connector cannot be told otherwise).
absl::Status CheckIntDefault(const ConnectorConfig& c, absl::string_view option,
                             int64_t fallback, absl::string_view python) {
  PROXYSTORE_ASSIGN_OR_RETURN(int64_t value, c.GetInt(option, fallback));
  if (value == fallback) return absl::OkStatus();
  return OptionError(c.kind, option,
                     absl::StrCat("is ", value, ": ", python,
                                  " has no such option, so only its default (",
                                  fallback, ") can be written"));
}

absl::Status CheckBoolDefault(const ConnectorConfig& c,
                              absl::string_view option, bool fallback,
                              absl::string_view python) {
  PROXYSTORE_ASSIGN_OR_RETURN(bool value, c.GetBool(option, fallback));
  if (value == fallback) return absl::OkStatus();
  return OptionError(
      c.kind, option,
      absl::StrCat("is ", value ? "true" : "false", ": ", python,
                   " has no such option, so only its default (",
                   fallback ? "true" : "false", ") can be written"));
}

absl::Status CheckPythonLayout(const ConnectorConfig& c,
                               absl::string_view python) {
  auto it = c.options.find("layout");
  if (it != c.options.end() && it->second == kPythonLayout) {
    return absl::OkStatus();
  }
  return OptionError(
      c.kind, "layout",
      absl::StrCat("must be \"", kPythonLayout, "\" (got ",
                   it == c.options.end() ? "none, meaning \"native\""
                                         : Quote(it->second),
                   "): ", python, " reads and writes only that layout"));
}

absl::Status AddClear(const ConnectorConfig& c, TableBuilder& options) {
  if (c.options.count("clear") == 0) return absl::OkStatus();
  PROXYSTORE_ASSIGN_OR_RETURN(bool clear, c.GetBool("clear", false));
  options.Bool("clear", clear);
  return absl::OkStatus();
}

absl::Status WriteFileOptions(const ConnectorConfig& c, TableBuilder& options) {
  constexpr absl::string_view kPython = "Python's FileConnector";
  PROXYSTORE_RETURN_IF_ERROR(
      c.CheckKnownOptions({"directory", "clear", "create_directory",
                           "mmap_min_size", "max_object_size", "layout"}));
  PROXYSTORE_RETURN_IF_ERROR(CheckPythonLayout(c, kPython));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string directory, c.GetString("directory"));
  if (directory.empty()) {
    return OptionError(c.kind, "directory", "is required");
  }
  PROXYSTORE_RETURN_IF_ERROR(
      CheckBoolDefault(c, "create_directory", true, kPython));
  PROXYSTORE_RETURN_IF_ERROR(CheckIntDefault(
      c, "mmap_min_size", FileConnector::kDefaultMmapMinSize, kPython));
  PROXYSTORE_RETURN_IF_ERROR(CheckIntDefault(
      c, "max_object_size", FileConnector::kNoSizeLimit, kPython));
  options.String("store_dir", std::move(directory));
  return AddClear(c, options);
}

absl::Status WriteRedisOptions(const ConnectorConfig& c,
                               TableBuilder& options) {
  constexpr absl::string_view kPython = "Python's RedisConnector";
  PROXYSTORE_RETURN_IF_ERROR(c.CheckKnownOptions(
      {"host", "port", "unix_socket", "cluster", "db", "password", "prefix",
       "layout", "max_object_size", "connect_timeout_ms", "command_timeout_ms",
       "clear", "read_from_replicas", "wait_replicas", "wait_timeout_ms",
       kPasswordEnvOption, kPasswordFileOption, "password_for"}));
  if (c.options.count("password") != 0) {
    return OptionError(
        c.kind, "password",
        "is not written into a config file: reference it with "
        "\"password_env\" or \"password_file\" (and Python's RedisConnector "
        "takes no password)");
  }
  if (c.options.count("unix_socket") != 0) {
    return OptionError(c.kind, "unix_socket",
                       "cannot be written: Python's RedisConnector connects "
                       "by host name and port only");
  }
  if (c.options.count("cluster") != 0) {
    return OptionError(c.kind, "cluster",
                       "cannot be written: Python's RedisConnector does not "
                       "speak Redis Cluster");
  }
  PROXYSTORE_RETURN_IF_ERROR(CheckPythonLayout(c, kPython));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string prefix, c.GetString("prefix"));
  if (!prefix.empty()) {
    return OptionError(c.kind, "prefix",
                       absl::StrCat("is ", Quote(prefix), ": ", kPython,
                                    " stores bare key ids (prefix \"\")"));
  }
  PROXYSTORE_RETURN_IF_ERROR(CheckIntDefault(c, "db", 0, kPython));
  PROXYSTORE_RETURN_IF_ERROR(CheckIntDefault(
      c, "max_object_size", static_cast<int64_t>(RedisConnector::kMaxValueSize),
      kPython));
  PROXYSTORE_RETURN_IF_ERROR(
      CheckIntDefault(c, "connect_timeout_ms",
                      RedisConnector::kDefaultConnectTimeoutMs, kPython));
  PROXYSTORE_RETURN_IF_ERROR(
      CheckIntDefault(c, "command_timeout_ms",
                      RedisConnector::kDefaultCommandTimeoutMs, kPython));
  PROXYSTORE_RETURN_IF_ERROR(
      CheckBoolDefault(c, "read_from_replicas", false, kPython));
  PROXYSTORE_RETURN_IF_ERROR(CheckIntDefault(c, "wait_replicas", 0, kPython));
  PROXYSTORE_RETURN_IF_ERROR(CheckIntDefault(
      c, "wait_timeout_ms", RedisConnector::kDefaultWaitTimeoutMs, kPython));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string host,
                              c.GetString("host", "127.0.0.1"));
  PROXYSTORE_ASSIGN_OR_RETURN(int64_t port,
                              c.GetInt("port", RedisConnector::kDefaultPort));
  if (host.empty()) return OptionError(c.kind, "host", "must not be empty");
  if (port < 1 || port > 65535) {
    return OptionError(c.kind, "port",
                       absl::StrCat("must be in 1..65535, got ", port));
  }
  options.String("hostname", std::move(host));
  options.Int("port", port);
  PROXYSTORE_RETURN_IF_ERROR(AddClear(c, options));
  const bool has_env = c.options.count(std::string(kPasswordEnvOption)) != 0;
  const bool has_file = c.options.count(std::string(kPasswordFileOption)) != 0;
  if (has_env && has_file) {
    return OptionError(c.kind, kPasswordEnvOption,
                       "and \"password_file\" both reference the password: "
                       "give one");
  }
  for (absl::string_view option : {kPasswordEnvOption, kPasswordFileOption}) {
    auto it = c.options.find(std::string(option));
    if (it == c.options.end()) continue;
    absl::Status status = CheckSecretReference(
        option, it->second,
        absl::StrCat("connector ", Quote(c.kind), ": option ", Quote(option)));
    if (!status.ok()) return ConfigError(status.message());
    options.String(std::string(option), it->second);
  }
  return absl::OkStatus();
}

absl::StatusOr<Node> ToPythonDocument(const StoreConfig& config) {
  absl::Status valid = config.Validate();
  if (!valid.ok()) return ConfigError(valid.message());
  const StoreOptions defaults;
  if (!config.python_format) {
    return ConfigError(
        "python_format must be true: a Python Store reads only objects in "
        "Python's serialize() format");
  }
  if (config.compress != defaults.compress ||
      config.compress_threshold != defaults.compress_threshold) {
    return ConfigError(absl::StrCat(
        "compress (", config.compress ? "true" : "false",
        ") and compress_threshold (", config.compress_threshold,
        ") must keep their defaults (false, ", defaults.compress_threshold,
        "): a Python Store does not decompress"));
  }
  for (const auto& [field, value] :
       {std::pair<absl::string_view, const std::string*>{"serializer",
                                                         &config.serializer},
        {"deserializer", &config.deserializer}}) {
    if (!value->empty()) {
      return ConfigError(absl::StrCat(
          field, " is ", Quote(*value),
          ": Python's serializers are callables, which a config file cannot "
          "name"));
    }
  }

  const ConnectorConfig& c = config.connector;
  const std::string kind = connector_internal::NormalizeKind(c.kind);
  if (!c.children.empty() && kind != "multi") {
    return ConfigError(absl::StrCat("connector ", Quote(c.kind),
                                    " has children, which only \"multi\" "
                                    "takes"));
  }
  TableBuilder options;
  std::string python_kind;
  if (kind == "file") {
    python_kind = "file";
    PROXYSTORE_RETURN_IF_ERROR(WriteFileOptions(c, options));
  } else if (kind == "redis") {
    python_kind = "redis";
    PROXYSTORE_RETURN_IF_ERROR(WriteRedisOptions(c, options));
  } else if (kind == "local") {
    // "namespace" names memory of this process: Python's LocalConnector, in
    // another process, has none of it to share.
    PROXYSTORE_RETURN_IF_ERROR(c.CheckKnownOptions({"namespace"}));
    python_kind = "local";
  } else if (kind == "multi") {
    return absl::UnimplementedError(
        "Python store config: connector kind \"multi\" cannot be written: "
        "Python's MultiConnector is built from live connector objects, "
        "which no config file holds");
  } else {
    return absl::UnimplementedError(absl::StrCat(
        "Python store config: connector kind ", Quote(c.kind),
        " has no Python ProxyStore counterpart (the kinds written are file, "
        "redis and local)"));
  }

  TableBuilder connector;
  connector.String("kind", std::move(python_kind));
  connector.Add("options", std::move(options.node));
  TableBuilder doc;
  doc.String("name", config.name);
  doc.Add("connector", std::move(connector.node));
  doc.Int("cache_size", config.cache_size);
  doc.Bool("metrics", config.metrics);
  doc.Bool("populate_target", config.populate_target);
  doc.Bool("auto_register", config.auto_register);
  return std::move(doc.node);
}

// Every string of a writer tree is UTF-8 without NUL (TOML, JSON and Python
// strings are text): checked before anything is emitted, as nlohmann's
// dump() would throw on anything else. `path`: the table's dotted name.
absl::Status CheckStrings(const Node& table, const std::string& path) {
  for (const auto& [key, value] : table.members) {
    const std::string field = path.empty() ? key : absl::StrCat(path, ".", key);
    if (value.type == Node::Type::kTable) {
      PROXYSTORE_RETURN_IF_ERROR(CheckStrings(value, field));
    } else if (value.type == Node::Type::kString) {
      PROXYSTORE_RETURN_IF_ERROR(
          CheckWritable(absl::StrCat("field ", Quote(field)), value.string));
    }
  }
  return absl::OkStatus();
}

// Writer trees hold tables, strings, integers and booleans only.
toml::table ToTomlTable(const Node& table) {
  toml::table out;
  for (const auto& [key, value] : table.members) {
    switch (value.type) {
      case Node::Type::kTable:
        out.insert_or_assign(key, ToTomlTable(value));
        break;
      case Node::Type::kString:
        out.insert_or_assign(key, value.string);
        break;
      case Node::Type::kInt:
        out.insert_or_assign(key, value.integer);
        break;
      case Node::Type::kBool:
        out.insert_or_assign(key, value.boolean);
        break;
      default:
        break;
    }
  }
  return out;
}

nlohmann::ordered_json ToJson(const Node& table) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [key, value] : table.members) {
    switch (value.type) {
      case Node::Type::kTable:
        out[key] = ToJson(value);
        break;
      case Node::Type::kString:
        out[key] = value.string;
        break;
      case Node::Type::kInt:
        out[key] = value.integer;
        break;
      case Node::Type::kBool:
        out[key] = value.boolean;
        break;
      default:
        break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Files.

// The whole regular file at `path`, checked to be at most `max_size` bytes
// before it is read. `what` names it in messages.
absl::StatusOr<std::string> ReadBoundedFile(const std::string& path,
                                            size_t max_size,
                                            absl::string_view what) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  const int fd =
      open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot open ", what, " ", QuotePath(path)));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot stat ", what, " ", QuotePath(path)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", QuotePath(path), " is not a regular file"));
  }
  auto too_large = [&](uint64_t size) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", QuotePath(path), " is ", size,
                     " bytes, more than the ", max_size, " read"));
  };
  if (static_cast<uint64_t>(st.st_size) > max_size) {
    return too_large(static_cast<uint64_t>(st.st_size));
  }
  std::string text;
  text.reserve(static_cast<size_t>(st.st_size));
  char buffer[8192];
  // Up to one byte more than allowed: a file that grew since fstat is
  // refused, not truncated.
  while (true) {
    const size_t want = std::min(sizeof(buffer), max_size + 1 - text.size());
    const ssize_t n = read(fd, buffer, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(
          errno, absl::StrCat("cannot read ", what, " ", QuotePath(path)));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > max_size) return too_large(text.size());
  }
  return text;
}

}  // namespace

absl::StatusOr<StoreConfig> ReadPythonStoreConfig(absl::string_view text,
                                                  PythonConfigFormat format) {
  if (text.size() > kMaxPythonConfigSize) {
    return ConfigError(absl::StrCat("the text is ", text.size(),
                                    " bytes, more than the ",
                                    kMaxPythonConfigSize, " read"));
  }
  PROXYSTORE_ASSIGN_OR_RETURN(Node root, format == PythonConfigFormat::kToml
                                             ? ParseToml(text)
                                             : ParseJson(text));
  return ReadDocument(root);
}

absl::StatusOr<PythonConfigFormat> PythonConfigFormatForPath(
    absl::string_view path) {
  const std::string lower = absl::AsciiStrToLower(path);
  if (absl::EndsWith(lower, ".toml")) return PythonConfigFormat::kToml;
  if (absl::EndsWith(lower, ".json")) return PythonConfigFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("Python store config: ", QuotePath(path),
                   " names neither a .toml nor a .json file"));
}

absl::StatusOr<StoreConfig> ReadPythonStoreConfigFile(absl::string_view path) {
  PROXYSTORE_ASSIGN_OR_RETURN(PythonConfigFormat format,
                              PythonConfigFormatForPath(path));
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::string text, ReadBoundedFile(std::string(path), kMaxPythonConfigSize,
                                        "Python store config"));
  absl::StatusOr<StoreConfig> config = ReadPythonStoreConfig(text, format);
  return config.ok() ? config : Annotate(config.status(), QuotePath(path));
}

absl::StatusOr<std::string> WritePythonStoreConfig(const StoreConfig& config,
                                                   PythonConfigFormat format) {
  PROXYSTORE_ASSIGN_OR_RETURN(Node doc, ToPythonDocument(config));
  PROXYSTORE_RETURN_IF_ERROR(CheckStrings(doc, ""));
  std::string text;
  if (format == PythonConfigFormat::kToml) {
    std::ostringstream out;
    out << toml::toml_formatter(ToTomlTable(doc),
                                toml::format_flags::allow_unicode_strings)
        << "\n";
    text = std::move(out).str();
  } else {
    // CheckStrings above: dump() has nothing to throw for.
    text = ToJson(doc).dump(2) + "\n";
  }
  if (text.size() > kMaxPythonConfigSize) {
    return ConfigError(absl::StrCat("the text would be ", text.size(),
                                    " bytes, more than the ",
                                    kMaxPythonConfigSize, " a reader takes"));
  }
  return text;
}

absl::Status WritePythonStoreConfigFile(const StoreConfig& config,
                                        absl::string_view path) {
  PROXYSTORE_ASSIGN_OR_RETURN(PythonConfigFormat format,
                              PythonConfigFormatForPath(path));
  PROXYSTORE_ASSIGN_OR_RETURN(std::string text,
                              WritePythonStoreConfig(config, format));
  const std::string target(path);
  const std::string temp = absl::StrCat(target, ".tmp.", NewObjectId());
  const int fd =
      open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("cannot create ", QuotePath(temp)));
  }
  absl::Status status;
  size_t done = 0;
  while (status.ok() && done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      status = absl::ErrnoToStatus(
          errno, absl::StrCat("cannot write ", QuotePath(temp)));
    } else {
      done += static_cast<size_t>(n);
    }
  }
  if (status.ok() && fsync(fd) != 0) {
    status = absl::ErrnoToStatus(
        errno, absl::StrCat("cannot fsync ", QuotePath(temp)));
  }
  if (close(fd) != 0 && status.ok()) {
    status = absl::ErrnoToStatus(
        errno, absl::StrCat("cannot close ", QuotePath(temp)));
  }
  if (status.ok() && rename(temp.c_str(), target.c_str()) != 0) {
    status = absl::ErrnoToStatus(
        errno, absl::StrCat("cannot rename ", QuotePath(temp), " to ",
                            QuotePath(target)));
  }
  if (!status.ok()) unlink(temp.c_str());
  return status;
}

absl::StatusOr<ConnectorConfig> ResolveSecretReferences(
    const ConnectorConfig& config) {
  ConnectorConfig out = config;
  for (ConnectorChild& child : out.children) {
    PROXYSTORE_ASSIGN_OR_RETURN(child.config,
                                ResolveSecretReferences(child.config));
  }
  if (connector_internal::NormalizeKind(config.kind) != "redis") return out;
  auto env = out.options.find(std::string(kPasswordEnvOption));
  auto file = out.options.find(std::string(kPasswordFileOption));
  if (env == out.options.end() && file == out.options.end()) return out;
  const std::string context = absl::StrCat("connector ", Quote(config.kind));
  if (env != out.options.end() && file != out.options.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        context,
        ": options \"password_env\" and \"password_file\" both reference the "
        "password: give one"));
  }
  if (out.options.count("password") != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        context,
        ": option \"password\" is given together with a reference to "
        "it (\"password_env\" or \"password_file\"): give one"));
  }
  const bool from_env = env != out.options.end();
  const auto reference = from_env ? env : file;
  const std::string option = reference->first;
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::string secret,
      ReadSecret(from_env ? SecretSource::kEnvironment : SecretSource::kFile,
                 reference->second,
                 absl::StrCat(context, ": option ", Quote(option))));
  out.options.erase(reference);
  out.options["password"] = std::move(secret);
  return out;
}

}  // namespace proxystore::interop
