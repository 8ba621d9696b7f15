#include "grammar/gbnf.h"

#include <algorithm>
#include <map>
#include <set>

namespace groak {

namespace {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

CharSet normalise(std::vector<std::pair<uint32_t, uint32_t>> r, bool negate) {
  std::sort(r.begin(), r.end());
  CharSet s;
  for (auto [lo, hi] : r) {
    if (!s.ranges.empty() && lo <= s.ranges.back().second + 1)
      s.ranges.back().second = std::max(s.ranges.back().second, hi);
    else
      s.ranges.push_back({lo, hi});
  }
  if (!negate) return s;
  CharSet n;
  uint32_t next = 0;
  for (auto [lo, hi] : s.ranges) {
    if (lo > next) n.ranges.push_back({next, lo - 1});
    next = hi + 1;
  }
  if (next <= kMaxCodePoint) n.ranges.push_back({next, kMaxCodePoint});
  return n;
}

// One rule as parsed: alternatives of items, where an item may still be a group or carry a repetition.
class Parser {
 public:
  explicit Parser(std::string_view text) : t_(text) {}

  Grammar run() {
    skip_space();
    while (pos_ < t_.size()) {
      const size_t at = pos_;
      const std::string name = parse_name();
      skip_space();
      if (t_.substr(pos_, 3) != "::=") fail(at, "expected '::=' after the rule name '" + name + "'");
      pos_ += 3;
      const uint32_t r = rule_id(name);
      if (defined_[r]) fail(at, "rule '" + name + "' is defined twice; join its alternatives with '|'");
      defined_[r] = true;
      g_.rules[r] = parse_alternates(name, /*nested=*/false);
      skip_space();
    }
    for (uint32_t r = 0; r < g_.rules.size(); ++r)
      if (!defined_[r])
        throw GrammarError("grammar: rule '" + g_.names[r] + "' is used (line " + std::to_string(line_of(used_at_[r])) +
                           ") but never defined");
    auto root = ids_.find("root");
    if (root == ids_.end()) throw GrammarError("grammar: there is no rule named 'root' (generation starts at root ::= ...)");
    g_.root = root->second;
    return std::move(g_);
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < t_.size(); ++i) {
      if (t_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw GrammarError("grammar, line " + std::to_string(line) + " column " + std::to_string(col) + ": " + what);
  }
  size_t line_of(size_t at) const { return static_cast<size_t>(std::count(t_.begin(), t_.begin() + static_cast<std::ptrdiff_t>(std::min(at, t_.size())), '\n')) + 1; }

  void skip_space() {
    while (pos_ < t_.size()) {
      const char c = t_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < t_.size() && t_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  std::string parse_name() {
    const size_t b = pos_;
    while (pos_ < t_.size() && is_name_char(t_[pos_])) ++pos_;
    if (pos_ == b) fail(b, "expected a rule name (letters, digits, '-' or '_')");
    return std::string(t_.substr(b, pos_ - b));
  }
  // A new rule starts here: a name, then ::=.
  bool at_rule_start() const {
    size_t p = pos_;
    while (p < t_.size() && is_name_char(t_[p])) ++p;
    if (p == pos_) return false;
    while (p < t_.size() && (t_[p] == ' ' || t_[p] == '\t' || t_[p] == '\n' || t_[p] == '\r')) ++p;
    return t_.substr(p, 3) == "::=";
  }
  uint32_t rule_id(const std::string& name) {
    auto [it, fresh] = ids_.emplace(name, static_cast<uint32_t>(g_.rules.size()));
    if (fresh) {
      g_.names.push_back(name);
      g_.rules.emplace_back();
      defined_.push_back(false);
      used_at_.push_back(pos_);
    }
    return it->second;
  }
  uint32_t fresh_rule(const std::string& parent, std::vector<Grammar::Sequence> alts) {
    // '#' cannot appear in a written name, so a rule defined later in the text never meets it.
    const std::string name = parent + "#" + std::to_string(++generated_);
    const uint32_t r = rule_id(name);
    defined_[r] = true;
    g_.rules[r] = std::move(alts);
    return r;
  }
  void count(size_t n) {
    elements_ += n;
    if (elements_ > kMaxGrammarElements)
      fail(pos_, "the grammar is too large (over " + std::to_string(kMaxGrammarElements) +
                     " elements once repetitions are expanded); use smaller repetition counts");
  }
  uint32_t add_set(CharSet s) {
    g_.sets.push_back(std::move(s));
    return static_cast<uint32_t>(g_.sets.size() - 1);
  }

  // A UTF-8 character or an escape inside a literal or class.
  uint32_t parse_char() {
    const size_t at = pos_;
    if (t_[pos_] == '\\') {
      if (++pos_ >= t_.size()) fail(at, "an escape '\\' at the end of the grammar");
      const char e = t_[pos_++];
      switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '\'': return static_cast<uint8_t>(e);
        case 'x': return parse_hex(2, at);
        case 'u': return parse_hex(4, at);
        case 'U': return parse_hex(8, at);
        default: fail(at, std::string("unknown escape '\\") + e + "' (known: \\n \\r \\t \\\\ \\\" \\[ \\] \\xHH \\uHHHH \\UHHHHHHHH)");
      }
    }
    const auto b = static_cast<uint8_t>(t_[pos_]);
    const int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || pos_ + static_cast<size_t>(len) > t_.size()) fail(at, "invalid UTF-8 in the grammar text");
    uint32_t c = len == 1 ? b : b & (0xFF >> (len + 1));
    for (int i = 1; i < len; ++i) {
      const auto cb = static_cast<uint8_t>(t_[pos_ + static_cast<size_t>(i)]);
      if ((cb & 0xC0) != 0x80) fail(at, "invalid UTF-8 in the grammar text");
      c = (c << 6) | (cb & 0x3F);
    }
    pos_ += static_cast<size_t>(len);
    return c;
  }
  uint32_t parse_hex(int digits, size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i, ++pos_) {
      if (pos_ >= t_.size()) fail(at, "a \\x/\\u/\\U escape needs " + std::to_string(digits) + " hex digits");
      const char c = t_[pos_];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) fail(at, "a \\x/\\u/\\U escape needs " + std::to_string(digits) + " hex digits");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    if (v > kMaxCodePoint) fail(at, "code point above U+10FFFF");
    return v;
  }

