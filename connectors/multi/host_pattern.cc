#include "proxystore/connectors/multi/host_pattern.h"

#include <algorithm>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proxystore/base/status.h"

namespace proxystore {

using ByteSet = std::bitset<256>;

namespace {

// At most this much of a bad pattern is echoed in an error message.
constexpr size_t kMaxQuotedSize = 200;

std::string Quote(absl::string_view s) {
  return QuoteForMessage(s, kMaxQuotedSize);
}

void AddRange(ByteSet* set, unsigned char lo, unsigned char hi) {
  for (unsigned c = lo; c <= hi; ++c) set->set(c);
}

template <typename Pred>
ByteSet SetOf(Pred pred) {
  ByteSet set;
  for (unsigned c = 0; c < 256; ++c) {
    if (pred(static_cast<unsigned char>(c))) set.set(c);
  }
  return set;
}

// The set of a POSIX class name ("alpha", ...), or nullopt.
std::optional<ByteSet> PosixClass(absl::string_view name) {
  using Pred = bool (*)(unsigned char);
  static constexpr std::pair<const char*, Pred> kClasses[] = {
      {"alpha", absl::ascii_isalpha}, {"digit", absl::ascii_isdigit},
      {"alnum", absl::ascii_isalnum}, {"upper", absl::ascii_isupper},
      {"lower", absl::ascii_islower}, {"space", absl::ascii_isspace},
      {"blank", absl::ascii_isblank}, {"punct", absl::ascii_ispunct},
      {"print", absl::ascii_isprint}, {"graph", absl::ascii_isgraph},
      {"cntrl", absl::ascii_iscntrl}, {"xdigit", absl::ascii_isxdigit},
  };
  for (const auto& [class_name, pred] : kClasses) {
    if (name == class_name) return SetOf(pred);
  }
  return std::nullopt;
}

// \d \D \w \W \s \S (ASCII), or nullopt for any other letter.
std::optional<ByteSet> EscapeClass(char c) {
  ByteSet set;
  switch (absl::ascii_tolower(static_cast<unsigned char>(c))) {
    case 'd':
      set = SetOf(absl::ascii_isdigit);
      break;
    case 'w':
      set = SetOf(
          [](unsigned char b) { return absl::ascii_isalnum(b) || b == '_'; });
      break;
    case 's':
      set = SetOf(
          [](unsigned char b) { return b == ' ' || (b >= '\t' && b <= '\r'); });
      break;
    default:
      return std::nullopt;
  }
  if (absl::ascii_isupper(static_cast<unsigned char>(c))) set.flip();
  return set;
}

uint64_t Add(uint64_t a, uint64_t b) {
  constexpr uint64_t kCap = HostPattern::kMaxProgramSize + 1;
  return std::min(a + b, kCap);
}
uint64_t Mul(uint64_t a, uint64_t b) {
  constexpr uint64_t kCap = HostPattern::kMaxProgramSize + 1;
  return a != 0 && b > kCap / a ? kCap : std::min(a * b, kCap);
}

}  // namespace

// Parses a pattern into a syntax tree (recursive descent, depth bounded by
// kMaxDepth), checks the size of its program, then emits the program.
class HostPatternCompiler {
 public:
  explicit HostPatternCompiler(absl::string_view pattern) : p_(pattern) {}

