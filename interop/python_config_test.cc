// Python ProxyStore store configs: every mapping and error of the reader and
// the writer, secret references resolved from real environment variables and
// files (and used against a real redis-server with a password), and both
// directions against the real Python ProxyStore 1.0 (skipped, saying why,
// where it cannot be imported).
#include "proxystore/interop/python_config.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/base/bytes.h"
#include "proxystore/base/key.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/file/file_connector.h"
#include "proxystore/connectors/redis/redis_connector.h"
#include "proxystore/store/store_config.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/python_proxystore.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::interop {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::PythonProxyStoreDir;
using ::proxystore::testing::RunPython;
using ::proxystore::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kToml = PythonConfigFormat::kToml;
constexpr auto kJson = PythonConfigFormat::kJson;

absl::StatusOr<StoreConfig> Toml(absl::string_view text) {
  return ReadPythonStoreConfig(text, kToml);
}
absl::StatusOr<StoreConfig> Json(absl::string_view text) {
  return ReadPythonStoreConfig(text, kJson);
}

// What the reader makes of a config with only a name and a connector:
// Python's defaults, and Python's serialize() format.
StoreConfig Expected(std::string name, ConnectorConfig connector) {
  StoreConfig c;
  c.name = std::move(name);
  c.connector = std::move(connector);
  c.cache_size = 16;
  c.metrics = false;
  c.populate_target = true;
  c.auto_register = false;
  c.python_format = true;
  return c;
}

// A TOML config named "s" with a connector of `kind` and `options` (TOML
// key/value lines).
std::string TomlWith(absl::string_view kind, absl::string_view options) {
  return absl::StrCat("name = \"s\"\n[connector]\nkind = \"", kind,
                      "\"\n[connector.options]\n", options);
}

ConnectorConfig PythonFile(std::string dir) {
  return {"file",
          {{"directory", std::move(dir)}, {"layout", "proxystore-python"}}};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// A directory of the test's own, emptied.
std::string FreshDir(absl::string_view tag) {
  std::string dir = absl::StrCat(
      testing::TestTempDir(), "/python_config_",
      ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
      tag);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// ----------------------------------------------------------------- reading

TEST(ReadPythonStoreConfig, FileConnectorTomlAsPythonWritesIt) {
  // StoreConfig.write_toml's output for a FileConnector store.
  constexpr absl::string_view kText = R"toml(
name = "example"
cache_size = 0
metrics = true
populate_target = false
auto_register = true

[connector]
kind = "file"

[connector.options]
store_dir = "/tmp/proxystore-cache"
clear = false
buffering = -1
)toml";
  StoreConfig want = Expected("example", PythonFile("/tmp/proxystore-cache"));
  want.connector.options["clear"] = "false";
  want.cache_size = 0;
  want.metrics = true;
  want.populate_target = false;
  want.auto_register = true;
  EXPECT_THAT(Toml(kText), IsOkAndHolds(want));
}

TEST(ReadPythonStoreConfig, JsonAsPydanticDumpsIt) {
  // model_dump_json() of Store('r', RedisConnector('localhost', 6379)).config()
  constexpr absl::string_view kText =
      R"({"name":"r","connector":{"kind":"proxystore.connectors.redis.)"
      R"(RedisConnector","options":{"hostname":"localhost","port":6379,)"
      R"("clear":false}},"serializer":null,"deserializer":null,)"
      R"("cache_size":16,"metrics":false,"populate_target":true,)"
      R"("auto_register":false})";
  EXPECT_THAT(Json(kText),
              IsOkAndHolds(Expected("r", {"redis",
                                          {{"host", "localhost"},
                                           {"port", "6379"},
                                           {"clear", "false"},
                                           {"layout", "proxystore-python"}}})));
}

TEST(ReadPythonStoreConfig, AbsentFieldsTakePythonsDefaults) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      StoreConfig c, Toml("name = \"n\"\n[connector]\nkind = \"local\"\n"));
  EXPECT_EQ(c, Expected("n", {"local", {}}));
  // Python's populate_target defaults to true; ours to false.
  EXPECT_TRUE(c.populate_target);
  EXPECT_TRUE(c.python_format);
  EXPECT_THAT(Json(R"({"name": "n", "connector": {"kind": "local"}})"),
              IsOkAndHolds(c));
}

TEST(ReadPythonStoreConfig, KindSpellingsPythonAccepts) {
  for (absl::string_view kind :
       {"file", "FILE", "File", "FileConnector", "fileconnector",
        "proxystore.connectors.file.FileConnector"}) {
    EXPECT_THAT(Toml(TomlWith(kind, "store_dir = \"/d\"\n")),
                IsOkAndHolds(Expected("s", PythonFile("/d"))))
        << kind;
  }
  for (absl::string_view kind :
       {"redis", "RedisConnector",
        "proxystore.connectors.redis.RedisConnector"}) {
    EXPECT_THAT(Toml(TomlWith(kind, "hostname = \"h\"\nport = 1\n")), IsOk())
        << kind;
  }
  for (absl::string_view kind :
       {"local", "LocalConnector",
        "proxystore.connectors.local.LocalConnector"}) {
    EXPECT_THAT(Toml(TomlWith(kind, "")),
                IsOkAndHolds(Expected("s", {"local", {}})))
        << kind;
  }
  // An import path is matched exactly, as Python's import is.
  EXPECT_THAT(Toml(TomlWith("Proxystore.connectors.file.FileConnector",
                            "store_dir = \"/d\"\n")),
              StatusIs(absl::StatusCode::kUnimplemented,
                       "\"Proxystore.connectors.file.FileConnector\""));
}

TEST(ReadPythonStoreConfig, RedisOptionsAndSecretReferences) {
  EXPECT_THAT(
      Toml(TomlWith("redis",
                    "hostname = \"10.0.0.5\"\nport = 6380\n"
                    "clear = true\npassword_env = \"REDIS_PW\"\n")),
      IsOkAndHolds(Expected("s", {"redis",
                                  {{"host", "10.0.0.5"},
                                   {"port", "6380"},
                                   {"clear", "true"},
                                   {"layout", "proxystore-python"},
                                   {"password_env", "REDIS_PW"},
                                   {"password_for", "10.0.0.5:6380"}}})));
  EXPECT_THAT(
      Toml(TomlWith("redis",
                    "hostname = \"h\"\nport = 1\n"
                    "password_file = \"/run/secrets/redis\"\n")),
      IsOkAndHolds(Expected("s", {"redis",
                                  {{"host", "h"},
                                   {"port", "1"},
                                   {"layout", "proxystore-python"},
                                   {"password_file", "/run/secrets/redis"},
                                   {"password_for", "h:1"}}})));
}

