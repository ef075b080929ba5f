// Policy: which objects a child of a "multi" connector accepts (ProxyStore's
// `Policy`): a size range, routing tags and the hosts it serves. It is part
// of a child's ConnectorConfig (connector.h), so it travels with configs.
//
//   Policy small{.priority = 1, .max_size_bytes = 1024};
//   small.IsValid(100);   // true
//   small.IsValid(4096);  // false
//
// Thread-safety: a plain value type.
#ifndef PROXYSTORE_CONNECTORS_POLICY_H_
#define PROXYSTORE_CONNECTORS_POLICY_H_

#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace proxystore {

// This host's name (gethostname()), what host patterns are matched against.
std::string CurrentHostname();

struct Policy {
  // Higher is tried first.
  int64_t priority = 0;
  // Regular expressions, each matched against the whole host name (Python's
  // re.fullmatch) in linear time; empty = any host. Syntax:
  // connectors/host_pattern.h.
  std::vector<std::string> host_patterns;
  // Accepted object sizes, both bounds inclusive.
  uint64_t min_size_bytes = 0;
  uint64_t max_size_bytes = std::numeric_limits<uint64_t>::max();
  // A put's subset tags must all be in here.
  std::vector<std::string> subset_tags;
  // A put's superset tags must include all of these.
  std::vector<std::string> superset_tags;

  friend bool operator==(const Policy&, const Policy&) = default;

  // ProxyStore's is_valid: true iff the size is in [min_size_bytes,
  // max_size_bytes], the given `subset_tags` are a subset of the policy's
  // subset_tags (so a default policy rejects any non-empty request), the
  // given `superset_tags` are a superset of the policy's superset_tags, and
  // IsValidOnHost(). Tags are compared as sets (duplicates do not matter).
  bool IsValid(uint64_t size_bytes,
               absl::Span<const std::string> subset_tags = {},
               absl::Span<const std::string> superset_tags = {}) const;
  // The same without the host check.
  bool IsValidIgnoringHost(uint64_t size_bytes,
                           absl::Span<const std::string> subset_tags,
                           absl::Span<const std::string> superset_tags) const;
  // True if host_patterns is empty or one of them fully matches `hostname`
  // (default: CurrentHostname()). An invalid pattern matches nothing (see
  // Validate).
  bool IsValidOnHost() const;
  bool IsValidOnHost(absl::string_view hostname) const;

  // InvalidArgument naming the problem: a host pattern HostPattern::Compile
  // refuses, or min_size_bytes > max_size_bytes (a policy that accepts
  // nothing).
  absl::Status Validate() const;

  // For messages: the fields that differ from their defaults, e.g.
  //   {priority: 1, host_patterns: ["node-.*"], max_size_bytes: 1024}
  std::string DebugString() const;
  friend std::ostream& operator<<(std::ostream& os, const Policy& p) {
    return os << p.DebugString();
  }
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_POLICY_H_
