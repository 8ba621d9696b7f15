// groak inspect: what the model does inside while it reads a prompt (runtime/inspect.h), written to a folder
// as inspect.json, one .npy array per quantity and report.html (web/inspect.html with the JSON inlined:
// one self-contained page).
#include <cstdio>
#include <filesystem>
#include <memory>

#include "../cli.h"
#include "../options.h"
#include "io/npy.h"
#include "io/output_file.h"
#include "model/model_path.h"
#include "runtime/inspect_json.h"
#include "tokenizer/discover.h"

namespace groak::cli {

namespace {

// web/inspect.html, embedded at build time (cmake/embed.cmake).
const unsigned char kInspectPage[] = {
#include "inspect_page.inc"
};
constexpr std::string_view kDataSlot = "/*GROAK_INSPECT_DATA*/";

struct InspectArgs {
  std::string model, tokenizer, prompt, prompt_file, tokens, layers, out;
  int64_t top = 5;
  bool bos = false;
  EngineArgs engine;
};

// "0,2,5-7" → {0, 2, 5, 6, 7}; "" → {} (every layer). Throws UsageError naming what is wrong.
std::vector<int64_t> parse_layers(const std::string& s) {
  std::vector<int64_t> out;
  const auto bad = [&](const std::string& why) {
    return UsageError("--layers '" + s + "': " + why + " (write layer numbers and ranges, e.g. 0,2,5-7)");
  };
  size_t at = 0;
  while (at < s.size()) {
    const size_t end = std::min(s.find(',', at), s.size());
    const std::string item = s.substr(at, end - at);
    size_t used = 0, used2 = 0;
    const size_t dash = item.find('-', 1);
    const double lo = leading_number(item, &used);
    const double hi = dash == std::string::npos ? lo : leading_number(item.substr(dash + 1), &used2);
    if (item.empty() || used == 0 || (dash == std::string::npos ? used != item.size() : used != dash || used2 == 0 ||
                                                                       dash + 1 + used2 != item.size()))
      throw bad("'" + item + "' is not a layer number or range");
    if (lo < 0 || hi < lo || hi > 1e6 || lo != static_cast<int64_t>(lo) || hi != static_cast<int64_t>(hi))
      throw bad("'" + item + "' is not a range of whole numbers from low to high");
    for (auto l = static_cast<int64_t>(lo); l <= static_cast<int64_t>(hi); ++l) out.push_back(l);
    at = end + 1;
  }
  if (out.empty() && !s.empty()) throw bad("no layer given");
  return out;
}

// The JSON as text that can sit inside <script>: "</" would end the element, so it is written "<\/".
std::string script_safe(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    out += json[i];
    if (json[i] == '<' && i + 1 < json.size() && json[i + 1] == '/') out += '\\';
  }
  return out;
}

int run_inspect(const InspectArgs& a, Job& job) {
  namespace fs = std::filesystem;
  const std::vector<int64_t> layers = parse_layers(a.layers);
  InterruptHandler interrupts;
  std::string text = a.prompt;
  if (!a.prompt_file.empty()) text = a.prompt_file == "-" ? read_stdin() : read_file_text(a.prompt_file);
  Model m = load_with_progress(a.model);
  const Config& c = m.config;
  for (int64_t l : layers)
    if (l >= c.num_layers)
      throw Error("--layers: layer " + std::to_string(l) + " is outside the model's layers 0-" +
                  std::to_string(c.num_layers - 1));
  std::vector<int32_t> tokens;
  std::vector<std::string> pieces;
  if (!a.tokens.empty()) {
    tokens = parse_token_list(a.tokens, "--tokens");
  } else {
    Tokenizer tok = open_tokenizer(a.tokenizer, a.model);
    if (a.bos) tokens.push_back(tok.bos_id());
    for (int32_t id : tok.encode(text)) tokens.push_back(id);
    for (int32_t id = 0; id < tok.vocab_size(); ++id) pieces.push_back(tok.piece(id));
  }
  const auto T = static_cast<int64_t>(tokens.size());
  if (T == 0) throw Error("the prompt is empty (no tokens); give some text, or --bos");
  if (T > c.sequence_len)
    throw Error("the prompt has " + std::to_string(T) + " tokens but the model's context is " +
                std::to_string(c.sequence_len) + " (sequence_len); shorten the prompt");
  std::error_code ec;
  if (fs::exists(a.out, ec) && !fs::is_directory(a.out, ec))
    throw Error("--out " + a.out + " exists and is not a folder; name a new or existing folder");
  fs::create_directories(a.out, ec);
  if (ec) throw Error("cannot create the folder " + a.out + ": " + ec.message());

  EngineOptions eo = engine_options(a.engine, job);
  eo.context = T;
  Engine engine(m, eo);
  Inspector in(engine.ctx(), m, {.layers = layers, .positions = T, .lens_top = a.top});
  engine.probe(&in);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits;
  engine.eval(tokens, logits, LogitRows::LastOnly);
  const double eval_s = seconds_since(t0);
  check_interrupt();

  const auto path = [&](const std::string& name) { return (fs::path(a.out) / name).string(); };
  const int64_t P = T, L = in.L, N = in.N, H = in.H;
  nlohmann::json arrays;
  const auto npy = [&](const std::string& name, const std::vector<int64_t>& shape, const auto& v, const char* what) {
    write_npy(path(name + ".npy"), shape, v, m.files);
    arrays[name] = {{"file", name + ".npy"}, {"shape", shape}, {"meaning", what}};
  };
  npy("tokens", {P}, tokens, "token ids of the prompt");
  npy("router_probs", {P, L, in.E}, in.router_probs, "router softmax over all experts, per token and layer");
  npy("chosen", {P, L, in.K}, in.chosen, "the top-k experts, largest gate first");
  npy("residual_rms", {P, L, kResidualPoints}, in.residual_rms,
      "RMS of the residual stream at layer input, after attention, after the MoE block");
  npy("attn_entropy", {P, N, H}, in.attn_entropy, "entropy (nats) of each head's weights; layers = attention_layers");
  npy("attn_sink", {P, N, H}, in.attn_sink, "attention weight on position 0");
  npy("attn_saturated", {P, N, H}, in.attn_saturated, "share of logits with |30 tanh(x/30)| >= 27");
  npy("attn_top_pos", {P, N, H, kAttentionTop}, in.attn_top_pos, "positions of the largest weights (-1: none)");
  npy("attn_top_w", {P, N, H, kAttentionTop}, in.attn_top_w, "their weights");
  if (!in.attn_full.empty())
    npy("attn_full", {N, H, P, P}, in.attn_full, "full attention weights [layer, head, query, key]");
  npy("lens_ids", {P, N, in.lens_k}, in.lens_ids, "logit lens: most likely next tokens after each recorded layer");
  npy("lens_probs", {P, N, in.lens_k}, in.lens_probs, "their probabilities");

  nlohmann::json j = inspect_json(in, tokens, pieces);
  j["model"] = fs::path(a.model).filename().string();
  j["random_weights"] = has_random_weights(a.model);
  j["arrays"] = arrays;
  j["full_attention_max_floats"] = kFullAttentionMaxFloats;
  const std::string json_text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  write_file_atomic(path("inspect.json"), json_text.data(), json_text.size(), m.files);
  std::string page(reinterpret_cast<const char*>(kInspectPage), sizeof kInspectPage);
  const size_t slot = page.find(kDataSlot);
  if (slot == std::string::npos) throw Error("the embedded report page lacks its data slot (a build problem)");
  const std::string report_text = report_json(j, in).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  page.replace(slot, kDataSlot.size(), script_safe(report_text));
  write_file_atomic(path("report.html"), page.data(), page.size(), m.files);
  std::fprintf(stderr, "inspect: %s, %lld layers (attention and logit lens: %lld) in %.2f s -> %s/report.html, "
               "inspect.json and %zu .npy arrays%s\n",
               count_of(T, "token").c_str(), static_cast<long long>(L), static_cast<long long>(N), eval_s,
               a.out.c_str(), arrays.size(),
               in.attn_full.empty() ? " (attention as summaries: the full maps would pass the budget)" : "");
  return 0;
}

}  // namespace

