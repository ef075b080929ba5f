#include "proxystore/connectors/multi/host_pattern.h"

#include <regex.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

std::string Repeat(absl::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) absl::StrAppend(&out, s);
  return out;
}

// FullMatch of a pattern that must compile.
bool Matches(absl::string_view pattern, absl::string_view text) {
  absl::StatusOr<HostPattern> p = HostPattern::Compile(pattern);
  EXPECT_THAT(p.status(), IsOk()) << pattern;
  return p.ok() && p->FullMatch(text);
}

struct Case {
  const char* pattern;
  const char* text;
  bool match;
};

TEST(HostPattern, MatchesWholeNames) {
  const Case cases[] = {
      {"", "", true},
      {"", "a", false},
      {"node", "node", true},
      {"node", "node1", false},
      {"node", "xnode", false},
      {"node-[0-9]+", "node-12", true},
      {"node-[0-9]+", "node-", false},
      {"node-[0-9]+", "node-1a", false},
      {"node-1|node-2", "node-2", true},
      {"node-1|node-2", "node-12", false},
      {"a|ab", "ab", true},  // not leftmost-first: any branch may match all
      {"(a|ab)(c|bcd)", "abcd", true},
      {"login.*\\.cluster", "login3.cluster", true},
      {"login.*\\.cluster", "login3xcluster", false},
      {".", "\n", false},  // Python's '.'
      {".", "\xff", true},
      {"x*", "", true},
      {"x+", "", false},
      {"x?y", "y", true},
      {"x{3}", "xxx", true},
      {"x{3}", "xx", false},
      {"x{2,}", "xxxxx", true},
      {"x{2,}", "x", false},
      {"x{1,2}", "xxx", false},
      {"x{,2}", "", true},
      {"x{,2}", "xxx", false},
      {"x{0}", "", true},
      {"x{0}y", "y", true},
      {"x*?y+?z??", "yz", true},  // lazy forms: same set of matches
      {"(?:ab)+", "abab", true},
      {"(ab)+", "aba", false},
      {"()*", "", true},
      {"(a*)*b", "aaab", true},
      {"(|a)+", "aa", true},
      {"[]a-]+", "]a-", true},
      {"[^]a]", "]", false},
      {"[^]a]", "b", true},
      {"[a-c-]", "-", true},
      {"[-a]", "-", true},
      {"[[:alpha:]]{3}", "abC", true},
      {"[[:alpha:]]{3}", "ab1", false},
      {"[[:digit:][:upper:]]+", "A1B2", true},
      {"[[:xdigit:]]+", "00ff", true},
      {"[[:digit:]-z]", "-", true},  // a class, then '-' and 'z' literally
      {"[[:digit:]-z]", "z", true},
      {"[[:digit:]-z]", "y", false},
      {"[\\d.]+", "10.0.0.1", true},
      {"[\\]]", "]", true},
      {"[\\\\]", "\\", true},
      {"\\d+", "123", true},
      {"\\d+", "12a", false},
      {"\\D", "a", true},
      {"\\w+", "node_1", true},
      {"\\w", "-", false},
      {"\\W", "-", true},
      {"\\s", "\t", true},
      {"\\S", " ", false},
      {"a\\.b", "a.b", true},
      {"a\\.b", "axb", false},
      {"\\(\\)\\*\\+\\?\\{\\}\\[\\|\\^\\$", "()*+?{}[|^$", true},
      {"a]}", "a]}", true},
      {"^node$", "node", true},
      {"^(a|^b)$", "b", true},
      {"a^b", "ab", false},
      {"a$b", "ab", false},
      {"(a$)|b", "a", true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Matches(c.pattern, c.text), c.match)
        << "pattern \"" << absl::CHexEscape(c.pattern) << "\" text \""
        << absl::CHexEscape(c.text) << "\"";
  }
}

