// Proxy references: the format (read, written, refused), ParseProxy<T>() of
// a reference, and round trips with the real Python ProxyStore through a
// shared directory and a shared redis-server, in both directions, for str,
// bytes and NumPy arrays (interop/python/proxystore_reference.py on the
// Python side). The Python parts skip, saying why, where Python ProxyStore
// cannot be imported.
#include "proxystore/interop/proxy_reference.h"

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/interop/npy.h"
#include "proxystore/store/signing.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/python_proxystore.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore::interop {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::RedisServer;
using ::proxystore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TempDir() {
  std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/refXXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) return "";
  return dir;
}

std::string Reference(absl::string_view connector, absl::string_view key,
                      absl::string_view format) {
  return absl::StrCat(
      R"({"proxystore_reference": 1, "store": {"name": "shared", )",
      R"("connector": )", connector, R"(}, "key": ")", key, R"(", "format": ")",
      format, R"("})");
}

TEST(ProxyReference, ReadsPythonsSpellings) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      ProxyReference file,
      ReadProxyReference(Reference(
          R"({"kind": "proxystore.connectors.file.FileConnector",
              "options": {"store_dir": "/data/ps"}})",
          "k-1", "str")));
  EXPECT_EQ(file.store.name, "shared");
  EXPECT_EQ(file.store.connector.kind, "file");
  EXPECT_EQ(file.store.connector.options.at("directory"), "/data/ps");
  EXPECT_EQ(file.store.connector.options.at("layout"), "proxystore-python");
  EXPECT_TRUE(file.store.python_format);
  EXPECT_EQ(file.key.id(), "k-1");
  EXPECT_EQ(file.format, ReferenceFormat::kStr);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ProxyReference redis,
                                  ReadProxyReference(Reference(
                                      R"({"kind": "RedisConnector",
              "options": {"hostname": "10.0.0.5", "port": 6379}})",
                                      "k-2", "numpy")));
  EXPECT_EQ(redis.store.connector.kind, "redis");
  EXPECT_EQ(redis.store.connector.options.at("host"), "10.0.0.5");
  EXPECT_EQ(redis.store.connector.options.at("port"), "6379");
  EXPECT_EQ(redis.format, ReferenceFormat::kNumpy);
}

TEST(ProxyReference, RefusesWhatItCannotFollow) {
  const std::string file =
      R"({"kind": "file", "options": {"store_dir": "/d"}})";
  auto refused = [](absl::string_view text, absl::string_view why) {
    EXPECT_THAT(ReadProxyReference(text),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(why)))
        << text;
  };
  refused("not json", "not valid JSON");
  refused("[1]", "must be a JSON object");
  refused(std::string(kMaxReferenceSize + 1, ' '), "at most");
  refused(absl::StrReplaceAll(
              Reference(file, "k", "str"),
              {{"\"proxystore_reference\": 1", "\"proxystore_reference\": 2"}}),
          "must be 1");
  refused(absl::StrReplaceAll(Reference(file, "k", "str"),
                              {{"\"format\"", "\"extra\": 0, \"format\""}}),
          "unknown field \"extra\"");
  refused(Reference(file, "", "str"), "key must be a non-empty string");
  refused(Reference(file, "k", "pickle"), "format must be");
  refused(Reference(R"({"kind": "globus", "options": {}})", "k", "str"),
          "not one both languages share");
  refused(Reference(R"({"kind": "file", "options": {"store_dir": "/d",
                        "clear": true}})",
                    "k", "str"),
          "unknown field \"clear\"");
  refused(Reference(R"({"kind": "redis", "options": {"hostname": "h",
                        "port": 70000}})",
                    "k", "str"),
          "1..65535");
  refused(Reference(R"({"kind": "redis", "options": {"hostname": "h",
                        "port": "6379"}})",
                    "k", "str"),
          "1..65535");
  // A deeply nested value is named by its type, never dumped.
  std::string deep = R"({"store": 0, "key": 0, "format": 0,
                         "proxystore_reference": )";
  deep += std::string(20000, '[') + std::string(20000, ']') + "}";
  refused(deep, "got a JSON array");
}