TEST(ReadPythonStoreConfig, LocalConnectorOptions) {
  EXPECT_THAT(Toml(TomlWith("local",
                            "include_data_in_config = false\n"
                            "store_dict = {}\n")),
              IsOkAndHolds(Expected("s", {"local", {}})));
  EXPECT_THAT(Json(R"({"name": "s", "connector": {"kind": "local", "options":)"
                   R"( {"store_dict": null}}})"),
              IsOkAndHolds(Expected("s", {"local", {}})));
  EXPECT_THAT(
      Toml(TomlWith("local", "include_data_in_config = true\n")),
      StatusIs(absl::StatusCode::kUnimplemented, "include_data_in_config"));
  EXPECT_THAT(Toml(TomlWith("local", "store_dict = { a = 1 }\n")),
              StatusIs(absl::StatusCode::kUnimplemented, "store_dict"));
  EXPECT_THAT(Toml(TomlWith("local", "store_dict = \"x\"\n")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "must be a table or null, got a string"));
}

TEST(ReadPythonStoreConfig, KindsWithoutACounterpartAreUnimplemented) {
  for (absl::string_view kind :
       {"multi", "MultiConnector", "proxystore.connectors.multi.MultiConnector",
        "endpoint", "EndpointConnector", "globus",
        "proxystore.connectors.globus.GlobusConnector",
        "proxystore.ex.connectors.dim.zmq.ZeroMQConnector",
        "proxystore.connectors.dim.zmq.ZeroMQConnector", "shm", "nosuchkind"}) {
    EXPECT_THAT(Toml(TomlWith(kind, "")),
                StatusIs(absl::StatusCode::kUnimplemented,
                         absl::StrCat("\"", kind, "\"")))
        << kind;
  }
  EXPECT_THAT(Toml(TomlWith("multi", "")),
              StatusIs(absl::StatusCode::kUnimplemented, "live connector"));
}

TEST(ReadPythonStoreConfig, UnknownFieldsAreNamed) {
  EXPECT_THAT(
      Toml("name = \"s\"\ncompress = true\nextra = 1\n"
           "[connector]\nkind = \"local\"\n"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("unknown fields"), HasSubstr("\"compress\""),
                     HasSubstr("\"extra\""))));
  EXPECT_THAT(
      Toml("name = \"s\"\n[connector]\nkind = \"local\"\nopts = {}\n"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("\"opts\""), HasSubstr("in \"connector\""))));
  // A misspelt option is reported as unknown, not the right one as missing.
  EXPECT_THAT(Toml(TomlWith("file", "directory = \"/d\"\n")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("FileConnector takes no field"),
                             HasSubstr("\"directory\""))));
  EXPECT_THAT(Toml(TomlWith("redis", "hostname = \"h\"\nport = 1\ndb = 2\n")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("RedisConnector takes no field"),
                             HasSubstr("\"db\""))));
  EXPECT_THAT(Toml(TomlWith("local", "namespace = \"x\"\n")),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"namespace\""));
  // Many unknown names: ten listed, the rest counted.
  std::string many = "name = \"s\"\n";
  for (int i = 0; i < 15; ++i) absl::StrAppend(&many, "x", i, " = 1\n");
  absl::StrAppend(&many, "[connector]\nkind = \"local\"\n");
  EXPECT_THAT(Toml(many),
              StatusIs(absl::StatusCode::kInvalidArgument, "(and 5 more)"));
}

TEST(ReadPythonStoreConfig, MissingFieldsAreNamed) {
  EXPECT_THAT(Toml("[connector]\nkind = \"local\"\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "required field \"name\" is missing"));
  EXPECT_THAT(Toml("name = \"s\"\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "required field \"connector\" is missing"));
  EXPECT_THAT(Toml("name = \"s\"\n[connector]\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "\"connector.kind\" is missing"));
  EXPECT_THAT(Toml(TomlWith("file", "")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "\"connector.options.store_dir\" is missing"));
  EXPECT_THAT(Toml(TomlWith("redis", "port = 1\n")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "\"connector.options.hostname\" is missing"));
  EXPECT_THAT(Toml(TomlWith("redis", "hostname = \"h\"\n")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "\"connector.options.port\" is missing"));
}

TEST(ReadPythonStoreConfig, ValuesAreTypeCheckedAsPythonsStrictModelDoes) {
  const struct {
    std::string text;
    std::string message;
  } kCases[] = {
      {"name = 1\n[connector]\nkind = \"local\"\n",
       "\"name\" must be a string, got an integer"},
      {"name = \"s\"\ncache_size = 1.0\n[connector]\nkind = \"local\"\n",
       "\"cache_size\" must be an integer, got a float"},
      {"name = \"s\"\ncache_size = true\n[connector]\nkind = \"local\"\n",
       "\"cache_size\" must be an integer, got a boolean"},
      {"name = \"s\"\nmetrics = \"yes\"\n[connector]\nkind = \"local\"\n",
       "\"metrics\" must be a boolean, got a string"},
      {"name = \"s\"\npopulate_target = 1\n[connector]\nkind = \"local\"\n",
       "\"populate_target\" must be a boolean, got an integer"},
      {"name = \"s\"\nauto_register = 1979-05-27\n[connector]\nkind = "
       "\"local\"\n",
       "\"auto_register\" must be a boolean, got a date or time"},
      {"name = \"s\"\nconnector = \"file\"\n",
       "\"connector\" must be a table, got a string"},
      {"name = \"s\"\n[connector]\nkind = \"local\"\noptions = [1]\n",
       "\"connector.options\" must be a table, got an array"},
      {"name = \"s\"\n[connector]\nkind = [\"file\"]\n",
       "\"connector.kind\" must be a string, got an array"},
      {TomlWith("file", "store_dir = 5\n"),
       "\"connector.options.store_dir\" must be a string, got an integer"},
      {TomlWith("file", "store_dir = \"/d\"\nclear = \"true\"\n"),
       "\"connector.options.clear\" must be a boolean, got a string"},
      {TomlWith("file", "store_dir = \"/d\"\nbuffering = 1.5\n"),
       "\"connector.options.buffering\" must be an integer, got a float"},
      {TomlWith("file", "store_dir = \"\"\n"),
       "\"connector.options.store_dir\" must not be empty"},
      {TomlWith("redis", "hostname = \"h\"\nport = \"6379\"\n"),
       "\"connector.options.port\" must be an integer, got a string"},
      {TomlWith("redis", "hostname = \"h\"\nport = 0\n"),
       "must be in 1..65535, got 0"},
      {TomlWith("redis", "hostname = \"h\"\nport = 65536\n"),
       "must be in 1..65535, got 65536"},
      {TomlWith("redis", "hostname = \"\"\nport = 1\n"),
       "\"connector.options.hostname\" must not be empty"},
      {TomlWith("local", "include_data_in_config = 0\n"),
       "must be a boolean, got an integer"},
      // Python's serializers are callables.
      {"name = \"s\"\nserializer = \"pickle.dumps\"\n[connector]\nkind = "
       "\"local\"\n",
       "\"serializer\" is set"},
      {"name = \"s\"\ndeserializer = 1\n[connector]\nkind = \"local\"\n",
       "\"deserializer\" is set"},
      // StoreConfig::Validate.
      {"name = \"s\"\ncache_size = -1\n[connector]\nkind = \"local\"\n",
       "cache size cannot be negative"},
      {"name = \"\"\n[connector]\nkind = \"local\"\n",
       "name must not be empty"},
      {"name = \"a\\u0000b\"\n[connector]\nkind = \"local\"\n",
       "\"name\" holds a NUL character"},
  };
  for (const auto& c : kCases) {
    EXPECT_THAT(Toml(c.text), StatusIs(absl::StatusCode::kInvalidArgument,
                                       AllOf(HasSubstr("Python store config: "),
                                             HasSubstr(c.message))))
        << c.text;
  }
}

