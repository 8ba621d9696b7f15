// groak info: the configuration, a table of tensors and the memory arithmetic of a model.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "../cli.h"
#include "../options.h"
#include "model/check.h"

namespace groak::cli {

namespace {

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
  if (m.repack_bytes)
    std::printf("repacked on first use:      %s of anonymous memory once every Q4_0/Q8_0 matrix has run on the "
                "AVX-512 VNNI kernels (their file pages leave the resident set; --no-repack: none)\n",
                human_bytes(static_cast<double>(m.repack_bytes)).c_str());
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

struct InfoArgs {
  std::string model;
  bool check_weights = false;
};

}  // namespace

Command info_command() {
  auto a = std::make_shared<InfoArgs>();
  Command c;
  c.name = "info";
  c.description = "Show the configuration, the tensors and the memory arithmetic of a model";
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    cmd.add_flag("--check-weights", a->check_weights, "scan every weight for NaN/Inf, naming each damaged tensor "
                                                      "(reads the whole model; automatic up to 4 GiB)");
  };
  c.run = [a](Job&) { return run_info(a->model, a->check_weights); };
  return c;
}

}  // namespace groak::cli