TEST(HostPattern, BadPatternsAreInvalidArgumentNamingTheProblem) {
  const std::pair<std::string, std::string> cases[] = {
      {"(", "unmatched '('"},
      {"(a|b", "unmatched '('"},
      {"a)", "unmatched ')'"},
      {"x)|(y", "unmatched ')'"},
      {"*a", "nothing to repeat"},
      {"a|+", "nothing to repeat"},
      {"(*)", "nothing to repeat"},
      {"{2}", "nothing to repeat"},
      {"a**", "stacks a repetition"},
      {"a+*", "stacks a repetition"},
      {"a{2}{3}", "stacks a repetition"},
      {"a*??", "stacks a repetition"},
      {"^*", "repeats an anchor"},
      {"a{", "'{' that does not start"},
      {"a{x}", "'{' that does not start"},
      {"a{,}", "'{' that does not start"},
      {"a{1,2", "'{' that does not start"},
      {"a{2,1}", "n < m"},
      {"a{1001}", "count over 1000"},
      {"a{99999999999999999999}", "count over 1000"},
      {"[a-", "unterminated bracket"},
      {"[]", "unterminated bracket"},
      {"[^]", "unterminated bracket"},
      {"[z-a]", "reversed range"},
      {"[[:alpha:]", "unterminated bracket"},
      {"[[:alpha]", "unterminated character class"},
      {"[[:nope:]]", "unknown character class \"nope\""},
      {"[[.a.]]", "collating element"},
      {"[[=a=]]", "collating element"},
      {"[a-\\d]", "ends a range with a class"},
      {"[a-[:alpha:]]", "ends a range with a class"},
      {"(a)\\1", "back-reference"},
      {"\\b", "unsupported escape \"\\b\""},
      {"[\\x]", "unsupported escape \"\\x\""},
      {"a\\", "lone backslash"},
      {"(?i)a", "\"(?\" group other than"},
      {"(?P<n>a)", "\"(?\" group other than"},
      {std::string("node\0x", 6), "NUL byte"},
      {std::string(101, '(') + "a" + std::string(101, ')'), "deeper than 100"},
      {std::string(1025, 'a'), "longer than 1024 bytes"},
      {"(a|bc){1000}", "too complex"},
      {"((((a{50}){50}){50}){50})", "too complex"},
      {"((a{,80}){,80})", "too complex"},
      {"(((x{0}){1000}){1000}){1000}", "too complex"},
  };
  for (const auto& [pattern, problem] : cases) {
    absl::StatusOr<HostPattern> p = HostPattern::Compile(pattern);
    EXPECT_THAT(p.status(), StatusIs(kInvalid, HasSubstr(problem)))
        << absl::CHexEscape(pattern);
    // The message names the pattern (escaped, truncated when long).
    EXPECT_THAT(p.status().message(),
                HasSubstr(absl::CHexEscape(pattern.substr(0, 100))));
  }
}

TEST(HostPattern, ErrorsGiveTheOffset) {
  EXPECT_THAT(HostPattern::Compile("node-(a|b").status(),
              StatusIs(kInvalid, HasSubstr("at offset 5")));
  EXPECT_THAT(HostPattern::Compile("ab**").status(),
              StatusIs(kInvalid, HasSubstr("at offset 3")));
}

// The shapes that make glibc's regcomp slow or exhaust memory compile to a
// small program here (or are refused), and match correctly.
TEST(HostPattern, PatternsThatBreakRegcompCompileSmall) {
  const std::string empty_loops = Repeat("()*", 300);
  const std::string nested_plus = Repeat("(()+)+", 100);
  const std::string nested_star = Repeat("(a*)*", 200) + "b";
  for (const std::string& pattern : {empty_loops, nested_plus, nested_star}) {
    absl::StatusOr<HostPattern> p = HostPattern::Compile(pattern);
    ASSERT_THAT(p.status(), IsOk());
    EXPECT_LE(p->program_size(), HostPattern::kMaxProgramSize);
  }
  EXPECT_TRUE(Matches(empty_loops, ""));
  EXPECT_FALSE(Matches(empty_loops, "a"));
  EXPECT_TRUE(Matches(nested_plus, ""));
  EXPECT_TRUE(Matches(nested_star, std::string(300, 'a') + "b"));
  EXPECT_FALSE(Matches(nested_star, std::string(300, 'a')));
  // "a" and 48 '+' would be 2^48 nodes in regcomp; here repetitions do not
  // stack at all.
  EXPECT_THAT(HostPattern::Compile("a" + std::string(48, '+')).status(),
              StatusIs(kInvalid, HasSubstr("stacks a repetition")));
}

TEST(HostPattern, ProgramSizeIsBoundedAtTheLimit) {
  // 4095 instructions plus the final match: the largest accepted program.
  absl::StatusOr<HostPattern> at_limit =
      HostPattern::Compile("a{1000}b{1000}c{1000}d{1000}e{95}");
  ASSERT_THAT(at_limit.status(), IsOk());
  EXPECT_EQ(at_limit->program_size(), HostPattern::kMaxProgramSize);
  EXPECT_THAT(
      HostPattern::Compile("a{1000}b{1000}c{1000}d{1000}e{96}").status(),
      StatusIs(kInvalid, HasSubstr("too complex")));
  EXPECT_TRUE(at_limit->FullMatch(
      std::string(1000, 'a') + std::string(1000, 'b') + std::string(1000, 'c') +
      std::string(1000, 'd') + std::string(95, 'e')));
}

