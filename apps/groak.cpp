// The groak command line. Argument parsing lives here only; everything else is in the library.
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <optional>
#include <random>
#include <csignal>
#include <thread>

#include "model/check.h"
#include "model/loader.h"
#include "runtime/bench.h"
#include "runtime/generate.h"
#include "runtime/perplexity.h"
#include "runtime/engine.h"
#include "server/chat_template.h"
#include "server/server.h"
#include "synth/synth.h"
#include "convert/convert.h"
#include "parallel/job.h"
#include "io/gguf.h"
#include "io/output_file.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_model.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace groak;

namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;  // 128 + SIGINT, as shells report it
constexpr const char* kModelHelp =
    "model: xAI checkpoint (the folder holding ckpt-0/, or ckpt-0/ itself), a .gguf file (any part of a split "
    "set) or a Hugging Face folder (config.json + safetensors or torch.save pytorch_model*.bin, single or sharded)";

// The number s starts with, and in *used how many characters it took (0: s does not start with one).
double leading_number(const std::string& s, size_t* used) {
  *used = 0;
  try {
    return std::stod(s, used);
  } catch (const std::exception&) {
    *used = 0;
    return 0;
  }
}

// A number option's check with a message a person can read ("between 0 and 1e6", not 309 digits).
CLI::Validator number_in(double lo, double hi, const std::string& allowed) {
  return CLI::Validator(
      [lo, hi, allowed](std::string& v) -> std::string {
        size_t used = 0;
        const double x = leading_number(v, &used);
        if (used == 0 || used != v.size() || !(x >= lo && x <= hi)) return "must be " + allowed + "; got '" + v + "'";
        return {};
      },
      "");  // the option's help says what is allowed; the message above says it on error
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

// A one-line progress bar on stderr, only when stderr is a terminal and the job is big.
class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t min_total) : label_(std::move(label)), min_total_(min_total),
      tty_(::isatty(STDERR_FILENO) != 0) {}
  ~ProgressBar() { finish(); }
  void update(uint64_t done, uint64_t total, const std::string& extra = "") {
    if (!tty_ || total < min_total_) return;
    shown_ = true;
    const int width = 30;
    const int fill = total ? static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total)) : width;
    std::fprintf(stderr, "\r%s [%s%s] %s / %s %s", label_.c_str(), std::string(static_cast<size_t>(fill), '#').c_str(),
                 std::string(static_cast<size_t>(width - fill), ' ').c_str(), human_bytes(static_cast<double>(done)).c_str(),
                 human_bytes(static_cast<double>(total)).c_str(), extra.c_str());
    std::fflush(stderr);
  }
  void finish() {
    if (shown_) std::fprintf(stderr, "\n");
    shown_ = false;
  }

 private:
  std::string label_;
  uint64_t min_total_;
  bool tty_;
  bool shown_ = false;
};

// ---- Ctrl-C and SIGTERM ----------------------------------------------------------------------------
// The first signal sets a flag that long jobs poll at safe points (a prompt chunk, a decoded token, a
// written block, a loaded file): they stop, remove partial output and exit 130. A second one exits at once.
std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) {
  if (g_interrupted.exchange(true)) std::_Exit(kExitInterrupted);
}

// Installed for the whole of a command that writes files or runs the model (before loading).
class InterruptHandler {
 public:
  InterruptHandler() {
    old_int_ = std::signal(SIGINT, on_interrupt);
    old_term_ = std::signal(SIGTERM, on_interrupt);
  }
  ~InterruptHandler() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }
  InterruptHandler(const InterruptHandler&) = delete;
  InterruptHandler& operator=(const InterruptHandler&) = delete;

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

// Thrown at a safe point after Ctrl-C; main() says so and exits 130 (the unwinding removes .tmp files).
struct Interrupted : Error {
  Interrupted() : Error("interrupted") {}
};
void check_interrupt() {
  if (g_interrupted.load()) throw Interrupted();
}

// Standard output failing (a full disk, a closed pipe) is an error of the command, not a silent success.
void check_stdout() {
  if (std::fflush(stdout) != 0 || std::ferror(stdout))
    throw Error(std::string("writing to standard output failed (") + std::strerror(errno) +
                "); is the disk full or the reading end of the pipe closed?");
}
void write_stdout(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) check_stdout();
}

Model load_with_progress(const std::string& path) {
  ProgressBar bar("loading", uint64_t{1} << 30);
  Model m = load_model(path, [&](size_t files_done, size_t files_total, uint64_t done, uint64_t total) {
    check_interrupt();
    bar.update(done, total, "(" + std::to_string(files_done) + "/" + std::to_string(files_total) + " files)");
  });
  bar.finish();
  for (const auto& w : m.warnings) std::fprintf(stderr, "groak: warning: %s\n", w.c_str());
  return m;
}

// Token ids from "1,2,3" or whitespace/comma separated text. Throws on anything else.
std::vector<int32_t> parse_token_list(const std::string& text, const std::string& origin) {
  std::vector<int32_t> ids;
  std::string item;
  auto flush = [&]() {
    if (item.empty()) return;
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v > INT32_MAX)
      throw CLI::ValidationError(origin, "'" + item + "' is not a token id (non-negative integer)");
    ids.push_back(static_cast<int32_t>(v));
    item.clear();
  };
  bool after_comma = true;  // "1,,2", ",1" and "1," have an empty item: a typo, not a list
  for (char ch : text) {
    if (ch == ',') {
      if (item.empty() && after_comma)
        throw CLI::ValidationError(origin, "empty item in the token list (two commas, or one at an end); write e.g. 1,2,3");
      flush();
      after_comma = true;
    } else if (std::isspace(static_cast<unsigned char>(ch))) {
      if (!item.empty()) after_comma = false;
      flush();
    } else {
      item += ch;
      after_comma = false;
    }
  }
  if (item.empty() && after_comma && !ids.empty())
    throw CLI::ValidationError(origin, "empty item in the token list (a comma at the end); write e.g. 1,2,3");
  flush();
  if (ids.empty()) throw CLI::ValidationError(origin, "no token ids given");
  return ids;
}

std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- groak logits ---------------------------------------------------------------------------------
struct LogitsArgs {
  std::string model, tokens, tokens_file, out, mode = "full", kernels = "fast", cache_type = "f32";
  int threads = 0;
};

constexpr const char* kThreadsHelp = "threads (default: every core)";
constexpr const char* kKernelsHelp =
    "kernel table: fast (the best for this CPU), avx2, portable, or reference (the scalar oracle, slow)";

constexpr const char* kCacheTypeHelp = "KV cache element type: f32 (exact), f16 or bf16 (half the memory)";
KvType cache_type_named(const std::string& name) {
  return name == "f16" ? KvType::F16 : name == "bf16" ? KvType::BF16 : KvType::F32;
}

const Kernels& kernels_named(const std::string& name) {
  const Kernels* k = kernels_by_name(name.c_str());
  if (!k) throw Error("kernel table '" + name + "' is not available on this CPU; use fast, portable or reference");
  return *k;
}

