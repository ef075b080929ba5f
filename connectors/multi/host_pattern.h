// HostPattern: the regular expressions of Policy::host_patterns, matched
// against a whole host name (ProxyStore's re.fullmatch) in time linear in
// the name, whatever the pattern.
//
// Host patterns arrive inside serialized proxies and configs, so a pattern
// is untrusted input, and glibc's regcomp is not fit for that: it copies a
// repeated group once per repetition ("a" and 48 '+' asks for 2^48 nodes),
// and its epsilon-closure pass grows super-linearly with nested empty loops
// (1.5 KB of "()*" takes 0.3 s; fuzz_multi hit its 10 s timeout in it).
// HostPattern is a small Thompson-NFA engine instead (the construction of
// RE2 and Go's regexp): compiling costs O(program size), and the program is
// capped at kMaxProgramSize instructions; matching costs O(text size x
// program size), with no backtracking and no recursion.
//
// The syntax is what POSIX EREs and Python's re share, with Python's
// readings where they differ (ProxyStore's patterns are Python's):
//   abc        literal bytes; any byte but . [ ] ( ) | * + ? { } ^ $ \ stands
//              for itself ("]" and "}" too)
//   .          any byte except '\n'
//   [a-z_] [^0-9] [[:alpha:]-]
//              bracket expressions: ranges, negation, POSIX classes (alpha
//              digit alnum upper lower space blank punct print graph cntrl
//              xdigit), a leading ']' taken literally, '-' first or last
//              taken literally, and backslash escapes as below
//   \d \D \w \W \s \S
//              ASCII digit, word ([A-Za-z0-9_]) and space classes
//   \.  \-  \\ a backslash before any byte that is not an ASCII letter or
//              digit stands for that byte
//   (x) (?:x)  groups (nothing is captured; fullmatch needs no captures)
//   x|y        alternation
//   x* x+ x? x{m} x{m,} x{m,n} x{,n}
//              repetition, counts up to kMaxCount; a trailing '?' (Python's
//              lazy form) is accepted and changes nothing, since a full match
//              either exists or not
//   ^ $        start and end of the name
// Before this engine, host patterns went to glibc's regcomp as POSIX EREs;
// a few old patterns now mean something else or are refused: inside
// brackets a backslash escapes ("[\.]" no longer matches '\'), "a{2}?" is a
// lazy "a{2}" (not "optional aa"), an unmatched ')' is an error.
//
// A HostPattern is immutable after Compile: FullMatch is const and safe from
// many threads at once.
//
//   PROXYSTORE_ASSIGN_OR_RETURN(HostPattern p,
//                               HostPattern::Compile("node-\\d+"));
//   bool here = p.FullMatch("node-12");  // true; "my-node-12" is false
//
// Anything else is InvalidArgument naming the pattern, the offset and the
// problem: back-references and other escapes of letters or digits, "(?"
// groups other than "(?:", a repetition with nothing to repeat or stacked on
// another ("a**", "a{2}{3}"), '{' that does not start a count, an unmatched
// parenthesis, an unterminated bracket, a reversed range, a NUL byte, groups
// nested more than kMaxDepth deep, a pattern over kMaxPatternSize bytes, or
// one whose repetitions expand past kMaxProgramSize instructions ("too
// complex").
#ifndef PROXYSTORE_CONNECTORS_MULTI_HOST_PATTERN_H_
#define PROXYSTORE_CONNECTORS_MULTI_HOST_PATTERN_H_

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace proxystore {

class HostPattern {
 public:
  static constexpr size_t kMaxPatternSize = 1024;
  static constexpr int kMaxDepth = 100;
  static constexpr int kMaxCount = 1000;
  static constexpr size_t kMaxProgramSize = 4096;

  // The compiled `pattern`, or InvalidArgument (see above).
  static absl::StatusOr<HostPattern> Compile(absl::string_view pattern);

  // True if the pattern matches all of `text`.
  bool FullMatch(absl::string_view text) const;

  const std::string& pattern() const { return pattern_; }
  // Instructions in the compiled program (at most kMaxProgramSize).
  size_t program_size() const { return program_.size(); }

  // One NFA instruction. kByte consumes a byte in sets_[set] and goes to
  // `next`; kSplit goes to both `next` and `alt`; kJmp to `next`; kBegin and
  // kEnd go to `next` at the start or end of the text only; kMatch accepts.
  struct Inst {
    enum Op : uint8_t { kByte, kSplit, kJmp, kBegin, kEnd, kMatch };
    Op op;
    uint32_t next = 0;
    uint32_t alt = 0;
    uint32_t set = 0;
  };

 private:
  friend class HostPatternCompiler;

  std::string pattern_;
  std::vector<Inst> program_;
  std::vector<std::bitset<256>> sets_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_CONNECTORS_MULTI_HOST_PATTERN_H_