TEST(ReadPythonStoreConfig, JsonValuesAreTypeChecked) {
  const struct {
    std::string text;
    std::string message;
  } kCases[] = {
      {R"({"name": "s", "cache_size": 99999999999999999999,)"
       R"( "connector": {"kind": "local"}})",
       "\"cache_size\" must be an integer, got an integer beyond 64 bits"},
      {R"({"name": "s", "cache_size": 18446744073709551615,)"
       R"( "connector": {"kind": "local"}})",
       "got an integer beyond 64 bits"},
      {R"({"name": "s", "cache_size": 16.0, "connector": {"kind": "local"}})",
       "\"cache_size\" must be an integer, got a float"},
      {R"({"name": null, "connector": {"kind": "local"}})",
       "\"name\" must be a string, got null"},
      {R"({"name": "s", "connector": {"kind": "local", "options": null}})",
       "\"connector.options\" must be a table, got null"},
      {R"({"name": "s", "serializer": "x", "connector": {"kind": "local"}})",
       "\"serializer\" is set"},
      {R"({"name": "a\u0000b", "connector": {"kind": "local"}})",
       "holds a NUL character"},
      {R"(["name", "s"])", "the document must be a table, got an array"},
      {R"("s")", "the document must be a table, got a string"},
  };
  for (const auto& c : kCases) {
    EXPECT_THAT(Json(c.text), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr(c.message)))
        << c.text;
  }
  // A large unsigned integer that fits is an integer.
  EXPECT_THAT(Json(R"({"name": "s", "cache_size": 9223372036854775807,)"
                   R"( "connector": {"kind": "local"}})"),
              IsOk());
  // null for Python's optional serializers is their default.
  EXPECT_THAT(Json(R"({"name": "s", "serializer": null, "deserializer": null,)"
                   R"( "connector": {"kind": "local"}})"),
              IsOkAndHolds(Expected("s", {"local", {}})));
}

TEST(ReadPythonStoreConfig, SecretReferencesAreChecked) {
  EXPECT_THAT(
      Toml(TomlWith("redis",
                    "hostname = \"h\"\nport = 1\n"
                    "password = \"hunter2\"\n")),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("\"connector.options.password\""),
                     HasSubstr("password_env"), Not(HasSubstr("hunter2")))));
  EXPECT_THAT(Toml(TomlWith("redis",
                            "hostname = \"h\"\nport = 1\n"
                            "password_env = \"A\"\npassword_file = \"/b\"\n")),
              StatusIs(absl::StatusCode::kInvalidArgument, "give one"));
  for (absl::string_view name : {"", "1A", "A-B", "A B", "A=B"}) {
    EXPECT_THAT(
        Toml(TomlWith("redis", absl::StrCat("hostname = \"h\"\nport = 1\n"
                                            "password_env = \"",
                                            name, "\"\n"))),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 "must name an environment variable"))
        << name;
  }
  EXPECT_THAT(
      Toml(TomlWith("redis",
                    "hostname = \"h\"\nport = 1\n"
                    "password_file = \"secrets/redis\"\n")),
      StatusIs(absl::StatusCode::kInvalidArgument, "must be an absolute path"));
  EXPECT_THAT(Toml(TomlWith("redis",
                            "hostname = \"h\"\nport = 1\n"
                            "password_env = 5\n")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "must be a string, got an integer"));
}

TEST(ReadPythonStoreConfig, SyntaxErrorsSayWhere) {
  EXPECT_THAT(Toml("name = \"s\"\n[connector\nkind = \"local\"\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "TOML syntax error at line 2"));
  EXPECT_THAT(
      Toml("name = \"s\"\nname = \"t\"\n"),
      StatusIs(absl::StatusCode::kInvalidArgument, "TOML syntax error"));
  EXPECT_THAT(
      Json(R"({"name": "s",})"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("JSON syntax error"), HasSubstr("line 1"))));
  EXPECT_THAT(Json(""), StatusIs(absl::StatusCode::kInvalidArgument,
                                 "JSON syntax error"));
  // Not UTF-8.
  EXPECT_THAT(
      Toml("name = \"\xff\"\n[connector]\nkind = \"local\"\n"),
      StatusIs(absl::StatusCode::kInvalidArgument, "TOML syntax error"));
  EXPECT_THAT(
      Json("{\"name\": \"\xc3\x28\", \"connector\": {}}"),
      StatusIs(absl::StatusCode::kInvalidArgument, "JSON syntax error"));
}

TEST(ReadPythonStoreConfig, TextSizeIsBoundedBeforeParsing) {
  // Valid TOML padded with a comment to one byte over the bound.
  std::string text = "name = \"s\"\n[connector]\nkind = \"local\"\n#";
  text.resize(kMaxPythonConfigSize + 1, 'x');
  EXPECT_THAT(Toml(text),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat(kMaxPythonConfigSize + 1, " bytes")));
  EXPECT_THAT(Json(text),
              StatusIs(absl::StatusCode::kInvalidArgument, "more than the"));
  text.resize(kMaxPythonConfigSize);
  EXPECT_THAT(Toml(text), IsOk());
}

TEST(ReadPythonStoreConfig, DeeplyNestedValuesAreRefusedWithoutRecursion) {
  // Half a million nested arrays as an option value, and as a document
  // that never closes them.
  constexpr size_t kDepth = 500'000;
  std::string value = std::string(kDepth, '[') + std::string(kDepth, ']');
  EXPECT_THAT(Json(absl::StrCat(R"({"name": "s", "connector": {"kind": "file",)"
                                R"( "options": {"store_dir": )",
                                value, "}}}")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "must be a string, got an array"));
  EXPECT_THAT(
      Json(std::string(kDepth, '[')),
      StatusIs(absl::StatusCode::kInvalidArgument, "JSON syntax error"));
  // toml++ bounds nesting itself.
  EXPECT_THAT(
      Toml(absl::StrCat("name = ", std::string(kDepth, '['))),
      StatusIs(absl::StatusCode::kInvalidArgument, "TOML syntax error"));
}