  absl::StatusOr<HostPattern> Compile() {
    if (p_.size() > HostPattern::kMaxPatternSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("host pattern ", Quote(p_), " is longer than ",
                       HostPattern::kMaxPatternSize, " bytes"));
    }
    if (p_.find('\0') != absl::string_view::npos) {
      return Error(p_.find('\0'), "contains a NUL byte");
    }
    PROXYSTORE_ASSIGN_OR_RETURN(const int root, Alternation(0));
    if (i_ < p_.size()) {
      // Alternation stops only at ')' or the end.
      return Error(i_, "has an unmatched ')'");
    }
    const uint64_t size = Add(Size(root), 1);
    if (size > HostPattern::kMaxProgramSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("host pattern ", Quote(p_),
                       " is too complex: its repetitions expand to more than ",
                       HostPattern::kMaxProgramSize, " instructions"));
    }
    out_.pattern_ = std::string(p_);
    out_.program_.reserve(size);
    Emit(root);
    Push({HostPattern::Inst::kMatch});
    return std::move(out_);
  }

 private:
  struct Node {
    enum Kind { kEmpty, kSet, kConcat, kAlt, kRepeat, kBegin, kEnd };
    Kind kind;
    std::vector<int> children;  // kConcat, kAlt; kRepeat: one
    uint32_t set = 0;           // kSet: index into out_.sets_
    int min = 0, max = 0;       // kRepeat; max < 0: unbounded
  };

  absl::Status Error(size_t offset, absl::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "host pattern ", Quote(p_), " ", problem, " (at offset ", offset, ")"));
  }

  bool At(char c) const { return i_ < p_.size() && p_[i_] == c; }
  static bool IsRepetition(char c) {
    return c == '*' || c == '+' || c == '?' || c == '{';
  }

  int NewNode(Node node) {
    nodes_.push_back(std::move(node));
    return static_cast<int>(nodes_.size() - 1);
  }
  int NewSet(const ByteSet& set) {
    out_.sets_.push_back(set);
    return NewNode(
        {Node::kSet, {}, static_cast<uint32_t>(out_.sets_.size() - 1)});
  }

  // alternation := sequence ('|' sequence)*
  absl::StatusOr<int> Alternation(int depth) {
    std::vector<int> branches;
    while (true) {
      PROXYSTORE_ASSIGN_OR_RETURN(const int branch, Sequence(depth));
      branches.push_back(branch);
      if (!At('|')) break;
      ++i_;
    }
    if (branches.size() == 1) return branches[0];
    return NewNode({Node::kAlt, std::move(branches)});
  }

  // sequence := (atom repetition?)*, up to '|', ')' or the end.
  absl::StatusOr<int> Sequence(int depth) {
    std::vector<int> items;
    while (i_ < p_.size() && !At('|') && !At(')')) {
      if (IsRepetition(p_[i_])) return Error(i_, "has nothing to repeat");
      const bool anchor = At('^') || At('$');
      PROXYSTORE_ASSIGN_OR_RETURN(int item, Atom(depth));
      if (i_ < p_.size() && IsRepetition(p_[i_])) {
        if (anchor) return Error(i_, "repeats an anchor");
        PROXYSTORE_ASSIGN_OR_RETURN(item, Repetition(item));
        if (i_ < p_.size() && IsRepetition(p_[i_])) {
          return Error(i_, "stacks a repetition on a repetition");
        }
      }
      items.push_back(item);
    }
    if (items.empty()) return NewNode({Node::kEmpty});
    if (items.size() == 1) return items[0];
    return NewNode({Node::kConcat, std::move(items)});
  }

  absl::StatusOr<int> Atom(int depth) {
    const size_t start = i_;
    const char c = p_[i_++];
    switch (c) {
      case '(': {
        if (depth >= HostPattern::kMaxDepth) {
          return Error(start, absl::StrCat("nests groups deeper than ",
                                           HostPattern::kMaxDepth));
        }
        if (At('?')) {
          if (i_ + 1 < p_.size() && p_[i_ + 1] == ':') {
            i_ += 2;
          } else {
            return Error(start,
                         "uses a \"(?\" group other than \"(?:\", which host "
                         "patterns do not support");
          }
        }
        PROXYSTORE_ASSIGN_OR_RETURN(const int inner, Alternation(depth + 1));
        if (!At(')')) return Error(start, "has an unmatched '('");
        ++i_;
        return inner;
      }
      case '[':
        return Bracket(start);
      case '.': {
        ByteSet any;
        any.set();
        any.reset('\n');
        return NewSet(any);
      }
      case '^':
        return NewNode({Node::kBegin});
      case '$':
        return NewNode({Node::kEnd});
      case '\\': {
        PROXYSTORE_ASSIGN_OR_RETURN(const ByteSet set, Escape(start));
        return NewSet(set);
      }
      default: {
        ByteSet one;
        one.set(static_cast<unsigned char>(c));
        return NewSet(one);
      }
    }
  }

  // After a '\' at `start` (consumed): the escaped byte or class.
  absl::StatusOr<ByteSet> Escape(size_t start) {
    if (i_ >= p_.size()) return Error(start, "ends with a lone backslash");
    const unsigned char e = static_cast<unsigned char>(p_[i_++]);
    if (absl::ascii_isdigit(e)) {
      return Error(start,
                   "uses a back-reference, which host patterns do not "
                   "support");
    }
    if (absl::ascii_isalpha(e)) {
      std::optional<ByteSet> set = EscapeClass(static_cast<char>(e));
      if (!set.has_value()) {
        return Error(start, absl::StrCat("uses the unsupported escape \"\\",
                                         std::string(1, e), "\""));
      }
      return *set;
    }
    ByteSet one;
    one.set(e);
    return one;
  }

  // A bracket expression whose '[' at `start` was consumed.
  absl::StatusOr<int> Bracket(size_t start) {
    ByteSet set;
    const bool negate = At('^');
    if (negate) ++i_;
    bool first = true;
    while (true) {
      if (i_ >= p_.size()) {
        return Error(start, "has an unterminated bracket expression");
      }
      if (At(']') && !first) {
        ++i_;
        break;
      }
      first = false;
      const size_t item = i_;
      // A POSIX class, an escape class, or a byte that may start a range.
      if (At('[') && i_ + 1 < p_.size() &&
          (p_[i_ + 1] == ':' || p_[i_ + 1] == '.' || p_[i_ + 1] == '=')) {
        if (p_[i_ + 1] != ':') {
          return Error(item,
                       "uses a collating element or equivalence class, "
                       "which host patterns do not support");
        }
        const size_t end = p_.find(":]", i_ + 2);
        if (end == absl::string_view::npos) {
          return Error(item, "has an unterminated character class");
        }
        const absl::string_view name = p_.substr(i_ + 2, end - i_ - 2);
        std::optional<ByteSet> cls = PosixClass(name);
        if (!cls.has_value()) {
          return Error(item, absl::StrCat("names the unknown character class ",
                                          Quote(name)));
        }
        set |= *cls;
        i_ = end + 2;
        continue;
      }
      PROXYSTORE_ASSIGN_OR_RETURN(std::optional<unsigned char> lo,
                                  BracketByte(&set));
      if (!lo.has_value()) continue;  // an escape class, already added
      if (At('-') && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
        ++i_;
        const size_t hi_at = i_;
        if (At('[') && i_ + 1 < p_.size() &&
            (p_[i_ + 1] == ':' || p_[i_ + 1] == '.' || p_[i_ + 1] == '=')) {
          return Error(hi_at, "ends a range with a class");
        }
        ByteSet ignored;
        PROXYSTORE_ASSIGN_OR_RETURN(std::optional<unsigned char> hi,
                                    BracketByte(&ignored));
        if (!hi.has_value()) return Error(hi_at, "ends a range with a class");
        if (*hi < *lo) return Error(item, "has a reversed range");
        AddRange(&set, *lo, *hi);
      } else {
        set.set(*lo);
      }
    }
    if (negate) set.flip();
    return NewSet(set);
  }

  // One byte inside brackets (plain or escaped); an escape class is added to
  // *set and gives nullopt.
  absl::StatusOr<std::optional<unsigned char>> BracketByte(ByteSet* set) {
    const size_t start = i_;
    const unsigned char c = static_cast<unsigned char>(p_[i_++]);
    if (c != '\\') return std::optional<unsigned char>(c);
    PROXYSTORE_ASSIGN_OR_RETURN(const ByteSet escaped, Escape(start));
    if (escaped.count() == 1) {
      for (unsigned b = 0; b < 256; ++b) {
        if (escaped.test(b)) {
          return std::optional<unsigned char>(static_cast<unsigned char>(b));
        }
      }
    }
    *set |= escaped;
    return std::optional<unsigned char>();
  }

  // Decimal digits at i_, saturating above kMaxCount; nullopt if none.
  std::optional<int> Count() {
    if (i_ >= p_.size() || !absl::ascii_isdigit(p_[i_])) return std::nullopt;
    int v = 0;
    while (i_ < p_.size() && absl::ascii_isdigit(p_[i_])) {
      v = std::min(v * 10 + (p_[i_] - '0'), HostPattern::kMaxCount + 1);
      ++i_;
    }
    return v;
  }

  // The repetition operator at i_ applied to `item`, then an optional lazy
  // '?', which changes nothing here.
  absl::StatusOr<int> Repetition(int item) {
    const size_t start = i_;
    int min = 0, max = -1;
    switch (p_[i_++]) {
      case '*':
        break;
      case '+':
        min = 1;
        break;
      case '?':
        max = 1;
        break;
      default: {  // '{'
        std::optional<int> m = Count();
        std::optional<int> n;
        const bool comma = At(',');
        if (comma) {
          ++i_;
          n = Count();
        }
        if (!At('}') || (!m.has_value() && !n.has_value())) {
          return Error(start,
                       "has a '{' that does not start a repetition count "
                       "{m}, {m,}, {m,n} or {,n}");
        }
        ++i_;
        min = m.value_or(0);
        max = comma ? n.value_or(-1) : min;
        if (min > HostPattern::kMaxCount || max > HostPattern::kMaxCount) {
          return Error(start, absl::StrCat("has a repetition count over ",
                                           HostPattern::kMaxCount));
        }
        if (max >= 0 && max < min) {
          return Error(start, "has a repetition count {m,n} with n < m");
        }
      }
    }
    if (At('?')) ++i_;
    return NewNode({Node::kRepeat, {item}, 0, min, max});
  }

  // Instructions Emit(n) appends (saturating above kMaxProgramSize).
  uint64_t Size(int n) const {
    const Node& node = nodes_[n];
    switch (node.kind) {
      case Node::kEmpty:  // a no-op instruction, for the reason below
      case Node::kSet:
      case Node::kBegin:
      case Node::kEnd:
        return 1;
      case Node::kConcat: {
        uint64_t total = 0;
        for (int c : node.children) total = Add(total, Size(c));
        return total;
      }
      case Node::kAlt: {
        // A split and a jump per branch but the last.
        uint64_t total = 2 * (node.children.size() - 1);
        for (int c : node.children) total = Add(total, Size(c));
        return total;
      }
      case Node::kRepeat: {
        // x{0} still costs one (no-op) instruction, so that repeating it
        // is not free: the emitter's work stays bounded by the program size.
        if (node.max == 0) return 1;
        const uint64_t body = Size(node.children[0]);
        const uint64_t fixed = Mul(body, static_cast<uint64_t>(node.min));
        if (node.max < 0) return Add(fixed, Add(body, 2));
        return Add(fixed, Mul(Add(body, 1),
                              static_cast<uint64_t>(node.max - node.min)));
      }
    }
    return 0;
  }

  uint32_t Push(HostPattern::Inst inst) {
    out_.program_.push_back(inst);
    return static_cast<uint32_t>(out_.program_.size() - 1);
  }
  uint32_t Here() const { return static_cast<uint32_t>(out_.program_.size()); }

  // Appends the program of node n; control falls through to Here() after.
  void Emit(int n) {
    using Inst = HostPattern::Inst;
    const Node& node = nodes_[n];
    switch (node.kind) {
      case Node::kEmpty:
        Push({Inst::kJmp, Here() + 1});
        return;
      case Node::kSet:
        Push({Inst::kByte, Here() + 1, 0, node.set});
        return;
      case Node::kBegin:
        Push({Inst::kBegin, Here() + 1});
        return;
      case Node::kEnd:
        Push({Inst::kEnd, Here() + 1});
        return;
      case Node::kConcat:
        for (int c : node.children) Emit(c);
        return;
      case Node::kAlt: {
        std::vector<uint32_t> jumps;
        for (size_t b = 0; b + 1 < node.children.size(); ++b) {
          const uint32_t split = Push({Inst::kSplit, Here() + 1});
          Emit(node.children[b]);
          jumps.push_back(Push({Inst::kJmp}));
          out_.program_[split].alt = Here();
        }
        Emit(node.children.back());
        for (uint32_t j : jumps) out_.program_[j].next = Here();
        return;
      }
      case Node::kRepeat: {
        const int body = node.children[0];
        if (node.max == 0) {
          Push({Inst::kJmp, Here() + 1});
          return;
        }
        for (int k = 0; k < node.min; ++k) Emit(body);
        if (node.max < 0) {
          const uint32_t loop = Push({Inst::kSplit, Here() + 1});
          Emit(body);
          Push({Inst::kJmp, loop});
          out_.program_[loop].alt = Here();
        } else {
          for (int k = node.min; k < node.max; ++k) {
            const uint32_t split = Push({Inst::kSplit, Here() + 1});
            Emit(body);
            out_.program_[split].alt = Here();
          }
        }
        return;
      }
    }
  }

  absl::string_view p_;
  size_t i_ = 0;
  std::vector<Node> nodes_;
  HostPattern out_;
};