int run_logits(const LogitsArgs& a, Job& job) {
  std::vector<int32_t> tokens;  // rank 0 reads them; other ranks (mpirun) only need their share of the model
  InterruptHandler interrupts;  // before loading: Ctrl-C ends a long load or evaluation cleanly
  auto t0 = std::chrono::steady_clock::now();
  Model m = job.load([&] {
    if (job.leader())
      tokens = !a.tokens.empty() ? parse_token_list(a.tokens, "--tokens")
                                 : parse_token_list(read_file_text(a.tokens_file), "--tokens-file");
    return load_with_progress(a.model);
  });
  if (!job.leader()) return job.follow(m, a.threads, kernels_named(a.kernels));
  const double load_s = seconds_since(t0);
  checked_output_path(a.out, m.files);  // before the work: never overwrite the model with its logits
  const int64_t V = m.config.vocab_size, T = static_cast<int64_t>(tokens.size());
  if (T > m.config.sequence_len)
    throw Error(std::to_string(T) + " tokens exceed the model's context (sequence_len " +
                std::to_string(m.config.sequence_len) + "); pass at most " + std::to_string(m.config.sequence_len));
  Engine s(m, {.context = T, .cache_type = cache_type_named(a.cache_type),
               .threads = a.threads ? a.threads : job.default_threads(), .kernels = &kernels_named(a.kernels)});
  std::vector<float> all(static_cast<size_t>(T * V)), row;
  t0 = std::chrono::steady_clock::now();
  if (a.mode == "full") {
    s.eval(tokens, all, LogitRows::All);
  } else {  // incremental: one token at a time through the KV cache
    for (int64_t t = 0; t < T; ++t) {
      check_interrupt();
      s.eval(std::span<const int32_t>(tokens.data() + t, 1), row, LogitRows::LastOnly);
      std::copy(row.begin(), row.end(), all.begin() + t * V);
    }
  }
  const double eval_s = seconds_since(t0);
  check_interrupt();
  write_file_atomic(a.out, all.data(), all.size() * sizeof(float), m.files);
  std::fprintf(stderr, "logits: %lld tokens (%s) -> %s [%lld, %lld] f32; load %.2f s, eval %.2f s\n",
               static_cast<long long>(T), a.mode.c_str(), a.out.c_str(), static_cast<long long>(T),
               static_cast<long long>(V), load_s, eval_s);
  return 0;
}

// ---- groak info -------------------------------------------------------------------------------------
// Models up to this size get every weight scanned for NaN/Inf by `info` (a second or so); larger ones on request.
constexpr uint64_t kAutoCheckBytes = uint64_t{4} << 30;

int run_info(const std::string& path, bool check_weights) {
  auto t0 = std::chrono::steady_clock::now();
  Model m = load_with_progress(path);
  const double load_s = seconds_since(t0);
  std::printf("model:   %s\nformat:  %s\nloaded in %.2f s\n\nconfig:\n%s\n", m.location.c_str(), m.format.c_str(), load_s,
              m.config.describe().c_str());
  size_t w = 4;
  for (const auto& t : m.tensors) w = std::max(w, t.name.size());
  std::printf("%-*s  %-28s  %-20s  %s\n", static_cast<int>(w), "name", "dtype", "shape", "bytes");
  uint64_t total = 0;
  for (const auto& t : m.tensors) {
    std::string shape = "[";
    for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
    shape += "]";
    std::printf("%-*s  %-28s  %-20s  %llu\n", static_cast<int>(w), t.name.c_str(), t.dtype.c_str(), shape.c_str(),
                static_cast<unsigned long long>(t.bytes));
    total += t.bytes;
  }
  std::printf("\ntensors:                    %zu (%s)\n", m.tensors.size(), human_bytes(static_cast<double>(total)).c_str());
  std::printf("parameters:                 %llu\n", static_cast<unsigned long long>(m.parameter_count()));
  std::printf("weight bytes per token:     %llu (%s: attention, %lld of %lld experts, router, norms, LM head)\n",
              static_cast<unsigned long long>(m.weight_bytes_per_token()),
              human_bytes(static_cast<double>(m.weight_bytes_per_token())).c_str(),
              static_cast<long long>(m.config.num_selected_experts), static_cast<long long>(m.config.num_experts));
  std::printf("KV cache bytes per token:   %llu (f32 K and V, %lld layers)\n",
              static_cast<unsigned long long>(m.kv_bytes_per_token()), static_cast<long long>(m.config.num_layers));
  if (check_weights || total <= kAutoCheckBytes) {
    const std::vector<std::string> bad = nonfinite_weights(m, /*all=*/true);
    std::printf("weights checked:            %s\n", bad.empty() ? "all finite" : "NaN/Inf found (see stderr)");
    for (const std::string& b : bad) std::fprintf(stderr, "groak: warning: %s\n", b.c_str());
  } else {
    std::printf("weights checked:            norms and routers only (--check-weights reads every weight)\n");
  }
  check_stdout();
  return 0;
}

// ---- groak synth -------------------------------------------------------------------------------------
int run_synth(const std::string& preset, uint64_t seed, const std::string& out, bool force) {
  Config cfg = synth_preset(preset);
  InterruptHandler interrupts;
  prepare_synth_folder(out, force);
  auto t0 = std::chrono::steady_clock::now();
  ProgressBar bar("synth", uint64_t{1} << 28);
  write_synthetic_checkpoint(cfg, preset, seed, out, [&](uint64_t done, uint64_t total) {
    check_interrupt();
    bar.update(done, total);
  });
  bar.finish();
  std::fprintf(stderr, "synth: wrote preset '%s' (seed %llu, random weights) to %s in %.1f s\n", preset.c_str(),
               static_cast<unsigned long long>(seed), out.c_str(), seconds_since(t0));
  return 0;
}

// ---- tokenizer commands --------------------------------------------------------------------------------
std::string read_stdin() {
  std::stringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}

// --tokenizer if given; else the vocabulary inside a GGUF; else tokenizer.model beside ckpt-0/ or in
// its parent.
Tokenizer open_tokenizer(const std::string& explicit_path, const std::string& model_path) {
  if (!explicit_path.empty()) return Tokenizer::load(explicit_path);
  if (is_gguf_file(model_path)) {
    GgufFile g = GgufFile::open(model_path);
    if (auto v = gguf_vocab(g)) return tokenizer_from_vocab(*v);
    throw Error(model_path + ": this GGUF carries no tokenizer (tokenizer.ggml.tokens); pass --tokenizer PATH/tokenizer.model");
  }
  std::vector<std::string> looked;
  std::string found = model_path.empty() ? "" : find_tokenizer(model_path, &looked);
  if (found.empty()) {
    std::string msg = "no tokenizer found";
    if (!looked.empty()) {
      msg += "; looked for:";
      for (const auto& l : looked) msg += "\n  " + l;
    }
    throw Error(msg + "\npass --tokenizer PATH/tokenizer.model (xAI's download has it at the root of the grok-1 repo)");
  }
  return Tokenizer::load(found);
}

// Files an output may never replace: the model's own and the tokenizer the command reads (given or found).
std::vector<std::string> input_files(const Model& m, const std::string& tokenizer_arg, const std::string& model_path) {
  std::vector<std::string> in = m.files;
  if (!tokenizer_arg.empty()) {
    in.push_back(tokenizer_arg);
  } else if (!is_gguf_file(model_path)) {
    const std::string found = find_tokenizer(model_path, nullptr);
    if (!found.empty()) in.push_back(found);
  }
  return in;
}

int run_tokenize(const std::string& tok_path, bool pieces) {
  Tokenizer tok = Tokenizer::load(tok_path);
  std::vector<int32_t> ids = tok.encode(read_stdin());
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (pieces)
      write_stdout(std::to_string(ids[i]) + "\t" + tok.piece(ids[i]) + "\n");
    else
      line += (i ? " " : "") + std::to_string(ids[i]);
  }
  if (!pieces) write_stdout(line + "\n");
  check_stdout();
  return 0;
}

