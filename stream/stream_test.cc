// Proxy streams over a real redis-server (Redis Streams) with objects in a
// file store: threads and processes, consumer groups, end of stream, a
// consumer that dies and restarts, a broker restart, filters, batching,
// hostile entries.
#include "proxystore/stream/stream.h"

#include <hiredis/hiredis.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/stream/redis_broker.h"
#include "proxystore/testing/child_process.h"
#include "proxystore/testing/redis_server.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::RedisServer;
using ::proxystore::testing::StatusIs;
using ::proxystore::testing::TestTempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pointee;

class StreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<RedisServer>> s =
        RedisServer::Start({.persistence = true});
    ASSERT_THAT(s, IsOk());
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    delete server_;  // NOLINT: the suite's own server
    server_ = nullptr;
  }

  void SetUp() override {
    prefix_ = absl::StrCat("test:", NewObjectId(), ":");
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<Connector> c,
        MakeConnector(ConnectorConfig{
            "file",
            {{"directory",
              absl::StrCat(TestTempDir(), "/stream-", prefix_)}}}));
    PROXYSTORE_ASSERT_OK_AND_ASSIGN(
        store_, Store::Create(absl::StrCat("stream-", NewObjectId()),
                              std::move(c), {.cache_size = 0}));
  }
  void TearDown() override {
    if (store_ != nullptr) {
      EXPECT_THAT(store_->Close(CloseOptions{.clear = true}), IsOk());
    }
  }

  RedisBrokerOptions Broker() const {
    RedisBrokerOptions o;
    o.host = server_->host();
    o.port = server_->port();
    o.prefix = prefix_;
    o.block_slice = absl::Milliseconds(20);
    return o;
  }
  StreamProducer<std::string> Producer(StreamProducerOptions<std::string> o) {
    absl::StatusOr<std::unique_ptr<RedisStreamPublisher>> p =
        RedisStreamPublisher::Create(Broker());
    EXPECT_THAT(p, IsOk());
    return StreamProducer<std::string>(*std::move(p), std::move(o));
  }
  StreamProducer<std::string> Producer() {
    return Producer({.default_store = store_});
  }
  StreamConsumer<std::string> Consumer(const std::string& topic,
                                       const std::string& consumer,
                                       const std::string& group = "g",
                                       StreamConsumerOptions o = {}) {
    absl::StatusOr<std::unique_ptr<RedisStreamSubscriber>> s =
        RedisStreamSubscriber::Create(Broker(), {topic, group, consumer});
    EXPECT_THAT(s, IsOk());
    return StreamConsumer<std::string>(*std::move(s), std::move(o));
  }

  // Every object of the stream, resolved, until its end.
  static std::vector<std::string> Drain(StreamConsumer<std::string>& c) {
    std::vector<std::string> out;
    for (;;) {
      absl::StatusOr<std::optional<std::shared_ptr<const std::string>>> o =
          c.NextObject(absl::Seconds(60));
      EXPECT_THAT(o, IsOk());
      if (!o.ok() || !o->has_value()) return out;
      out.push_back(***o);
    }
  }

  static RedisServer* server_;
  std::string prefix_;
  std::shared_ptr<Store> store_;
};
RedisServer* StreamTest::server_ = nullptr;

TEST_F(StreamTest, ProxiesTravelAndObjectsResolveFromTheStore) {
  StreamConsumer<std::string> consumer = Consumer("t", "c1");
  StreamProducer<std::string> producer = Producer();
  const std::string big(3 << 20, 'x');
  ASSERT_THAT(producer.Send("t", "small", {.metadata = {{"i", "0"}}}), IsOk());
  ASSERT_THAT(producer.Send("t", big, {.metadata = {{"i", "1"}}}), IsOk());
  ASSERT_THAT(producer.CloseTopics({"t"}), IsOk());

  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<StreamItem<std::string>> a,
                                  consumer.NextWithMetadata(absl::Seconds(60)));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->metadata.at("i"), "0");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(Key key, GetKey(a->proxy));
  EXPECT_THAT(store_->connector().Exists(key), IsOkAndHolds(true));
  EXPECT_THAT(a->proxy.Get(), IsOkAndHolds(Pointee(std::string("small"))));
  // Sent with evict (the default): consumed once.
  EXPECT_THAT(store_->connector().Exists(key), IsOkAndHolds(false));
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(
      std::optional<std::shared_ptr<const std::string>> b,
      consumer.NextObject(absl::Seconds(60)));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(**b, big);
  EXPECT_THAT(consumer.Next(absl::Seconds(60)),
              IsOkAndHolds(::testing::Eq(std::nullopt)));
  // After the end, the end again.
  EXPECT_THAT(consumer.Next(absl::Seconds(60)),
              IsOkAndHolds(::testing::Eq(std::nullopt)));
}

