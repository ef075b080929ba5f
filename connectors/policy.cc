#include "proxystore/connectors/policy.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proxystore/base/status.h"
#include "proxystore/connectors/host_pattern.h"

namespace proxystore {
namespace {

bool Contains(absl::Span<const std::string> set, const std::string& item) {
  return std::find(set.begin(), set.end(), item) != set.end();
}

}  // namespace

std::string CurrentHostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return std::string(buf, ::strnlen(buf, sizeof(buf)));
}

bool Policy::IsValid(uint64_t size_bytes, absl::Span<const std::string> subset,
                     absl::Span<const std::string> superset) const {
  return IsValidIgnoringHost(size_bytes, subset, superset) && IsValidOnHost();
}

bool Policy::IsValidIgnoringHost(uint64_t size_bytes,
                                 absl::Span<const std::string> subset,
                                 absl::Span<const std::string> superset) const {
  if (size_bytes < min_size_bytes || size_bytes > max_size_bytes) return false;
  for (const std::string& tag : subset) {
    if (!Contains(subset_tags, tag)) return false;
  }
  for (const std::string& tag : superset_tags) {
    if (!Contains(superset, tag)) return false;
  }
  return true;
}

bool Policy::IsValidOnHost() const {
  if (host_patterns.empty()) return true;
  return IsValidOnHost(CurrentHostname());
}

bool Policy::IsValidOnHost(absl::string_view hostname) const {
  if (host_patterns.empty()) return true;
  for (const std::string& pattern : host_patterns) {
    absl::StatusOr<HostPattern> compiled = HostPattern::Compile(pattern);
    if (compiled.ok() && compiled->FullMatch(hostname)) return true;
  }
  return false;
}

absl::Status Policy::Validate() const {
  for (const std::string& pattern : host_patterns) {
    absl::Status compiled = HostPattern::Compile(pattern).status();
    if (!compiled.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy ", compiled.message()));
    }
  }
  if (min_size_bytes > max_size_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "policy min_size_bytes ", min_size_bytes, " exceeds max_size_bytes ",
        max_size_bytes, ": it would accept nothing"));
  }
  return absl::OkStatus();
}

std::string Policy::DebugString() const {
  const Policy defaults;
  std::vector<std::string> fields;
  if (priority != defaults.priority) {
    fields.push_back(absl::StrCat("priority: ", priority));
  }
  if (!host_patterns.empty()) {
    fields.push_back(
        absl::StrCat("host_patterns: ", QuoteListForMessage(host_patterns)));
  }
  if (min_size_bytes != defaults.min_size_bytes) {
    fields.push_back(absl::StrCat("min_size_bytes: ", min_size_bytes));
  }
  if (max_size_bytes != defaults.max_size_bytes) {
    fields.push_back(absl::StrCat("max_size_bytes: ", max_size_bytes));
  }
  if (!subset_tags.empty()) {
    fields.push_back(
        absl::StrCat("subset_tags: ", QuoteListForMessage(subset_tags)));
  }
  if (!superset_tags.empty()) {
    fields.push_back(
        absl::StrCat("superset_tags: ", QuoteListForMessage(superset_tags)));
  }
  return absl::StrCat("{", absl::StrJoin(fields, ", "), "}");
}

}  // namespace proxystore
