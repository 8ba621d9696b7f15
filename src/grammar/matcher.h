// Enforcing a grammar token by token: which tokens of the vocabulary may come next, and the state after one.
//
// The grammar runs as a pushdown automaton over bytes (llama.cpp's stacks of grammar positions, a set of
// them for the alternatives still open, plus the bytes of an unfinished UTF-8 character, so a token may end
// or start inside a character and span several grammar symbols). Each state is interned once per grammar
// and keeps its byte transitions and its token mask, computed on first use by one walk of the vocabulary's
// byte trie that stops at the first byte the grammar refuses. A state seen again costs a lookup: inside a
// JSON string or between fields the same states come back token after token, so the cost per token is
// setting the masked logits, not vocabulary × grammar (docs/serve.md has the numbers).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/gbnf.h"

namespace groak {

class Tokenizer;

// The byte string each token appends to the output, and the trie of them. Built once per tokenizer.
class TokenVocab {
 public:
  // [vocab] bytes per token; "" for tokens that print nothing (control pieces): a grammar never allows
  // them. `eos` is allowed exactly where the grammar may end.
  TokenVocab(std::vector<std::string> bytes, int32_t eos);
  static std::shared_ptr<const TokenVocab> of(const Tokenizer& tok);

  int32_t size() const { return static_cast<int32_t>(bytes_.size()); }
  int32_t eos() const { return eos_; }
  const std::string& bytes(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }

  // Preorder trie: a node's subtree is [i, end); its parent is the last node before it one level up.
  struct Node {
    uint8_t byte;
    uint32_t depth;      // 1 for a token's first byte
    uint32_t end;        // the index after its subtree
    uint32_t tok_begin, tok_end;  // tokens whose bytes end here: token_ids_[tok_begin, tok_end)
  };
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<int32_t>& token_ids() const { return token_ids_; }
  uint32_t max_depth() const { return max_depth_; }

 private:
  std::vector<std::string> bytes_;
  int32_t eos_;
  std::vector<Node> nodes_;
  std::vector<int32_t> token_ids_;
  uint32_t max_depth_ = 0;
};

// A grammar bound to a vocabulary, with the cache of its states. Shared by every sequence that uses the
// grammar (the server keeps compiled grammars by text); thread-safe.
class CompiledGrammar {
 public:
  CompiledGrammar(const Grammar& g, std::shared_ptr<const TokenVocab> vocab);
  // Throws GrammarError when no token can start the output (the grammar needs characters the vocabulary
  // cannot write).
  void check_start();

  // A state as a matcher keeps it: the interned key (valid while the cache's generation holds) and the
  // state's own encoding (to find it again after the cache was cleared to bound its memory).
  struct Ref {
    int32_t id = -1;
    uint64_t generation = 0;
    std::vector<uint32_t> key;
  };
  Ref start();
  // The tokens allowed in state `r` ([words] bits over the vocabulary, EOS included where the grammar may
  // end). Throws GrammarError when the grammar is too ambiguous or nests too deep to follow.
  std::shared_ptr<const std::vector<uint64_t>> mask(Ref& r);
  // The state after token `id`; false (r unchanged) when the token is not allowed.
  bool advance(Ref& r, int32_t id);
  bool accepting(Ref& r);  // the output may end here
  bool open(Ref& r);       // more characters may follow

  const TokenVocab& vocab() const { return *vocab_; }
  size_t states() const;   // interned now (for tests and the cache bound)
  size_t bytes() const;    // what the cache of states and masks holds now

 private:
  struct State {
    const std::vector<uint32_t>* key;                   // owned by intern_
    std::vector<int32_t> next;                          // [256] byte → state; kUnknown until computed, kDead
    std::shared_ptr<const std::vector<uint64_t>> mask;  // null until computed
    bool accepting = false, open = false;
  };
  static constexpr int32_t kUnknown = -2, kDead = -1;
  struct KeyHash {
    size_t operator()(const std::vector<uint32_t>& k) const;
  };

  int32_t find(Ref& r);                                   // under mu_
  int32_t intern(std::vector<uint32_t> key);              // under mu_
  int32_t step(int32_t s, uint8_t byte);                  // under mu_
  int32_t compute_step(int32_t s, uint8_t byte);          // under mu_
  void expand(std::vector<uint32_t>& stack, std::vector<std::vector<uint32_t>>& out) const;
  void bound_memory();                                    // under mu_

  // Positions: every rule's alternatives laid end to end, each closed by an End.
  enum class Kind : uint8_t { Chars, Rule, End };
  std::vector<Kind> kind_;                        // [positions]
  std::vector<uint32_t> arg_;                     // [positions] the set or the rule
  std::vector<std::vector<uint32_t>> alt_start_;  // [rules][alternatives] first position
  std::vector<CharSet> sets_;
  uint32_t root_;
  std::shared_ptr<const TokenVocab> vocab_;

  mutable std::mutex mu_;
  std::unordered_map<std::vector<uint32_t>, int32_t, KeyHash> intern_;
  std::vector<State> states_;
  size_t masks_ = 0;
  size_t bytes_ = 0;       // keys, transition tables and masks
  uint64_t generation_ = 1;
};

// One sequence's position in a grammar.
class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<CompiledGrammar> g);
  // Sets every token the grammar does not allow to -inf in logits [vocab]; false when none is allowed.
  bool apply(float* logits);
  bool accept(int32_t id);  // false when the token is not allowed (the state stays)
  bool can_end() { return g_->accepting(ref_); }
  bool must_end() { return !g_->open(ref_); }  // nothing more can be written: the output is complete

 private:
  std::shared_ptr<CompiledGrammar> g_;
  CompiledGrammar::Ref ref_;
};

}  // namespace groak
