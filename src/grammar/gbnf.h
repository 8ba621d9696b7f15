// Grammars for constrained output, in llama.cpp's GBNF syntax (grammars/README.md of llama.cpp):
//   root  ::= object            rules: name ::= alternatives; `|` between alternatives
//   "lit" [a-z0-9] [^"\\] .     terminals: literals, character classes (negated with ^), any character
//   ( ... ) x* x+ x? x{m,n}     groups and repetition; # comments to the end of the line
// Parsing expands groups and repetition into plain rules, so a Grammar is only rules → alternatives →
// sequences of character sets and rule references: what the matcher (grammar/matcher.h) runs.
// Characters are Unicode code points; literals and classes are UTF-8 in the text.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/error.h"

namespace groak {

// A grammar that cannot be used: the message says where (line:column or rule) and what to change.
class GrammarError : public Error {
 public:
  explicit GrammarError(const std::string& what) : Error(what) {}
};

// Code points, as sorted disjoint inclusive ranges.
struct CharSet {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  bool contains(uint32_t c) const;
  bool intersects(uint32_t lo, uint32_t hi) const;  // any member in [lo, hi]
  bool covers(uint32_t lo, uint32_t hi) const;      // every member of [lo, hi] (lo <= hi)
  bool empty() const { return ranges.empty(); }
};

struct GrammarElement {
  enum class Kind : uint8_t { Chars, Rule };
  Kind kind = Kind::Chars;
  uint32_t index = 0;  // into Grammar::sets or Grammar::rules
};

struct Grammar {
  using Sequence = std::vector<GrammarElement>;
  std::vector<std::string> names;                  // [rules] as written; generated rules get "name#N"
  std::vector<std::vector<Sequence>> rules;        // [rules][alternatives] (an empty sequence matches "")
  std::vector<CharSet> sets;                       // [sets]
  uint32_t root = 0;
  size_t elements() const;                         // the grammar's size, for limits
};

// Bounds on what a request may ask for (a grammar is untrusted input).
inline constexpr size_t kMaxGrammarElements = 200000;
inline constexpr uint32_t kMaxRepetition = 10000;  // x{m,n}: m and n at most this
inline constexpr int kMaxNesting = 256;            // ( ... ) groups inside each other, and schemas likewise

// Parses GBNF text and checks it: `root` exists, every rule used is defined once, no rule is left-recursive
// (it would recurse without reading a character), and every rule reachable from root can finish (a rule
// whose every alternative recurses into itself would generate forever). Throws GrammarError.
Grammar parse_gbnf(std::string_view text);

// A GBNF literal matching exactly `text` (quotes, backslashes and control characters escaped), for the
// grammars groak writes itself (JSON schemas, tool calls).
std::string gbnf_literal(const std::string& text);

}  // namespace groak