TEST(ReadPythonStoreConfig, MappedConfigsMakeOurConnectors) {
  const std::string dir = FreshDir("d");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      StoreConfig file,
      Toml(TomlWith("file", absl::StrCat("store_dir = \"", dir, "\"\n"))));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(file.connector));
  EXPECT_EQ(c->kind(), "file");
  EXPECT_EQ(c->Config().options.at("layout"), "proxystore-python");
  PROXYSTORE_EXPECT_OK(c->Close({.clear = true}));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      StoreConfig redis,
      Toml(TomlWith("redis", "hostname = \"127.0.0.1\"\nport = 6379\n")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(c, MakeConnector(redis.connector));
  EXPECT_EQ(c->Config().options.at("prefix"), "");

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(StoreConfig local,
                                  Toml(TomlWith("local", "")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(c, MakeConnector(local.connector));
  EXPECT_EQ(c->kind(), "local");

  // Our redis connector reads a secret reference itself, where it is made:
  // an unset variable fails instead of connecting without the password.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      StoreConfig with_ref,
      Toml(TomlWith("redis",
                    "hostname = \"h\"\nport = 1\n"
                    "password_env = \"PROXYSTORE_TEST_UNSET_PASSWORD\"\n")));
  EXPECT_THAT(MakeConnector(with_ref.connector),
              StatusIs(absl::StatusCode::kNotFound, "password_env"));
}

// ------------------------------------------------------------------- files

TEST(PythonConfigFiles, FormatFromTheExtension) {
  EXPECT_THAT(PythonConfigFormatForPath("/a/b.toml"), IsOkAndHolds(kToml));
  EXPECT_THAT(PythonConfigFormatForPath("B.TOML"), IsOkAndHolds(kToml));
  EXPECT_THAT(PythonConfigFormatForPath("c.json"), IsOkAndHolds(kJson));
  EXPECT_THAT(PythonConfigFormatForPath("c.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"c.yaml\""));
  EXPECT_THAT(PythonConfigFormatForPath("toml"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PythonConfigFiles, WriteThenReadBothFormats) {
  const std::string dir = FreshDir("f");
  StoreConfig config = Expected("files", PythonFile("/data/ps"));
  config.connector.options["clear"] = "false";
  for (absl::string_view name : {"store.toml", "store.json"}) {
    const std::string path = absl::StrCat(dir, "/", name);
    PROXYSTORE_ASSERT_OK(WritePythonStoreConfigFile(config, path));
    EXPECT_THAT(ReadPythonStoreConfigFile(path), IsOkAndHolds(config));
    // Written again: replaced, nothing left beside it.
    PROXYSTORE_ASSERT_OK(WritePythonStoreConfigFile(config, path));
  }
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names,
              ::testing::UnorderedElementsAre("store.toml", "store.json"));
  EXPECT_THAT(ReadFile(dir + "/store.toml"), HasSubstr("[connector.options]"));
  EXPECT_THAT(ReadFile(dir + "/store.json"), HasSubstr("\"store_dir\""));
}

TEST(PythonConfigFiles, FileErrorsNameThePath) {
  const std::string dir = FreshDir("e");
  EXPECT_THAT(ReadPythonStoreConfigFile(dir + "/missing.toml"),
              StatusIs(absl::StatusCode::kNotFound, "missing.toml"));
  EXPECT_THAT(ReadPythonStoreConfigFile(dir + "/x.ini"),
              StatusIs(absl::StatusCode::kInvalidArgument, "x.ini"));
  std::filesystem::create_directories(dir + "/sub.toml");
  EXPECT_THAT(
      ReadPythonStoreConfigFile(dir + "/sub.toml"),
      StatusIs(absl::StatusCode::kInvalidArgument, "is not a regular file"));
  // A FIFO with no writer: refused at once, not waited on.
  ASSERT_EQ(mkfifo((dir + "/fifo.json").c_str(), 0600), 0);
  EXPECT_THAT(
      ReadPythonStoreConfigFile(dir + "/fifo.json"),
      StatusIs(absl::StatusCode::kInvalidArgument, "is not a regular file"));
  // Refused by its size, before it is read.
  const std::string big = dir + "/big.toml";
  WriteFile(big, "");
  ASSERT_EQ(truncate(big.c_str(), static_cast<off_t>(kMaxPythonConfigSize) + 1),
            0);
  EXPECT_THAT(
      ReadPythonStoreConfigFile(big),
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          AllOf(HasSubstr("big.toml"),
                HasSubstr(absl::StrCat(kMaxPythonConfigSize + 1, " bytes")))));
  // Content errors carry the path too.
  WriteFile(dir + "/bad.toml", "name = 1\n");
  EXPECT_THAT(
      ReadPythonStoreConfigFile(dir + "/bad.toml"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("bad.toml"), HasSubstr("must be a string"))));
  EXPECT_THAT(WritePythonStoreConfigFile(Expected("s", {"local", {}}),
                                         dir + "/no/such/dir/s.toml"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(
      WritePythonStoreConfigFile(Expected("s", {"local", {}}), dir + "/s.yml"),
      StatusIs(absl::StatusCode::kInvalidArgument, "s.yml"));
}

// ----------------------------------------------------------------- writing

TEST(WritePythonStoreConfig, TomlIsWhatPythonsWriterWrites) {
  StoreConfig config = Expected("example", PythonFile("/tmp/proxystore-cache"));
  config.cache_size = 4;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string text,
                                  WritePythonStoreConfig(config, kToml));
  EXPECT_EQ(text,
            "auto_register = false\n"
            "cache_size = 4\n"
            "metrics = false\n"
            "name = \"example\"\n"
            "populate_target = true\n"
            "\n"
            "[connector]\n"
            "kind = \"file\"\n"
            "\n"
            "[connector.options]\n"
            "store_dir = \"/tmp/proxystore-cache\"\n");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(text, WritePythonStoreConfig(config, kJson));
  EXPECT_EQ(text, R"({
  "name": "example",
  "connector": {
    "kind": "file",
    "options": {
      "store_dir": "/tmp/proxystore-cache"
    }
  },
  "cache_size": 4,
  "metrics": false,
  "populate_target": true,
  "auto_register": false
}
)");
}