TEST_F(StreamTest, TopicsWithoutAStoreCarryTheObjects) {
  StreamProducer<std::string> producer = Producer({});  // no store
  ASSERT_THAT(
      producer.Send("inline", "in the event", {.metadata = {{"a", "b"}}}),
      IsOk());
  ASSERT_THAT(producer.CloseTopics({"inline"}), IsOk());
  StreamConsumer<std::string> consumer = Consumer("inline", "c1");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<StreamItem<std::string>> item,
                                  consumer.NextWithMetadata(absl::Seconds(60)));
  ASSERT_TRUE(item.has_value());
  EXPECT_TRUE(item->proxy.IsResolved());
  EXPECT_THAT(item->proxy.Get(),
              IsOkAndHolds(Pointee(std::string("in the event"))));
  EXPECT_EQ(item->metadata.at("a"), "b");
  EXPECT_THAT(consumer.Next(absl::Seconds(60)),
              IsOkAndHolds(::testing::Eq(std::nullopt)));
}

TEST_F(StreamTest, NothingWithinTheTimeoutIsDeadlineExceeded) {
  StreamConsumer<std::string> consumer = Consumer("quiet", "c1");
  EXPECT_THAT(consumer.Next(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST_F(StreamTest, AGroupSharesTheEventsAndEveryConsumerSeesTheEnd) {
  constexpr int kEvents = 60;
  StreamProducer<std::string> producer = Producer();
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_THAT(producer.Send("shared", absl::StrCat("item ", i)), IsOk());
  }
  ASSERT_THAT(producer.CloseTopics({"shared"}), IsOk());
  std::vector<std::vector<std::string>> got(3);
  std::vector<std::thread> threads;
  for (int c = 0; c < 3; ++c) {
    threads.emplace_back([&, c] {
      StreamConsumer<std::string> consumer =
          Consumer("shared", absl::StrCat("c", c));
      got[c] = Drain(consumer);
    });
  }
  for (std::thread& t : threads) t.join();
  std::multiset<std::string> all;
  for (const auto& g : got) all.insert(g.begin(), g.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kEvents));
  for (int i = 0; i < kEvents; ++i) {
    EXPECT_EQ(all.count(absl::StrCat("item ", i)), 1u) << i;
  }
}

TEST_F(StreamTest, EachGroupSeesEveryEvent) {
  StreamProducer<std::string> producer = Producer();
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(producer.Send("fan", absl::StrCat(i), {.evict = false}),
                IsOk());
  }
  ASSERT_THAT(producer.CloseTopics({"fan"}), IsOk());
  for (const char* group : {"g1", "g2"}) {
    StreamConsumer<std::string> consumer = Consumer("fan", "c", group);
    EXPECT_THAT(Drain(consumer), ElementsAre("0", "1", "2", "3", "4")) << group;
  }
}

TEST_F(StreamTest, FiltersDropOnBothSidesAndEvictWhatTheConsumerDrops) {
  StreamProducer<std::string> producer =
      Producer({.default_store = store_, .filter = [](const StreamMetadata& m) {
                  return m.contains("skip");
                }});
  ASSERT_THAT(producer.Send("f", "never sent", {.metadata = {{"skip", ""}}}),
              IsOk());
  ASSERT_THAT(producer.Send("f", "dropped", {.metadata = {{"drop", ""}}}),
              IsOk());
  ASSERT_THAT(producer.Send("f", "kept"), IsOk());
  ASSERT_THAT(producer.CloseTopics({"f"}), IsOk());
  StreamConsumer<std::string> consumer = Consumer(
      "f", "c", "g",
      {.filter = [](const StreamMetadata& m) { return m.contains("drop"); }});
  EXPECT_THAT(Drain(consumer), ElementsAre("kept"));
  // Nothing is left in the store: the consumer evicted what it dropped.
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connector> probe,
                                  MakeConnector(store_->connector().Config()));
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(
           probe->Config().options.at("directory"))) {
    left.push_back(entry.path().filename());
  }
  EXPECT_THAT(left, ::testing::IsEmpty());
}

