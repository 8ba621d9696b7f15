// Google Benchmark of constrained output on Grok-1's 131072-piece vocabulary: what a grammar adds to each
// decoded token (the mask set on a copy of the logits, then the chosen token run through the grammar), once
// its states are known (warm) and for a first request of a new schema (cold: compiling it and computing
// the token masks of every state the output passes through). Compare the warm time per token with the
// model's decode time per token (groak bench): the target is at most 10 %.
//
//   build/groak_grammar_bench [--tokenizer=PATH]   (default ../shared/grok-1/tokenizer.model)
#include <benchmark/benchmark.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <random>
#include <string>
#include <vector>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "tokenizer/tokenizer.h"

namespace groak {
namespace {

std::string g_tokenizer = "../shared/grok-1/tokenizer.model";

// A realistic reply schema: nested objects, enums, arrays, optional and nullable fields (shared with
// scripts/grammar_overhead.py).
std::string schema_text() {
  std::ifstream f(std::string(GROAK_SOURCE_DIR) + "/bench/customer_schema.json");
  if (!f) throw std::runtime_error("cannot read bench/customer_schema.json");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::shared_ptr<const TokenVocab>& vocab() {
  static const std::shared_ptr<const TokenVocab> v = TokenVocab::of(Tokenizer::load(g_tokenizer));
  return v;
}

const std::string& gbnf() {
  static const std::string g = json_schema_to_gbnf(nlohmann::ordered_json::parse(schema_text()));
  return g;
}

// The random logits of a random-weight model stand-in: one fixed row per step, so every run takes the same
// path through the schema (greedy over the masked row).
struct Walker {
  std::vector<float> logits, masked;
  std::mt19937 rng{1};
  Walker() : logits(static_cast<size_t>(vocab()->size())), masked(logits.size()) {}
  void shuffle() {
    std::normal_distribution<float> n;
    for (float& x : logits) x = n(rng);
  }
  static int32_t argmax(const std::vector<float>& x) {
    return static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());
  }
  // One whole output, greedy over the masked rows; returns its tokens.
  int64_t output(const std::shared_ptr<CompiledGrammar>& g) {
    GrammarMatcher m(g);
    int64_t n = 0;
    for (; n < 400 && !m.must_end(); ++n) {
      shuffle();
      masked = logits;
      m.apply(masked.data());
      const int32_t id = argmax(masked);
      if (id == vocab()->eos()) break;
      m.accept(id);
    }
    return n;
  }
};

// Warm: the grammar's states are known; each iteration is one token's constraint work.
void BM_ConstrainedToken(benchmark::State& st) {
  auto g = std::make_shared<CompiledGrammar>(parse_gbnf(gbnf()), vocab());
  Walker w;
  // Warm-up: outputs through the states the timed ones pass.
  for (int rep = 0; rep < 2; ++rep) {
    w.rng.seed(1);
    for (int i = 0; i < 50; ++i) w.output(g);
  }
  w.rng.seed(1);
  auto m = std::make_unique<GrammarMatcher>(g);
  int64_t tokens = 0, outputs = 0;
  for (auto _ : st) {
    st.PauseTiming();
    w.shuffle();
    st.ResumeTiming();
    std::memcpy(w.masked.data(), w.logits.data(), w.logits.size() * sizeof(float));
    m->apply(w.masked.data());
    st.PauseTiming();
    const int32_t id = Walker::argmax(w.masked);  // the sampler's work, there constrained or not
    st.ResumeTiming();
    if (id == vocab()->eos() || !m->accept(id) || m->must_end()) {
      st.PauseTiming();
      m = std::make_unique<GrammarMatcher>(g);
      ++outputs;
      st.ResumeTiming();
    }
    ++tokens;
  }
  st.counters["outputs"] = static_cast<double>(outputs);
  st.counters["states"] = static_cast<double>(g->states());
  st.counters["cache_MB"] = static_cast<double>(g->bytes()) / 1e6;
  st.SetItemsProcessed(tokens);
}
BENCHMARK(BM_ConstrainedToken)->Unit(benchmark::kMicrosecond);

// Cold: a new schema's first output, compile included (what the first request with it adds in all).
void BM_FirstOutput(benchmark::State& st) {
  Walker w;
  int64_t tokens = 0;
  for (auto _ : st) {
    w.rng.seed(1);
    auto g = std::make_shared<CompiledGrammar>(parse_gbnf(json_schema_to_gbnf(nlohmann::ordered_json::parse(schema_text()))), vocab());
    tokens += w.output(g);
  }
  st.counters["tokens_per_output"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_FirstOutput)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace groak

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--tokenizer=", 0) == 0)
      groak::g_tokenizer = a.substr(12);
    else
      rest.push_back(argv[i]);
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