// Configs in the reader's form come back as they were.
TEST(WritePythonStoreConfig, RoundTripsEveryMappedKind) {
  StoreConfig file = Expected("f", PythonFile("/scratch/a b/\"q\"\\"));
  file.connector.options["clear"] = "true";
  file.cache_size = 0;
  file.metrics = true;
  file.populate_target = false;
  file.auto_register = true;
  StoreConfig redis =
      Expected("r", {"redis",
                     {{"host", "redis.example.org"},
                      {"port", "6380"},
                      {"clear", "false"},
                      {"layout", "proxystore-python"},
                      {"password_file", "/run/secrets/r"},
                      {"password_for", "redis.example.org:6380"}}});
  StoreConfig redis_env = Expected("r", {"redis",
                                         {{"host", "::1"},
                                          {"port", "1"},
                                          {"layout", "proxystore-python"},
                                          {"password_env", "REDIS_PW"},
                                          {"password_for", "[::1]:1"}}});
  StoreConfig local = Expected("l", {"local", {}});
  StoreConfig unicode = Expected(
      "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 "
      "\t\n\x01\x7f\"'\\",
      PythonFile("/d/\xc3\xa9\x1f"));
  for (const StoreConfig& config : {file, redis, redis_env, local, unicode}) {
    for (PythonConfigFormat format : {kToml, kJson}) {
      PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string text,
                                      WritePythonStoreConfig(config, format));
      EXPECT_THAT(ReadPythonStoreConfig(text, format), IsOkAndHolds(config))
          << text;
    }
  }
}

// What our connectors' Config() returns (every option, at its default)
// writes, and reads back as a config that makes the same connector.
TEST(WritePythonStoreConfig, ConnectorConfigsAtTheirDefaultsWrite) {
  const std::string dir = FreshDir("c");
  std::vector<ConnectorConfig> made;
  for (const ConnectorConfig& config :
       std::vector<ConnectorConfig>{PythonFile(dir),
                                    {"redis",
                                     {{"host", "10.0.0.5"},
                                      {"port", "6379"},
                                      {"layout", "proxystore-python"}}},
                                    {"local", {}}}) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                    MakeConnector(config));
    made.push_back(c->Config());
  }
  // Config() spells out every option.
  EXPECT_TRUE(made[0].options.count("mmap_min_size"));
  EXPECT_TRUE(made[1].options.count("command_timeout_ms"));
  EXPECT_TRUE(made[2].options.count("namespace"));
  for (const ConnectorConfig& config : made) {
    StoreConfig store = Expected("s", config);
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string text,
                                    WritePythonStoreConfig(store, kToml));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(StoreConfig back, Toml(text));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                    MakeConnector(back.connector));
    if (config.kind == "local") {
      // The namespace names memory of this process only: not written.
      EXPECT_EQ(back.connector, (ConnectorConfig{"local", {}}));
    } else {
      EXPECT_EQ(c->Config(), config) << text;
    }
  }
}

TEST(WritePythonStoreConfig, RefusesWhatPythonCannotCarry) {
  const StoreConfig base = Expected("s", PythonFile("/d"));
  auto with = [&](auto change) {
    StoreConfig c = base;
    change(c);
    return c;
  };
  auto file_option = [&](std::string name, std::string value) {
    return with([&](StoreConfig& c) { c.connector.options[name] = value; });
  };
  auto redis = [&](std::map<std::string, std::string> extra) {
    StoreConfig c = base;
    c.connector = {
        "redis",
        {{"host", "h"}, {"port", "1"}, {"layout", "proxystore-python"}}};
    for (auto& [k, v] : extra) c.connector.options[k] = v;
    return c;
  };
  const struct {
    StoreConfig config;
    std::string message;
  } kCases[] = {
      {with([](StoreConfig& c) { c.python_format = false; }),
       "python_format must be true"},
      {with([](StoreConfig& c) { c.compress = true; }), "compress"},
      {with([](StoreConfig& c) { c.compress_threshold = 1; }),
       "compress_threshold (1)"},
      {with([](StoreConfig& c) { c.serializer = "json"; }),
       "serializer is \"json\""},
      {with([](StoreConfig& c) { c.deserializer = "json"; }),
       "deserializer is \"json\""},
      {with([](StoreConfig& c) { c.name = ""; }), "name must not be empty"},
      {with([](StoreConfig& c) { c.cache_size = -1; }), "cannot be negative"},
      {with([](StoreConfig& c) { c.name = "\xff"; }),
       "field \"name\" is not UTF-8"},
      {with([](StoreConfig& c) { c.name = "\xc0\xaf"; }), "not UTF-8"},
      {with([](StoreConfig& c) { c.name = "\xed\xa0\x80"; }), "not UTF-8"},
      {with([](StoreConfig& c) { c.name = std::string("a\0b", 3); }),
       "field \"name\" holds a NUL"},
      {with([](StoreConfig& c) { c.connector.options.erase("layout"); }),
       "option \"layout\" must be \"proxystore-python\" (got none"},
      {file_option("layout", "native"), "(got \"native\")"},
      {file_option("directory", ""), "\"directory\" is required"},
      {file_option("directory", "/d\xff"),
       "\"connector.options.store_dir\" is not UTF-8"},
      {redis({{"password_file", "/run/\xff"}}),
       "\"connector.options.password_file\" is not UTF-8"},
      {redis({{"host", "h\xc3"}}), "\"connector.options.hostname\" is not"},
      {file_option("create_directory", "false"),
       "option \"create_directory\" is false"},
      {file_option("mmap_min_size", "0"), "option \"mmap_min_size\" is 0"},
      {file_option("max_object_size", "1"), "\"max_object_size\" is 1"},
      {file_option("mmap_min_size", "x"), "must be an integer"},
      {file_option("colour", "blue"), "colour"},
      {with([](StoreConfig& c) {
         c.connector.children.push_back({"x", {"local", {}}, {}});
       }),
       "has children"},
      {redis({{"password", "hunter2"}}), "option \"password\" is not written"},
      {redis({{"unix_socket", "/run/redis.sock"}}), "\"unix_socket\""},
      {redis({{"cluster", "h:1"}}), "Redis Cluster"},
      {redis({{"prefix", "app:"}}), "option \"prefix\" is \"app:\""},
      {redis({{"db", "2"}}), "option \"db\" is 2"},
      {redis({{"connect_timeout_ms", "1"}}), "\"connect_timeout_ms\" is 1"},
      {redis({{"command_timeout_ms", "1"}}), "\"command_timeout_ms\" is 1"},
      {redis({{"max_object_size", "1"}}), "\"max_object_size\" is 1"},
      {redis({{"wait_replicas", "1"}}), "\"wait_replicas\" is 1"},
      {redis({{"wait_timeout_ms", "1"}}), "\"wait_timeout_ms\" is 1"},
      {redis({{"read_from_replicas", "true"}}), "\"read_from_replicas\""},
      {redis({{"port", "0"}}), "must be in 1..65535, got 0"},
      {redis({{"host", ""}}), "\"host\" must not be empty"},
      {redis({{"password_env", "A"}, {"password_file", "/b"}}), "give one"},
      {redis({{"password_env", "A-B"}}), "must name an environment variable"},
      {redis({{"password_file", "rel"}}), "must be an absolute path"},
      {with([](StoreConfig& c) {
         c.connector = {"local", {{"layout", "x"}}};
       }),
       "layout"},
  };
  for (const auto& c : kCases) {
    for (PythonConfigFormat format : {kToml, kJson}) {
      EXPECT_THAT(
          WritePythonStoreConfig(c.config, format),
          StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
          << c.config;
    }
  }
  // The password is never echoed.
  EXPECT_THAT(
      WritePythonStoreConfig(redis({{"password", "hunter2"}}), kToml),
      StatusIs(absl::StatusCode::kInvalidArgument, Not(HasSubstr("hunter2"))));
}

TEST(WritePythonStoreConfig, KindsPythonCannotBuildAreUnimplemented) {
  StoreConfig multi = Expected(
      "m", {"multi", {}, {{"a", {"local", {}}, {}}, {"b", {"local", {}}, {}}}});
  EXPECT_THAT(WritePythonStoreConfig(multi, kToml),
              StatusIs(absl::StatusCode::kUnimplemented, "\"multi\""));
  EXPECT_THAT(WritePythonStoreConfig(Expected("s", {"shm", {}}), kJson),
              StatusIs(absl::StatusCode::kUnimplemented, "\"shm\""));
}

TEST(WritePythonStoreConfig, KindSpellingsOfTheRegistry) {
  StoreConfig config = Expected("s", PythonFile("/d"));
  config.connector.kind = "FileConnector";
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string text,
                                  WritePythonStoreConfig(config, kToml));
  EXPECT_THAT(text, HasSubstr("kind = \"file\""));
}