TEST_F(StreamTest, BatchesAndAggregation) {
  StreamProducer<std::string> batched =
      Producer({.default_store = store_, .batch_size = 3});
  for (int i = 0; i < 7; ++i) {
    ASSERT_THAT(batched.Send("b", absl::StrCat(i)), IsOk());
  }
  ASSERT_THAT(batched.CloseTopics({"b"}), IsOk());  // flushes the 7th
  StreamConsumer<std::string> c1 = Consumer("b", "c");
  EXPECT_THAT(Drain(c1), ElementsAre("0", "1", "2", "3", "4", "5", "6"));

  StreamProducer<std::string> aggregated = Producer(
      {.default_store = store_,
       .batch_size = 3,
       .aggregator =
           [](std::vector<std::string> parts) -> absl::StatusOr<std::string> {
         return absl::StrJoin(parts, "+");
       }});
  for (int i = 0; i < 4; ++i) {
    ASSERT_THAT(aggregated.Send("a", absl::StrCat(i),
                                {.metadata = {{absl::StrCat("m", i), "v"}}}),
                IsOk());
  }
  ASSERT_THAT(aggregated.CloseTopics({"a"}), IsOk());
  StreamConsumer<std::string> c2 = Consumer("a", "c");
  PROXYSTORE_ASSERT_OK_AND_ASSIGN(std::optional<StreamItem<std::string>> first,
                                  c2.NextWithMetadata(absl::Seconds(60)));
  ASSERT_TRUE(first.has_value());
  EXPECT_THAT(first->proxy.Get(), IsOkAndHolds(Pointee(std::string("0+1+2"))));
  EXPECT_EQ(first->metadata.size(), 3u);
  EXPECT_THAT(Drain(c2), ElementsAre("3"));
}

