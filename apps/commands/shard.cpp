// groak shard: a model split into the shares of R ranks, one GGUF per rank, so that each node of a
// tensor-parallel job stores and caches only what it computes (docs/distributed.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "../cli.h"
#include "../options.h"
#include "convert/convert.h"
#include "model/model_path.h"
#include "model/shard.h"

namespace groak::cli {

namespace {

namespace fs = std::filesystem;

struct ShardArgs {
  std::string model, out, tokenizer;
  int ranks = 0, threads = 0;
};

int run_shard(const ShardArgs& a) {
  InterruptHandler interrupts;
  const auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  if (fs::exists(a.out, ec) && !fs::is_directory(a.out, ec))
    throw Error("--out " + a.out + " is a file; give a new or empty folder for the share files");
  if (fs::exists(a.out, ec) && !fs::is_empty(a.out, ec))
    throw Error("--out " + a.out + " is not empty; give a new or empty folder (a share set is one folder per model "
                "and rank count)");
  fs::create_directories(a.out, ec);
  if (ec) throw Error("cannot create the folder " + a.out + ": " + ec.message());

  // Each rank's share is cut from the mapped model (model/shard.h, as mpirun does at load) and streamed
  // out by the converter, every weight in its own type: memory stays bounded by the converter's tiles.
  std::optional<VocabSpec> vocab;
  const bool random = has_random_weights(a.model);
  uint64_t total = 0;
  std::vector<std::pair<std::string, uint64_t>> written;  // file, bytes
  for (int r = 0; r < a.ranks; ++r) {
    Model m = load_with_progress(a.model);
    // Rank 0's file carries the tokenizer (the other ranks never tokenize).
    if (r == 0) vocab = embedded_vocab(a.tokenizer, a.model, m.config.vocab_size, "the shares carry no tokenizer; pass "
                                       "--tokenizer to the commands that run them");
    const std::string fingerprint = model_fingerprint(m);
    const int64_t vocab_size = m.config.vocab_size;
    shard_model(m, r, a.ranks);
    ConvertOptions opt;
    opt.out = (fs::path(a.out) / share_file_name(r, a.ranks)).string();
    opt.keep_types = true;  // a GGUF's types are kept; xAI int8 becomes Q8_0 (exact where xAI's scales allow)
    opt.threads = a.threads;
    opt.inputs = input_files(m, a.tokenizer, a.model);
    opt.vocab = r == 0 && vocab ? &*vocab : nullptr;
    opt.extra_metadata = [&](GgufWriter& w) {
      w.add_u32(kShardRankKey, static_cast<uint32_t>(r));
      w.add_u32(kShardCountKey, static_cast<uint32_t>(a.ranks));
      w.add_u32(kShardVocabKey, static_cast<uint32_t>(vocab_size));
      w.add_string(kShardSourceKey, fingerprint);
      if (random) w.add_bool(kRandomWeightsKey, true);
    };
    ProgressBar bar("rank " + std::to_string(r), uint64_t{1} << 28);
    const ConvertReport rep = convert_model(m, opt, [&](uint64_t done, uint64_t all) {
      check_interrupt();
      bar.update(done, all, "");
    });
    bar.finish();
    total += rep.bytes;
    written.emplace_back(opt.out, rep.bytes);
  }
  for (const auto& [file, bytes] : written)
    std::fprintf(stderr, "shard: wrote %s (%s, %.1f %% of the set)\n", file.c_str(), human_bytes(static_cast<double>(bytes)).c_str(),
                 100.0 * static_cast<double>(bytes) / static_cast<double>(std::max<uint64_t>(1, total)));
  std::fprintf(stderr, "shard: %d shares of %s in %s (%s in all) in %.1f s; run them with: mpirun -np %d groak "
               "serve|generate|logits|bench --model %s\n", a.ranks, a.model.c_str(), a.out.c_str(),
               human_bytes(static_cast<double>(total)).c_str(), seconds_since(t0), a.ranks, a.out.c_str());
  return 0;
}

}  // namespace

Command shard_command() {
  auto a = std::make_shared<ShardArgs>();
  Command c;
  c.name = "shard";
  c.description = "Split a model into the shares of R tensor-parallel ranks, one GGUF each (rank-R-of-N.gguf), so "
                  "that each node stores only its share; mpirun -np R groak ... --model FOLDER picks each rank's";
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    cmd.add_option("--ranks", a->ranks, "ranks to split for: must divide the kv heads (8 for Grok-1: 2, 4 or 8)")
        ->required()->check(CLI::Range(1, 4096));
    cmd.add_option("--out", a->out, "a new or empty folder for the share files")->required();
    cmd.add_option("--tokenizer", a->tokenizer, "tokenizer.model for rank 0's file (default: the model's own)")
        ->check(CLI::ExistingFile);
    cmd.add_option("-t,--threads", a->threads, "threads (default: every core)")->check(CLI::Range(0, 4096));
  };
  c.run = [a](Job&) { return run_shard(*a); };
  return c;
}

}  // namespace groak::cli