// ----------------------------------------------------------------- secrets

class ScopedEnv {
 public:
  ScopedEnv(std::string name, const char* value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    if (value == nullptr) {
      unsetenv(name_.c_str());
    } else {
      setenv(name_.c_str(), value, 1);
    }
  }
  ~ScopedEnv() {
    if (old_.has_value()) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

ConnectorConfig RedisWith(std::string option, std::string value) {
  return {"redis",
          {{"host", "h"},
           {"port", "1"},
           {"layout", "proxystore-python"},
           {std::move(option), std::move(value)}}};
}

TEST(ResolveSecretReferences, FromTheEnvironment) {
  ScopedEnv env("PROXYSTORE_TEST_REDIS_PW", "s3cret pass");
  EXPECT_THAT(ResolveSecretReferences(
                  RedisWith("password_env", "PROXYSTORE_TEST_REDIS_PW")),
              IsOkAndHolds(ConnectorConfig{"redis",
                                           {{"host", "h"},
                                            {"port", "1"},
                                            {"layout", "proxystore-python"},
                                            {"password", "s3cret pass"}}}));
  {
    ScopedEnv unset("PROXYSTORE_TEST_REDIS_PW", nullptr);
    EXPECT_THAT(ResolveSecretReferences(
                    RedisWith("password_env", "PROXYSTORE_TEST_REDIS_PW")),
                StatusIs(absl::StatusCode::kNotFound,
                         "environment variable PROXYSTORE_TEST_REDIS_PW"));
  }
  {
    ScopedEnv empty("PROXYSTORE_TEST_REDIS_PW", "");
    EXPECT_THAT(ResolveSecretReferences(
                    RedisWith("password_env", "PROXYSTORE_TEST_REDIS_PW")),
                StatusIs(absl::StatusCode::kInvalidArgument, "is empty"));
  }
  {
    ScopedEnv two_lines("PROXYSTORE_TEST_REDIS_PW", "abc\ndef");
    EXPECT_THAT(
        ResolveSecretReferences(
            RedisWith("password_env", "PROXYSTORE_TEST_REDIS_PW")),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr("NUL, CR or LF"), Not(HasSubstr("abc")))));
  }
  EXPECT_THAT(ResolveSecretReferences(RedisWith("password_env", "NO-T")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "must name an environment variable"));
}

TEST(ResolveSecretReferences, FromAFile) {
  const std::string dir = FreshDir("s");
  const std::string path = dir + "/redis";
  for (absl::string_view content :
       {"s3cret pass", "s3cret pass\n", "s3cret pass\r\n"}) {
    WriteFile(path, content);
    EXPECT_THAT(ResolveSecretReferences(RedisWith("password_file", path)),
                IsOkAndHolds(ConnectorConfig{"redis",
                                             {{"host", "h"},
                                              {"port", "1"},
                                              {"layout", "proxystore-python"},
                                              {"password", "s3cret pass"}}}))
        << content;
  }
  const struct {
    std::string content;
    std::string message;
  } kBad[] = {
      {"", "is empty"},
      {"\n", "is empty"},
      {"s3cret\npass\n", "NUL, CR or LF"},
      {"s3cret\n\n", "NUL, CR or LF"},
      {std::string("s3cret\0", 7), "NUL, CR or LF"},
  };
  for (const auto& c : kBad) {
    WriteFile(path, c.content);
    EXPECT_THAT(ResolveSecretReferences(RedisWith("password_file", path)),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(c.message), HasSubstr(path),
                               Not(HasSubstr("s3cret")))))
        << absl::CHexEscape(c.content);
  }
  WriteFile(path, std::string(kMaxSecretFileSize + 1, 'p'));
  EXPECT_THAT(ResolveSecretReferences(RedisWith("password_file", path)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat(kMaxSecretFileSize + 1, " bytes")));
  EXPECT_THAT(
      ResolveSecretReferences(RedisWith("password_file", dir + "/missing")),
      StatusIs(absl::StatusCode::kNotFound, "missing"));
  EXPECT_THAT(
      ResolveSecretReferences(RedisWith("password_file", dir)),
      StatusIs(absl::StatusCode::kInvalidArgument, "is not a regular file"));
  EXPECT_THAT(
      ResolveSecretReferences(RedisWith("password_file", "rel/x")),
      StatusIs(absl::StatusCode::kInvalidArgument, "must be an absolute path"));
}

TEST(ResolveSecretReferences, AmbiguousReferencesAreRefused) {
  ConnectorConfig both = RedisWith("password_env", "A");
  both.options["password_file"] = "/b";
  EXPECT_THAT(ResolveSecretReferences(both),
              StatusIs(absl::StatusCode::kInvalidArgument, "give one"));
  ConnectorConfig literal_too = RedisWith("password_env", "A");
  literal_too.options["password"] = "x";
  EXPECT_THAT(ResolveSecretReferences(literal_too),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "together with a reference"));
}

