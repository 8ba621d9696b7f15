#include "grammar/matcher.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>


namespace groak {

namespace {

// Bounds on one grammar's work (a grammar is untrusted input).
constexpr size_t kMaxStacks = 2048;      // alternatives open at once
constexpr size_t kMaxDepth = 4096;       // nesting
constexpr size_t kMaxStates = 50000;     // interned before the cache starts over (~1 KiB each stepped)
constexpr size_t kMaxMasks = 2048;       // token masks kept (vocab / 8 bytes each: 16 KiB for Grok-1)

// The first word of a state's key: an unfinished UTF-8 character's bytes still to come, its length and
// the code point bits so far; or, once every open alternative takes whatever the character turns out to
// be ("committed"), no bits at all, so the thousands of prefixes of 3- and 4-byte characters inside a
// string share one state instead of one each.
constexpr uint32_t kCommitted = 1u << 30;
uint32_t utf8_word(uint32_t left, uint32_t len, uint32_t cp) { return left | (len << 4) | (cp << 8); }

// Every code point of [lo, hi] but the surrogates is in the set.
bool covers_valid(const CharSet& set, uint32_t lo, uint32_t hi) {
  if (lo < 0xD800 && !set.covers(lo, std::min<uint32_t>(hi, 0xD7FF))) return false;
  if (hi > 0xDFFF && !set.covers(std::max<uint32_t>(lo, 0xE000), hi)) return false;
  return true;
}

}  // namespace

TokenVocab::TokenVocab(std::vector<std::string> bytes, int32_t eos) : bytes_(std::move(bytes)), eos_(eos) {
  std::vector<int32_t> order;
  for (size_t i = 0; i < bytes_.size(); ++i)
    if (!bytes_[i].empty()) order.push_back(static_cast<int32_t>(i));
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return bytes_[static_cast<size_t>(a)] < bytes_[static_cast<size_t>(b)]; });
  std::vector<uint32_t> path;  // node index per depth - 1
  const std::string* prev = nullptr;
  for (int32_t id : order) {
    const std::string& s = bytes_[static_cast<size_t>(id)];
    size_t common = 0;
    if (prev) {
      const size_t n = std::min(prev->size(), s.size());
      while (common < n && (*prev)[common] == s[common]) ++common;
    }
    while (path.size() > common) {
      nodes_[path.back()].end = static_cast<uint32_t>(nodes_.size());
      path.pop_back();
    }
    for (size_t d = common; d < s.size(); ++d) {
      path.push_back(static_cast<uint32_t>(nodes_.size()));
      const auto at = static_cast<uint32_t>(token_ids_.size());
      nodes_.push_back({static_cast<uint8_t>(s[d]), static_cast<uint32_t>(d + 1), 0, at, at});
    }
    Node& last = nodes_[path.back()];
    if (last.tok_end != token_ids_.size()) last.tok_begin = last.tok_end = static_cast<uint32_t>(token_ids_.size());
    token_ids_.push_back(id);
    last.tok_end = static_cast<uint32_t>(token_ids_.size());
    max_depth_ = std::max<uint32_t>(max_depth_, static_cast<uint32_t>(s.size()));
    prev = &s;
  }
  while (!path.empty()) {
    nodes_[path.back()].end = static_cast<uint32_t>(nodes_.size());
    path.pop_back();
  }
}

size_t CompiledGrammar::KeyHash::operator()(const std::vector<uint32_t>& k) const {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (uint32_t v : k) h = (h ^ v) * 0x100000001b3ULL;
  return static_cast<size_t>(h ^ (h >> 32));
}

CompiledGrammar::CompiledGrammar(const Grammar& g, std::shared_ptr<const TokenVocab> vocab)
    : sets_(g.sets), root_(g.root), vocab_(std::move(vocab)) {
  alt_start_.resize(g.rules.size());
  for (size_t r = 0; r < g.rules.size(); ++r) {
    for (const Grammar::Sequence& alt : g.rules[r]) {
      alt_start_[r].push_back(static_cast<uint32_t>(kind_.size()));
      for (const GrammarElement& e : alt) {
        kind_.push_back(e.kind == GrammarElement::Kind::Chars ? Kind::Chars : Kind::Rule);
        arg_.push_back(e.index);
      }
      kind_.push_back(Kind::End);
      arg_.push_back(0);
    }
  }
}

