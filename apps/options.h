// The CLI's option groups, each defined once and added to the commands it applies to (llama.cpp's
// common/arg.cpp, git's builtin/*.c): the model, the engine (-t, --kernels, --cache-type, -c), sampling
// and stop conditions. Also the command table main.cpp builds the CLI from.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "parallel/job.h"
#include "runtime/decoder.h"
#include "runtime/engine.h"

namespace groak::cli {

// A usage error whose message is the whole sentence (CLI11's RequiredError would append "is required").
struct UsageError : CLI::ParseError {
  explicit UsageError(const std::string& msg) : CLI::ParseError("UsageError", msg, CLI::ExitCodes::ValidationError) {}
};

// One subcommand: its options, the checks that need several options, and what it runs.
struct Command {
  std::string name, description;
  bool under_mpirun = false;                // runs as several ranks (rank 0 leads, the others follow)
  std::function<void(CLI::App&)> options;   // adds the command's options to its subcommand
  std::function<void()> check;              // after parsing; throws CLI::ParseError for a usage error
  std::function<int(Job&)> run;             // the exit code
};

// Every command, in the order `groak --help` lists them (commands/*.cpp).
std::vector<Command> all_commands();
Command logits_command();
Command info_command();
Command synth_command();
Command tokenize_command();
Command detokenize_command();
Command train_tokenizer_command();
Command convert_command();
Command generate_command();
Command bench_command();
Command perplexity_command();
Command imatrix_command();
Command serve_command();
Command chat_command();
Command inspect_command();
Command experts_command();
Command shard_command();

// The number s starts with, and in *used how many characters it took (0: s does not start with one).
double leading_number(const std::string& s, size_t* used);
// A number option's check with a message a person can read ("between 0 and 1e6", not 309 digits).
CLI::Validator number_in(double lo, double hi, const std::string& allowed);

// -m,--model and --no-repack (cli.h's load_settings())
void add_model_option(CLI::App& c, std::string& model);
// --tokenizer (an existing file); `help` says where the default comes from.
void add_tokenizer_option(CLI::App& c, std::string& tokenizer, const std::string& help);

// The engine group. ctx_help: null = the command takes no -c (its context follows from its input).
struct EngineArgs {
  int64_t ctx = 0;                 // 0 = the model's sequence_len (or the command's default)
  int threads = 0;                 // 0 = every core (divided among the ranks of a host under mpirun)
  std::vector<int> thread_list{};  // bench: -t 1,2,4 (several runs); empty = every core
  std::string kernels = "fast";
  std::string cache_type = "f32";
};
// thread_list: -t takes a comma-separated list into a.thread_list (bench) instead of one count.
void add_engine_options(CLI::App& c, EngineArgs& a, const char* ctx_help, bool thread_list = false);
// The kernel table and cache type named by the options; throws groak::Error for a table this CPU lacks.
const Kernels& kernels_named(const std::string& name);
KvType cache_type_named(const std::string& name);
EngineOptions engine_options(const EngineArgs& a, const Job& job);

// Sampling (temperature, top-k, top-p, min-p, repetition penalty, seed) and stop conditions (--stop,
// --ignore-eos). seed: -1 = a random one, drawn by resolve_seed.
struct SamplingArgs {
  DecodeOptions decode;
  int64_t seed = 42;
  std::string grammar, grammar_file, json_schema, json_schema_file;  // constrained output (llama.cpp's flags)
};
void add_sampling_options(CLI::App& c, SamplingArgs& a);
// -n,--n-predict: tokens to generate at most (-1 = no limit); `help` says per what.
void add_predict_option(CLI::App& c, SamplingArgs& a, const std::string& help);
void add_stop_options(CLI::App& c, SamplingArgs& a);
// --grammar, --grammar-file, -j/--json-schema, --json-schema-file: at most one of them.
void add_grammar_options(CLI::App& c, SamplingArgs& a);
// a.decode.grammar from those options, compiled for the tokenizer; throws groak::Error naming the flag.
void resolve_grammar(SamplingArgs& a, const Tokenizer& tok);
// Sets a.decode.sampling.seed from a.seed (a random one, said on stderr so the text can be repeated).
void resolve_seed(SamplingArgs& a);

// llama.cpp's -e: \n \t \r \\ \" \' become the characters; any other backslash stays.
std::string process_escapes(const std::string& s);

}  // namespace groak::cli