TEST(ResolveSecretReferences, OtherConfigsUnchangedChildrenResolved) {
  ConnectorConfig file = PythonFile("/d");
  EXPECT_THAT(ResolveSecretReferences(file), IsOkAndHolds(file));
  ConnectorConfig redis = RedisWith("password", "literal");
  EXPECT_THAT(ResolveSecretReferences(redis), IsOkAndHolds(redis));
  // Only redis references are secrets: another kind's option of that name
  // is its own business.
  ConnectorConfig other{"local", {{"password_env", "X"}}};
  EXPECT_THAT(ResolveSecretReferences(other), IsOkAndHolds(other));

  ScopedEnv env("PROXYSTORE_TEST_REDIS_PW", "pw");
  ConnectorConfig multi{
      "multi",
      {},
      {{"r", RedisWith("password_env", "PROXYSTORE_TEST_REDIS_PW"), {}},
       {"l", {"local", {}}, {}}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig resolved,
                                  ResolveSecretReferences(multi));
  EXPECT_EQ(resolved.children[0].config.options.at("password"), "pw");
  EXPECT_EQ(resolved.children[0].config.options.count("password_env"), 0u);
  EXPECT_EQ(resolved.children[1].config, (ConnectorConfig{"local", {}}));
}

// A config file with a password file, against a redis-server that requires
// the password.
TEST(ResolveSecretReferences, ReachesARedisServerThatRequiresAPassword) {
  constexpr absl::string_view kPassword = "s3cret pass";
  absl::StatusOr<std::unique_ptr<testing::RedisServer>> server =
      testing::RedisServer::Start({.password = std::string(kPassword)});
  if (!server.ok()) GTEST_SKIP() << "no redis-server: " << server.status();
  const std::string dir = FreshDir("r");
  WriteFile(dir + "/password", absl::StrCat(kPassword, "\n"));
  ASSERT_EQ(chmod((dir + "/password").c_str(), 0600), 0);
  WriteFile(dir + "/store.toml",
            absl::StrCat("name = \"shared\"\n[connector]\nkind = \"redis\"\n"
                         "[connector.options]\nhostname = \"",
                         (*server)->host(), "\"\nport = ", (*server)->port(),
                         "\npassword_file = \"", dir, "/password\"\n"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      StoreConfig config, ReadPythonStoreConfigFile(dir + "/store.toml"));
  EXPECT_EQ(config.connector.options.count("password"), 0u);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ConnectorConfig resolved,
                                  ResolveSecretReferences(config.connector));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(resolved));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, c->Put(SharedBytes::Copy("hi")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got, c->Get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->view(), "hi");
  // The CAUTION of the header: our RedisConnector hands the password on in
  // Config(). This changes when it resolves references itself.
  EXPECT_EQ(c->Config().options.at("password"), kPassword);
  PROXYSTORE_EXPECT_OK(c->Evict(key));

  // The wrong password: the server refuses.
  WriteFile(dir + "/password", "wrong\n");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(resolved,
                                  ResolveSecretReferences(config.connector));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(c, MakeConnector(resolved));
  EXPECT_THAT(c->Put(SharedBytes::Copy("hi")),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

// ------------------------------------------------- the real Python library

constexpr absl::string_view kPrelude = R"py(
import json, os, sys
from proxystore.store import Store
from proxystore.store.config import StoreConfig, ConnectorConfig
from proxystore.connectors.file import FileConnector, FileKey
from proxystore.connectors.redis import RedisConnector
from proxystore.connectors.local import LocalConnector
from proxystore.utils.config import dumps

def load(path):
    if path.endswith('.toml'):
        return StoreConfig.from_toml(path)
    with open(path) as f:
        return StoreConfig.model_validate_json(f.read(), strict=True)

def describe(path):
    """The config at path as Python loads it, and the connector it builds."""
    c = load(path)
    out = {'name': c.name, 'cache_size': c.cache_size, 'metrics': c.metrics,
           'populate_target': c.populate_target,
           'auto_register': c.auto_register}
    try:
        conn = c.connector.get_connector()
    except TypeError as e:
        out['connector'] = 'TypeError: ' + str(e)
        return out
    out['connector'] = type(conn).__name__
    for attr in ('store_dir', 'clear', 'hostname', 'port'):
        if hasattr(conn, attr):
            out[attr] = getattr(conn, attr)
    return out
)py";

class PythonConfigInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = PythonProxyStoreDir();
    if (!dir.ok()) {
      GTEST_SKIP() << "Python ProxyStore cannot be imported: " << dir.status();
    }
    dir_ = FreshDir("py");
  }

  absl::StatusOr<std::string> Python(absl::string_view body,
                                     std::vector<std::string> args = {}) {
    return RunPython(absl::StrCat(kPrelude, body), args);
  }

  std::string Path(absl::string_view name) const {
    return absl::StrCat(dir_, "/", name);
  }

  std::string dir_;
};

TEST_F(PythonConfigInterop, WeReadWhatPythonWrites) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string out, Python(R"py(
out = sys.argv[1]
StoreConfig(name='py-file', connector=ConnectorConfig(
    kind='file', options={'store_dir': os.path.join(out, 'objs'),
                          'clear': False}),
    cache_size=0, metrics=True, populate_target=False,
    auto_register=True).write_toml(os.path.join(out, 'file.toml'))
StoreConfig(name='py-redis', connector=ConnectorConfig(
    kind='RedisConnector', options={'hostname': '10.1.2.3', 'port': 6380,
                                    'clear': True})
    ).write_toml(os.path.join(out, 'redis.toml'))
# What a Store's own config() is, in both formats.
stores = {
    'store_file': Store('sf', FileConnector(os.path.join(out, 'sf'))),
    'store_redis': Store('sr', RedisConnector('localhost', 6379)),
    'store_local': Store('sl', LocalConnector()),
}
for name, store in stores.items():
    store.config().write_toml(os.path.join(out, name + '.toml'))
    with open(os.path.join(out, name + '.json'), 'w') as f:
        f.write(store.config().model_dump_json())
print('ok')
)py",
                                                          {dir_}));
  EXPECT_EQ(out, "ok\n");

  StoreConfig file = Expected("py-file", PythonFile(Path("objs")));
  file.connector.options["clear"] = "false";
  file.cache_size = 0;
  file.metrics = true;
  file.populate_target = false;
  file.auto_register = true;
  EXPECT_THAT(ReadPythonStoreConfigFile(Path("file.toml")), IsOkAndHolds(file));
  EXPECT_THAT(
      ReadPythonStoreConfigFile(Path("redis.toml")),
      IsOkAndHolds(Expected("py-redis", {"redis",
                                         {{"host", "10.1.2.3"},
                                          {"port", "6380"},
                                          {"clear", "true"},
                                          {"layout", "proxystore-python"}}})));
  StoreConfig store_file = Expected("sf", PythonFile(Path("sf")));
  store_file.connector.options["clear"] = "true";
  StoreConfig store_redis = Expected("sr", {"redis",
                                            {{"host", "localhost"},
                                             {"port", "6379"},
                                             {"clear", "false"},
                                             {"layout", "proxystore-python"}}});
  StoreConfig store_local = Expected("sl", {"local", {}});
  for (absl::string_view ext : {".toml", ".json"}) {
    EXPECT_THAT(
        ReadPythonStoreConfigFile(Path(absl::StrCat("store_file", ext))),
        IsOkAndHolds(store_file));
    EXPECT_THAT(
        ReadPythonStoreConfigFile(Path(absl::StrCat("store_redis", ext))),
        IsOkAndHolds(store_redis));
    EXPECT_THAT(
        ReadPythonStoreConfigFile(Path(absl::StrCat("store_local", ext))),
        IsOkAndHolds(store_local));
  }
}

