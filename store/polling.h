// PollingOptions: how a proxy of a future waits for an object that does not
// exist yet (ProxyStore's PollingStoreFactory). Store::Future's proxies carry
// them inside their serialized form, so the consuming process waits as the
// producer asked, within the bounds Validate() sets.
//
// A resolve reads the key; while it is missing, it sleeps `interval`, then
// multiplies the interval by `backoff_factor` (capped at `interval_limit`),
// until the object is there or `timeout` has passed since the first read,
// which is DeadlineExceeded naming the key. Where the connector can wait for
// a key (Connector::WaitFor: "local", "file", "shm", "redis", "multi" over
// them), the resolve waits instead of sleeping: a Set wakes it at once, and
// it reads the key again after each stretch of max(interval, 1 s) (a wait
// may cost a watch or a connection; a change the backend does not report,
// e.g. from another host of a network file system, is seen then).
// Elsewhere (a connector without WaitFor, a Redis server that refuses
// Pub/Sub) the intervals are slept out. The defaults differ from
// Python's (1 s, x1, no limit, no timeout): an interval that starts at 1 ms
// and doubles up to 100 ms answers within a few milliseconds for short waits
// and costs ~10 reads a second for long ones.
//
// Thread-safety: a plain value.
#ifndef PROXYSTORE_STORE_POLLING_H_
#define PROXYSTORE_STORE_POLLING_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace proxystore {

struct PollingOptions {
  // The longest interval (and interval limit) Validate accepts; no growing
  // interval goes past it.
  static constexpr absl::Duration kMaxInterval = absl::Hours(1);

  absl::Duration interval = absl::Milliseconds(1);
  double backoff_factor = 2.0;
  std::optional<absl::Duration> interval_limit = absl::Milliseconds(100);
  // Unset: wait as long as it takes.
  std::optional<absl::Duration> timeout;

  // Bounds that hold whoever made the options (they arrive from the wire):
  // an interval of 1 us to 1 hour (no busy loop, no sleep past any sensible
  // limit), a factor of 1 to 1000, a limit of at least the interval and at
  // most 1 hour, a timeout of 0 to 30 days. InvalidArgument naming the field.
  absl::Status Validate() const {
    const absl::Duration max_interval = kMaxInterval;
    if (interval < absl::Microseconds(1) || interval > max_interval) {
      return absl::InvalidArgumentError(
          absl::StrCat("polling interval ", absl::FormatDuration(interval),
                       " is outside [1us, 1h]"));
    }
    if (!(backoff_factor >= 1.0 && backoff_factor <= 1000.0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "polling backoff factor ", backoff_factor, " is outside [1, 1000]"));
    }
    if (interval_limit.has_value() &&
        (*interval_limit < interval || *interval_limit > max_interval)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "polling interval limit ", absl::FormatDuration(*interval_limit),
          " is outside [interval, 1h]"));
    }
    if (timeout.has_value() &&
        (*timeout < absl::ZeroDuration() || *timeout > absl::Hours(24 * 30))) {
      return absl::InvalidArgumentError(
          absl::StrCat("polling timeout ", absl::FormatDuration(*timeout),
                       " is outside [0, 30 days]"));
    }
    return absl::OkStatus();
  }
};

}  // namespace proxystore

#endif  // PROXYSTORE_STORE_POLLING_H_
