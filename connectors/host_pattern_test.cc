#include "proxystore/connectors/host_pattern.h"

#include <regex.h>

#include <cstdint>
#include <random>
#include <string>
#include <thread>
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
  EXPECT_THAT(p.status(), IsOk()) << absl::CHexEscape(pattern);
  return p.ok() && p->FullMatch(text);
}

struct Case {
  const char* pattern;
  const char* text;
  bool match;
};

// Every answer here is Python 3.11's re.fullmatch(pattern, text) too.
TEST(HostPattern, MatchesLikePythonsFullmatch) {
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
      {".", "\n", false},
      {".", "\xff", true},
      {"x*", "", true},
      {"x+", "", false},
      {"x?y", "y", true},
      {"x{3}", "xxx", true},
      {"x{3}", "xx", false},
      {"x{2,}", "xxxxx", true},
      {"x{2,}", "x", false},
      {"x{1,2}", "xxx", false},
      {"x{0}", "", true},
      {"x{0}y", "y", true},
      // Python's {,n} and {,} (RE2 alone would read them literally).
      {"x{,2}", "", true},
      {"x{,2}", "xx", true},
      {"x{,2}", "xxx", false},
      {"x{,}", "xxxx", true},
      {"x{,2}?", "x", true},
      {"x{01,002}", "xx", true},  // RE2 alone: literal text
      {"x{0002}", "xx", true},
      {"[{,2}]+", "{,2}", true},
      {"\\{,2}", "{,2}", true},
      // '{' that starts no count is literal.
      {"a{", "a{", true},
      {"a{x}", "a{x}", true},
      {"a{1,2", "a{1,2", true},
      // Lazy forms: the same full matches.
      {"x*?y+?z??", "yz", true},
      {"x{1,3}?", "xxx", true},
      {"(?:ab)+", "abab", true},
      {"(ab)+", "aba", false},
      {"(?P<n>ab)+", "abab", true},
      {"()*", "", true},
      {"(a*)*b", "aaab", true},
      {"(|a)+", "aa", true},
      {"[]a-]+", "]a-", true},
      {"[^]a]", "]", false},
      {"[^]a]", "b", true},
      {"[a-c-]", "-", true},
      {"[-a]", "-", true},
      {"[(?]+", "(?", true},
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
      {"\\_\\-\\ ", "_- ", true},
      {"caf\\\xe9", "caf\xe9", true},  // an escaped non-ASCII byte
      {"\\x41\\t", "A\t", true},
      {"a]}", "a]}", true},
      {"^node$", "node", true},
      {"^(a|^b)$", "b", true},
      {"a^b", "ab", false},
      {"a$b", "ab", false},
      {"(a$)|b", "a", true},
      {"\\Anode\\Z", "node", true},
      {"node\\b", "node", true},
      {"a\\Bb", "ab", true},
      {"a\\bb", "ab", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Matches(c.pattern, c.text), c.match)
        << "pattern \"" << absl::CHexEscape(c.pattern) << "\" text \""
        << absl::CHexEscape(c.text) << "\"";
  }
}

// Not Python's readings, on purpose (host_pattern.h).
TEST(HostPattern, KnownDifferencesFromPython) {
  EXPECT_TRUE(Matches("[[:alpha:]]{3}", "abC"));  // a POSIX class
  EXPECT_FALSE(Matches("[[:alpha:]]{3}", "ab1"));
  EXPECT_TRUE(Matches("[[:digit:]-z]+", "1-z"));
  EXPECT_FALSE(Matches("\\w", "\xe9"));  // ASCII classes
  EXPECT_FALSE(Matches("\\s", "\v"));
  EXPECT_FALSE(Matches("a$\n", "a\n"));        // $ is the very end
  EXPECT_TRUE(Matches("[\xc3\xa9]", "\xa9"));  // bytes, not characters
}

