// The Store library's logger and its debug-line macro (internal to store/).
#ifndef PROXYSTORE_STORE_LOG_H_
#define PROXYSTORE_STORE_LOG_H_

#include <cstdint>

#include "spdlog/spdlog.h"

namespace proxystore::store_internal {

// The library's logger, "proxystore" (stderr). Its level is "warn" unless
// $PROXYSTORE_LOG_LEVEL (trace, debug, info, warn, error, off) or the
// application (spdlog::get("proxystore")->set_level) says otherwise, so
// debug lines are off, and not even formatted, by default.
spdlog::logger& Logger();

inline bool DebugOn() { return Logger().should_log(spdlog::level::debug); }

inline double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

}  // namespace proxystore::store_internal

// Formats nothing unless the logger is at debug level (checked at run time;
// SPDLOG_DEBUG would be compiled out at spdlog's default active level).
#define PROXYSTORE_LOG_DEBUG(...)                              \
  do {                                                         \
    spdlog::logger& proxystore_logger_ =                       \
        ::proxystore::store_internal::Logger();                \
    if (proxystore_logger_.should_log(spdlog::level::debug)) { \
      proxystore_logger_.debug(__VA_ARGS__);                   \
    }                                                          \
  } while (false)

#endif  // PROXYSTORE_STORE_LOG_H_