// Replaces a stack whose top is a rule reference by one stack per alternative of that rule (the element
// after the reference kept beneath), until every top is a character set or the stack is empty (the
// grammar is complete on it). A work list, not recursion: a chain of rules each starting with the next
// may be as long as the grammar. Terminates: parse_gbnf refused left recursion.
void CompiledGrammar::expand(std::vector<uint32_t>& stack, std::vector<std::vector<uint32_t>>& out) const {
  std::vector<std::vector<uint32_t>> work;
  work.push_back(std::move(stack));
  while (!work.empty()) {
    std::vector<uint32_t> s = std::move(work.back());
    work.pop_back();
    if (s.size() > kMaxDepth)
      throw GrammarError("the output nests deeper than " + std::to_string(kMaxDepth) + " levels of the grammar");
    if (s.empty() || kind_[s.back()] == Kind::Chars) {
      if (out.size() >= kMaxStacks)
        throw GrammarError("the grammar is too ambiguous here (over " + std::to_string(kMaxStacks) +
                           " ways to read the output at once); make its alternatives start differently");
      out.push_back(std::move(s));
      continue;
    }
    const uint32_t p = s.back();
    s.pop_back();
    if (kind_[p + 1] != Kind::End) s.push_back(p + 1);
    for (uint32_t a : alt_start_[arg_[p]]) {
      work.push_back(s);
      if (kind_[a] != Kind::End) work.back().push_back(a);
    }
  }
}

int32_t CompiledGrammar::intern(std::vector<uint32_t> key) {
  auto [it, fresh] = intern_.emplace(std::move(key), static_cast<int32_t>(states_.size()));
  if (!fresh) return it->second;
  State st;
  st.key = &it->first;
  bytes_ += it->first.size() * sizeof(uint32_t) + sizeof(State);
  // Decode the stacks' tops for the flags.
  const std::vector<uint32_t>& k = it->first;
  const bool whole_char = (k[0] & 0xF) == 0;
  for (size_t i = 1; i < k.size(); i += 1 + k[i]) {
    if (k[i] == 0)
      st.accepting = st.accepting || whole_char;
    else
      st.open = true;
  }
  states_.push_back(std::move(st));
  return it->second;
}

