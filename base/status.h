// Status helpers: early-return macros over absl::Status / absl::StatusOr.
//
// Debian's Abseil (20220623) ships no RETURN_IF_ERROR / ASSIGN_OR_RETURN, so
// these are ours, prefixed PROXYSTORE_ to stay out of every other library's
// way.
//
//   absl::StatusOr<Config> Load(absl::string_view path) {
//     PROXYSTORE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
//     PROXYSTORE_RETURN_IF_ERROR(Validate(text));
//     return Parse(text);
//   }
//
// Pitfalls (the same as Arrow's and tensorstore's):
//  - Both macros expand to several statements: do not use them as the body of
//    an unbraced `if`/`else`.
//  - PROXYSTORE_ASSIGN_OR_RETURN's left-hand side may declare a variable
//    (`auto x`, `const T& y` binds to a moved-out temporary: do not); a type
//    with a comma needs parentheses around the whole declaration.
//  - The enclosing function must return absl::Status or absl::StatusOr<U>.
//
// Thread-safety: stateless.
#ifndef PROXYSTORE_BASE_STATUS_H_
#define PROXYSTORE_BASE_STATUS_H_

#include <cstddef>
#include <limits>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace proxystore {
namespace status_internal {

inline const absl::Status& GetStatus(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

}  // namespace status_internal

// Returns `status` with `context` prepended to its message ("context: msg"),
// keeping the code and payloads. An OK status is returned unchanged.
inline absl::Status Annotate(const absl::Status& status,
                             absl::string_view context) {
  if (status.ok()) return status;
  absl::Status out(status.code(),
                   absl::StrCat(context, ": ", status.message()));
  status.ForEachPayload([&out](absl::string_view url, const absl::Cord& p) {
    out.SetPayload(url, p);
  });
  return out;
}

// `s` double-quoted with C escapes ("a\x01b" for a, 0x01, b), for status
// messages that echo outside input. At most `max_bytes` of it are shown,
// then `"... (N bytes)`.
inline std::string QuoteForMessage(
    absl::string_view s,
    size_t max_bytes = std::numeric_limits<size_t>::max()) {
  if (s.size() > max_bytes) {
    return absl::StrCat("\"", absl::CHexEscape(s.substr(0, max_bytes)),
                        "\"... (", s.size(), " bytes)");
  }
  return absl::StrCat("\"", absl::CHexEscape(s), "\"");
}

// ["a", "b"]: each item as QuoteForMessage writes it.
inline std::string QuoteListForMessage(absl::Span<const std::string> items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += QuoteForMessage(items[i]);
  }
  out += "]";
  return out;
}

}  // namespace proxystore

#define PROXYSTORE_STATUS_CONCAT_INNER_(a, b) a##b
#define PROXYSTORE_STATUS_CONCAT_(a, b) PROXYSTORE_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status or absl::StatusOr<T>) once and returns its
// status from the enclosing function if it is not OK.
#define PROXYSTORE_RETURN_IF_ERROR(expr)               \
  do {                                                 \
    const auto& proxystore_status_value_ = (expr);     \
    if (!proxystore_status_value_.ok()) {              \
      return ::proxystore::status_internal::GetStatus( \
          proxystore_status_value_);                   \
    }                                                  \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status from
// the enclosing function, else moves the value into `lhs`.
#define PROXYSTORE_ASSIGN_OR_RETURN(lhs, rexpr) \
  PROXYSTORE_ASSIGN_OR_RETURN_IMPL_(            \
      PROXYSTORE_STATUS_CONCAT_(proxystore_statusor_, __LINE__), lhs, rexpr)

#define PROXYSTORE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                      \
  if (!statusor.ok()) {                                         \
    return std::move(statusor).status();                        \
  }                                                             \
  lhs = std::move(statusor).value()

#endif  // PROXYSTORE_BASE_STATUS_H_
