#include "cli.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "model/loader.h"
#include "kernels/probe.h"
#include "model/repack.h"
#include "model/residency.h"
#include "model/shard.h"
#include "io/gguf.h"
#include "tokenizer/discover.h"
#include "tokenizer/gguf_vocab.h"
#include "options.h"

namespace groak::cli {

std::atomic<bool> g_interrupted{false};

namespace {
extern "C" void on_interrupt(int) {
  if (g_interrupted.exchange(true)) std::_Exit(kExitInterrupted);
}
}  // namespace

InterruptHandler::InterruptHandler() {
  old_int_ = std::signal(SIGINT, on_interrupt);
  old_term_ = std::signal(SIGTERM, on_interrupt);
}

InterruptHandler::~InterruptHandler() {
  std::signal(SIGINT, old_int_);
  std::signal(SIGTERM, old_term_);
}

void check_interrupt() {
  if (g_interrupted.load()) throw Interrupted();
}

void check_stdout() {
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    if (errno == EPIPE) throw OutputClosed();
    throw Error(std::string("writing to standard output failed (") + std::strerror(errno) +
                "); is the disk full?");
  }
}

void write_stdout(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) check_stdout();
}

std::string read_stdin() {
  std::stringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}

std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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

uint64_t parse_size(const std::string& s, const std::string& option) {
  size_t used = 0;
  const double v = leading_number(s, &used);
  if (used == 0 || v <= 0) throw CLI::ValidationError(option, "'" + s + "' is not a size (e.g. 2G, 500M)");
  const std::string unit = s.substr(used);
  double mult = 1;
  if (unit == "K" || unit == "k") mult = 1e3;
  else if (unit == "M" || unit == "m") mult = 1e6;
  else if (unit == "G" || unit == "g") mult = 1e9;
  else if (unit == "T" || unit == "t") mult = 1e12;
  else if (!unit.empty()) throw CLI::ValidationError(option, "unknown unit in '" + s + "' (use K, M, G, T)");
  return static_cast<uint64_t>(v * mult);
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string count_of(int64_t n, const char* noun) { return std::to_string(n) + " " + noun + (n == 1 ? "" : "s"); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

ProgressBar::ProgressBar(std::string label, uint64_t min_total)
    : label_(std::move(label)), min_total_(min_total), tty_(::isatty(STDERR_FILENO) != 0) {}

void ProgressBar::update(uint64_t done, uint64_t total, const std::string& extra) {
  if (!tty_ || total < min_total_) return;
  shown_ = true;
  const int width = 30;
  const int fill = total ? static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total)) : width;
  std::fprintf(stderr, "\r%s [%s%s] %s / %s %s", label_.c_str(), std::string(static_cast<size_t>(fill), '#').c_str(),
               std::string(static_cast<size_t>(width - fill), ' ').c_str(), human_bytes(static_cast<double>(done)).c_str(),
               human_bytes(static_cast<double>(total)).c_str(), extra.c_str());
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (shown_) std::fprintf(stderr, "\n");
  shown_ = false;
}

Model load_with_progress(const std::string& model_path) {
  const LoadSettings& s = load_settings();
  const std::string path = share_file(model_path, s.rank, s.ranks);
  ProgressBar bar("loading", uint64_t{1} << 30);
  Model m = load_model(path, [&](size_t files_done, size_t files_total, uint64_t done, uint64_t total) {
    check_interrupt();
    bar.update(done, total, "(" + std::to_string(files_done) + "/" + std::to_string(files_total) + " files)");
  });
  bar.finish();
  if (m.shard_count > 1 && (m.shard_count != s.ranks || m.shard_rank != s.rank))
    throw Error(path + " is share " + std::to_string(m.shard_rank) + " of " + std::to_string(m.shard_count) +
                " of a model split by groak shard, not the whole model" +
                (s.ranks == 1 ? "" : " nor this rank's (" + std::to_string(s.rank) + " of " + std::to_string(s.ranks) + ")") +
                ": give the share folder to mpirun -np " + std::to_string(m.shard_count) +
                " groak ..., or the whole model to a single process");
  // Weights larger than the memory (MemAvailable, or the memory cgroup's limit): read in place from the
  // page cache (a repacked copy would be anonymous memory the kernel cannot evict), experts read ahead.
  const uint64_t weights = weight_file_bytes(m) / static_cast<uint64_t>(m.shard_count > 1 ? 1 : s.ranks);
  const uint64_t budget = memory_budget_bytes();
  const bool fits = budget == 0 || weights + weights / 8 < budget;
  m.weights.read_ahead_experts = s.read_ahead == "on" || (s.read_ahead == "auto" && !fits);
  if (!fits) {
    if (s.rank == 0)
      std::fprintf(stderr, "groak: note: the weights (%s) do not fit in the memory available (%s: MemAvailable or the "
                   "memory cgroup's limit): they are read in place through the page cache, without repacked copies%s; "
                   "--lock-dense keeps the dense weights resident (docs/perf.md)\n",
                   human_bytes(static_cast<double>(weights)).c_str(), human_bytes(static_cast<double>(budget)).c_str(),
                   m.weights.read_ahead_experts ? ", and each layer reads its chosen experts ahead" : "");
  }
  if (!s.no_repack && fits) repack_on_use(m);
  if (s.lock_dense) {
    const uint64_t locked = lock_dense_weights(m);
    if (s.rank == 0)
      std::fprintf(stderr, "groak: locked %s of dense weights in RAM (attention, routers, embedding); the experts stay "
                   "mapped\n", human_bytes(static_cast<double>(locked)).c_str());
  }
  for (const auto& w : m.warnings) std::fprintf(stderr, "groak: warning: %s\n", w.c_str());
  return m;
}

std::optional<VocabSpec> embedded_vocab(const std::string& tokenizer_arg, const std::string& model_path,
                                        int64_t vocab_size, const char* without) {
  std::optional<VocabSpec> v;
  if (tokenizer_arg.empty() && is_gguf_file(model_path)) {
    v = gguf_vocab(GgufFile::open(model_path));
  } else {
    try {
      v = vocab_from_tokenizer(open_tokenizer(tokenizer_arg, model_path));
    } catch (const Error& e) {
      if (!tokenizer_arg.empty()) throw;
      std::fprintf(stderr, "groak: warning: %s\ngroak: warning: %s\n", e.what(), without);
    }
  }
  if (v && static_cast<int64_t>(v->tokens.size()) != vocab_size)
    throw Error("the tokenizer has " + std::to_string(v->tokens.size()) + " pieces but the model's vocabulary is " +
                std::to_string(vocab_size) + "; pass the tokenizer that belongs to this model (--tokenizer)");
  return v;
}

std::vector<std::string> input_files(const Model& m, const std::string& tokenizer_arg, const std::string& model_path) {
  std::vector<std::string> in = m.files;
  if (std::string t = tokenizer_file(tokenizer_arg, model_path); !t.empty()) in.push_back(t);
  return in;
}

}  // namespace groak::cli
