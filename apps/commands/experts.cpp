// groak experts: which experts a text uses (runtime/experts.h): per layer and expert the share of routed
// tokens, the load imbalance, how often a token reuses an expert of the token before it, and which experts
// are chosen together; a table on stdout and, with --json, the counts.
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "../cli.h"
#include "../options.h"
#include "io/output_file.h"
#include "runtime/experts.h"
#include "tokenizer/discover.h"

namespace groak::cli {

namespace {

constexpr int64_t kExpertsWindow = 512;

struct ExpertsArgs {
  std::string model, tokenizer, file, json;
  int64_t chunks = 0;
  EngineArgs engine{.ctx = kExpertsWindow};
};

std::string percent(int64_t part, int64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0);
  return buf;
}

int run_experts(const ExpertsArgs& a, Job& job) {
  InterruptHandler interrupts;
  const std::string text = a.file == "-" ? read_stdin() : read_file_text(a.file);
  Model m = load_with_progress(a.model);
  if (!a.json.empty()) checked_output_path(a.json, m.files);
  Tokenizer tok = open_tokenizer(a.tokenizer, a.model);
  const std::vector<int32_t> tokens = tok.encode(text);
  EngineOptions eo = engine_options(a.engine, job);
  eo.context = checked_context(m.config, a.engine.ctx);
  const int64_t W = eo.context, T = static_cast<int64_t>(tokens.size());
  if (T == 0) throw Error(a.file + " holds no tokens; give a text to count the experts over");
  int64_t windows = (T + W - 1) / W;
  if (a.chunks > 0) windows = std::min(windows, a.chunks);
  Engine engine(m, eo);
  ExpertCounter count(m.config);
  engine.probe(&count);
  std::vector<float> logits;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t w = 0; w < windows; ++w) {  // each window from an empty context, as perplexity reads a text
    check_interrupt();
    engine.reset();
    const int64_t n = std::min(W, T - w * W);
    engine.eval(std::span<const int32_t>(tokens.data() + w * W, static_cast<size_t>(n)), logits, LogitRows::LastOnly);
  }
  const double secs = seconds_since(t0);
  const int64_t L = count.L, E = count.E, K = count.K, routed = count.tokens[0];

  std::string out = "expert usage over " + count_of(routed, "token") + " (" + count_of(windows, "window") + " of at most " +
                    std::to_string(W) + "), top-" + std::to_string(K) + " of " + std::to_string(E) +
                    " experts; % of the tokens routed to each expert\n\n| layer |";
  for (int64_t e = 0; e < E; ++e) out += " e" + std::to_string(e) + " |";
  out += " imbalance (max/mean) | reuse by the next token |\n|---:|";
  for (int64_t e = 0; e <= E + 1; ++e) out += "---:|";
  out += "\n";
  nlohmann::json layers = nlohmann::json::array();
  std::vector<int64_t> all_pairs(static_cast<size_t>(E * E), 0);
  for (int64_t l = 0; l < L; ++l) {
    out += "| " + std::to_string(l) + " |";
    std::vector<int64_t> counts(count.counts.begin() + l * E, count.counts.begin() + (l + 1) * E);
    for (int64_t c : counts) out += " " + percent(c, routed) + " |";
    char buf[64];
    std::snprintf(buf, sizeof buf, " %.2f | %.1f %% |\n", count.imbalance(l), 100 * count.reuse_rate(l));
    out += buf;
    std::vector<int64_t> pairs(count.pairs.begin() + l * E * E, count.pairs.begin() + (l + 1) * E * E);
    for (size_t i = 0; i < pairs.size(); ++i) all_pairs[i] += pairs[i];
    layers.push_back({{"layer", l}, {"counts", counts}, {"pairs", pairs}, {"imbalance", count.imbalance(l)},
                      {"reuse_rate", count.reuse_rate(l)}, {"reused", count.reused[static_cast<size_t>(l)]},
                      {"follows", count.follows[static_cast<size_t>(l)]}});
  }
  out += "\nchosen together, all layers (% of the tokens routed, per pair):\n\n|   |";
  for (int64_t e = 0; e < E; ++e) out += " e" + std::to_string(e) + " |";
  out += "\n|---|";
  for (int64_t e = 0; e < E; ++e) out += "---:|";
  out += "\n";
  for (int64_t e = 0; e < E; ++e) {
    out += "| e" + std::to_string(e) + " |";
    for (int64_t f = 0; f < E; ++f) out += " " + (e == f ? std::string("-") : percent(all_pairs[static_cast<size_t>(e * E + f)], routed * L)) + " |";
    out += "\n";
  }
  write_stdout(out);
  check_stdout();
  if (!a.json.empty()) {
    const nlohmann::json j = {{"tokens", routed}, {"windows", windows}, {"window", W}, {"num_experts", E},
                              {"num_selected_experts", K}, {"layers", layers}, {"pairs_all_layers", all_pairs}};
    const std::string s = j.dump(1);
    write_file_atomic(a.json, s.data(), s.size(), m.files);
  }
  std::fprintf(stderr, "experts: %s in %.2f s%s%s\n", count_of(routed, "token").c_str(), secs,
               a.json.empty() ? "" : " -> ", a.json.c_str());
  return 0;
}

}  // namespace

Command experts_command() {
  auto a = std::make_shared<ExpertsArgs>();
  Command c;
  c.name = "experts";
  c.description = "Count which experts a text uses: shares per layer, load imbalance, reuse, co-selection";
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    add_tokenizer_option(cmd, a->tokenizer, "SentencePiece tokenizer.model (default: beside ckpt-0/ or in its parent folder)");
    cmd.add_option("-f,--file", a->file, "the text ('-' = stdin)")->required();
    cmd.add_option("--chunks", a->chunks, "windows to read at most (0 = the whole text)")
        ->check(number_in(0, 1e9, "between 0 and 1e9"));
    cmd.add_option("--json", a->json, "also write the counts as JSON to this file");
    add_engine_options(cmd, a->engine, "tokens per window, each read from an empty context (default 512)");
  };
  c.run = [a](Job& job) { return run_experts(*a, job); };
  return c;
}

}  // namespace groak::cli
