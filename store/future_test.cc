// Store::Future: producer and consumer threads and processes, timeouts, a
// producer that dies, write-once results, hostile polling options in a
// proxy, metrics.
#include "proxystore/store/future.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/local/local_connector.h"
#include "proxystore/store/store.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::ChildResult;
using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::RunChild;
using ::proxystore::testing::StatusIs;
using ::proxystore::testing::TestTempDir;
using ::testing::HasSubstr;
using ::testing::Pointee;

constexpr char kChildFlag[] = "--future-child";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The child. "consume <proxy file> <fifo> <expected>": parses the proxy,
// checks that the object is not there yet, tells the parent through the
// FIFO, then resolves (waiting for the parent's SetResult). "produce-none
// <proxy file>": parses the proxy and exits without setting anything (a
// producer that dies).
int ChildMain(int argc, char** argv) {
  const std::string mode = argv[2];
  const std::string wire = ReadFile(argv[3]);
  absl::StatusOr<Proxy<std::string>> p = ParseProxy<std::string>(wire);
  if (!p.ok()) {
    std::printf("FAILED parse: %s\n", p.status().ToString().c_str());
    return 1;
  }
  if (mode == "produce-none") return 0;
  if (mode != "consume" || argc != 6) return 2;
  absl::StatusOr<std::shared_ptr<Store>> store = GetStore(*p);
  absl::StatusOr<Key> key = GetKey(*p);
  if (!store.ok() || !key.ok()) return 3;
  absl::StatusOr<bool> there = (*store)->Exists(*key);
  if (!there.ok() || *there) {
    std::printf("FAILED: the object exists before the parent set it\n");
    return 4;
  }
  const int fifo = open(argv[4], O_WRONLY);
  if (fifo < 0 || write(fifo, "w", 1) != 1) return 5;
  close(fifo);
  absl::StatusOr<std::shared_ptr<const std::string>> v = p->Get();
  if (!v.ok() || **v != argv[5]) {
    std::printf("FAILED get: %s\n",
                v.ok() ? "value differs" : v.status().ToString().c_str());
    return 1;
  }
  std::printf("resolved %s\n", v->get()->c_str());
  return 0;
}

std::string SelfPath() { return testing::RunfilePath("store/future_test"); }

std::string WriteWire(const std::string& name, const std::string& wire) {
  const std::string path = absl::StrCat(TestTempDir(), "/", name, ".proxy");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << wire;
  EXPECT_TRUE(out.good()) << path;
  return path;
}

class FutureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<Connector> c,
        MakeConnector(ConnectorConfig{
            "file", {{"directory", absl::StrCat(TestTempDir(), "/future")}}}));
    StoreOptions options;
    options.metrics = true;
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        store_, Store::Create("future-test", std::move(c), options));
  }
  void TearDown() override {
    if (store_ != nullptr) {
      EXPECT_THAT(store_->Close(CloseOptions{.clear = true}), IsOk());
    }
  }
  std::shared_ptr<Store> store_;
};

TEST_F(FutureTest, ResultSetByAnotherThreadReachesWaitingConsumers) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Future<std::string> f,
                                  store_->Future<std::string>());
  EXPECT_THAT(f.Done(), IsOkAndHolds(false));
  Proxy<std::string> proxy = f.Proxy();
  std::vector<std::thread> consumers;
  std::vector<absl::StatusOr<std::shared_ptr<const std::string>>> got(3);
  consumers.emplace_back([&] { got[0] = f.Result(); });
  consumers.emplace_back([&, proxy] { got[1] = proxy.Get(); });
  consumers.emplace_back([&] {
    // A proxy parsed from the wire, as another process would get it.
    absl::StatusOr<std::string> wire = proxy.Serialize();
    if (!wire.ok()) {
      got[2] = wire.status();
      return;
    }
    absl::StatusOr<Proxy<std::string>> parsed = ParseProxy<std::string>(*wire);
    got[2] = parsed.ok() ? parsed->Get() : parsed.status();
  });
  std::thread producer([&] { EXPECT_THAT(f.SetResult("the result"), IsOk()); });
  producer.join();
  for (std::thread& t : consumers) t.join();
  for (const auto& g : got) {
    EXPECT_THAT(g, IsOkAndHolds(Pointee(std::string("the result"))));
  }
  EXPECT_THAT(f.Done(), IsOkAndHolds(true));
}