int run_detokenize(const std::string& tok_path) {
  Tokenizer tok = Tokenizer::load(tok_path);
  std::string in = read_stdin();
  std::vector<int32_t> ids = in.find_first_not_of(" \t\r\n,") == std::string::npos
                                 ? std::vector<int32_t>{}
                                 : parse_token_list(in, "stdin");
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= tok.vocab_size())
      throw Error("token id " + std::to_string(ids[i]) + " (at index " + std::to_string(i) +
                  ") is outside the tokenizer's vocabulary [0, " + std::to_string(tok.vocab_size()) + ")");
  }
  write_stdout(tok.decode(ids) + "\n");
  check_stdout();
  return 0;
}

// ---- groak convert -------------------------------------------------------------------------------------
// "2G", "500M", "64K" or plain bytes.
uint64_t parse_size(const std::string& s) {
  size_t used = 0;
  const double v = leading_number(s, &used);
  if (used == 0 || v <= 0) throw CLI::ValidationError("--split-max-size", "'" + s + "' is not a size (e.g. 2G, 500M)");
  std::string unit = s.substr(used);
  double mult = 1;
  if (unit == "K" || unit == "k") mult = 1e3;
  else if (unit == "M" || unit == "m") mult = 1e6;
  else if (unit == "G" || unit == "g") mult = 1e9;
  else if (unit == "T" || unit == "t") mult = 1e12;
  else if (!unit.empty()) throw CLI::ValidationError("--split-max-size", "unknown unit in '" + s + "' (use K, M, G, T)");
  return static_cast<uint64_t>(v * mult);
}

struct ConvertArgs {
  std::string model, out, type = "q8_0", split, tokenizer;
  bool allow_requantize = false;
};

int run_convert(const ConvertArgs& a) {
  ConvertOptions opt;
  opt.type = parse_convert_type(a.type);
  opt.out = a.out;
  opt.allow_requantize = a.allow_requantize;
  if (!a.split.empty()) opt.split_max_bytes = parse_size(a.split);
  InterruptHandler interrupts;
  auto t0 = std::chrono::steady_clock::now();
  Model m = load_with_progress(a.model);
  opt.inputs = input_files(m, a.tokenizer, a.model);
  std::optional<VocabSpec> vocab;
  if (a.tokenizer.empty() && is_gguf_file(a.model)) {
    vocab = gguf_vocab(GgufFile::open(a.model));
  } else {
    try {
      vocab = vocab_from_tokenizer(open_tokenizer(a.tokenizer, a.model));
    } catch (const Error& e) {
      if (!a.tokenizer.empty()) throw;
      std::fprintf(stderr, "groak: warning: %s\ngroak: warning: writing a GGUF without a vocabulary (llama.cpp needs one)\n", e.what());
    }
  }
  if (vocab && static_cast<int64_t>(vocab->tokens.size()) != m.config.vocab_size)
    throw Error("the tokenizer has " + std::to_string(vocab->tokens.size()) + " pieces but the model's vocabulary is " +
                std::to_string(m.config.vocab_size) + "; pass the tokenizer that belongs to this model (--tokenizer)");
  opt.vocab = vocab ? &*vocab : nullptr;
  ProgressBar bar("convert", uint64_t{1} << 28);
  ConvertReport rep = convert_model(m, opt, [&](uint64_t done, uint64_t total) {
    check_interrupt();
    bar.update(done, total);
  });
  bar.finish();
  for (const auto& f : rep.fallbacks) std::fprintf(stderr, "groak: note: %s\n", f.c_str());
  if (rep.exact_int8_blocks + rep.requantized_blocks > 0)
    std::fprintf(stderr, "convert: int8 -> q8_0: %llu blocks kept exactly, %llu re-rounded\n",
                 static_cast<unsigned long long>(rep.exact_int8_blocks), static_cast<unsigned long long>(rep.requantized_blocks));
  for (const auto& f : rep.files) std::fprintf(stderr, "convert: wrote %s\n", f.c_str());
  std::fprintf(stderr, "convert: %s, %s in %.1f s\n", a.type.c_str(), human_bytes(static_cast<double>(rep.bytes)).c_str(),
               seconds_since(t0));
  return 0;
}

// ---- groak generate ------------------------------------------------------------------------------------

struct GenerateArgs {
  std::string model, tokenizer, prompt, prompt_file;
  bool bos = false, escape = false, echo = false;
  int64_t seed = 42;  // -1 = random
  int64_t ctx = 0;
  int threads = 0;
  std::string cache_type = "f32";
  GenerateOptions opt;
};

// llama.cpp's -e: \n \t \r \\ \" \' in the prompt become the characters; any other backslash stays.
std::string process_escapes(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    switch (s[i + 1]) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case '"': out += '"'; break;
      case '\'': out += '\''; break;
      default: out += s[i]; continue;  // keep the backslash; the next character is copied next time round
    }
    ++i;
  }
  return out;
}

std::string count_of(int64_t n, const char* noun) {  // "1 token", "2 tokens"
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

int run_generate(GenerateArgs& a, Job& job) {
  std::string text;  // rank 0 owns the prompt, the tokenizer and the output (mpirun)
  InterruptHandler interrupts;
  Model m = job.load([&] {
    if (!job.leader()) return load_with_progress(a.model);
    if (!a.prompt_file.empty())
      text = a.prompt_file == "-" ? read_stdin() : read_file_text(a.prompt_file);
    else
      text = a.prompt;
    if (a.escape) text = process_escapes(text);
    if (a.seed < 0) {  // -1: a random seed, said aloud so the run can be repeated
      a.opt.sampling.seed = std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
      a.opt.sampling.seed &= ~(uint64_t{1} << 63);  // printable and accepted back by --seed
      std::fprintf(stderr, "[groak] seed: %llu (random; pass --seed %llu to repeat this text)\n",
                   static_cast<unsigned long long>(a.opt.sampling.seed),
                   static_cast<unsigned long long>(a.opt.sampling.seed));
    } else {
      a.opt.sampling.seed = static_cast<uint64_t>(a.seed);
    }
    return load_with_progress(a.model);
  });
  if (!job.leader()) return job.follow(m, a.threads, fast_kernels());
  Tokenizer tok = open_tokenizer(a.tokenizer, a.model);
  std::vector<int32_t> prompt;
  if (a.bos) prompt.push_back(tok.bos_id());
  for (int32_t id : tok.encode(text)) prompt.push_back(id);
  if (static_cast<int64_t>(prompt.size()) > m.config.sequence_len)
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens but the model's context is " +
                std::to_string(m.config.sequence_len) + " (sequence_len); shorten the prompt");
  const int64_t ctx = a.ctx ? a.ctx : m.config.sequence_len;
  Engine session(m, {.context = ctx, .cache_type = cache_type_named(a.cache_type),
                     .threads = a.threads ? a.threads : job.default_threads()});
  if (a.echo) write_stdout(text);
  GenerateStats st = generate(session, tok, prompt, a.opt, [](const std::string& t) {
    write_stdout(t);
    check_stdout();
  }, &g_interrupted);
  write_stdout("\n");
  check_stdout();
  // The first generated token comes from the prefill; the decode rate counts the ones after it.
  const double decode_tps = st.decode_seconds > 0 && st.generated_tokens > 1
                                ? static_cast<double>(st.generated_tokens - 1) / st.decode_seconds
                                : 0;
  std::fprintf(stderr,
               "\n[groak] stopped: %s%s\n"
               "[groak] prompt: %s, %.2f s (%.1f tok/s)\n"
               "[groak] generated: %s, %.2f s (%.1f tok/s); time to first token %.2f s\n",
               stop_reason_text(st.reason),
               st.reason == StopReason::ContextFull ? (" (" + count_of(session.context(), "token") + ")").c_str() : "",
               count_of(st.prompt_tokens, "token").c_str(), st.prefill_seconds,
               st.prefill_seconds > 0 ? static_cast<double>(st.prompt_tokens) / st.prefill_seconds : 0.0,
               count_of(st.generated_tokens, "token").c_str(), st.decode_seconds, decode_tps, st.first_token_seconds);
  return st.reason == StopReason::Cancelled ? kExitInterrupted : 0;
}