  std::vector<Grammar::Sequence> parse_alternates(const std::string& rule, bool nested) {
    std::vector<Grammar::Sequence> alts;
    alts.push_back(parse_sequence(rule, nested));
    while (pos_ < t_.size() && t_[pos_] == '|') {
      ++pos_;
      alts.push_back(parse_sequence(rule, nested));
    }
    return alts;
  }

  Grammar::Sequence parse_sequence(const std::string& rule, bool nested) {
    Grammar::Sequence seq;
    for (;;) {
      skip_space();
      if (pos_ >= t_.size()) break;
      const char c = t_[pos_];
      if (c == '|' || c == ')') break;
      if (!nested && at_rule_start()) break;
      const size_t at = pos_;
      size_t first = seq.size();  // the item's elements: [first, seq.size())
      if (c == '"') {
        ++pos_;
        while (pos_ < t_.size() && t_[pos_] != '"') {
          const uint32_t ch = parse_char();
          seq.push_back({GrammarElement::Kind::Chars, add_set(CharSet{{{ch, ch}}})});
        }
        if (pos_ >= t_.size()) fail(at, "a literal is not closed with '\"'");
        ++pos_;
      } else if (c == '[') {
        ++pos_;
        const bool negate = pos_ < t_.size() && t_[pos_] == '^';
        if (negate) ++pos_;
        std::vector<std::pair<uint32_t, uint32_t>> r;
        while (pos_ < t_.size() && t_[pos_] != ']') {
          const uint32_t lo = parse_char();
          uint32_t hi = lo;
          if (pos_ + 1 < t_.size() && t_[pos_] == '-' && t_[pos_ + 1] != ']') {
            ++pos_;
            hi = parse_char();
            if (hi < lo) fail(at, "a character range goes backwards");
          }
          r.push_back({lo, hi});
        }
        if (pos_ >= t_.size()) fail(at, "a character class is not closed with ']'");
        ++pos_;
        seq.push_back({GrammarElement::Kind::Chars, add_set(normalise(std::move(r), negate))});
      } else if (c == '.') {
        ++pos_;
        seq.push_back({GrammarElement::Kind::Chars, add_set(CharSet{{{0, kMaxCodePoint}}})});
      } else if (c == '(') {
        if (++depth_ > kMaxNesting) fail(at, "groups nest deeper than " + std::to_string(kMaxNesting) + " levels");
        ++pos_;
        auto alts = parse_alternates(rule, /*nested=*/true);
        skip_space();
        if (pos_ >= t_.size() || t_[pos_] != ')') fail(at, "a group '(' is not closed with ')'");
        ++pos_;
        --depth_;
        seq.push_back({GrammarElement::Kind::Rule, fresh_rule(rule, std::move(alts))});
      } else if (is_name_char(c)) {
        seq.push_back({GrammarElement::Kind::Rule, rule_id(parse_name())});
      } else if (c == '<') {
        fail(at, "token terminals (<...>) are not supported; write the text as a literal");
      } else {
        fail(at, std::string("unexpected '") + c + "'");
      }
      count(seq.size() - first);
      if (pos_ < t_.size()) repetition(rule, seq, first, at);
    }
    return seq;
  }