// A large result goes to the storage in parts (header, then the object's
// own bytes: Connector::SetParts), as a large Put does.
TEST_F(FutureTest, LargeResultRoundTrips) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Future<std::string> f,
                                  store_->Future<std::string>());
  const std::string big = testing::PatternBytes(3 << 20);
  ASSERT_THAT(f.SetResult(big), IsOk());
  EXPECT_THAT(f.SetResult(big), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(f.Result(), IsOkAndHolds(Pointee(big)));
  std::optional<Metrics> m = store_->metrics()->GetMetrics(f.key());
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(
      std::get<int64_t>(m->attributes.at("store.set.object_size")),
      static_cast<int64_t>(store_->connector().Get(f.key())->value().size()));
}

TEST_F(FutureTest, ResultIsWrittenOnce) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Future<std::string> f,
                                  store_->Future<std::string>());
  ASSERT_THAT(f.SetResult("first"), IsOk());
  EXPECT_THAT(f.SetResult("second"),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(f.Result(), IsOkAndHolds(Pointee(std::string("first"))));
}

TEST_F(FutureTest, TimeoutIsDeadlineExceededNamingTheKey) {
  FutureOptions<std::string> options;
  options.polling.timeout = absl::Milliseconds(30);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Future<std::string> f,
                                  store_->Future<std::string>(options));
  EXPECT_THAT(f.Result(), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                   HasSubstr(f.key().id())));
  EXPECT_THAT(f.Proxy().Get(), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                        HasSubstr(f.key().id())));
  // Result's own timeout replaces the options'.
  EXPECT_THAT(f.Result(absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  // The future still works once set.
  ASSERT_THAT(f.SetResult("late"), IsOk());
  EXPECT_THAT(f.Result(), IsOkAndHolds(Pointee(std::string("late"))));
}

TEST_F(FutureTest, EvictingFutureRemovesTheObjectOnceRead) {
  FutureOptions<std::string> options;
  options.evict = true;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Future<std::string> f,
                                  store_->Future<std::string>(options));
  ASSERT_THAT(f.SetResult("once"), IsOk());
  EXPECT_THAT(f.Proxy().Get(), IsOkAndHolds(Pointee(std::string("once"))));
  EXPECT_THAT(store_->connector().Exists(f.key()), IsOkAndHolds(false));
}

TEST_F(FutureTest, MetricsRecordTheSetAndTheWait) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Future<std::string> f,
                                  store_->Future<std::string>());
  std::thread consumer([&] {
    EXPECT_THAT(f.Result(), IsOkAndHolds(Pointee(std::string("measured"))));
  });
  ASSERT_THAT(f.SetResult("measured"), IsOk());
  consumer.join();
  std::optional<Metrics> m = store_->metrics()->GetMetrics(f.key());
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(m->times.contains("store.set"));
  EXPECT_TRUE(m->times.contains("store.set.connector"));
  EXPECT_TRUE(m->attributes.contains("store.set.object_size"));
  EXPECT_TRUE(m->times.contains("factory.resolve"));
}

TEST_F(FutureTest, InvalidPollingOptionsAreRefused) {
  FutureOptions<std::string> options;
  options.polling.interval = absl::ZeroDuration();
  EXPECT_THAT(store_->Future<std::string>(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("polling interval")));
  options = {};
  options.polling.backoff_factor = 0.5;
  EXPECT_THAT(store_->Future<std::string>(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("backoff factor")));
}

