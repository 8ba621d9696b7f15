// What every command of the groak CLI shares: exit codes, Ctrl-C handling, standard output that reports
// its failures, progress on stderr, reading inputs. Argument parsing lives in apps/ only.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "model/weights.h"
#include "tokenizer/vocab_model.h"
#include "util/error.h"

namespace groak::cli {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;  // 128 + SIGINT, as shells report it

// ---- Ctrl-C and SIGTERM: the first signal sets a flag that long jobs poll at safe points (a prompt
// chunk, a decoded token, a written block, a loaded file): they stop, remove partial output and exit
// 130. A second one exits at once.
extern std::atomic<bool> g_interrupted;

// Installed for the whole of a command that writes files or runs the model (before loading).
class InterruptHandler {
 public:
  InterruptHandler();
  ~InterruptHandler();
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
// The reader of standard output went away (`groak generate | head`): not an error to report; the
// command ends quietly with kExitPipeClosed, the status a shell shows for a process ended by SIGPIPE.
struct OutputClosed : Error {
  OutputClosed() : Error("standard output closed by its reader") {}
};
constexpr int kExitPipeClosed = 141;  // 128 + SIGPIPE
void check_interrupt();

// ---- standard output: failing to write (a full disk, a closed pipe) is an error of the command.
void check_stdout();
void write_stdout(const std::string& text);

// ---- inputs
std::string read_stdin();
std::string read_file_text(const std::string& path);  // throws groak::Error
// Token ids from "1,2,3" or whitespace/comma separated text; throws CLI::ValidationError naming `origin`.
std::vector<int32_t> parse_token_list(const std::string& text, const std::string& origin);
// "2G", "500M", "64K" or plain bytes; throws CLI::ValidationError naming `option`.
uint64_t parse_size(const std::string& s, const std::string& option);

// ---- messages
std::string human_bytes(double bytes);                 // "1.23 GB"
std::string count_of(int64_t n, const char* noun);     // "1 token", "2 tokens"
double seconds_since(std::chrono::steady_clock::time_point t0);

// A one-line progress bar on stderr, only when stderr is a terminal and the job is big.
class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t min_total);
  ~ProgressBar() { finish(); }
  void update(uint64_t done, uint64_t total, const std::string& extra = "");
  void finish();

 private:
  std::string label_;
  uint64_t min_total_;
  bool tty_;
  bool shown_ = false;
};

// How commands load their model (options.h's model group sets it).
struct LoadSettings {
  bool no_repack = false;  // --no-repack: no repacked-on-use copies of Q4_0/Q8_0 matrices (model/repack.h)
  int rank = 0, ranks = 1; // this process in its job (mpirun): picks its file of a share set (groak shard)
  bool lock_dense = false; // --lock-dense: the dense weights locked in RAM (model/residency.h)
  std::string read_ahead = "auto";  // --read-ahead: experts announced to the kernel: auto (when too big), on, off
};
LoadSettings& load_settings();

// Loads a model with a progress bar (Ctrl-C aware), applies load_settings() and prints its warnings. A
// share-set folder (groak shard) gives this rank's file; a share is refused outside a job of its ranks.
Model load_with_progress(const std::string& path);
// The vocabulary a written GGUF embeds: the GGUF model's own, else its tokenizer (or --tokenizer). None
// found: a warning ending in `without`, and nullopt; a tokenizer of another size: groak::Error.
std::optional<VocabSpec> embedded_vocab(const std::string& tokenizer_arg, const std::string& model_path,
                                        int64_t vocab_size, const char* without);
// Files an output may never replace: the model's own and the tokenizer the command reads (given or found).
std::vector<std::string> input_files(const Model& m, const std::string& tokenizer_arg, const std::string& model_path);

}  // namespace groak::cli
