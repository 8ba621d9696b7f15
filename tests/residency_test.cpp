// A model larger than memory (model/residency.h): locking the dense weights and reading the chosen
// experts ahead are hints to the kernel, so every logit stays what it was; what they do is visible in
// /proc (locked memory), and a refused lock says which limit to raise.
#include <cstring>

#include "model/loader.h"
#include "model/residency.h"
#include "runtime/engine.h"
#include "synth/synth.h"
#include "test_util.h"
#include "util/proc_file.h"

namespace groak::test {

namespace {

// AddressSanitizer replaces mlock with a no-op (it reports success and locks nothing), so what the
// kernel holds locked, and its refusals, are checked in the other builds only.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMlockIsReal = false;
#else
constexpr bool kMlockIsReal = true;
#endif

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& tokens) {
  Engine e(m, {.context = 16, .threads = 2});
  std::vector<float> out;
  e.eval(tokens, out, LogitRows::All);
  return out;
}

}  // namespace

TEST(Residency, LockingAndReadAheadLeaveEveryLogitAsItWas) {
  TempDir tmp;
  write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 6, tmp / "model", {});
  Model m = load_model(tmp / "model");
  const std::vector<int32_t> tokens = {3, 90, 250, 7, 400, 12};
  const std::vector<float> plain = logits_of(m, tokens);

  const uint64_t locked_before = proc_field("/proc/self/status", "VmLck:").value_or(0) * 1024;
  const uint64_t locked = lock_dense_weights(m);
  const Weights& w = m.weights;
  uint64_t dense = w.in_out_embed.data_bytes();
  for (const LayerWeights& L : w.layers)
    for (const Matrix* x : {&L.query, &L.key, &L.value, &L.linear, &L.router}) dense += x->data_bytes() + x->scale_bytes();
  EXPECT_GE(locked, dense) << "every dense weight's pages";
  EXPECT_LT(locked, weight_file_bytes(m)) << "the experts are not locked";
  if (kMlockIsReal)
    EXPECT_GE(proc_field("/proc/self/status", "VmLck:").value_or(0) * 1024, locked_before + dense)
        << "the kernel holds them locked";

  m.weights.read_ahead_experts = true;
  const std::vector<float> hinted = logits_of(m, tokens);
  ASSERT_EQ(hinted.size(), plain.size());
  EXPECT_EQ(std::memcmp(hinted.data(), plain.data(), plain.size() * sizeof(float)), 0);
}

TEST(Residency, TheCommandsLockOnRequestAndNameTheLimitWhenRefused) {
  TempDir tmp;
  write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 6, tmp / "model", {});
  train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 512, tmp / "model/tokenizer.model");
  const std::string gen = " generate -t 1 --model " + tmp / "model" + " -p 'Hello' -n 4 --temp 0";
  std::string log;
  ASSERT_EQ(run_command("{ " + groak() + gen + " > " + tmp / "plain.txt; }", &log), 0) << log;
  ASSERT_EQ(run_command("{ " + groak() + gen + " --lock-dense --read-ahead on > " + tmp / "locked.txt; }", &log), 0) << log;
  EXPECT_NE(log.find("locked"), std::string::npos) << log;
  EXPECT_EQ(read_text(tmp / "locked.txt"), read_text(tmp / "plain.txt"));
  EXPECT_EQ(run_command(groak() + gen + " --read-ahead sometimes", &log), 2) << log;
  EXPECT_NE(log.find("--read-ahead"), std::string::npos) << log;
  // Without the right to lock more than 64 KiB (root keeps it through CAP_IPC_LOCK: dropped here).
  if (!kMlockIsReal) GTEST_SKIP() << "the refusal: AddressSanitizer's mlock locks nothing and never refuses";
  if (run_command("command -v setpriv >/dev/null") != 0) GTEST_SKIP() << "needs setpriv (util-linux) for the refusal";
  EXPECT_EQ(run_command("setpriv --bounding-set -ipc_lock --inh-caps -ipc_lock sh -c 'ulimit -l 64; exec " + groak() + gen +
                        " --lock-dense'", &log), 1) << log;
  EXPECT_NE(log.find("could not lock the dense weights"), std::string::npos) << log;
  EXPECT_NE(log.find("ulimit -l"), std::string::npos) << log;
}

}  // namespace groak::test
