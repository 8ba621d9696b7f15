// groak synth: a synthetic Grok-architecture checkpoint (random weights) in xAI's raw format.
#include <cstdio>
#include <memory>

#include "../cli.h"
#include "../options.h"
#include "synth/synth.h"

namespace groak::cli {

namespace {

struct SynthArgs {
  std::string preset, out;
  uint64_t seed = 0;
  bool force = false;
};

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
  };
  c.run = [a](Job&) { return run_synth(*a); };
  return c;
}

}  // namespace groak::cli