  // x*, x+, x?, x{m}, x{m,}, x{m,n} after the item seq[first..]: llama.cpp's expansion into rules.
  void repetition(const std::string& rule, Grammar::Sequence& seq, size_t first, size_t item_at) {
    const char c = t_[pos_];
    uint32_t lo = 0, hi = 0;
    bool unbounded = false;
    if (c == '*') {
      unbounded = true;
    } else if (c == '+') {
      lo = 1;
      unbounded = true;
    } else if (c == '?') {
      hi = 1;
    } else if (c == '{') {
      ++pos_;
      skip_space();
      lo = parse_count(item_at);
      skip_space();
      hi = lo;
      if (pos_ < t_.size() && t_[pos_] == ',') {
        ++pos_;
        skip_space();
        if (pos_ < t_.size() && t_[pos_] == '}') {
          unbounded = true;
        } else {
          hi = parse_count(item_at);
          if (hi < lo) fail(item_at, "x{m,n} needs m <= n");
        }
        skip_space();
      }
      if (pos_ >= t_.size() || t_[pos_] != '}') fail(item_at, "a repetition '{' is not closed with '}'");
    } else {
      return;
    }
    ++pos_;
    if (first == seq.size()) fail(item_at, "a repetition needs something to repeat");
    // The item as one element: a single element as it is, several (a literal) through a rule.
    GrammarElement item = seq[first];
    if (seq.size() - first > 1) {
      Grammar::Sequence body(seq.begin() + static_cast<std::ptrdiff_t>(first), seq.end());
      item = {GrammarElement::Kind::Rule, fresh_rule(rule, {std::move(body)})};
    }
    seq.resize(first);
    count(static_cast<size_t>(lo) + (unbounded ? 2 : 2 * static_cast<size_t>(hi - lo)));
    for (uint32_t i = 0; i < lo; ++i) seq.push_back(item);
    if (unbounded) {  // tail ::= item tail | ""
      const uint32_t tail = fresh_rule(rule, {});
      g_.rules[tail] = {{item, {GrammarElement::Kind::Rule, tail}}, {}};
      seq.push_back({GrammarElement::Kind::Rule, tail});
    } else if (hi > lo) {  // opt_k ::= item opt_{k-1} | ""  (k = hi - lo optional copies, nested)
      uint32_t inner = fresh_rule(rule, {{item}, {}});
      for (uint32_t k = 1; k < hi - lo; ++k) inner = fresh_rule(rule, {{item, {GrammarElement::Kind::Rule, inner}}, {}});
      seq.push_back({GrammarElement::Kind::Rule, inner});
    }
  }
  uint32_t parse_count(size_t item_at) {
    const size_t b = pos_;
    uint64_t v = 0;
    while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9') {
      v = v * 10 + static_cast<uint64_t>(t_[pos_++] - '0');
      if (v > kMaxRepetition) fail(item_at, "a repetition count above " + std::to_string(kMaxRepetition));
    }
    if (pos_ == b) fail(item_at, "expected a number in x{m,n}");
    return static_cast<uint32_t>(v);
  }

