#include "options.h"

#include <cstdio>
#include <random>

#include "cli.h"
#include "grammar/json_schema.h"
#include "util/error.h"

namespace groak::cli {

namespace {
constexpr const char* kModelHelp =
    "model: xAI checkpoint (the folder holding ckpt-0/, or ckpt-0/ itself), a .gguf file (any part of a split "
    "set) or a Hugging Face folder (config.json + safetensors or torch.save pytorch_model*.bin, single or sharded)";
constexpr const char* kThreadsHelp = "threads (default: every core)";
constexpr const char* kKernelsHelp =
    "kernel table: fast (the best for this CPU), avx512vnni, avx2, portable, or reference (the scalar oracle, slow)";
constexpr const char* kCacheTypeHelp = "KV cache element type: f32 (exact), f16 or bf16 (half the memory)";
constexpr uint64_t kMaxSeed = 9'000'000'000'000'000'000;  // --seed's bound (9e18 is exact in a double)
}  // namespace

std::vector<Command> all_commands() {
  return {logits_command(),   info_command(),    synth_command(),    tokenize_command(),
          detokenize_command(), train_tokenizer_command(), convert_command(), generate_command(),
          bench_command(),    perplexity_command(), imatrix_command(), serve_command(),  chat_command(),
          inspect_command(),  experts_command(), shard_command()};
}

double leading_number(const std::string& s, size_t* used) {
  *used = 0;
  try {
    return std::stod(s, used);
  } catch (const std::exception&) {
    *used = 0;
    return 0;
  }
}

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

LoadSettings& load_settings() {
  static LoadSettings s;
  return s;
}

void add_model_option(CLI::App& c, std::string& model) {
  c.add_option("-m,--model", model, kModelHelp)->required();
  c.add_flag("--no-repack", load_settings().no_repack,
             "read Q4_0/Q8_0 weights in place only (zero-copy); by default the AVX-512 VNNI kernels read a copy "
             "interleaved by 8 rows, made on first use (`groak info` shows its size)");
  c.add_flag("--lock-dense,--mlock-dense", load_settings().lock_dense,
             "lock the dense weights (attention, routers, embedding) in RAM while the experts stay mapped: for a "
             "model larger than memory, only experts are then re-read from disk (needs ulimit -l room)");
  c.add_option("--read-ahead", load_settings().read_ahead,
               "tell the kernel which experts each layer chose before using them (MADV_WILLNEED), so the disk reads "
               "them while others compute: auto = when the weights do not fit in memory")
      ->check(CLI::IsMember({"auto", "on", "off"}))->capture_default_str();
}

void add_tokenizer_option(CLI::App& c, std::string& tokenizer, const std::string& help) {
  c.add_option("--tokenizer", tokenizer, help)->check(CLI::ExistingFile);
}

void add_engine_options(CLI::App& c, EngineArgs& a, const char* ctx_help, bool thread_list) {
  if (ctx_help)
    c.add_option("-c,--ctx,--ctx-size", a.ctx, ctx_help)
        ->check(number_in(1, 1 << 24, "a positive number of tokens (at most the model's sequence_len)"));
  if (thread_list)
    c.add_option("-t,--threads", a.thread_list, "threads, or a comma-separated list of counts to run each test with "
                                                "(default: every core)")
        ->delimiter(',')->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)->check(CLI::Range(1, 4096));
  else
    c.add_option("-t,--threads", a.threads, kThreadsHelp)->check(CLI::Range(1, 4096));
  c.add_option("--kernels", a.kernels, kKernelsHelp)
      ->check(CLI::IsMember({"fast", "avx512vnni", "avx2", "portable", "reference"}))
      ->capture_default_str();
  c.add_option("--cache-type", a.cache_type, kCacheTypeHelp)->check(CLI::IsMember({"f32", "f16", "bf16"}))->capture_default_str();
}

const Kernels& kernels_named(const std::string& name) {
  const Kernels* k = kernels_by_name(name.c_str());
  if (!k) throw Error("kernel table '" + name + "' is not available on this CPU; use fast, portable or reference");
  return *k;
}

KvType cache_type_named(const std::string& name) {
  return name == "f16" ? KvType::F16 : name == "bf16" ? KvType::BF16 : KvType::F32;
}

EngineOptions engine_options(const EngineArgs& a, const Job& job) {
  EngineOptions o;
  o.context = a.ctx;
  o.cache_type = cache_type_named(a.cache_type);
  o.threads = a.threads ? a.threads : job.default_threads();
  o.kernels = &kernels_named(a.kernels);
  return o;
}

