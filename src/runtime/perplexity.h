// `groak perplexity`: llama-perplexity's method, and its KL-divergence comparison of two models (how users
// judge a quantization). The text is cut into windows of `ctx` tokens; each window is evaluated from an
// empty context and only its second half is scored (every scored token sees at least ctx/2 tokens before it).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <vector>

#include "runtime/engine.h"

namespace groak {

struct KldStats {
  double mean = 0, err = 0;            // KL(base || model) per scored token, nats, and its standard error
  double same_top = 0, same_top_err = 0;  // fraction of scored tokens where both models' argmax agree
  double max = 0;                      // the largest per-token KL
};

struct PerplexityReport {
  int64_t ctx = 0, chunks = 0, scored = 0;  // scored = tokens scored in all
  double ppl = 0, ppl_err = 0;              // exp(mean NLL) and its standard error (delta method)
  std::vector<double> chunk_ppl;            // running estimate after each chunk, as llama-perplexity prints
  std::optional<KldStats> kld;              // with a base to compare against
  bool cancelled = false;
};

// The log-probabilities of one model, for --kl-divergence (file layout: docs/FORMATS.md, "KL base file").
struct KldBaseHeader {
  uint32_t vocab = 0, ctx = 0, chunks = 0;
  std::vector<int32_t> tokens;  // [chunks·ctx] the windows' tokens
};
void write_kld_header(std::ostream& out, const KldBaseHeader& h);
KldBaseHeader read_kld_header(std::istream& in, const std::string& file);  // throws groak::Error

// Scores `tokens` (at least 2·... : one full window) in windows of session.context() tokens, at most
// max_chunks of them (0 = all that fit). save: if not null, gets the header and every scored position's
// log-probabilities [vocab] f32. base: if not null, the same from another model of the same vocabulary
// (header already read), compared per position. on_chunk (may be empty) sees the report after each window.
// `cancel` ends it after the current window. Throws groak::Error on a text shorter than one window.
PerplexityReport perplexity(Engine& session, const std::vector<int32_t>& tokens, int64_t max_chunks, std::ostream* save,
                            std::istream* base, const std::function<void(const PerplexityReport&)>& on_chunk = {},
                            const std::atomic<bool>* cancel = nullptr);

}  // namespace groak