  std::string_view t_;
  size_t pos_ = 0;
  Grammar g_;
  std::map<std::string, uint32_t> ids_;
  std::vector<bool> defined_;
  std::vector<size_t> used_at_;  // [rules] where each was first named
  size_t generated_ = 0, elements_ = 0;
  int depth_ = 0;  // groups open
};

// The checks that keep the matcher finite: nothing reachable is unproductive or left-recursive.
void check(const Grammar& g) {
  const size_t n = g.rules.size();
  // Reachable from root.
  std::vector<bool> reach(n, false);
  std::vector<uint32_t> todo{g.root};
  reach[g.root] = true;
  while (!todo.empty()) {
    const uint32_t r = todo.back();
    todo.pop_back();
    for (const auto& alt : g.rules[r])
      for (const GrammarElement& e : alt)
        if (e.kind == GrammarElement::Kind::Rule && !reach[e.index]) {
          reach[e.index] = true;
          todo.push_back(e.index);
        }
  }
  // Productive (derives some finite text) and nullable (derives ""): a work list over the alternatives,
  // each waiting for its rule references (linear in the grammar; a chain of rules is common).
  auto solve = [&](bool nullability) {
    std::vector<bool> done(n, false);
    std::vector<std::vector<std::pair<uint32_t, uint32_t>>> users(n);  // rule → (rule, alternative) per use
    std::vector<std::vector<int64_t>> waiting(n);                       // [rule][alt] references not done yet
    std::vector<uint32_t> queue;
    for (uint32_t r = 0; r < n; ++r) {
      waiting[r].resize(g.rules[r].size());
      for (uint32_t a = 0; a < g.rules[r].size(); ++a) {
        int64_t wait = 0;
        for (const GrammarElement& e : g.rules[r][a]) {
          if (e.kind == GrammarElement::Kind::Chars) {
            if (nullability || g.sets[e.index].empty()) wait = INT64_MIN / 2;  // never
          } else {
            ++wait;
            users[e.index].push_back({r, a});
          }
        }
        waiting[r][a] = wait;
        if (wait == 0 && !done[r]) {
          done[r] = true;
          queue.push_back(r);
        }
      }
    }
    while (!queue.empty()) {
      const uint32_t d = queue.back();
      queue.pop_back();
      for (auto [r, a] : users[d])
        if (--waiting[r][a] == 0 && !done[r]) {
          done[r] = true;
          queue.push_back(r);
        }
    }
    return done;
  };
  const std::vector<bool> productive = solve(false), nullable = solve(true);
  for (size_t r = 0; r < n; ++r)
    if (reach[r] && !productive[r])
      throw GrammarError("grammar: rule '" + g.names[r] +
                         "' can never finish: every alternative needs the rule itself again (or a character class "
                         "that matches nothing), so generation would never end; give it an alternative that ends");
  // Left recursion: r reaches itself through references preceded only by nullable elements.
  std::vector<std::vector<uint32_t>> left(n);
  for (size_t r = 0; r < n; ++r)
    for (const auto& alt : g.rules[r])
      for (const GrammarElement& e : alt) {
        if (e.kind == GrammarElement::Kind::Chars) break;
        left[r].push_back(e.index);
        if (!nullable[e.index]) break;
      }
  std::vector<uint8_t> color(n, 0);  // 0 new, 1 on the path, 2 done
  std::vector<std::pair<uint32_t, size_t>> stack;
  for (uint32_t s = 0; s < n; ++s) {
    if (!reach[s] || color[s]) continue;
    stack.push_back({s, 0});
    color[s] = 1;
    while (!stack.empty()) {
      auto& [r, i] = stack.back();
      if (i < left[r].size()) {
        const uint32_t next = left[r][i++];
        if (color[next] == 1)
          throw GrammarError("grammar: rule '" + g.names[next] +
                             "' is left-recursive (it can come back to itself before reading a character); "
                             "write the repetition with * or + instead");
        if (color[next] == 0) {
          color[next] = 1;
          stack.push_back({next, 0});
        }
      } else {
        color[r] = 2;
        stack.pop_back();
      }
    }
  }
}

}  // namespace

bool CharSet::contains(uint32_t c) const {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), std::make_pair(c, UINT32_MAX));
  return it != ranges.begin() && std::prev(it)->second >= c;
}

bool CharSet::intersects(uint32_t lo, uint32_t hi) const {
  for (auto [a, b] : ranges)
    if (a <= hi && b >= lo) return true;
  return false;
}

bool CharSet::covers(uint32_t lo, uint32_t hi) const {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), std::make_pair(lo, UINT32_MAX));
  return it != ranges.begin() && std::prev(it)->first <= lo && std::prev(it)->second >= hi;
}

size_t Grammar::elements() const {
  size_t n = 0;
  for (const auto& r : rules)
    for (const auto& a : r) n += a.size() + 1;
  return n;
}

Grammar parse_gbnf(std::string_view text) {
  Grammar g = Parser(text).run();
  check(g);
  return g;
}

std::string gbnf_literal(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      static const char* hex = "0123456789ABCDEF";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace groak