absl::StatusOr<HostPattern> HostPattern::Compile(absl::string_view pattern) {
  return HostPatternCompiler(pattern).Compile();
}

namespace {

// The threads at one text position: program counters, each at most once.
class ThreadList {
 public:
  explicit ThreadList(size_t program_size) : seen_(program_size, 0) {
    pcs_.reserve(program_size);
  }

  void Clear() {
    pcs_.clear();
    ++generation_;
  }
  // False if pc is already in the list.
  bool Insert(uint32_t pc) {
    if (seen_[pc] == generation_) return false;
    seen_[pc] = generation_;
    pcs_.push_back(pc);
    return true;
  }
  const std::vector<uint32_t>& pcs() const { return pcs_; }

 private:
  std::vector<uint32_t> pcs_;
  std::vector<uint64_t> seen_;
  uint64_t generation_ = 1;
};

}  // namespace

bool HostPattern::FullMatch(absl::string_view text) const {
  if (program_.empty()) return false;  // moved-from
  ThreadList current(program_.size()), next(program_.size());
  std::vector<uint32_t> stack;
  // Adds pc and everything it reaches without consuming a byte, at `pos`.
  auto add = [&](ThreadList* list, uint32_t pc, size_t pos) {
    stack.push_back(pc);
    while (!stack.empty()) {
      const uint32_t at = stack.back();
      stack.pop_back();
      if (!list->Insert(at)) continue;
      const Inst& inst = program_[at];
      switch (inst.op) {
        case Inst::kSplit:
          stack.push_back(inst.alt);
          stack.push_back(inst.next);
          break;
        case Inst::kJmp:
          stack.push_back(inst.next);
          break;
        case Inst::kBegin:
          if (pos == 0) stack.push_back(inst.next);
          break;
        case Inst::kEnd:
          if (pos == text.size()) stack.push_back(inst.next);
          break;
        case Inst::kByte:
        case Inst::kMatch:
          break;
      }
    }
  };
  current.Clear();
  add(&current, 0, 0);
  for (size_t pos = 0; pos < text.size(); ++pos) {
    const unsigned char c = static_cast<unsigned char>(text[pos]);
    next.Clear();
    for (uint32_t pc : current.pcs()) {
      const Inst& inst = program_[pc];
      if (inst.op == Inst::kByte && sets_[inst.set].test(c)) {
        add(&next, inst.next, pos + 1);
      }
    }
    if (next.pcs().empty()) return false;
    std::swap(current, next);
  }
  for (uint32_t pc : current.pcs()) {
    if (program_[pc].op == Inst::kMatch) return true;
  }
  return false;
}

}  // namespace proxystore