void add_sampling_options(CLI::App& c, SamplingArgs& a) {
  SamplingParams& sp = a.decode.sampling;
  c.add_option("--temp,--temperature", sp.temperature, "sampling temperature; 0 = greedy")->capture_default_str()
      ->check(number_in(0, 1e6, "between 0 (greedy) and 1e6"));
  c.add_option("--top-k", sp.top_k, "keep the k most probable tokens; 0 = off")->capture_default_str()
      ->check(number_in(0, 1 << 30, "a whole number from 0 (off) to 2^30"));
  c.add_option("--top-p", sp.top_p, "nucleus: smallest set with mass above p (official semantics); 1 = off")
      ->capture_default_str()->check(number_in(0, 1, "between 0 and 1 (1 = off)"));
  c.add_option("--min-p", sp.min_p, "drop tokens below min_p x the top probability; 0 = off")->capture_default_str()
      ->check(number_in(0, 1, "between 0 (off) and 1"));
  c.add_option("--repeat-penalty", sp.repeat_penalty, "penalty for recently seen tokens; 1 = off")
      ->capture_default_str()->check(number_in(1e-6, 1e6, "between 1e-6 and 1e6 (1 = off)"));
  c.add_option("--repeat-last-n", sp.repeat_last_n, "how many recent tokens the penalty looks at; -1 = all")
      ->capture_default_str()->check(CLI::Range(-1, 1 << 30));
  c.add_option("-s,--seed", a.seed, "random seed: the same seed and settings give the same text; -1 = a random "
                                    "seed (printed, so the text can be reproduced)")
      ->capture_default_str()->check(number_in(-1, static_cast<double>(kMaxSeed), "-1 (random) or a whole number from 0 to 9e18"));
}

void add_predict_option(CLI::App& c, SamplingArgs& a, const std::string& help) {
  c.add_option("-n,--n-predict", a.decode.max_tokens, help)
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
}

void add_stop_options(CLI::App& c, SamplingArgs& a) {
  c.add_option("--stop", a.decode.stop, "stop before this text (repeatable)");
  c.add_flag("--ignore-eos", a.decode.ignore_eos, "keep generating past the end-of-sequence token");
}

void add_grammar_options(CLI::App& c, SamplingArgs& a) {
  auto* g = c.add_option("--grammar", a.grammar, "constrain the output to this GBNF grammar (llama.cpp's syntax; root ::= ...)");
  auto* gf = c.add_option("--grammar-file", a.grammar_file, "constrain the output to the GBNF grammar in this file");
  auto* j = c.add_option("-j,--json-schema", a.json_schema, "constrain the output to JSON that this JSON Schema accepts");
  auto* jf = c.add_option("--json-schema-file", a.json_schema_file, "constrain the output to the JSON Schema in this file");
  g->excludes(gf)->excludes(j)->excludes(jf);
  gf->excludes(j)->excludes(jf);
  j->excludes(jf);
}

void resolve_grammar(SamplingArgs& a, const Tokenizer& tok) {
  std::string gbnf, flag;
  try {
    if (!a.grammar.empty()) {
      flag = "--grammar";
      gbnf = a.grammar;
    } else if (!a.grammar_file.empty()) {
      flag = "--grammar-file";
      gbnf = read_file_text(a.grammar_file);
    } else if (!a.json_schema.empty() || !a.json_schema_file.empty()) {
      flag = a.json_schema.empty() ? "--json-schema-file" : "--json-schema";
      const std::string text = a.json_schema.empty() ? read_file_text(a.json_schema_file) : a.json_schema;
      const auto schema = nlohmann::ordered_json::parse(text, nullptr, false);
      if (schema.is_discarded()) throw Error("not valid JSON");
      gbnf = json_schema_to_gbnf(schema);
    } else {
      return;
    }
    auto g = std::make_shared<CompiledGrammar>(parse_gbnf(gbnf), TokenVocab::of(tok));
    g->check_start();
    a.decode.grammar = std::move(g);
  } catch (const Error& e) {
    throw Error(flag + ": " + e.what());
  }
}

void resolve_seed(SamplingArgs& a) {
  if (a.seed >= 0) {
    a.decode.sampling.seed = static_cast<uint64_t>(a.seed);
    return;
  }
  a.decode.sampling.seed = std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
  a.decode.sampling.seed %= kMaxSeed + 1;  // accepted back by --seed (clearing bit 63 alone left 2.4 % above it)
  std::fprintf(stderr, "[groak] seed: %llu (random; pass --seed %llu to repeat this text)\n",
               static_cast<unsigned long long>(a.decode.sampling.seed),
               static_cast<unsigned long long>(a.decode.sampling.seed));
}

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

}  // namespace groak::cli