// ---- groak perplexity ----------------------------------------------------------------------------------
struct PerplexityArgs {
  std::string model, tokenizer, file, kld_base, kernels = "fast", cache_type = "f32";
  int64_t ctx = 512, chunks = 0, batch = kDefaultBatch;
  bool kld = false;
  int threads = 0;
};

int run_perplexity(const PerplexityArgs& a) {
  InterruptHandler interrupts;
  Model m = load_with_progress(a.model);
  std::vector<int32_t> tokens;
  std::optional<KldBaseHeader> base;
  std::ifstream base_in;
  if (a.kld) {  // compare against a saved model: its windows' tokens come from the file
    base_in.open(a.kld_base, std::ios::binary);
    if (!base_in) throw Error(a.kld_base + ": cannot read the KL base file (" + std::strerror(errno) + ")");
    base = read_kld_header(base_in, a.kld_base);
    if (static_cast<int64_t>(base->vocab) != m.config.vocab_size)
      throw Error(a.kld_base + ": made by a model with a vocabulary of " + std::to_string(base->vocab) +
                  " tokens, this one has " + std::to_string(m.config.vocab_size) + "; compare models of one vocabulary");
    tokens = base->tokens;
  } else {
    const std::string text = a.file == "-" ? read_stdin() : read_file_text(a.file);
    tokens = open_tokenizer(a.tokenizer, a.model).encode(text);
  }
  const int64_t ctx = base ? static_cast<int64_t>(base->ctx) : a.ctx;
  if (base && a.ctx != 512 && a.ctx != ctx)
    std::fprintf(stderr, "groak: note: --ctx %lld ignored: the KL base file was made with --ctx %lld\n",
                 static_cast<long long>(a.ctx), static_cast<long long>(ctx));
  Engine session(m, {.context = ctx, .batch = a.batch, .cache_type = cache_type_named(a.cache_type),
                     .threads = a.threads, .kernels = &kernels_named(a.kernels)});
  // The base file is an output: never one of the inputs, written as .tmp and renamed once complete.
  std::string save_path;
  std::ofstream save;
  if (!a.kld_base.empty() && !a.kld) {
    std::vector<std::string> inputs = input_files(m, a.tokenizer, a.model);
    if (!a.file.empty() && a.file != "-") inputs.push_back(a.file);
    save_path = checked_output_path(a.kld_base, inputs);
    save.open(save_path + ".tmp", std::ios::binary | std::ios::trunc);
    if (!save) throw Error(a.kld_base + ": cannot create " + save_path + ".tmp (" + std::strerror(errno) + ")");
  }
  struct RemoveTmp {  // an error or Ctrl-C leaves no partial base file
    std::string path;
    ~RemoveTmp() {
      std::error_code ec;
      if (!path.empty()) fs::remove(path, ec);
    }
  } remove_tmp{save_path.empty() ? "" : save_path + ".tmp"};

  const int64_t n_chunks = std::min<int64_t>(static_cast<int64_t>(tokens.size()) / ctx,
                                             a.chunks > 0 ? a.chunks : INT64_MAX);
  std::fprintf(stderr, "perplexity: %zu tokens, %lld chunks of %lld (the second half of each is scored)\n",
               tokens.size(), static_cast<long long>(n_chunks), static_cast<long long>(ctx));
  const auto t0 = std::chrono::steady_clock::now();
  PerplexityReport r = perplexity(session, tokens, a.chunks, save.is_open() ? &save : nullptr, base ? &base_in : nullptr,
                                  [&](const PerplexityReport& p) {
                                    char item[64];
                                    std::snprintf(item, sizeof item, "[%lld]%.4f,", static_cast<long long>(p.chunks),
                                                  p.chunk_ppl.back());
                                    write_stdout(item);
                                    check_stdout();
                                  }, &g_interrupted);
  write_stdout("\n");
  if (r.cancelled) throw Interrupted();
  char line[256];
  std::snprintf(line, sizeof line, "Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
  write_stdout(line);
  if (r.kld) {
    std::snprintf(line, sizeof line, "Mean KLD: %.6f +/- %.6f\nMaximum KLD: %.6f\nSame top: %.3f%% +/- %.3f%%\n",
                  r.kld->mean, r.kld->err, r.kld->max, 100 * r.kld->same_top, 100 * r.kld->same_top_err);
    write_stdout(line);
  }
  check_stdout();
  if (save.is_open()) {
    save.close();
    if (!save) throw Error(a.kld_base + ": writing failed (disk full?)");
    std::error_code ec;
    fs::rename(save_path + ".tmp", save_path, ec);
    if (ec) throw Error(a.kld_base + ": cannot rename the finished file into place (" + ec.message() + ")");
    remove_tmp.path.clear();
    std::fprintf(stderr, "perplexity: saved the log-probabilities of %lld tokens to %s (compare another model with "
                         "--kl-divergence-base %s --kl-divergence)\n",
                 static_cast<long long>(r.scored), a.kld_base.c_str(), a.kld_base.c_str());
  }
  std::fprintf(stderr, "perplexity: %lld tokens scored in %.2f s\n", static_cast<long long>(r.scored), seconds_since(t0));
  return 0;
}

// ---- groak bench ---------------------------------------------------------------------------------------
struct BenchArgs {
  std::string model, kernels = "fast", cache_type = "f32";
  BenchOptions opt;
};

int run_bench_cli(BenchArgs& a, Job& job) {
  a.opt.cache_type = cache_type_named(a.cache_type);
  Model m = job.load([&] {
    a.opt.kernels = &kernels_named(a.kernels);
    return load_with_progress(a.model);
  });
  if (!job.leader()) return job.follow(m, a.opt.threads, *a.opt.kernels);
  if (a.opt.threads == 0) a.opt.threads = job.default_threads();
  std::fprintf(stderr, "bench: %s, warming up (the first pass reads the weights into memory)\n", m.format.c_str());
  BenchResult r = run_bench(m, a.opt);
  uint64_t size = 0;
  for (const auto& t : m.tensors) size += t.bytes;
  const std::string name = fs::path(m.location).filename().string();
  std::printf("| model | size | params | kernels | threads | test | t/s |\n|---|---:|---:|---|---:|---|---:|\n");
  auto row = [&](const std::string& test, const BenchStat& st) {
    std::printf("| %s | %s | %.2f B | %s | %d | %s | %.2f ± %.2f |\n", name.c_str(), human_bytes(static_cast<double>(size)).c_str(),
                static_cast<double>(m.parameter_count()) / 1e9, r.kernels.c_str(), r.threads, test.c_str(), st.mean, st.stddev);
  };
  const std::string at = a.opt.depth > 0 ? " @ d" + std::to_string(a.opt.depth) : "";
  if (a.opt.prompt > 0) row("pp" + std::to_string(a.opt.prompt) + at, r.pp);
  if (a.opt.gen > 0) row("tg" + std::to_string(a.opt.gen) + at, r.tg);
  std::printf("\n");
  if (a.opt.gen > 0) {
    const double gbs = static_cast<double>(r.bytes_per_token) * r.tg.mean / 1e9;
    std::printf("decode:  %s of weights per token x %.2f tok/s = %.1f GB/s", human_bytes(static_cast<double>(r.bytes_per_token)).c_str(),
                r.tg.mean, gbs);
    if (r.read_gbs > 0) std::printf(" = %.0f %% of the %.1f GB/s read bandwidth measured in this run", 100 * gbs / r.read_gbs, r.read_gbs);
    std::printf("\n");
  }
  if (a.opt.prompt > 0) {
    const double gmacs = r.macs_per_prompt_token * r.pp.mean / 1e9;
    std::printf("prefill: %.2f GMAC per token x %.2f tok/s = %.1f GMAC/s", r.macs_per_prompt_token / 1e9, r.pp.mean, gmacs);
    if (r.fma_gmacs > 0)
      std::printf(" = %.0f %% of the %.1f GMAC/s f32 FMA peak measured in this run", 100 * gmacs / r.fma_gmacs, r.fma_gmacs);
    std::printf("\n");
  }
  if (job.size() > 1)
    std::printf("tensor parallel: %d ranks, %.0f all-reduces per decoded token; rank 0's time in all-reduces and gathers "
                "(waiting for the other ranks included): pp %.0f %%, tg %.0f %%\n",
                job.size(), r.tg_all_reduces_per_token, 100 * r.pp_comm_share, 100 * r.tg_comm_share);
  check_stdout();
  return 0;
}


// ---- groak serve ---------------------------------------------------------------------------------------
struct ServeArgs {
  std::string model, tokenizer, chat_template, alias, cache_type = "f32";
  ServerOptions opt;
};

std::atomic<bool> g_serve_stop{false};
extern "C" void on_serve_signal(int) { g_serve_stop.store(true); }

// A model written by `groak synth` (config.json says which generator made it): its weights are random.
bool has_random_weights(const std::string& model_path) {
  fs::path p(model_path);
  for (fs::path dir : {p, p.parent_path(), p.parent_path().parent_path()}) {
    std::error_code ec;
    if (dir.empty() || !fs::is_regular_file(dir / "config.json", ec)) continue;
    try {
      auto j = nlohmann::json::parse(read_file_text((dir / "config.json").string()));
      return j.is_object() && j.contains("generator");
    } catch (const std::exception&) {
      return false;
    }
  }
  return false;
}

// The id clients see: --alias, else the model folder's (or file's) name.
std::string model_id_of(const std::string& model_path) {
  fs::path p = fs::path(model_path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (p.filename() == "ckpt-0") p = p.parent_path();
  std::string name = p.filename().string();
  return name.empty() ? "grok-1" : name;
}

int run_serve(ServeArgs& a) {
  ServerOptions& o = a.opt;
  if (!a.chat_template.empty()) o.chat_template = ChatTemplate::load(a.chat_template);
  if (o.api_key.empty())
    if (const char* k = std::getenv("GROAK_API_KEY")) o.api_key = k;
  o.scheduler.cache_type = cache_type_named(a.cache_type);
  o.model_id = a.alias.empty() ? model_id_of(a.model) : a.alias;
  o.random_weights = has_random_weights(a.model);
  HttpServer server(o);
  const int port = server.bind();
  std::fprintf(stderr, "groak serve: listening on http://%s:%d/ (loading the model; /health answers 503 until ready)\n",
               o.host.c_str(), port);
  std::thread listener([&] { server.listen(); });
  try {
    auto model = std::make_shared<Model>(load_with_progress(a.model));
    auto tok = std::make_shared<Tokenizer>(open_tokenizer(a.tokenizer, a.model));
    server.set_model(model, tok);
    Scheduler* s = server.scheduler();
    std::fprintf(stderr,
                 "groak serve: ready: %s (%s%s), %d slots x %lld tokens of context, KV cache %s (%s, allocated up "
                 "front), queue %d\n",
                 o.model_id.c_str(), model->format.c_str(), o.random_weights ? ", RANDOM weights" : "", s->parallel(),
                 static_cast<long long>(s->context()), human_bytes(static_cast<double>(s->kv_bytes())).c_str(),
                 a.cache_type.c_str(), o.scheduler.queue);
    std::fprintf(stderr, "groak serve: chat page http://%s:%d/  API http://%s:%d/v1  (Ctrl-C stops)\n", o.host.c_str(),
                 port, o.host.c_str(), port);
  } catch (...) {
    server.stop();
    listener.join();
    throw;
  }
  std::signal(SIGINT, on_serve_signal);
  std::signal(SIGTERM, on_serve_signal);
  while (!g_serve_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::fprintf(stderr, "groak serve: stopping\n");
  server.stop();
  listener.join();
  return 0;
}

// ---- groak chat ----------------------------------------------------------------------------------------
struct ChatArgs {
  std::string model, tokenizer, chat_template, system, cache_type = "f32";
  int64_t ctx = 0;
  int threads = 0;
  GenerateOptions opt;
};

std::atomic<bool> g_chat_replying{false};
extern "C" void on_sigint_chat(int) {
  if (g_chat_replying.load()) {
    g_interrupted.store(true);  // stops the reply at the next token
  } else {
    const char nl = '\n';
    (void)!::write(STDERR_FILENO, &nl, 1);
    std::_Exit(130);  // at the prompt: quit, as llama-cli does
  }
}

// How many of the generated tokens make up the reply that was shown (a stop string's tokens are not
// part of it). `before` is the token the reply follows, so its leading space survives decoding.
size_t reply_tokens(const Tokenizer& tok, int32_t before, const std::vector<int32_t>& gen, const std::string& shown) {
  const std::string base = tok.decode({before});
  for (size_t k = gen.size(); k > 0; --k) {
    std::vector<int32_t> ids{before};
    ids.insert(ids.end(), gen.begin(), gen.begin() + static_cast<long>(k));
    const std::string text = tok.decode(ids);
    if (text.compare(0, base.size(), base) != 0) continue;
    if (shown.compare(0, text.size() - base.size(), text, base.size()) == 0 && text.size() - base.size() <= shown.size())
      return k;
  }
  return 0;
}

int run_chat(ChatArgs& a) {
  const ChatTemplate tmpl = a.chat_template.empty() ? ChatTemplate{} : ChatTemplate::load(a.chat_template);
  Model m = load_with_progress(a.model);
  Tokenizer tok = open_tokenizer(a.tokenizer, a.model);
  Engine session(m, {.context = a.ctx ? a.ctx : m.config.sequence_len, .cache_type = cache_type_named(a.cache_type),
                     .threads = a.threads});
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  GenerateOptions opt = a.opt;
  opt.stop.insert(opt.stop.end(), tmpl.stop.begin(), tmpl.stop.end());
  if (tty)
    std::fprintf(stderr, "groak chat: %s, %lld tokens of context%s. /reset clears, /exit or Ctrl-D quits, Ctrl-C stops "
                         "a reply.\n",
                 m.location.c_str(), static_cast<long long>(session.context()),
                 has_random_weights(a.model) ? " (RANDOM weights: the replies are gibberish)" : "");
  const std::string system_turn = a.system.empty() ? "" : tmpl.prefix("system") + a.system + tmpl.suffix("system");
  std::string pending = system_turn;        // text to feed before the next user turn
  std::vector<int32_t> carry;               // a reply token not yet in the cache
  std::signal(SIGINT, on_sigint_chat);
  for (std::string line;;) {
    if (tty) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "/exit") break;
    if (line == "/reset") {
      session.reset();
      pending = system_turn;
      carry.clear();
      if (tty) std::fprintf(stderr, "(conversation cleared)\n");
      continue;
    }
    if (line.empty()) continue;
    std::vector<int32_t> ids = carry;
    if (session.position() == 0 && ids.empty() && tmpl.bos) ids.push_back(tok.bos_id());
    for (int32_t id : tok.encode(pending + tmpl.prefix("user") + line + tmpl.suffix("user") + tmpl.generation))
      ids.push_back(id);
    if (static_cast<int64_t>(ids.size()) >= session.context() - session.position()) {
      std::fprintf(stderr, "groak chat: the conversation fills the context (%lld tokens); /reset to start over\n",
                   static_cast<long long>(session.context()));
      continue;
    }
    const int64_t start = session.position() + static_cast<int64_t>(ids.size());
    std::string shown;
    bool started = false;
    g_interrupted.store(false);
    g_chat_replying.store(true);
    GenerateStats st = generate(session, tok, ids, opt, [&](const std::string& t) {
      std::string text = t;
      if (!started) {  // the space after "Assistant:" belongs to the template
        text.erase(0, std::min(text.find_first_not_of(' '), text.size()));
        started = !text.empty();
      }
      shown += t;
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }, &g_interrupted);
    g_chat_replying.store(false);
    std::printf("\n");
    std::fflush(stdout);
    if (tty)
      std::fprintf(stderr, "[%lld tokens, %.1f tok/s%s]\n", static_cast<long long>(st.generated_tokens),
                   st.decode_seconds > 0 && st.generated_tokens > 1
                       ? static_cast<double>(st.generated_tokens - 1) / st.decode_seconds
                       : 0.0,
                   st.reason == StopReason::Cancelled ? ", stopped" : "");
    // Keep exactly the reply's tokens in the cache: drop a stop string's, and carry the last one if it
    // was never run through the model.
    const size_t keep = reply_tokens(tok, ids.back(), st.tokens, shown);
    const int64_t in_cache = session.position() - start;
    carry.clear();
    if (static_cast<int64_t>(keep) <= in_cache) {
      session.rewind(start + static_cast<int64_t>(keep));
    } else {
      carry.assign(st.tokens.begin() + in_cache, st.tokens.begin() + static_cast<long>(keep));
    }
    pending = tmpl.suffix("assistant");
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  // A closed pipe becomes a write error that each command reports, not a silent death by SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  // One process, or a rank of a tensor-parallel group under mpirun (docs/distributed.md).
  std::unique_ptr<Job> job;
  try {
    job = std::make_unique<Job>(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "groak: error: %s\n", e.what());
    return kExitError;
  }
  CLI::App app{"groak: runs and explains xAI's Grok-1 (314B mixture-of-experts) on the CPU"};
  app.require_subcommand(1);
  // A repeated option takes its last value (llama.cpp's behaviour; scripts/demo.sh -n 64 overrides its -n 48).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", "groak 0.1");

  LogitsArgs la;
  auto* logits = app.add_subcommand("logits", "Write the logits of every position as little-endian float32 [n_tokens, vocab]");
  logits->add_option("--model", la.model, kModelHelp)->required();
  auto* tok_opt = logits->add_option("--tokens", la.tokens, "token ids, comma separated (e.g. 1,2,3)");
  auto* tokf_opt = logits->add_option("--tokens-file", la.tokens_file, "file of token ids separated by spaces")
                       ->check(CLI::ExistingFile);
  tok_opt->excludes(tokf_opt);
  logits->add_option("--out", la.out, "output file (written as FILE.tmp, renamed when complete; never one of the "
                                     "inputs, a device or a FIFO; a symbolic link is followed and its target replaced)")
      ->required();
  logits->add_option("--mode", la.mode, "full: one forward pass over all tokens; incremental: one token at a time "
                                        "through the KV cache")
      ->check(CLI::IsMember({"full", "incremental"}))
      ->capture_default_str();
  logits->add_option("--kernels", la.kernels, kKernelsHelp)
      ->check(CLI::IsMember({"fast", "avx512vnni", "avx2", "portable", "reference"}))
      ->capture_default_str();

  std::string info_model;
  bool info_check = false;
  auto* info = app.add_subcommand("info", "Show the configuration, the tensors and the memory arithmetic of a model");
  info->add_option("--model", info_model, kModelHelp)->required();
  info->add_flag("--check-weights", info_check, "scan every weight for NaN/Inf, naming each damaged tensor (reads the "
                                                "whole model; automatic up to 4 GiB)");

  std::string preset, synth_out;
  uint64_t seed = 0;
  bool synth_force = false;
  auto* synth = app.add_subcommand("synth", "Write a synthetic Grok-architecture checkpoint (random weights, xAI's raw format)");
  std::string presets_help = "preset:";
  for (const auto& n : synth_preset_names()) presets_help += " " + n;
  synth->add_option("--preset", preset, presets_help)->required()->check(CLI::IsMember(synth_preset_names()));
  synth->add_option("--seed", seed, "random seed")->capture_default_str();
  synth->add_option("--out", synth_out, "output folder (gets ckpt-0/ and config.json); must be new or empty")->required();
  synth->add_flag("--force", synth_force, "write into a non-empty folder: its ckpt-0/ and config.json are removed "
                                          "first, other files (a tokenizer) stay");

  std::string tok_path;
  bool pieces = false;
  auto* tokenize = app.add_subcommand("tokenize", "Read UTF-8 text from stdin and print its token ids (no BOS)");
  tokenize->add_option("--tokenizer", tok_path, "SentencePiece tokenizer.model")->required()->check(CLI::ExistingFile);
  tokenize->add_flag("--pieces", pieces, "print one 'id<TAB>piece' per line");
  auto* detokenize = app.add_subcommand("detokenize", "Read space-separated token ids from stdin and print the text");
  detokenize->add_option("--tokenizer", tok_path, "SentencePiece tokenizer.model")->required()->check(CLI::ExistingFile);

  std::string corpus, tok_out;
  int tok_vocab = 0;
  auto* train = app.add_subcommand("train-tokenizer",
                                   "Train a small Grok-1-like SentencePiece tokenizer (BPE, byte fallback) on a text file");
  train->add_option("--corpus", corpus, "UTF-8 text, one paragraph per line")->required()->check(CLI::ExistingFile);
  train->add_option("--vocab", tok_vocab, "number of pieces (must equal the model's vocab_size)")->required()
      ->check(CLI::Range(300, 1 << 20));
  train->add_option("--out", tok_out, "output tokenizer.model")->required();

  ConvertArgs ca;
  auto* conv = app.add_subcommand("convert", "Convert a model (xAI raw, GGUF, Hugging Face) into a GGUF file for llama.cpp");
  conv->add_option("--model", ca.model, kModelHelp)->required();
  conv->add_option("--out", ca.out, "output .gguf file (written as FILE.tmp, renamed when complete; never one of the "
                                    "inputs, a device or a FIFO; a symbolic link is followed and its target replaced)")
      ->required();
  conv->add_flag("--allow-requantize", ca.allow_requantize,
                 "allow quantizing weights that are already quantized (e.g. a q8_0 GGUF to q4_k: rounded twice)");
  conv->add_option("--type", ca.type, std::string("type of the weight matrices: ") + convert_type_names())
      ->capture_default_str();
  conv->add_option("--split-max-size", ca.split, "split the output into files of at most this size (e.g. 2G)");
  conv->add_option("--tokenizer", ca.tokenizer, "tokenizer.model to embed (default: the model's own)")
      ->check(CLI::ExistingFile);

  GenerateArgs ga;
  SamplingParams& sp = ga.opt.sampling;
  auto* gen = app.add_subcommand("generate", "Generate text from a prompt, streaming it to stdout");
  gen->add_option("--model", ga.model, kModelHelp)->required();
  gen->add_option("--tokenizer", ga.tokenizer,
                  "SentencePiece tokenizer.model (default: beside ckpt-0/ or in its parent folder)")
      ->check(CLI::ExistingFile);
  auto* p_opt = gen->add_option("-p,--prompt", ga.prompt, "prompt text");
  auto* pf_opt = gen->add_option("-f,--prompt-file", ga.prompt_file, "read the prompt from a file ('-' = stdin)");
  p_opt->excludes(pf_opt);
  gen->add_option("-n,--n-predict", ga.opt.max_tokens, "tokens to generate at most; -1 = until EOS or the end of the context")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            long long n = 0;
            size_t used = 0;
            try {
              n = std::stoll(v, &used);
            } catch (const std::exception&) {
              used = 0;
            }
            if (used != v.size() || used == 0 || (n < 1 && n != -1))
              return "-n must be a positive number of tokens, or -1 for no limit (until EOS or the end of the "
                     "context); got '" + v + "'";
            return {};
          },
          "N >= 1 or -1"));
  gen->add_option("--temp,--temperature", sp.temperature, "sampling temperature; 0 = greedy")->capture_default_str()
      ->check(number_in(0, 1e6, "between 0 (greedy) and 1e6"));
  gen->add_option("--top-k", sp.top_k, "keep the k most probable tokens; 0 = off")->capture_default_str()
      ->check(number_in(0, 1 << 30, "a whole number from 0 (off) to 2^30"));
  gen->add_option("--top-p", sp.top_p, "nucleus: smallest set with mass above p (official semantics); 1 = off")
      ->capture_default_str()->check(number_in(0, 1, "between 0 and 1 (1 = off)"));
  gen->add_option("--min-p", sp.min_p, "drop tokens below min_p x the top probability; 0 = off")->capture_default_str()
      ->check(number_in(0, 1, "between 0 (off) and 1"));
  gen->add_option("--repeat-penalty", sp.repeat_penalty, "penalty for recently seen tokens; 1 = off")
      ->capture_default_str()->check(number_in(1e-6, 1e6, "between 1e-6 and 1e6 (1 = off)"));
  gen->add_option("--repeat-last-n", sp.repeat_last_n, "how many recent tokens the penalty looks at; -1 = all")
      ->capture_default_str()->check(CLI::Range(-1, 1 << 30));
  gen->add_option("-s,--seed", ga.seed, "random seed: the same seed and settings give the same text; -1 = a random "
                                      "seed (printed, so the text can be reproduced)")
      ->capture_default_str()->check(number_in(-1, 9e18, "-1 (random) or a whole number from 0 to 9e18"));
  gen->add_flag("-e,--escape", ga.escape, "process escapes in the prompt: \\n \\t \\\\ \\\" \\' (as llama.cpp's -e)");
  gen->add_flag("--echo", ga.echo, "print the prompt before the continuation (off: stdout holds only the new text)");
  gen->add_flag("--bos", ga.bos, "prepend the BOS token (the official runner does not)");
  gen->add_option("--stop", ga.opt.stop, "stop before this text (repeatable)");
  gen->add_flag("--ignore-eos", ga.opt.ignore_eos, "keep generating past the end-of-sequence token");
  gen->add_option("-c,--ctx,--ctx-size", ga.ctx, "context size in tokens (default: the model's sequence_len)")
      ->check(number_in(1, 1 << 24, "a positive number of tokens (at most the model's sequence_len)"));

  BenchArgs ba;
  auto* bench = app.add_subcommand("bench", "Measure prompt (pp) and generation (tg) speed, llama-bench style, "
                                            "against this machine's read bandwidth and FMA peak");
  bench->add_option("--model", ba.model, kModelHelp)->required();
  bench->add_option("-p,--n-prompt", ba.opt.prompt, "prompt tokens of the pp test (0 = skip)")->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  bench->add_option("-n,--n-gen", ba.opt.gen, "tokens of the tg test (0 = skip)")->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  bench->add_option("-r,--repetitions", ba.opt.reps, "repetitions of each test")->capture_default_str()
      ->check(CLI::Range(1, 1000));
  bench->add_option("-t,--threads", ba.opt.threads, kThreadsHelp)->check(CLI::Range(1, 4096));
  bench->add_option("-b,--batch-size", ba.opt.batch, "tokens per forward pass in pp")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxProductRows));
  bench->add_option("--kernels", ba.kernels, kKernelsHelp)
      ->check(CLI::IsMember({"fast", "avx512vnni", "avx2", "portable", "reference"}))->capture_default_str();
  bench->add_flag("--no-probes", [&](int64_t) { ba.opt.probes = false; }, "skip the bandwidth and FMA probes");
  bench->add_option("-d,--depth", ba.opt.depth, "tokens already in the context when each test starts")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  PerplexityArgs pa;
  auto* ppl = app.add_subcommand("perplexity", "Perplexity of a text (llama-perplexity's method: windows of --ctx "
                                               "tokens, the second half of each scored), and KL divergence to a saved "
                                               "model");
  ppl->add_option("--model", pa.model, kModelHelp)->required();
  ppl->add_option("-f,--file", pa.file, "the text to score ('-' = stdin); not needed with --kl-divergence (the base "
                                        "file holds its tokens)");
  ppl->add_option("--tokenizer", pa.tokenizer, "SentencePiece tokenizer.model (default: the model's own)")
      ->check(CLI::ExistingFile);
  ppl->add_option("-c,--ctx,--ctx-size", pa.ctx, "tokens per window")->capture_default_str()
      ->check(number_in(4, 1 << 24, "at least 4 tokens (at most the model's sequence_len)"));
  ppl->add_option("--chunks", pa.chunks, "score at most this many windows (0 = all the text holds)")
      ->capture_default_str()->check(number_in(0, 1 << 30, "a whole number, 0 = all"));
  ppl->add_option("--kl-divergence-base", pa.kld_base, "without --kl-divergence: save this model's log-probabilities "
                                                       "to FILE; with it: compare against FILE");
  ppl->add_flag("--kl-divergence", pa.kld, "compare with the model saved in --kl-divergence-base: prints Mean KLD "
                                           "and Same top");
  ppl->add_option("-b,--batch-size", pa.batch, "tokens per forward pass")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxProductRows));
  ppl->add_option("--kernels", pa.kernels, kKernelsHelp)
      ->check(CLI::IsMember({"fast", "avx2", "portable", "reference"}))->capture_default_str();
  ppl->add_option("-t,--threads", pa.threads, kThreadsHelp)->check(CLI::Range(1, 4096));
  logits->add_option("-t,--threads", la.threads, kThreadsHelp)->check(CLI::Range(1, 4096));
  gen->add_option("-t,--threads", ga.threads, kThreadsHelp)->check(CLI::Range(1, 4096));
  for (auto [cmd, value] : {std::pair{logits, &la.cache_type}, std::pair{gen, &ga.cache_type}, std::pair{bench, &ba.cache_type},
                            std::pair{ppl, &pa.cache_type}})
    cmd->add_option("--cache-type", *value, kCacheTypeHelp)->check(CLI::IsMember({"f32", "f16", "bf16"}))->capture_default_str();

  ServeArgs sa;
  SchedulerOptions& so = sa.opt.scheduler;
  auto* serve = app.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API with continuous batching, "
                                            "and a chat page at /");
  serve->add_option("--model", sa.model, kModelHelp)->required();
  serve->add_option("--tokenizer", sa.tokenizer, "SentencePiece tokenizer.model (default: the model's own)")
      ->check(CLI::ExistingFile);
  serve->add_option("--host", sa.opt.host, "address to listen on (loopback unless told otherwise)")->capture_default_str();
  serve->add_option("--port", sa.opt.port, "port (0 = any free port, printed)")->capture_default_str()
      ->check(CLI::Range(0, 65535));
  serve->add_option("--parallel", so.parallel, "slots: requests decoded together in one pass over the weights")
      ->capture_default_str()->check(CLI::Range(1, 256));
  serve->add_option("-c,--ctx-size", so.context, "context per slot in tokens (default: the model's sequence_len); "
                                                 "every slot's KV cache is allocated up front")
      ->check(CLI::PositiveNumber);
  serve->add_option("--queue", so.queue, "requests that may wait for a slot; beyond that, 503")->capture_default_str()
      ->check(CLI::Range(0, 4096));
  serve->add_option("--api-key", sa.opt.api_key, "require Authorization: Bearer KEY on every endpoint but /health and "
                                                 "the page (default: $GROAK_API_KEY)");
  serve->add_option("-t,--threads", so.threads, kThreadsHelp)->check(CLI::Range(1, 4096));
  serve->add_option("--chat-template", sa.chat_template, "JSON chat template replacing the built-in one (README)")
      ->check(CLI::ExistingFile);
  serve->add_option("--alias", sa.alias, "model id shown in /v1/models (default: the model folder's name)");
  serve->add_option("-b,--batch", so.batch, "tokens per forward pass at most (a prompt read while nobody decodes)")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, kMaxProductRows));
  serve->add_option("--chunk", so.chunk, "prompt tokens per pass while other requests decode (bounds their stall)")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, kMaxProductRows));
  serve->add_option("--max-body", sa.opt.max_body, "largest request body in bytes (larger: 413)")->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  serve->add_option("--cache-type", sa.cache_type, kCacheTypeHelp)->check(CLI::IsMember({"f32", "f16", "bf16"}))
      ->capture_default_str();

  ChatArgs cha;
  cha.opt.max_tokens = 512;
  auto* chat = app.add_subcommand("chat", "Chat in the terminal (the serve chat template; the conversation stays in "
                                          "the KV cache)");
  chat->add_option("--model", cha.model, kModelHelp)->required();
  chat->add_option("--tokenizer", cha.tokenizer, "SentencePiece tokenizer.model (default: the model's own)")
      ->check(CLI::ExistingFile);
  chat->add_option("--chat-template", cha.chat_template, "JSON chat template replacing the built-in one (README)")
      ->check(CLI::ExistingFile);
  chat->add_option("--system", cha.system, "system message that opens the conversation");
  chat->add_option("-n,--n-predict", cha.opt.max_tokens, "tokens per reply at most")->capture_default_str()
      ->check(CLI::PositiveNumber);
  chat->add_option("--temp,--temperature", cha.opt.sampling.temperature, "sampling temperature; 0 = greedy")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  chat->add_option("--top-k", cha.opt.sampling.top_k, "keep the k most probable tokens; 0 = off")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  chat->add_option("--top-p", cha.opt.sampling.top_p, "nucleus (official semantics); 1 = off")->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  chat->add_option("--min-p", cha.opt.sampling.min_p, "drop tokens below min_p x the top probability; 0 = off")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  chat->add_option("--repeat-penalty", cha.opt.sampling.repeat_penalty, "penalty for recently seen tokens; 1 = off")
      ->capture_default_str()->check(CLI::PositiveNumber);
  chat->add_option("-s,--seed", cha.opt.sampling.seed, "random seed")->capture_default_str();
  chat->add_option("-c,--ctx", cha.ctx, "context size in tokens (default: the model's sequence_len)")
      ->check(CLI::PositiveNumber);
  chat->add_option("-t,--threads", cha.threads, kThreadsHelp)->check(CLI::Range(1, 4096));
  chat->add_option("--cache-type", cha.cache_type, kCacheTypeHelp)->check(CLI::IsMember({"f32", "f16", "bf16"}))
      ->capture_default_str();

  // An unknown command gets named (CLI11 would only say that a subcommand is required).
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const auto* sc : app.get_subcommands({})) known = known || sc->get_name() == argv[1];
    if (!known) {
      std::string names;
      for (const auto* sc : app.get_subcommands({})) names += (names.empty() ? "" : ", ") + sc->get_name();
      std::fprintf(stderr, "groak: unknown command '%s'; commands: %s (groak --help)\n", argv[1], names.c_str());
      return kExitUsage;
    }
  }
  int parse_rc = -1;  // under mpirun: set when parsing ended the command (help, version, usage error)
  std::string parse_error;
  try {
    app.parse(argc, argv);
    if (*gen && ga.prompt.empty() && ga.prompt_file.empty())
      throw CLI::RequiredError("generate needs --prompt TEXT or --prompt-file F ('-' for stdin)");
    if (*logits && la.tokens.empty() && la.tokens_file.empty())
      throw CLI::RequiredError("logits needs --tokens or --tokens-file");
    if (*ppl && pa.kld && pa.kld_base.empty())
      throw CLI::RequiredError("--kl-divergence needs --kl-divergence-base FILE (made by a run without --kl-divergence)");
    if (*ppl && !pa.kld && pa.file.empty())
      throw CLI::RequiredError("perplexity needs --file TEXT ('-' for stdin)");
    if (*conv) {
      try {
        parse_convert_type(ca.type);
      } catch (const Error& e) {
        throw CLI::ValidationError("--type", e.what());
      }
    }
  } catch (const CLI::ParseError& e) {  // help, version or a usage error
    if (job->size() == 1) return app.exit(e) == 0 ? 0 : kExitUsage;
    if (job->leader()) app.exit(e);  // under mpirun rank 0 prints it
    parse_rc = e.get_exit_code() == 0 ? 0 : kExitUsage;
    if (parse_rc != 0) parse_error = e.what();
  }
  if (job->size() > 1) {  // every rank parsed its own command line (files checked on its own machine): agree
    const std::string failed = job->agree(parse_error);
    if (!failed.empty()) {
      if (job->leader() && parse_error.empty()) std::fprintf(stderr, "groak: %s\n", failed.c_str());
      return kExitUsage;
    }
    if (parse_rc >= 0) return parse_rc;
  }
  if (job->size() > 1 && !(*logits || *gen || *bench))
    return job->report(GroupError("only logits, generate and bench run as several ranks; run this command without mpirun"),
                       kExitUsage);

  try {
    auto finished = [&](int rc) {
      job->finish();
      return rc;
    };
    if (*logits) return finished(run_logits(la, *job));
    if (*info) return run_info(info_model, info_check);
    if (*synth) return run_synth(preset, seed, synth_out, synth_force);
    if (*tokenize) return run_tokenize(tok_path, pieces);
    if (*detokenize) return run_detokenize(tok_path);
    if (*gen) return finished(run_generate(ga, *job));
    if (*conv) return run_convert(ca);
    if (*ppl) return run_perplexity(pa);
    if (*serve) return run_serve(sa);
    if (*chat) return run_chat(cha);
    if (*bench) {
      if (ba.opt.prompt == 0 && ba.opt.gen == 0) throw CLI::ValidationError("bench: -p and -n are both 0; nothing to measure");
      return finished(run_bench_cli(ba, *job));
    }
    if (*train) {
      train_tokenizer(corpus, tok_vocab, tok_out);
      std::fprintf(stderr, "train-tokenizer: %d pieces -> %s\n", tok_vocab, tok_out.c_str());
      return 0;
    }
  } catch (const Interrupted&) {
    std::fprintf(stderr, "groak: interrupted (Ctrl-C); partial output removed\n");
    return kExitInterrupted;
  } catch (const CLI::ValidationError& e) {
    if (job->leader()) std::fprintf(stderr, "groak: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {  // groak::Error, out of memory, a library's own (filesystem, json …): a clear exit
    return job->report(e, kExitError);
  }
  return 0;
}