TEST(HostPattern, PatternsUpToTheSizeLimitCompile) {
  const std::string longest(HostPattern::kMaxPatternSize, 'a');
  EXPECT_TRUE(Matches(longest, longest));
  EXPECT_FALSE(Matches(longest, longest + "a"));
}

TEST(HostPattern, LongTextsMatchWithoutRecursion) {
  const std::string text = std::string(1 << 16, 'a') + "b";
  EXPECT_TRUE(Matches("(a|aa)*b", text));
  EXPECT_FALSE(Matches("(a|aa)*c", text));
  EXPECT_TRUE(Matches(".*", text));
}

TEST(HostPattern, IsCopyableAndMovable) {
  absl::StatusOr<HostPattern> p = HostPattern::Compile("n[0-9]");
  ASSERT_THAT(p.status(), IsOk());
  const HostPattern copy = *p;
  const HostPattern moved = *std::move(p);
  EXPECT_TRUE(copy.FullMatch("n1"));
  EXPECT_TRUE(moved.FullMatch("n1"));
  EXPECT_EQ(copy.pattern(), "n[0-9]");
  const HostPattern empty;
  EXPECT_FALSE(empty.FullMatch(""));
}

// ------------------------------------------------- differential vs. glibc

// A random pattern in the syntax both engines read the same way.
class PatternGenerator {
 public:
  explicit PatternGenerator(uint64_t seed) : rng_(seed) {}

  std::string Pattern(int depth) {
    std::string out = Sequence(depth);
    while (Chance(5)) out += "|" + Sequence(depth);
    return out;
  }

 private:
  bool Chance(int one_in) {
    return std::uniform_int_distribution<int>(0, one_in - 1)(rng_) == 0;
  }
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  std::string Sequence(int depth) {
    std::string out;
    const int items = Pick(4);
    for (int i = 0; i < items; ++i) {
      out += Atom(depth);
      switch (Pick(8)) {
        case 0:
          out += "*";
          break;
        case 1:
          out += "+";
          break;
        case 2:
          out += "?";
          break;
        case 3: {
          const int m = Pick(3);
          switch (Pick(3)) {
            case 0:
              out += absl::StrCat("{", m, "}");
              break;
            case 1:
              out += absl::StrCat("{", m, ",}");
              break;
            default:
              out += absl::StrCat("{", m, ",", m + Pick(3), "}");
          }
          break;
        }
        default:
          break;
      }
    }
    return out;
  }

  std::string Atom(int depth) {
    static const char* const kAtoms[] = {"a",    "b",     ".",   "[ab]",
                                         "[^a]", "[a-c]", "\\.", "c"};
    if (depth > 0 && Chance(4)) return "(" + Pattern(depth - 1) + ")";
    return kAtoms[Pick(8)];
  }

  std::mt19937_64 rng_;
};

// glibc's answer to "does `pattern` match all of `text`": POSIX matching is
// leftmost-longest, so a full match exists iff the reported match spans the
// text.
bool GlibcFullMatch(const std::string& pattern, const std::string& text) {
  regex_t re;
  EXPECT_EQ(::regcomp(&re, pattern.c_str(), REG_EXTENDED), 0) << pattern;
  regmatch_t m;
  const bool full = ::regexec(&re, text.c_str(), 1, &m, 0) == 0 &&
                    m.rm_so == 0 && static_cast<size_t>(m.rm_eo) == text.size();
  ::regfree(&re);
  return full;
}

TEST(HostPattern, AgreesWithGlibcOnRandomPatterns) {
  PatternGenerator gen(20261126);
  std::mt19937_64 rng(7);
  int compared = 0, matched = 0;
  for (int i = 0; i < 1500; ++i) {
    const std::string pattern = gen.Pattern(3);
    absl::StatusOr<HostPattern> p = HostPattern::Compile(pattern);
    ASSERT_THAT(p.status(), IsOk()) << pattern;
    for (int t = 0; t < 20; ++t) {
      std::string text;
      const int len = std::uniform_int_distribution<int>(0, 6)(rng);
      for (int k = 0; k < len; ++k) {
        text += "abc."[std::uniform_int_distribution<int>(0, 3)(rng)];
      }
      const bool ours = p->FullMatch(text);
      ASSERT_EQ(ours, GlibcFullMatch(pattern, text))
          << "pattern \"" << pattern << "\" text \"" << text << "\"";
      ++compared;
      matched += ours;
    }
  }
  // Both answers occur often: the comparison is not vacuous.
  EXPECT_GT(matched, compared / 20);
  EXPECT_LT(matched, compared - compared / 20);
}

}  // namespace
}  // namespace proxystore
