// HostPattern: the regular expressions of Policy::host_patterns, matched
// against a whole host name (ProxyStore's re.fullmatch) with RE2.
//
// Host patterns arrive inside serialized proxies and configs, so a pattern
// is untrusted input. RE2 (https://github.com/google/re2, Debian's
// libre2-dev) is built for that: it never backtracks, so matching costs time
// linear in the name whatever the pattern (and back-references, which need
// backtracking, are refused); its parser refuses repetition counts over 1000,
// also when nested counts multiply past 1000; and its memory is capped by
// max_mem, here kMaxMemory, which covers the compiled program and the DFA
// cache (RE2 gives up compiling past about 5,400 instructions, and falls
// back to its NFA when the cache is full). A program over kMaxProgramSize
// instructions is refused as well, so what a hostile pattern can cost is
// small and fixed.
//
// The syntax is RE2's, which covers what Python's re and POSIX EREs share for
// host names:
//   abc . [a-z_] [^0-9] [[:alpha:]] \d \w \s \D \W \S \. \- \\ \xhh
//   (x) (?:x) (?P<name>x) x|y x* x+ x? x{m} x{m,} x{m,n} and their lazy
//   forms (x*? ...; a full match exists or not, so laziness changes nothing)
//   ^ $ \A \b \B
// Python spellings RE2 lacks or reads otherwise are rewritten: x{,n} and
// x{,} are x{0,n} and x{0,}, leading zeros of counts are dropped (RE2 would
// read all of these as literal text), \Z is RE2's \z (end of text), and a
// backslash before a non-ASCII byte stands for that byte.
//
// Refused (InvalidArgument naming the pattern and the problem, or quoting
// RE2's error text): back-references \1 to \9 (RE2 would read "\12" as an
// octal escape); "(?" groups other than "(?:" and "(?P<name>" (inline flags
// such as (?i) differ in scope between Python versions and RE2, and
// lookarounds need backtracking); escapes of letters that Python and RE2 do
// not read alike (\C \Q \E \p \P \u \U \N ...); a NUL byte; a pattern over
// kMaxPatternSize bytes; counts over 1000; a program over kMaxProgramSize
// instructions ("too complex"); and anything RE2 cannot parse.
//
// Differences from Python's re that a user could notice:
//   - Bytes, not characters: patterns and names are read as Latin-1 (host
//     names are ASCII). \d \w \s \b are ASCII-only, as with re.ASCII, and \s
//     does not match '\v'.
//   - [[:alpha:]] is a POSIX class (Python reads "[[:alph]" and then "]").
//   - $ matches only at the very end (Python's also before a final '\n').
//   - A few patterns that Python refuses compile (RE2's \z, \x{41}, "^*").
//
// A HostPattern is immutable after Compile; copies share the compiled RE2,
// and FullMatch is const and safe from many threads at once.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(HostPattern p,
//                               HostPattern::Compile("node-\\d+"));
//   bool here = p.FullMatch("node-12");  // true; "my-node-12" is false
#ifndef PROXYSTORE_CONNECTORS_HOST_PATTERN_H_
#define PROXYSTORE_CONNECTORS_HOST_PATTERN_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace proxystore {

class HostPattern {
 public:
  static constexpr size_t kMaxPatternSize = 1024;
  // Instructions of RE2's compiled program ("a{1000}" takes 1004).
  static constexpr size_t kMaxProgramSize = 4096;
  // RE2's max_mem, in bytes.
  static constexpr int64_t kMaxMemory = int64_t{64} << 10;

  // Matches nothing; so does a moved-from HostPattern.
  HostPattern() = default;

  // The compiled `pattern`, or InvalidArgument (see above).
  static absl::StatusOr<HostPattern> Compile(absl::string_view pattern);

  // True if the pattern matches all of `text`.
  bool FullMatch(absl::string_view text) const;

  // The pattern as given to Compile.
  const std::string& pattern() const { return pattern_; }
  // Instructions in the compiled program (at most kMaxProgramSize).
  size_t program_size() const;

 private:
  std::string pattern_;
  std::shared_ptr<const re2::RE2> re_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_HOST_PATTERN_H_