int32_t CompiledGrammar::compute_step(int32_t s, uint8_t b) {
  const std::vector<uint32_t> key = *states_[static_cast<size_t>(s)].key;  // a copy: intern may move states_
  const bool committed = (key[0] & kCommitted) != 0;
  uint32_t left = key[0] & 0xF, len = (key[0] >> 4) & 0xF, cp = (key[0] & ~kCommitted) >> 8;
  bool complete = false;
  if (left == 0) {
    if (b < 0x80) {
      cp = b;
      len = 1;
      complete = true;
    } else if (b >= 0xC2 && b <= 0xDF) {
      cp = b & 0x1Fu, len = 2, left = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      cp = b & 0x0Fu, len = 3, left = 2;
    } else if (b >= 0xF0 && b <= 0xF4) {
      cp = b & 0x07u, len = 4, left = 3;
    } else {
      return kDead;  // not a UTF-8 lead byte
    }
  } else {
    if ((b & 0xC0) != 0x80) return kDead;
    cp = (cp << 6) | (b & 0x3Fu);
    complete = --left == 0;
  }
  // The code points this character can still be: [lo, hi], minus overlong forms and surrogates.
  const uint32_t min_of_len = len == 2 ? 0x80 : len == 3 ? 0x800 : len == 4 ? 0x10000 : 0;
  uint32_t lo = cp << (6 * left), hi = lo | ((1u << (6 * left)) - 1);
  lo = std::max(lo, min_of_len);
  hi = std::min<uint32_t>(hi, 0x10FFFF);
  if (lo > hi && !committed) return kDead;
  if (complete && cp >= 0xD800 && cp <= 0xDFFF) return kDead;

  std::vector<std::vector<uint32_t>> out;
  std::vector<uint32_t> stack;
  for (size_t i = 1; i < key.size(); i += 1 + key[i]) {
    if (key[i] == 0) continue;  // complete: nothing more to read on it
    stack.assign(key.begin() + static_cast<std::ptrdiff_t>(i + 1), key.begin() + static_cast<std::ptrdiff_t>(i + 1 + key[i]));
    const uint32_t p = stack.back();
    const CharSet& set = sets_[arg_[p]];
    if (committed) {
      if (complete) {  // every stack takes the character, whatever it is
        stack.pop_back();
        if (kind_[p + 1] != Kind::End) stack.push_back(p + 1);
        expand(stack, out);
      } else {
        out.push_back(stack);
      }
      continue;
    }
    if (!complete) {  // the set must hold a code point this character can still become (never a surrogate)
      const bool below = lo < 0xD800 && set.intersects(lo, std::min<uint32_t>(hi, 0xD7FF));
      const bool above = hi > 0xDFFF && set.intersects(std::max<uint32_t>(lo, 0xE000), hi);
      if (below || above) out.push_back(stack);
      continue;
    }
    if (!set.contains(cp)) continue;
    stack.pop_back();
    if (kind_[p + 1] != Kind::End) stack.push_back(p + 1);
    expand(stack, out);
  }
  if (out.empty()) return kDead;
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  uint32_t word = complete ? 0u : committed ? kCommitted | utf8_word(left, len, 0) : utf8_word(left, len, cp);
  // Commit once the bytes still to come may be any continuation bytes (after a 3-byte character's second
  // byte, a 4-byte one's second: E0, ED, F0 and F4 restrict only the byte after them) and every stack's set
  // holds every character they can make.
  if (!complete && !committed && (len == 2 || left + 2 <= len)) {
    bool all = true;
    for (const auto& st : out) all = all && covers_valid(sets_[arg_[st.back()]], lo, hi);
    if (all) word = kCommitted | utf8_word(left, len, 0);
  }
  std::vector<uint32_t> next{word};
  for (const auto& st : out) {
    next.push_back(static_cast<uint32_t>(st.size()));
    next.insert(next.end(), st.begin(), st.end());
  }
  return intern(std::move(next));
}

int32_t CompiledGrammar::step(int32_t s, uint8_t b) {
  std::vector<int32_t>& next = states_[static_cast<size_t>(s)].next;
  if (next.empty()) {
    next.assign(256, kUnknown);
    bytes_ += 256 * sizeof(int32_t);
  }
  int32_t t = next[b];
  if (t != kUnknown) return t;
  t = compute_step(s, b);
  states_[static_cast<size_t>(s)].next[b] = t;  // states_ may have grown
  return t;
}

void CompiledGrammar::bound_memory() {
  if (states_.size() <= kMaxStates && masks_ <= kMaxMasks) return;
  states_.clear();
  intern_.clear();
  masks_ = 0;
  bytes_ = 0;
  ++generation_;
}

int32_t CompiledGrammar::find(Ref& r) {
  if (r.generation != generation_ || r.id < 0) {
    r.id = intern(r.key);
    r.generation = generation_;
  }
  return r.id;
}