TEST_F(StreamTest, AHostileEntryIsDataLossAndTheStreamGoesOn) {
  StreamProducer<std::string> producer = Producer();
  ASSERT_THAT(producer.Send("h", "before"), IsOk());
  {
    redisContext* c = redisConnect(server_->host().c_str(), server_->port());
    ASSERT_NE(c, nullptr);
    const std::string stream = absl::StrCat(prefix_, "h");
    auto* r = static_cast<redisReply*>(
        redisCommand(c, "XADD %s * k p d %s", stream.c_str(), "not a proxy"));
    ASSERT_NE(r, nullptr);
    freeReplyObject(r);
    redisFree(c);
  }
  ASSERT_THAT(producer.Send("h", "after"), IsOk());
  ASSERT_THAT(producer.CloseTopics({"h"}), IsOk());
  StreamConsumer<std::string> consumer = Consumer("h", "c");
  EXPECT_THAT(
      consumer.NextObject(absl::Seconds(60)),
      IsOkAndHolds(::testing::Optional(Pointee(std::string("before")))));
  EXPECT_THAT(consumer.Next(absl::Seconds(60)),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(consumer.NextObject(absl::Seconds(60)),
              IsOkAndHolds(::testing::Optional(Pointee(std::string("after")))));
  EXPECT_THAT(consumer.Next(absl::Seconds(60)),
              IsOkAndHolds(::testing::Eq(std::nullopt)));
}

// Runs `body` in a forked child; returns its exit code.
template <typename F>
int InChild(F body) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int code = body();
    std::fflush(nullptr);
    _exit(code);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Two producer processes and two consumer processes of one group: every
// event is consumed exactly once, by one of them.
TEST_F(StreamTest, ProducerAndConsumerProcesses) {
  constexpr int kPerProducer = 25;
  std::vector<pid_t> producers;
  for (int p = 0; p < 2; ++p) {
    producers.push_back(fork());
    if (producers.back() == 0) {
      StreamProducer<std::string> producer = Producer();
      for (int i = 0; i < kPerProducer; ++i) {
        if (!producer.Send("procs", absl::StrCat(p, ":", i)).ok()) _exit(1);
      }
      _exit(producer.Close().ok() ? 0 : 1);
    }
  }
  const std::string out_dir = absl::StrCat(TestTempDir(), "/", prefix_);
  std::filesystem::create_directories(out_dir);
  std::vector<pid_t> consumers;
  for (int c = 0; c < 2; ++c) {
    consumers.push_back(fork());
    if (consumers.back() == 0) {
      StreamConsumer<std::string> consumer =
          Consumer("procs", absl::StrCat("c", c));
      std::vector<std::string> got = Drain(consumer);
      FILE* f = std::fopen(absl::StrCat(out_dir, "/c", c).c_str(), "w");
      for (const std::string& s : got) std::fprintf(f, "%s\n", s.c_str());
      std::fclose(f);
      _exit(consumer.Close().ok() ? 0 : 1);
    }
  }
  for (pid_t pid : producers) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  StreamProducer<std::string> closer = Producer();
  ASSERT_THAT(closer.CloseTopics({"procs"}), IsOk());
  std::multiset<std::string> all;
  for (int c = 0; c < 2; ++c) {
    int status = 0;
    waitpid(consumers[c], &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    std::ifstream in(absl::StrCat(out_dir, "/c", c));
    for (std::string line; std::getline(in, line);) all.insert(line);
  }
  EXPECT_EQ(all.size(), 2u * kPerProducer);
  for (int p = 0; p < 2; ++p) {
    for (int i = 0; i < kPerProducer; ++i) {
      EXPECT_EQ(all.count(absl::StrCat(p, ":", i)), 1u) << p << ":" << i;
    }
  }
}

// A consumer process that dies holding an event: the consumer that
// restarts under its name gets it first, then the rest; nothing is lost.
TEST_F(StreamTest, AConsumerThatDiesAndRestartsLosesNothing) {
  StreamProducer<std::string> producer = Producer();
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(producer.Send("restart", absl::StrCat(i), {.evict = false}),
                IsOk());
  }
  ASSERT_THAT(producer.CloseTopics({"restart"}), IsOk());
  // The child takes "0" cleanly (acknowledged when it asks for "1"), takes
  // "1", and dies without acknowledging it.
  EXPECT_EQ(InChild([&] {
              StreamConsumer<std::string> c = Consumer("restart", "worker");
              auto a = c.NextObject(absl::Seconds(60));
              auto b = c.NextObject(absl::Seconds(60));
              if (!a.ok() || !b.ok() || ***a != "0" || ***b != "1") return 1;
              _exit(0);  // no Close: "1" stays unacknowledged
            }),
            0);
  StreamConsumer<std::string> again = Consumer("restart", "worker");
  EXPECT_THAT(Drain(again), ElementsAre("1", "2", "3", "4"));
}

// The broker restarts (its data persisted) between sends: every event
// arrives exactly once.
TEST_F(StreamTest, ABrokerRestartLosesAndRepeatsNothing) {
  StreamProducer<std::string> producer = Producer();
  StreamConsumer<std::string> consumer = Consumer("broker", "c");
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(producer.Send("broker", absl::StrCat(i), {.evict = false}),
                IsOk());
  }
  EXPECT_THAT(consumer.NextObject(absl::Seconds(60)),
              IsOkAndHolds(::testing::Optional(Pointee(std::string("0")))));
  ASSERT_THAT(server_->Kill(), IsOk());
  ASSERT_THAT(server_->Restart(), IsOk());
  for (int i = 3; i < 6; ++i) {
    ASSERT_THAT(producer.Send("broker", absl::StrCat(i), {.evict = false}),
                IsOk());
  }
  ASSERT_THAT(producer.CloseTopics({"broker"}), IsOk());
  EXPECT_THAT(Drain(consumer), ElementsAre("1", "2", "3", "4", "5"));
}

}  // namespace
}  // namespace proxystore