TEST_F(PythonConfigInterop, PythonLoadsWhatWeWriteAndBuildsTheConnector) {
  StoreConfig file = Expected("cpp-file", PythonFile(Path("objs")));
  file.connector.options["clear"] = "false";
  file.cache_size = 3;
  file.metrics = true;
  file.populate_target = false;
  file.auto_register = true;
  StoreConfig redis =
      Expected("cpp-redis", {"redis",
                             {{"host", "10.1.2.3"},
                              {"port", "6380"},
                              {"clear", "true"},
                              {"layout", "proxystore-python"}}});
  StoreConfig local = Expected("cpp-local", {"local", {}});
  StoreConfig secret = Expected("cpp-secret", {"redis",
                                               {{"host", "h"},
                                                {"port", "1"},
                                                {"layout", "proxystore-python"},
                                                {"password_env", "REDIS_PW"}}});
  std::vector<std::string> paths;
  for (const auto& [name, config] :
       std::vector<std::pair<std::string, StoreConfig>>{{"file", file},
                                                        {"redis", redis},
                                                        {"local", local},
                                                        {"secret", secret}}) {
    for (absl::string_view ext : {".toml", ".json"}) {
      paths.push_back(Path(absl::StrCat(name, ext)));
      PROXYSTORE_ASSERT_OK(WritePythonStoreConfigFile(config, paths.back()));
    }
  }
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string out, Python(R"py(
for path in sys.argv[1:]:
    print(os.path.basename(path), json.dumps(describe(path), sort_keys=True))
)py",
                                                          paths));
  const std::string file_line = absl::StrCat(
      R"({"auto_register": true, "cache_size": 3, "clear": false, )"
      R"("connector": "FileConnector", "metrics": true, "name": "cpp-file", )"
      R"("populate_target": false, "store_dir": ")",
      Path("objs"), R"("})");
  const std::string redis_line =
      R"({"auto_register": false, "cache_size": 16, "clear": true, )"
      R"("connector": "RedisConnector", "hostname": "10.1.2.3", )"
      R"("metrics": false, "name": "cpp-redis", "populate_target": true, )"
      R"("port": 6380})";
  const std::string local_line =
      R"({"auto_register": false, "cache_size": 16, )"
      R"("connector": "LocalConnector", "metrics": false, )"
      R"("name": "cpp-local", "populate_target": true})";
  // Python's model loads a secret reference (options are free-form), but
  // its RedisConnector takes no password.
  const std::string secret_line =
      R"({"auto_register": false, "cache_size": 16, )"
      R"("connector": "TypeError: RedisConnector.__init__() got an )"
      R"(unexpected keyword argument 'password_env'", "metrics": false, )"
      R"("name": "cpp-secret", "populate_target": true})";
  EXPECT_EQ(out,
            absl::StrCat("file.toml ", file_line, "\nfile.json ", file_line,
                         "\nredis.toml ", redis_line, "\nredis.json ",
                         redis_line, "\nlocal.toml ", local_line,
                         "\nlocal.json ", local_line, "\nsecret.toml ",
                         secret_line, "\nsecret.json ", secret_line, "\n"));
}

// Quotes, backslashes, control characters, DEL and non-ASCII text survive
// our writer -> Python's reader -> Python's writer -> our reader.
TEST_F(PythonConfigInterop, AwkwardStringsSurviveBothWays) {
  const std::string name =
      "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \t\n\r\x01\x1f"
      "\x7f\"'\\ ''' \"\"\" # [x] = y";
  const std::string store_dir = Path("dir \"q\" \\ \xc3\xa9\x7f\x01");
  const StoreConfig config = Expected(name, PythonFile(store_dir));
  for (absl::string_view ext : {".toml", ".json"}) {
    const std::string ours = Path(absl::StrCat("ours", ext));
    const std::string theirs = Path(absl::StrCat("theirs", ext));
    PROXYSTORE_ASSERT_OK(WritePythonStoreConfigFile(config, ours));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string out,
                                    Python(R"py(
ours, theirs, name, store_dir = sys.argv[1:]
c = load(ours)
assert c.name == name, (c.name, name)
assert c.connector.options['store_dir'] == store_dir
if theirs.endswith('.toml'):
    c.write_toml(theirs)
else:
    with open(theirs, 'w') as f:
        f.write(c.model_dump_json())
print('same')
)py",
                                           {ours, theirs, name, store_dir}));
    EXPECT_EQ(out, "same\n");
    EXPECT_THAT(ReadPythonStoreConfigFile(theirs), IsOkAndHolds(config));
  }
}

// One config file, both languages, the same objects: Python's Store puts
// through the FileConnector the file builds, ours reads it through the
// "file" connector the same file makes, and the other way round.
TEST_F(PythonConfigInterop, OneConfigFileServesBothLanguages) {
  const std::string config_path = Path("shared.toml");
  StoreConfig config = Expected("shared", PythonFile(Path("objs")));
  config.connector.options["clear"] = "false";
  PROXYSTORE_ASSERT_OK(WritePythonStoreConfigFile(config, config_path));

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string out, Python(R"py(
store = Store.from_config(StoreConfig.from_toml(sys.argv[1]))
print(store.put(b'from python').filename)
)py",
                                                          {config_path}));
  ASSERT_FALSE(out.empty());
  const std::string python_key = out.substr(0, out.size() - 1);

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(StoreConfig read,
                                  ReadPythonStoreConfigFile(config_path));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> c,
                                  MakeConnector(read.connector));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<SharedBytes> got,
                                  c->Get(Key(python_key)));
  ASSERT_TRUE(got.has_value()) << python_key;
  // Python's serialize() of bytes.
  EXPECT_EQ(got->view(), "BS\nfrom python");

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key ours,
                                  c->Put(SharedBytes::Copy("BS\nfrom c++")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(out, Python(R"py(
store = Store.from_config(StoreConfig.from_toml(sys.argv[1]))
print(store.get(FileKey(sys.argv[2])))
)py",
                                              {config_path, ours.id()}));
  EXPECT_EQ(out, "b'from c++'\n");
}

}  // namespace
}  // namespace proxystore::interop