CompiledGrammar::Ref CompiledGrammar::start() {
  std::lock_guard<std::mutex> lock(mu_);
  bound_memory();
  std::vector<std::vector<uint32_t>> out;
  for (uint32_t a : alt_start_[root_]) {
    std::vector<uint32_t> s;
    if (kind_[a] != Kind::End) s.push_back(a);
    expand(s, out);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  Ref r;
  r.key.push_back(0);
  for (const auto& st : out) {
    r.key.push_back(static_cast<uint32_t>(st.size()));
    r.key.insert(r.key.end(), st.begin(), st.end());
  }
  r.id = intern(r.key);
  r.generation = generation_;
  return r;
}

std::shared_ptr<const std::vector<uint64_t>> CompiledGrammar::mask(Ref& r) {
  std::lock_guard<std::mutex> lock(mu_);
  bound_memory();
  const int32_t s = find(r);
  if (auto m = states_[static_cast<size_t>(s)].mask) return m;
  // One walk of the token trie: a subtree is skipped at the first byte the grammar refuses.
  auto m = std::make_shared<std::vector<uint64_t>>((static_cast<size_t>(vocab_->size()) + 63) / 64, 0);
  const auto& nodes = vocab_->nodes();
  const auto& ids = vocab_->token_ids();
  std::vector<int32_t> at(vocab_->max_depth() + 1);
  at[0] = s;
  for (size_t i = 0; i < nodes.size();) {
    const TokenVocab::Node& n = nodes[i];
    const int32_t t = step(at[n.depth - 1], n.byte);
    if (t < 0) {
      i = n.end;
      continue;
    }
    at[n.depth] = t;
    for (uint32_t k = n.tok_begin; k < n.tok_end; ++k) {
      const auto id = static_cast<uint32_t>(ids[k]);
      (*m)[id / 64] |= uint64_t{1} << (id % 64);
    }
    ++i;
  }
  const int32_t eos = vocab_->eos();
  if (states_[static_cast<size_t>(s)].accepting && eos >= 0 && eos < vocab_->size())
    (*m)[static_cast<size_t>(eos) / 64] |= uint64_t{1} << (eos % 64);
  states_[static_cast<size_t>(s)].mask = m;
  ++masks_;
  bytes_ += m->size() * sizeof(uint64_t);
  return m;
}

bool CompiledGrammar::advance(Ref& r, int32_t id) {
  if (id < 0 || id >= vocab_->size()) return false;
  const std::string& bytes = vocab_->bytes(id);
  if (bytes.empty()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  bound_memory();
  int32_t s = find(r);
  for (char c : bytes) {
    s = step(s, static_cast<uint8_t>(c));
    if (s < 0) return false;
  }
  r.id = s;
  r.key = *states_[static_cast<size_t>(s)].key;
  return true;
}

bool CompiledGrammar::accepting(Ref& r) {
  std::lock_guard<std::mutex> lock(mu_);
  return states_[static_cast<size_t>(find(r))].accepting;
}

bool CompiledGrammar::open(Ref& r) {
  std::lock_guard<std::mutex> lock(mu_);
  return states_[static_cast<size_t>(find(r))].open;
}

size_t CompiledGrammar::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

size_t CompiledGrammar::states() const {
  std::lock_guard<std::mutex> lock(mu_);
  return states_.size();
}

void CompiledGrammar::check_start() {
  Ref r = start();
  const auto m = mask(r);
  if (std::none_of(m->begin(), m->end(), [](uint64_t w) { return w != 0; }))
    throw GrammarError("no token of the vocabulary can begin the grammar's output (its first characters cannot be written)");
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<CompiledGrammar> g) : g_(std::move(g)), ref_(g_->start()) {}

bool GrammarMatcher::apply(float* logits) {
  const auto m = g_->mask(ref_);
  const int32_t V = g_->vocab().size();
  constexpr float kNever = -std::numeric_limits<float>::infinity();
  bool any = false;
  for (int32_t w = 0; w * 64 < V; ++w) {
    const uint64_t bits = (*m)[static_cast<size_t>(w)];
    any = any || bits != 0;
    if (bits == ~uint64_t{0}) continue;
    const int32_t end = std::min(V, (w + 1) * 64);
    for (int32_t i = w * 64; i < end; ++i)
      if (!((bits >> (i - w * 64)) & 1)) logits[i] = kNever;
  }
  return any;
}

bool GrammarMatcher::accept(int32_t id) { return g_->advance(ref_, id); }

}  // namespace groak
