// groak synth: a synthetic Grok-architecture checkpoint (random weights) in xAI's raw format.
#include <cstdio>
#include <memory>

#include <filesystem>
#include <fstream>

#include "../cli.h"
#include "../options.h"
#include "synth/synth.h"
#include "tokenizer/tokenizer.h"

namespace groak::cli {

namespace {

struct SynthArgs {
  std::string preset, out;
  uint64_t seed = 0;
  bool force = false, no_tokenizer = false;
};

// data/corpus.txt, embedded at build time (cmake/embed.cmake).
constexpr unsigned char kCorpus[] = {
#include "corpus.inc"
};
// The largest vocabulary SentencePiece can train on that corpus with room to spare (it stops near 6700).
constexpr int64_t kMaxTrainedVocab = 4096;

// A checkpoint is only usable with a tokenizer of its vocabulary: train one for the small presets, and
// for Grok-1's vocabulary say which file to use.
void write_tokenizer(const SynthArgs& a, const Config& cfg) {
  namespace fs = std::filesystem;
  const fs::path out = fs::path(a.out) / "tokenizer.model";
  if (fs::exists(out)) {
    std::fprintf(stderr, "synth: kept the tokenizer already in %s\n", out.c_str());
  } else if (cfg.vocab_size > kMaxTrainedVocab) {
    std::fprintf(stderr,
                 "synth: no tokenizer written: this preset has Grok-1's vocabulary (%lld pieces); use xAI's "
                 "tokenizer.model from the grok-1 release (copy it to %s, or pass --tokenizer)\n",
                 static_cast<long long>(cfg.vocab_size), out.c_str());
  } else {
    const fs::path corpus = fs::path(a.out) / ".corpus.txt";  // SentencePiece trains from a file
    std::ofstream(corpus, std::ios::binary).write(reinterpret_cast<const char*>(kCorpus), sizeof kCorpus);
    try {
      train_tokenizer(corpus, static_cast<int>(cfg.vocab_size), out);
    } catch (...) {
      fs::remove(corpus);
      throw;
    }
    fs::remove(corpus);
    std::fprintf(stderr, "synth: trained a %lld-piece tokenizer on the built-in corpus -> %s\n",
                 static_cast<long long>(cfg.vocab_size), out.c_str());
  }
}

int run_synth(const SynthArgs& a) {
  Config cfg = synth_preset(a.preset);
  InterruptHandler interrupts;
  prepare_synth_folder(a.out, a.force);
  auto t0 = std::chrono::steady_clock::now();
  ProgressBar bar("synth", uint64_t{1} << 28);
  write_synthetic_checkpoint(cfg, a.preset, a.seed, a.out, [&](uint64_t done, uint64_t total) {
    check_interrupt();
    bar.update(done, total);
  });
  bar.finish();
  std::fprintf(stderr, "synth: wrote preset '%s' (seed %llu, random weights) to %s in %.1f s\n", a.preset.c_str(),
               static_cast<unsigned long long>(a.seed), a.out.c_str(), seconds_since(t0));
  if (!a.no_tokenizer) write_tokenizer(a, cfg);
  return 0;
}

}  // namespace

Command synth_command() {
  auto a = std::make_shared<SynthArgs>();
  Command c;
  c.name = "synth";
  c.description = "Write a synthetic Grok-architecture checkpoint (random weights, xAI's raw format)";
  c.options = [a](CLI::App& cmd) {
    std::string presets_help = "preset:";
    for (const auto& n : synth_preset_names()) presets_help += " " + n;
    cmd.add_option("--preset", a->preset, presets_help)->required()->check(CLI::IsMember(synth_preset_names()));
    cmd.add_option("--seed", a->seed, "random seed")->capture_default_str();
    cmd.add_option("--out", a->out, "output folder (gets ckpt-0/ and config.json); must be new or empty")->required();
    cmd.add_flag("--force", a->force, "write into a non-empty folder: its ckpt-0/ and config.json are removed first, "
                                      "other files (a tokenizer) stay");
    cmd.add_flag("--no-tokenizer", a->no_tokenizer,
                 "do not train a tokenizer.model (by default presets with up to 4096 pieces get one, trained on the "
                 "built-in corpus)");
  };
  c.run = [a](Job&) { return run_synth(*a); };
  return c;
}

}  // namespace groak::cli