TEST(ProxyReference, WritesOnlyWhatPythonCanFollow) {
  StoreConfig config;
  config.name = "shared";
  config.connector = {"file", {{"directory", "/d"}}};
  EXPECT_THAT(WriteProxyReference(config, Key("k"), ReferenceFormat::kStr),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("without layout")));
  config.connector = {"redis",
                      {{"host", "h"},
                       {"port", "1"},
                       {"prefix", "p:"},
                       {"layout", "proxystore-python"}}};
  EXPECT_THAT(WriteProxyReference(config, Key("k"), ReferenceFormat::kStr),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("redis option prefix")));
  config.connector = {"shm", {}};
  EXPECT_THAT(
      WriteProxyReference(config, Key("k"), ReferenceFormat::kStr),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"shm\"")));
  config.connector = {"file",
                      {{"directory", "/d"}, {"layout", "proxystore-python"}}};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::string text,
      WriteProxyReference(config, Key("k"), ReferenceFormat::kBytes));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(ProxyReference back,
                                  ReadProxyReference(text));
  EXPECT_EQ(back.store.connector.options.at("directory"), "/d");
  EXPECT_EQ(back.key.id(), "k");
  EXPECT_EQ(back.format, ReferenceFormat::kBytes);
  EXPECT_THAT(WriteProxyReference(config, Key(std::string("k\xff", 2)),
                                  ReferenceFormat::kBytes),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("UTF-8")));
}

// A store Python can read: layout "proxystore-python", Python's format.
absl::StatusOr<std::shared_ptr<Store>> SharedStore(ConnectorConfig connector,
                                                   absl::string_view name) {
  connector.options["layout"] = "proxystore-python";
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<Connector> c,
                              MakeConnector(connector));
  StoreOptions options;
  options.python_format = true;
  options.cache_size = 0;
  return Store::Create(std::string(name), std::move(c), options);
}

TEST(ProxyReference, ParseProxyResolvesAReference) {
  const std::string dir = TempDir();
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      SharedStore({"file", {{"directory", dir}}}, "parse-ref"));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, store->Put(std::string("hello")));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::string ref,
      WriteProxyReference(store->Config(), key, ReferenceFormat::kStr));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> proxy,
                                  ParseProxy<std::string>(ref));
  EXPECT_THAT(proxy.Get(),
              IsOkAndHolds(::testing::Pointee(std::string("hello"))));
  // Arrays through the registered codec.
  const std::vector<double> values = {1.5, -2.0, 1e300};
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      SerializerFn<std::vector<double>> numpy,
      FindSerializer<std::vector<double>>(kNumpyCodecName));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key array_key,
                                  store->Put(values, {.serializer = numpy}));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::string array_ref,
      WriteProxyReference(store->Config(), array_key, ReferenceFormat::kNumpy));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::vector<double>> array,
                                  ParseProxy<std::vector<double>>(array_ref));
  EXPECT_THAT(array.Get(),
              IsOkAndHolds(::testing::Pointee(ElementsAre(1.5, -2.0, 1e300))));
  // An array read as another element type says so.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::vector<int32_t>> wrong,
                                  ParseProxy<std::vector<int32_t>>(array_ref));
  EXPECT_FALSE(wrong.Get().ok());
  // With signed proxies required, a reference (no signature) is refused.
  ASSERT_THAT(SetProxySigningKey(std::string(32, 'k')), IsOk());
  EXPECT_THAT(ParseProxy<std::string>(ref),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("signed proxies only")));
  ClearProxySigningKey();
  EXPECT_THAT(store->Close(), IsOk());
  std::filesystem::remove_all(dir);
}

// The Python side of the round trips: interop/python/proxystore_reference.py
// plus a few lines per operation.
//   put <store kind> <dir or port> <format> <value>  prints a reference
//   get <reference>                                  prints repr(object)
constexpr char kPythonSide[] = R"py(
import sys
sys.path.insert(0, sys.argv[1])
try:
    import numpy
except ImportError:  # Debian's python3-numpy, for another python3 build
    sys.path.append('/usr/lib/python3/dist-packages')
    import numpy
from proxystore.connectors.file import FileConnector
from proxystore.connectors.redis import RedisConnector
from proxystore.store import Store
from proxystore.proxy import extract
from proxystore_reference import proxy_from_reference, reference_from_proxy
op = sys.argv[2]
if op == 'put':
    kind, where, fmt, value = sys.argv[3:7]
    connector = (FileConnector(where) if kind == 'file'
                 else RedisConnector('127.0.0.1', int(where)))
    store = Store(f'py-{kind}', connector, register=True)
    if fmt == 'str':
        obj = value
    elif fmt == 'bytes':
        obj = value.encode()
    else:
        obj = numpy.array([float(v) for v in value.split(',')])
    print(reference_from_proxy(store.proxy(obj), fmt))