TEST(HostPattern, BadPatternsAreInvalidArgumentNamingTheProblem) {
  const std::pair<std::string, std::string> cases[] = {
      // Refused before RE2 sees them.
      {"(a)\\1", "back-reference"},
      {"(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)\\12", "back-reference"},
      {"[\\1]", "back-reference"},
      {"(?i)a", "\"(?\" group other than"},
      {"a(?i:b)", "\"(?\" group other than"},
      {"(?P=n)", "\"(?\" group other than"},
      {"(?=a)", "\"(?\" group other than"},
      {"(?<=a)b", "\"(?\" group other than"},
      {"(?#c)", "\"(?\" group other than"},
      {"\\C", "escape \"\\C\""},
      {"\\Qa{,2}\\E", "escape \"\\Q\""},
      {"\\pN", "escape \"\\p\""},
      {"\\u0041", "escape \"\\u\""},
      {"[\\q]", "escape \"\\q\""},
      {std::string("node\0x", 6), "NUL byte"},
      {std::string(1025, 'a'), "longer than 1024 bytes"},
      // RE2's own errors.
      {"(", "missing )"},
      {"(a|b", "missing )"},
      {"a)", "unexpected )"},
      {"x)|(y", "unexpected )"},
      {"*a", "no argument for repetition operator"},
      {"a|+", "no argument for repetition operator"},
      {"(*)", "no argument for repetition operator"},
      {"{2}", "no argument for repetition operator"},
      {"{,2}", "no argument for repetition operator"},
      {"a**", "bad repetition operator: **"},
      {"a+*", "bad repetition operator"},
      {"a{2}{3}", "bad repetition operator"},
      {"a*??", "bad repetition operator"},
      {"a*+", "bad repetition operator"},  // Python 3.11's possessive form
      {"a{1001}", "repetition count over 1000"},
      {"a{0,01001}", "repetition count over 1000"},
      {"a{99999999999999999999}", "repetition count over 1000"},
      {"a{,99999999999999999999}", "repetition count over 1000"},
      {"((((a{50}){50}){50}){50})", "invalid repetition size"},
      {"((a{,80}){,80})", "invalid repetition size"},
      {"a{2,1}", "invalid repetition size"},
      {"[a-", "missing ]"},
      {"[]", "missing ]"},
      {"[^]", "missing ]"},
      {"[z-a]", "invalid character class range"},
      {"[[:nope:]]", "invalid character class range"},
      {"a\\", "trailing \\\\"},
      {"(?P<a", "invalid named capture group"},
  };
  for (const auto& [pattern, problem] : cases) {
    absl::StatusOr<HostPattern> p = HostPattern::Compile(pattern);
    EXPECT_THAT(p.status(), StatusIs(kInvalid, HasSubstr(problem)))
        << absl::CHexEscape(pattern);
    // The message names the pattern (escaped, truncated when long).
    EXPECT_THAT(
        p.status().message(),
        HasSubstr(absl::StrCat("host pattern \"",
                               absl::CHexEscape(pattern.substr(0, 100)))))
        << absl::CHexEscape(pattern);
  }
}

TEST(HostPattern, RefusalsBeforeRe2GiveTheOffset) {
  EXPECT_THAT(HostPattern::Compile("node-(a)\\1").status(),
              StatusIs(kInvalid, HasSubstr("at offset 8")));
  EXPECT_THAT(HostPattern::Compile("ab(?i)c").status(),
              StatusIs(kInvalid, HasSubstr("at offset 2")));
}

// Shapes that cost exponential time in a backtracking engine, or blew up
// glibc's regcomp, compile to small programs and answer correctly.
TEST(HostPattern, PathologicalPatternsCompileSmallAndAnswerCorrectly) {
  const std::string long_name(20000, 'x');
  const std::string empty_loops = Repeat("()*", 300);
  const std::string nested_plus = Repeat("(()+)+", 100);
  const std::string nested_star = Repeat("(a*)*", 200) + "b";
  for (const std::string& pattern :
       {std::string("(x+x+)+y"), std::string("(x*)*y"), std::string("(x|xx)+y"),
        empty_loops, nested_plus, nested_star}) {
    absl::StatusOr<HostPattern> p = HostPattern::Compile(pattern);
    ASSERT_THAT(p.status(), IsOk());
    EXPECT_LE(p->program_size(), 100u) << pattern;
  }
  EXPECT_FALSE(Matches("(x+x+)+y", long_name));
  EXPECT_TRUE(Matches("(x+x+)+y", long_name + "y"));
  EXPECT_FALSE(Matches("(x*)*y", long_name));
  EXPECT_FALSE(Matches("(x|xx)+y", long_name));
  EXPECT_TRUE(Matches("(x|xx)+", long_name));
  EXPECT_TRUE(Matches(empty_loops, ""));
  EXPECT_FALSE(Matches(empty_loops, "a"));
  EXPECT_TRUE(Matches(nested_plus, ""));
  EXPECT_TRUE(Matches(nested_star, std::string(300, 'a') + "b"));
  EXPECT_FALSE(Matches(nested_star, std::string(300, 'a')));
  // "a" and 48 '+' would be 2^48 nodes in regcomp; RE2 does not stack
  // repetitions.
  EXPECT_THAT(HostPattern::Compile("a" + std::string(48, '+')).status(),
              StatusIs(kInvalid, HasSubstr("bad repetition operator")));
}

