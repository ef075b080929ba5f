#include "proxystore/connectors/host_pattern.h"

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proxystore/base/status.h"
#include "re2/re2.h"

namespace proxystore {
namespace {

// At most this much of a bad pattern, or of RE2's error, is echoed in a
// message.
constexpr size_t kMaxQuotedSize = 200;

std::string Quote(absl::string_view s) {
  return QuoteForMessage(s, kMaxQuotedSize);
}

absl::Status Refuse(absl::string_view pattern, size_t offset,
                    absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("host pattern ",
                                                 Quote(pattern), " ", problem,
                                                 " (at offset ", offset, ")"));
}

// RE2's largest repetition count.
constexpr int kMaxCount = 1000;

// The ASCII digits at *i, which moves past them.
absl::string_view Digits(absl::string_view p, size_t* i) {
  const size_t start = *i;
  while (*i < p.size() && absl::ascii_isdigit(p[*i])) ++*i;
  return p.substr(start, *i - start);
}

// A count of the repetition at `offset` without leading zeros ("0" if
// empty), or InvalidArgument past kMaxCount.
absl::StatusOr<std::string> Count(absl::string_view p, size_t offset,
                                  absl::string_view digits) {
  while (digits.size() > 1 && digits[0] == '0') digits.remove_prefix(1);
  if (digits.empty()) return std::string("0");
  int value = 0;
  for (char d : digits) {
    value = value * 10 + (d - '0');
    if (value > kMaxCount) {
      return Refuse(p, offset,
                    absl::StrCat("has a repetition count over ", kMaxCount));
    }
  }
  return std::string(digits);
}

// The letters a backslash may escape: those Python's re and RE2 read alike,
// plus \z (RE2's end of text) and \Z (Python's, rewritten to \z).
constexpr absl::string_view kLetterEscapes = "AbBdDfnrsStvwWxzZ";

// `p` in RE2's syntax: Python's counts ({,n}, leading zeros), \Z and
// backslashes before non-ASCII bytes rewritten, and InvalidArgument for what
// RE2 would read otherwise or what host patterns leave out (see
// host_pattern.h). RE2 checks everything else. Bracket expressions are
// tracked as RE2 reads them: a ']' right after "[" or "[^" is a member, and
// so is a "[:name:]".
absl::StatusOr<std::string> ToRe2Syntax(absl::string_view p) {
  std::string out;
  out.reserve(p.size() + 8);
  bool in_class = false;
  size_t class_first = 0;  // offset of the current class's first member
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {  // a lone trailing '\' is RE2's
      const unsigned char e = static_cast<unsigned char>(p[++i]);
      if (e >= '1' && e <= '9') {
        return Refuse(p, i - 1,
                      "uses a back-reference, which host patterns do not "
                      "support");
      }
      if (absl::ascii_isalpha(e) &&
          !absl::StrContains(kLetterEscapes, static_cast<char>(e))) {
        return Refuse(p, i - 1,
                      absl::StrCat("uses the escape \"\\", std::string(1, e),
                                   "\", which host patterns do not support"));
      }
      if (e == 'Z') {
        out += "\\z";
      } else if (e >= 0x80) {  // RE2 refuses to escape it; Python does not
        out += static_cast<char>(e);
      } else {
        out += '\\';
        out += static_cast<char>(e);
      }
      continue;
    }
    if (in_class) {
      if (c == ']' && i != class_first) {
        in_class = false;
      } else if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
        const size_t end = p.find(":]", i + 2);
        if (end != absl::string_view::npos) {
          out.append(p.data() + i, end + 2 - i);
          i = end + 1;
          continue;
        }
      }
      out += c;
      continue;
    }
    if (c == '[') {
      in_class = true;
      class_first = i + 1;
      if (class_first < p.size() && p[class_first] == '^') ++class_first;
    } else if (c == '(' && i + 1 < p.size() && p[i + 1] == '?') {
      const absl::string_view rest = p.substr(i + 2);
      if (!absl::StartsWith(rest, ":") && !absl::StartsWith(rest, "P<")) {
        return Refuse(p, i,
                      "uses a \"(?\" group other than \"(?:\" or "
                      "\"(?P<name>\", which host patterns do not support");
      }
    } else if (c == '{') {
      // Python's counts are {m} {m,} {m,n} {,n} {,}; RE2 reads the last two,
      // and counts with leading zeros or past 10^8, as literal text.
      size_t j = i + 1;
      const absl::string_view lo = Digits(p, &j);
      const bool comma = j < p.size() && p[j] == ',';
      absl::string_view hi;
      if (comma) {
        ++j;
        hi = Digits(p, &j);
      }
      if (j < p.size() && p[j] == '}' && (!lo.empty() || comma)) {
        PROXYSTORE_ASSIGN_OR_RETURN(const std::string m, Count(p, i, lo));
        PROXYSTORE_ASSIGN_OR_RETURN(const std::string n, Count(p, i, hi));
        absl::StrAppend(&out, "{", m, comma ? "," : "", hi.empty() ? "" : n,
                        "}");
        i = j;
        continue;
      }
    }
    out += c;
  }
  return out;
}

}  // namespace

absl::StatusOr<HostPattern> HostPattern::Compile(absl::string_view pattern) {
  if (pattern.size() > kMaxPatternSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("host pattern ", Quote(pattern), " is longer than ",
                     kMaxPatternSize, " bytes"));
  }
  if (const size_t nul = pattern.find('\0'); nul != absl::string_view::npos) {
    return Refuse(pattern, nul, "contains a NUL byte");
  }
  PROXYSTORE_ASSIGN_OR_RETURN(const std::string re2_pattern,
                              ToRe2Syntax(pattern));
  RE2::Options options;
  options.set_encoding(RE2::Options::EncodingLatin1);
  options.set_log_errors(false);
  options.set_never_capture(true);
  options.set_dot_nl(false);
  options.set_max_mem(kMaxMemory);
  auto re = std::make_shared<const RE2>(re2_pattern, options);
  if (re->error_code() == RE2::ErrorPatternTooLarge ||
      (re->ok() && static_cast<size_t>(re->ProgramSize()) > kMaxProgramSize)) {
    return absl::InvalidArgumentError(
        absl::StrCat("host pattern ", Quote(pattern),
                     " is too complex: its program would exceed ",
                     kMaxProgramSize, " instructions"));
  }
  if (!re->ok()) {
    const std::string& error = re->error();
    return absl::InvalidArgumentError(absl::StrCat(
        "host pattern ", Quote(pattern), " is invalid: ",
        absl::CHexEscape(absl::string_view(error).substr(0, kMaxQuotedSize)),
        error.size() > kMaxQuotedSize ? "..." : ""));
  }
  HostPattern out;
  out.pattern_ = std::string(pattern);
  out.re_ = std::move(re);
  return out;
}

bool HostPattern::FullMatch(absl::string_view text) const {
  // Braces make RE2's own string-view type (absl's in newer RE2).
  return re_ != nullptr && RE2::FullMatch({text.data(), text.size()}, *re_);
}

size_t HostPattern::program_size() const {
  return re_ == nullptr ? 0 : static_cast<size_t>(re_->ProgramSize());
}

}  // namespace proxystore