// A proxy from outside cannot make this process spin or sleep without
// bound: its polling options are checked when it is parsed.
TEST_F(FutureTest, HostilePollingOptionsInAProxyAreRefusedWhenParsed) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Future<std::string> f,
                                  store_->Future<std::string>());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, f.Proxy().Serialize());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(FactoryData data, FactoryData::Parse(wire));
  ASSERT_TRUE(data.polling.has_value());
  for (auto mutate : std::vector<std::function<void(PollingOptions&)>>{
           [](PollingOptions& p) { p.interval = absl::ZeroDuration(); },
           [](PollingOptions& p) { p.interval = absl::Hours(2); },
           [](PollingOptions& p) { p.backoff_factor = -1; },
           [](PollingOptions& p) { p.backoff_factor = 1e9; },
           [](PollingOptions& p) { p.interval_limit = absl::Hours(48); },
           [](PollingOptions& p) { p.timeout = absl::Hours(24 * 365); }}) {
    FactoryData hostile = data;
    mutate(*hostile.polling);
    EXPECT_THAT(
        ParseProxy<std::string>(hostile.Serialize()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("polling")));
  }
}

TEST_F(FutureTest, ConsumerProcessStartedBeforeTheResultGetsIt) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Future<std::string> f,
                                  store_->Future<std::string>());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, f.Proxy().Serialize());
  const std::string path = WriteWire("consume", wire);
  const std::string fifo = absl::StrCat(TestTempDir(), "/future-fifo");
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  absl::StatusOr<ChildResult> child;
  std::thread runner([&] {
    child =
        RunChild(SelfPath(), {kChildFlag, "consume", path, fifo, "made later"});
  });
  // Blocks until the child saw the key missing and started to wait (or
  // exited: then the read returns 0 and the checks below say why).
  const int fd = open(fifo.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char c = 0;
  const ssize_t n = read(fd, &c, 1);
  close(fd);
  EXPECT_EQ(n, 1);
  ASSERT_THAT(f.SetResult("made later"), IsOk());
  runner.join();
  ASSERT_THAT(child, IsOk());
  EXPECT_EQ(child->exit_code, 0) << child->output;
  EXPECT_THAT(child->output, HasSubstr("resolved made later"));
  unlink(fifo.c_str());
}

TEST_F(FutureTest, ProducerThatDiesLeavesConsumersToTheirTimeout) {
  FutureOptions<std::string> options;
  options.polling.timeout = absl::Milliseconds(50);
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Future<std::string> f,
                                  store_->Future<std::string>(options));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::string wire, f.Proxy().Serialize());
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      ChildResult r, RunChild(SelfPath(), {kChildFlag, "produce-none",
                                           WriteWire("producer", wire)}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Proxy<std::string> consumer,
                                  ParseProxy<std::string>(wire));
  EXPECT_THAT(consumer.Get(), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                       HasSubstr(f.key().id())));
}

// A connector that cannot defer writes: Future is Unimplemented naming it.
class PlainConnector : public Connector {
 public:
  absl::string_view kind() const override { return "local"; }
  ConnectorConfig Config() const override { return inner_->Config(); }

 protected:
  absl::StatusOr<Key> DoPut(SharedBytes data,
                            const PutOptions& options) override {
    return inner_->Put(std::move(data), options);
  }
  absl::StatusOr<std::optional<SharedBytes>> DoGet(const Key& key) override {
    return inner_->Get(key);
  }
  absl::StatusOr<bool> DoExists(const Key& key) override {
    return inner_->Exists(key);
  }
  absl::Status DoEvict(const Key& key) override { return inner_->Evict(key); }
  absl::Status DoClose(const CloseOptions& options) override {
    return inner_->Close(options);
  }

 private:
  std::unique_ptr<Connector> inner_ = *LocalConnector::Create({});
};

TEST(FutureUnimplementedTest, ConnectorThatCannotDeferIsUnimplemented) {
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<Store> store,
      Store::Create("future-plain", std::make_unique<PlainConnector>()));
  EXPECT_THAT(
      store->Future<std::string>(),
      StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("cannot defer")));
  EXPECT_THAT(store->Close(), IsOk());
}

}  // namespace
}  // namespace proxystore

int main(int argc, char** argv) {
  if (argc >= 4 && std::strcmp(argv[1], proxystore::kChildFlag) == 0) {
    return proxystore::ChildMain(argc, argv);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