Command inspect_command() {
  auto a = std::make_shared<InspectArgs>();
  Command c;
  c.name = "inspect";
  c.description = "Record routing, attention, the residual stream and the logit lens of a prompt: JSON, .npy "
                  "arrays and an HTML report";
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    add_tokenizer_option(cmd, a->tokenizer, "SentencePiece tokenizer.model (default: beside ckpt-0/ or in its parent folder)");
    auto* p = cmd.add_option("-p,--prompt", a->prompt, "prompt text");
    auto* f = cmd.add_option("-f,--prompt-file", a->prompt_file, "read the prompt from a file ('-' = stdin)");
    auto* t = cmd.add_option("--tokens", a->tokens, "token ids instead of text, comma separated (no tokenizer needed)");
    p->excludes(f)->excludes(t);
    f->excludes(t);
    cmd.add_option("--layers", a->layers, "layers whose attention and logit lens are recorded, e.g. 0,2,5-7 "
                                          "(default: every layer; routing and residual norms are always recorded)");
    cmd.add_option("--out", a->out, "folder for report.html, inspect.json and the .npy arrays (made if absent)")
        ->required();
    cmd.add_option("--top", a->top, "logit-lens tokens per token and layer (0 = no logit lens)")
        ->check(number_in(0, 100, "between 0 and 100"))
        ->capture_default_str();
    cmd.add_flag("--bos", a->bos, "prepend the BOS token");
    add_engine_options(cmd, a->engine, nullptr);  // the context is the prompt
  };
  c.check = [a] {
    if (a->prompt.empty() && a->prompt_file.empty() && a->tokens.empty())
      throw UsageError("inspect needs a prompt: -p TEXT, -f FILE or --tokens 1,2,3");
    parse_layers(a->layers);
  };
  c.run = [a](Job& job) { return run_inspect(*a, job); };
  return c;
}

}  // namespace groak::cli