TEST(HostPattern, ProgramSizeIsBoundedAtTheLimit) {
  // The largest accepted program, and one instruction more.
  absl::StatusOr<HostPattern> at_limit =
      HostPattern::Compile("a{1000}b{1000}c{1000}d{1000}e{92}");
  ASSERT_THAT(at_limit.status(), IsOk());
  EXPECT_EQ(at_limit->program_size(), HostPattern::kMaxProgramSize);
  EXPECT_TRUE(at_limit->FullMatch(
      std::string(1000, 'a') + std::string(1000, 'b') + std::string(1000, 'c') +
      std::string(1000, 'd') + std::string(92, 'e')));
  EXPECT_THAT(
      HostPattern::Compile("a{1000}b{1000}c{1000}d{1000}e{93}").status(),
      StatusIs(kInvalid, HasSubstr("too complex")));
  // Past kMaxMemory RE2 gives up compiling by itself; the same error.
  for (const std::string& pattern :
       {Repeat("x{0,1000}", 100), Repeat("(a|b){1000}", 40),
        Repeat("[^a]{0,1000}", 80)}) {
    EXPECT_THAT(HostPattern::Compile(pattern).status(),
                StatusIs(kInvalid, HasSubstr("too complex")))
        << pattern.substr(0, 20);
  }
}

TEST(HostPattern, PatternsUpToTheSizeLimitCompile) {
  const std::string longest(HostPattern::kMaxPatternSize, 'a');
  EXPECT_TRUE(Matches(longest, longest));
  EXPECT_FALSE(Matches(longest, longest + "a"));
}

TEST(HostPattern, LongTextsMatch) {
  const std::string text = std::string(1 << 16, 'a') + "b";
  EXPECT_TRUE(Matches("(a|aa)*b", text));
  EXPECT_FALSE(Matches("(a|aa)*c", text));
  EXPECT_TRUE(Matches(".*", text));
  EXPECT_FALSE(Matches(".*", text + "\n"));
}

TEST(HostPattern, IsCopyableAndMovable) {
  absl::StatusOr<HostPattern> p = HostPattern::Compile("n[0-9]");
  ASSERT_THAT(p.status(), IsOk());
  const HostPattern copy = *p;
  HostPattern moved = *std::move(p);
  EXPECT_TRUE(copy.FullMatch("n1"));
  EXPECT_TRUE(moved.FullMatch("n1"));
  EXPECT_EQ(copy.pattern(), "n[0-9]");
  EXPECT_EQ(copy.program_size(), moved.program_size());
  HostPattern target = std::move(moved);
  EXPECT_TRUE(target.FullMatch("n2"));
  const HostPattern empty;
  EXPECT_FALSE(empty.FullMatch(""));
  EXPECT_EQ(empty.program_size(), 0u);
}

TEST(HostPattern, CopiesMatchFromManyThreads) {
  absl::StatusOr<HostPattern> p = HostPattern::Compile("node-[0-9]{1,4}");
  ASSERT_THAT(p.status(), IsOk());
  std::vector<std::thread> threads;
  std::vector<int> hits(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t, copy = *p] {
      for (int i = 0; i < 2000; ++i) {
        const std::string name = absl::StrCat("node-", i);
        hits[t] += copy.FullMatch(name) + p->FullMatch(name);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(hits[t], 2 * 2000) << t;
}

// ------------------------------------------------- differential vs. glibc

// A random pattern in the syntax both engines read the same way.
class PatternGenerator {
 public:
  explicit PatternGenerator(uint64_t state) : rng_(state) {}

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