elif op == 'get':
    obj = extract(proxy_from_reference(sys.argv[3]))
    if isinstance(obj, numpy.ndarray):
        print('numpy', ','.join(repr(float(v)) for v in obj))
    else:
        print(type(obj).__name__, repr(obj))
)py";

class PythonRoundTrip : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = testing::PythonProxyStoreDir();
    if (!dir.ok()) GTEST_SKIP() << dir.status();
    absl::StatusOr<std::string> numpy = testing::RunPython(
        "import sys\ntry:\n    import numpy\nexcept ImportError:\n"
        "    sys.path.append('/usr/lib/python3/dist-packages')\n"
        "    import numpy\n");
    if (!numpy.ok())
      GTEST_SKIP() << "NumPy is not importable: " << numpy.status();
    helper_dir_ =
        absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                     std::getenv("TEST_WORKSPACE"), "/interop/python");
  }

  absl::StatusOr<std::string> Python(std::vector<std::string> args) {
    args.insert(args.begin(), helper_dir_);
    PROXYSTORE_ASSIGN_OR_RETURN(std::string out,
                                testing::RunPython(kPythonSide, args));
    return std::string(absl::StripAsciiWhitespace(out));
  }

  // C++ puts str, bytes and an array; Python resolves the references.
  void CppToPython(ConnectorConfig connector, absl::string_view name) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                                    SharedStore(std::move(connector), name));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key s, store->Put(std::string("héllo")));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        std::string ref,
        WriteProxyReference(store->Config(), s, ReferenceFormat::kStr));
    EXPECT_THAT(Python({"get", ref}), IsOkAndHolds("str 'héllo'"));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        Key b, store->Put(SharedBytes::Copy(std::string("b\0y", 3))));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        ref, WriteProxyReference(store->Config(), b, ReferenceFormat::kBytes));
    EXPECT_THAT(Python({"get", ref}), IsOkAndHolds("bytes b'b\\x00y'"));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        SerializerFn<std::vector<double>> numpy,
        FindSerializer<std::vector<double>>(kNumpyCodecName));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        Key a,
        store->Put(std::vector<double>{0.25, -3.0}, {.serializer = numpy}));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        ref, WriteProxyReference(store->Config(), a, ReferenceFormat::kNumpy));
    EXPECT_THAT(Python({"get", ref}), IsOkAndHolds("numpy 0.25,-3.0"));
    EXPECT_THAT(store->Close(), IsOk());
  }

  // Python puts; C++ resolves the references with ParseProxy<T>().
  void PythonToCpp(absl::string_view kind, absl::string_view where) {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        std::string ref, Python({"put", std::string(kind), std::string(where),
                                 "str", "from py"}));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> s,
                                    ParseProxy<std::string>(ref));
    EXPECT_THAT(s.Get(),
                IsOkAndHolds(::testing::Pointee(std::string("from py"))));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        ref,
        Python({"put", std::string(kind), std::string(where), "bytes", "raw"}));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<SharedBytes> b,
                                    ParseProxy<SharedBytes>(ref));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const SharedBytes> bytes,
                                    b.Get());
    EXPECT_EQ(bytes->view(), "raw");
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        ref, Python({"put", std::string(kind), std::string(where), "numpy",
                     "1.5,2.5,-7"}));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::vector<double>> a,
                                    ParseProxy<std::vector<double>>(ref));
    EXPECT_THAT(a.Get(),
                IsOkAndHolds(::testing::Pointee(ElementsAre(1.5, 2.5, -7))));
  }

  std::string helper_dir_;
};

TEST_F(PythonRoundTrip, FileBothWays) {
  const std::string dir = TempDir();
  CppToPython({"file", {{"directory", dir}}}, "cpp-file");
  PythonToCpp("file", dir);
  std::filesystem::remove_all(dir);
}

TEST_F(PythonRoundTrip, RedisBothWays) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server,
                                  RedisServer::Start());
  CppToPython(
      {"redis",
       {{"host", server->host()}, {"port", absl::StrCat(server->port())}}},
      "cpp-redis");
  PythonToCpp("redis", absl::StrCat(server->port()));
}

}  // namespace
}  // namespace proxystore::interop
