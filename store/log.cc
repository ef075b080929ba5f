#include "proxystore/store/log.h"

#include <cstdlib>
#include <memory>
#include <string>

#include "proxystore/base/no_destructor.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace proxystore::store_internal {

spdlog::logger& Logger() {
  // Never destroyed: stores may log from other statics' destructors.
  static NoDestructor<std::shared_ptr<spdlog::logger>> logger([] {
    std::shared_ptr<spdlog::logger> existing = spdlog::get("proxystore");
    if (existing != nullptr) return existing;
    auto l = spdlog::stderr_logger_mt("proxystore");
    l->set_level(spdlog::level::warn);
    if (const char* env = std::getenv("PROXYSTORE_LOG_LEVEL")) {
      // from_str maps unknown names to "off": accept only real level names.
      const spdlog::level::level_enum level = spdlog::level::from_str(env);
      if (level != spdlog::level::off || std::string(env) == "off") {
        l->set_level(level);
      } else {
        l->warn(
            "PROXYSTORE_LOG_LEVEL=\"{}\" is not a level (trace, debug, "
            "info, warn, error, critical, off); using warn",
            env);
      }
    }
    return l;
  }());
  return **logger;
}

}  // namespace proxystore::store_internal
