#include "proxystore/connectors/redis/cluster_test_util.h"

#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace proxystore::redis_test {

using ::proxystore::testing::RedisServer;

std::string NodeCommand(const RedisServer& node,
                        const std::vector<std::string>& words) {
  std::unique_ptr<redisContext, decltype(&redisFree)> c(
      redisConnectWithTimeout(node.host().c_str(), node.port(), timeval{10, 0}),
      &redisFree);
  if (c == nullptr || c->err != 0) {
    return absl::StrCat("!", c == nullptr ? "no context" : c->errstr);
  }
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& w : words) {
    argv.push_back(w.data());
    lens.push_back(w.size());
  }
  std::unique_ptr<redisReply, decltype(&freeReplyObject)> r(
      static_cast<redisReply*>(redisCommandArgv(
          c.get(), static_cast<int>(argv.size()), argv.data(), lens.data())),
      &freeReplyObject);
  if (r == nullptr) return absl::StrCat("!", c->errstr);
  switch (r->type) {
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
      return std::string(r->str, r->len);
    case REDIS_REPLY_ERROR:
      return absl::StrCat("-", absl::string_view(r->str, r->len));
    case REDIS_REPLY_INTEGER:
      return absl::StrCat(r->integer);
    case REDIS_REPLY_NIL:
      return "nil";
  }
  return "?";
}

int KeysOn(const RedisServer& node, const std::string& prefix) {
  std::unique_ptr<redisContext, decltype(&redisFree)> c(
      redisConnectWithTimeout(node.host().c_str(), node.port(), timeval{10, 0}),
      &redisFree);
  if (c == nullptr || c->err != 0) return -1;
  int count = 0;
  std::string cursor = "0";
  const std::string pattern = absl::StrCat(prefix, "*");
  do {
    std::unique_ptr<redisReply, decltype(&freeReplyObject)> r(
        static_cast<redisReply*>(redisCommand(c.get(),
                                              "SCAN %s MATCH %s COUNT 1000",
                                              cursor.c_str(), pattern.c_str())),
        &freeReplyObject);
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
      return -1;
    }
    cursor.assign(r->element[0]->str, r->element[0]->len);
    count += static_cast<int>(r->element[1]->elements);
  } while (cursor != "0");
  return count;
}

int64_t Calls(const RedisServer& node, absl::string_view command) {
  const std::string info = NodeCommand(node, {"INFO", "commandstats"});
  const std::string field = absl::StrCat("cmdstat_", command, ":calls=");
  const size_t at = info.find(field);
  if (at == std::string::npos) return 0;
  const size_t begin = at + field.size();
  int64_t calls = 0;
  if (!absl::SimpleAtoi(info.substr(begin, info.find(',', begin) - begin),
                        &calls)) {
    return -1;
  }
  return calls;
}

}  // namespace proxystore::redis_test
