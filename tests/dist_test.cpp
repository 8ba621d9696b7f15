// Tensor parallelism (model/shard.h, runtime/follow.h, dist/job.h): a model split over R ranks gives the
// golden logits of one process, with exactly the reductions docs/distributed.md counts. The first tests
// run the ranks as threads of this process (a shared-memory communicator: no MPI needed); the others run
// the groak CLI under `mpirun -np 2 --oversubscribe` on this machine and skip without mpirun.
#include <signal.h>

#include <barrier>
#include <cstring>
#include <fstream>
#include <thread>

#include "io/gguf.h"
#include "kernels/ops.h"
#include "model/loader.h"
#include "model/model_path.h"
#include "model/shard.h"
#include "runtime/follow.h"
#include "runtime/engine.h"
#include "server_util.h"
#include "synth/synth.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace groak::test {

namespace {


// R ranks as threads: every call meets the others at a barrier and reads their slots.
class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : n_(n), barrier_(n), slots_(static_cast<size_t>(n)) {}

  class Member final : public Communicator {
   public:
    Member(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return g_.n_; }
    void all_reduce_sum(float* x, int64_t n) override {
      put(x, n * 4);
      // The tree order over the ranks (Communicator's contract), on copies: the same bits on every rank.
      std::vector<std::vector<float>> copy(static_cast<size_t>(g_.n_), std::vector<float>(static_cast<size_t>(n)));
      std::vector<float*> parts;
      for (int r = 0; r < g_.n_; ++r) {
        std::memcpy(copy[static_cast<size_t>(r)].data(), g_.slots_[static_cast<size_t>(r)].data(), static_cast<size_t>(n) * 4);
        parts.push_back(copy[static_cast<size_t>(r)].data());
      }
      tree_sum(parts.data(), g_.n_, 0, n);
      g_.barrier_.arrive_and_wait();
      std::memcpy(x, parts[0], static_cast<size_t>(n) * 4);
      ++stats_.all_reduces;
      stats_.all_reduce_floats += n;
    }
    void gather_columns(float* x, int64_t rows, int64_t cols) override {
      put(x, rows * cols * 4);
      if (rank_ == 0)
        for (int r = 0; r < g_.n_; ++r)
          for (int64_t i = 0; i < rows; ++i)
            std::memcpy(x + (i * g_.n_ + r) * cols, g_.slots_[static_cast<size_t>(r)].data() + i * cols * 4,
                        static_cast<size_t>(cols) * 4);
      g_.barrier_.arrive_and_wait();
      ++stats_.gathers;
      stats_.gather_floats += rows * cols;
    }
    void broadcast(void* data, size_t bytes) override {
      put(data, static_cast<int64_t>(rank_ == 0 ? bytes : 0));
      if (rank_ != 0) std::memcpy(data, g_.slots_[0].data(), bytes);
      g_.barrier_.arrive_and_wait();
      ++stats_.broadcasts;
    }
    std::vector<std::string> gather_text(const std::string& text) override {
      put(text.data(), static_cast<int64_t>(text.size()));
      std::vector<std::string> all;
      for (int r = 0; rank_ == 0 && r < g_.n_; ++r)
        all.emplace_back(g_.slots_[static_cast<size_t>(r)].begin(), g_.slots_[static_cast<size_t>(r)].end());
      g_.barrier_.arrive_and_wait();
      return all;
    }
    CommStats stats() const override { return stats_; }

   private:
    // Publishes this rank's bytes and waits until every rank has.
    void put(const void* p, int64_t bytes) {
      auto& slot = g_.slots_[static_cast<size_t>(rank_)];
      slot.assign(static_cast<const char*>(p), static_cast<const char*>(p) + bytes);
      g_.barrier_.arrive_and_wait();
    }
    ThreadGroup& g_;
    int rank_;
    CommStats stats_;
  };

 private:
  int n_;
  std::barrier<> barrier_;
  std::vector<std::vector<char>> slots_;
};

// A model split over R thread-ranks: rank 0 runs `lead` with its share, the others follow. `share(r)`
// gives rank r's share (by default tiny-a, sharded at load as mpirun does).
void run_sharded(int R, const std::function<void(const Model&, Context&)>& lead,
                 const std::function<Model(int)>& share = {}) {
  ThreadGroup group(R);
  std::vector<Model> shares;
  for (int r = 0; r < R; ++r) {
    if (share) {
      shares.push_back(share(r));
    } else {
      shares.push_back(load_model(fixture_dir()));
      shard_model(shares.back(), r, R);
    }
    shares.back().group = std::make_shared<ThreadGroup::Member>(group, r);
  }
  std::vector<std::thread> followers;
  for (int r = 1; r < R; ++r)
    followers.emplace_back([&, r] {
      Context ctx(1);
      follow(shares[static_cast<size_t>(r)], ctx);
    });
  {
    Context ctx(1);
    lead(shares[0], ctx);
    release_followers(shares[0].comm());
  }
  for (auto& t : followers) t.join();
}

}  // namespace

TEST(Shard, TwoThreadRanksGiveTheGoldenLogitsWithTheCountedReductions) {
  GROAK_REQUIRE_SHARED(fixture_dir() + "/logits.f32");
  const auto tokens = read_tokens(fixture_dir() + "/tokens.txt");
  const auto golden = read_f32(fixture_dir() + "/logits.f32");
  const Config c = load_model(fixture_dir()).config;
  const int64_t T = static_cast<int64_t>(tokens.size()), V = c.vocab_size, L = c.num_layers, d = c.emb_size;
  std::vector<float> full, inc, row;
  CommStats full_stats, inc_stats;
  run_sharded(2, [&](const Model& m, Context& ctx) {
    EXPECT_EQ(m.config.num_kv_heads, c.num_kv_heads / 2);
    EXPECT_EQ(m.config.ffn_size(), c.ffn_size() / 2);
    {
      Engine s(m, ctx, {.context = T});
      s.eval(tokens, full, LogitRows::All);
    }
    full_stats = m.comm().stats();
    Engine s(m, ctx, {.context = T});
    for (int64_t t = 0; t < T; ++t) {
      s.eval(std::span<const int32_t>(&tokens[static_cast<size_t>(t)], 1), row, LogitRows::LastOnly);
      inc.insert(inc.end(), row.begin(), row.end());
    }
    inc_stats = m.comm().stats();
  });
  for (const auto& [name, logits] : {std::pair{"full", &full}, std::pair{"incremental", &inc}}) {
    const double err = max_rel_err(*logits, golden);
    std::printf("[2 thread-ranks, %s] tiny-a max rel err %.3g (bar %.0e)\n", name, err, kGoldenTolerance);
    EXPECT_LT(err, kGoldenTolerance) << name;
    EXPECT_EQ(argmax_rows(*logits, V), argmax_rows(golden, V)) << name;
  }
  // Per pass: the embedding, then attention and MoE of every layer: 1 + 2L all-reduces of [T, d]; one
  // gather of this rank's V/2 logit columns per token that wants logits.
  EXPECT_EQ(full_stats.all_reduces, 1 + 2 * L);
  EXPECT_EQ(full_stats.all_reduce_floats, (1 + 2 * L) * T * d);
  EXPECT_EQ(full_stats.gathers, 1);
  EXPECT_EQ(full_stats.gather_floats, T * V / 2);
  EXPECT_EQ(inc_stats.all_reduces - full_stats.all_reduces, T * (1 + 2 * L));
  EXPECT_EQ(inc_stats.all_reduce_floats - full_stats.all_reduce_floats, T * (1 + 2 * L) * d);
  EXPECT_EQ(inc_stats.gathers - full_stats.gathers, T);
}

// groak shard's files hold exactly the slices mpirun cuts at load: the same logits bit for bit, and the
// tokenizer in rank 0's file only.
TEST(Shard, ShareFilesGiveTheLogitsOfTheShardsCutAtLoad) {
  TempDir tmp;
  write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 4, tmp / "model", {});
  train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 512, tmp / "model/tokenizer.model");
  std::string log;
  ASSERT_EQ(run_command(groak() + " convert -t 1 --model " + tmp / "model" + " --type q4_0 --out " + tmp / "m.gguf", &log), 0) << log;
  ASSERT_EQ(run_command(groak() + " shard -t 1 --ranks 2 --model " + tmp / "m.gguf" + " --out " + tmp / "shares", &log), 0) << log;
  const uint64_t whole = fs::file_size(tmp / "m.gguf");
  // The synthetic source's random weights stay known (reports and the chat page say so).
  EXPECT_TRUE(has_random_weights(tmp / "m.gguf"));
  EXPECT_TRUE(has_random_weights(tmp / "shares"));
  ASSERT_EQ(run_command(groak() + " convert -t 1 --model " + std::string(GROAK_SOURCE_DIR) + "/models/grok-kjv --out " +
                        tmp / "trained.gguf", &log), 0) << log;
  EXPECT_FALSE(has_random_weights(tmp / "trained.gguf"));
  for (int r = 0; r < 2; ++r) {
    const std::string file = tmp / ("shares/" + share_file_name(r, 2));
    const double part = static_cast<double>(fs::file_size(file)) / static_cast<double>(whole);
    std::printf("[groak shard] %s: %.1f %% of the whole file\n", file.c_str(), 100 * part);
    EXPECT_LT(part, r == 0 ? 0.62 : 0.55) << "rank 0's file also holds the tokenizer";
    GgufFile g = GgufFile::open(file);
    EXPECT_EQ(g.has("tokenizer.ggml.tokens"), r == 0);
    EXPECT_EQ(g.get_u32(kShardRankKey), static_cast<uint32_t>(r));
  }
  const std::vector<int32_t> tokens = {5, 77, 300, 12, 9, 401, 33};
  auto logits_of = [&](const std::function<Model(int)>& share) {
    std::vector<float> out;
    run_sharded(2, [&](const Model& m, Context& ctx) {
      Engine s(m, ctx, {.context = 16});
      s.eval(tokens, out, LogitRows::All);
    }, share);
    return out;
  };
  const auto from_files = logits_of([&](int r) {
    Model m = load_model(tmp / ("shares/" + share_file_name(r, 2)));
    EXPECT_EQ(m.shard_rank, r);
    EXPECT_EQ(m.shard_count, 2);
    return m;
  });
  std::string whole_fingerprint;
  const auto cut_at_load = logits_of([&](int r) {
    Model m = load_model(tmp / "m.gguf");
    whole_fingerprint = model_fingerprint(m);
    shard_model(m, r, 2);
    return m;
  });
  ASSERT_EQ(from_files.size(), cut_at_load.size());
  EXPECT_EQ(std::memcmp(from_files.data(), cut_at_load.data(), from_files.size() * 4), 0);
  EXPECT_EQ(model_fingerprint(load_model(tmp / ("shares/" + share_file_name(1, 2)))), whole_fingerprint);
  // From xAI's raw checkpoint the shares are Q8_0: the same weights as the Q8_0 GGUF's cut at load (the
  // converter reads int8 slices of outputs through their strides).
  ASSERT_EQ(run_command(groak() + " convert -t 1 --model " + tmp / "model" + " --type q8_0 --out " + tmp / "m8.gguf", &log), 0) << log;
  ASSERT_EQ(run_command(groak() + " shard -t 1 --ranks 2 --model " + tmp / "model" + " --out " + tmp / "raw-shares", &log), 0) << log;
  const auto raw_files = logits_of([&](int r) { return load_model(tmp / ("raw-shares/" + share_file_name(r, 2))); });
  const auto q8_at_load = logits_of([&](int r) {
    Model m = load_model(tmp / "m8.gguf");
    shard_model(m, r, 2);
    return m;
  });
  ASSERT_EQ(raw_files.size(), q8_at_load.size());
  EXPECT_EQ(std::memcmp(raw_files.data(), q8_at_load.data(), raw_files.size() * 4), 0);
  // Another model of the same shapes has another fingerprint (mpirun refuses to mix their shares).
  write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 5, tmp / "other", {});
  EXPECT_NE(model_fingerprint(load_model(tmp / "other")), model_fingerprint(load_model(tmp / "model")));
}

// The row-parallel products are computed in the model's P parts and added in one tree order
// (model/parts.h), so one process and R ranks (R a power of two dividing P) give the same bits, for a
// batch and token by token, on raw int8 and on quantised files whose 8-bit activations would turn a
// last-bit difference into a different rounding.
TEST(Shard, OneProcessAndTwoOrFourRanksGiveTheSameBits) {
  TempDir tmp;
  Config c = synth_preset("tiny");  // widened: 4 kv heads, and cuts of 256 inputs for the k-quants
  c.emb_size = 256;
  c.key_size = 64;
  c.num_q_heads = 16;
  c.num_kv_heads = 4;
  c.widening_factor = 6;  // f = 1024
  c.embedding_multiplier_scale = 16;
  write_synthetic_checkpoint(c, "tiny", 11, tmp / "raw", {});
  std::string log;
  for (const char* type : {"q8_0", "q4_k"})
    ASSERT_EQ(run_command(groak() + " convert -t 2 --model " + tmp / "raw" + " --type " + type + " --out " +
                          tmp / (std::string(type) + ".gguf"), &log), 0) << log;
  const std::vector<int32_t> tokens = {5, 77, 300, 12, 9, 401, 33, 250, 7, 88, 411};
  const int64_t V = c.vocab_size, T = static_cast<int64_t>(tokens.size());
  auto logits_of = [&](const Model& m, Context& ctx) {  // the batch, then token by token
    std::vector<float> all, row;
    Engine batch(m, ctx, {.context = 16});
    batch.eval(tokens, all, LogitRows::All);
    Engine inc(m, ctx, {.context = 16});
    for (int64_t t = 0; t < T; ++t) {
      inc.eval(std::span<const int32_t>(&tokens[static_cast<size_t>(t)], 1), row, LogitRows::LastOnly);
      all.insert(all.end(), row.begin(), row.end());
    }
    return all;
  };
  for (const std::string model : {tmp / "raw", tmp / "q8_0.gguf", tmp / "q4_k.gguf"}) {
    const Model one = load_model(model);
    EXPECT_EQ(one.config.reduction_parts, 4) << model;
    Context ctx(2);
    const std::vector<float> want = logits_of(one, ctx);
    ASSERT_EQ(static_cast<int64_t>(want.size()), 2 * T * V);
    for (int R : {2, 4}) {
      std::vector<float> got;
      run_sharded(R, [&](const Model& m, Context& ctx) {
        EXPECT_EQ(m.config.reduction_parts, 4 / R);
        got = logits_of(m, ctx);
      }, [&](int r) {
        Model m = load_model(model);
        shard_model(m, r, R);
        return m;
      });
      ASSERT_EQ(got.size(), want.size());
      int64_t differ = 0;
      for (size_t i = 0; i < got.size(); ++i) differ += std::memcmp(&got[i], &want[i], 4) != 0;
      EXPECT_EQ(differ, 0) << model << ": " << R << " ranks differ from one process in " << differ << " of "
                           << got.size() << " logits (max rel err " << max_rel_err(got, want) << ")";
    }
  }
}

TEST(Shard, ShareSetsAreFoundAndCheckedByName) {
  TempDir tmp;
  fs::create_directories(tmp / "set");
  for (int r = 0; r < 4; r += 2) write_bytes(tmp / ("set/" + share_file_name(r, 4)), {1});
  EXPECT_EQ(share_set_ranks(tmp / "set"), 4);
  EXPECT_EQ(share_file(tmp / "set", 2, 4), tmp / "set/rank-2-of-4.gguf");
  error_of([&] { share_file(tmp / "set", 1, 4); }, {"rank-1-of-4.gguf is missing", "incomplete"});
  error_of([&] { share_file(tmp / "set", 0, 2); }, {"sharded for 4 ranks", "this job has 2", "mpirun -np 4"});
  error_of([&] { share_file(tmp / "set", 0, 1); }, {"sharded for 4 ranks", "one process runs the whole model"});
  EXPECT_EQ(share_set_ranks(tmp.path()), 0);
  EXPECT_EQ(share_file(tmp / "elsewhere.gguf", 0, 2), tmp / "elsewhere.gguf");
  write_bytes(tmp / ("set/" + share_file_name(0, 2)), {1});
  error_of([&] { share_file(tmp / "set", 0, 4); }, {"several sets"});
}

TEST(Shard, FollowersMirrorRewindsAndSessions) {
  // Rank 0 rewinds its cache and runs two sessions; the followers' caches follow the lengths it sends.
  GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0");
  const auto tokens = read_tokens(fixture_dir() + "/tokens.txt");
  Model one = load_model(fixture_dir());
  std::vector<float> want, got, other;
  Engine ref(one, {.context = 16});
  ref.eval(std::span<const int32_t>(tokens.data(), 6), want, LogitRows::All);
  run_sharded(2, [&](const Model& m, Context& ctx) {
    Engine a(m, ctx, {.context = 16}), b(m, ctx, {.context = 16});
    a.eval(std::span<const int32_t>(tokens.data(), 9), got, LogitRows::All);
    b.eval(std::span<const int32_t>(tokens.data() + 3, 2), other, LogitRows::All);
    a.rewind(2);  // forget positions 2… and run them again
    std::vector<float> head(got.begin(), got.begin() + 2 * m.config.vocab_size);
    a.eval(std::span<const int32_t>(tokens.data() + 2, 4), got, LogitRows::All);
    got.insert(got.begin(), head.begin(), head.end());
  });
  EXPECT_LT(max_rel_err(got, want), 1e-5);
  EXPECT_EQ(argmax_rows(got, one.config.vocab_size), argmax_rows(want, one.config.vocab_size));
}

TEST(Shard, RanksThatDoNotDivideTheKvHeadsAreRefused) {
  GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0");
  Model m = load_model(fixture_dir());  // 2 kv heads
  error_of([&] { shard_model(m, 0, 3); }, {"3 ranks do not divide num_kv_heads (2)", "run with 1, 2 ranks"});
  error_of([&] { shard_model(m, 3, 2); }, {"rank 3 of 2"});
}

TEST(Shard, ContiguousSlicesStayViewsStridedOnesArePacked) {
  GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0");
  Model m = load_model(fixture_dir());
  const ShardReport rep = shard_model(m, 1, 2);
  const Weights& w = m.weights;
  // xAI [in, out]: cut by output (query, linear, linear_v) is strided; by input (attention linear,
  // linear_1) and the table's vocabulary rows are contiguous.
  EXPECT_NE(w.layers[0].query.packed, nullptr);
  EXPECT_NE(w.layers[0].moe_linear.expert(3).packed, nullptr);
  for (const Matrix& part : w.layers[0].linear_parts) EXPECT_EQ(part.packed, nullptr);
  for (const Matrix& part : w.layers[0].moe_linear_1_parts[3]) EXPECT_EQ(part.packed, nullptr);
  EXPECT_EQ(w.in_out_embed.packed, nullptr);
  EXPECT_EQ(w.vocab_begin, m.config.vocab_size / 2);
  EXPECT_GT(rep.packed_bytes, 0u);
  EXPECT_GE(rep.packed_page_bytes, rep.packed_bytes);
  // A packed copy holds the same numbers as its view: row 5 of expert 3's linear, element by element.
  const Matrix& view = w.layers[0].moe_linear.expert(3);
  const Matrix& packed = view.resolve();
  EXPECT_EQ(packed.row_stride, 0);
  EXPECT_EQ(std::memcmp(packed.data + 5 * packed.stride(), view.data + 5 * view.stride(), view.packed_row_bytes()), 0);
}

// ---- the CLI under mpirun ---------------------------------------------------------------------------

namespace {

#define GROAK_REQUIRE_MPIRUN()                                                                                 \
  do {                                                                                                         \
    if (!GROAK_WITH_MPI) GTEST_SKIP() << "groak was built without MPI (scripts/setup.sh installs libopenmpi-dev); skipped"; \
    if (run_command("command -v " + mpirun() + " >/dev/null") != 0)                                           \
      GTEST_SKIP() << "needs mpirun (scripts/setup.sh installs openmpi-bin); skipped";                          \
  } while (0)

std::string mpirun() { return std::string(MPIEXEC).empty() ? "mpirun" : MPIEXEC; }

// mpirun -np R on this machine as root (CI), ranks unbound (groak has its own threads); a time limit so
// that a hang fails instead of blocking the suite. Under ASan, Open MPI keeps its plugins loaded and the
// slow unwinder names them, so that tests/lsan_mpi.supp can tell Open MPI's own leaks from groak's.
// Followed by the program to run.
std::string mpirun_prefix(int R) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none "
         "OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1 "
         "ASAN_OPTIONS=${ASAN_OPTIONS}:fast_unwind_on_malloc=0 LSAN_OPTIONS=suppressions=" +
         std::string(GROAK_SOURCE_DIR) + "/tests/lsan_mpi.supp timeout 300 " + mpirun() + " -np " + std::to_string(R) +
         " --oversubscribe --bind-to none ";
}
std::string mpirun_groak(int R, const std::string& args) { return mpirun_prefix(R) + GROAK_BIN + " " + args; }

// The number after "label " in text; -1 when absent.
long long count_after(const std::string& text, const std::string& label) {
  const size_t at = text.find(label + " ");
  if (at == std::string::npos) return -1;
  return std::atoll(text.c_str() + at + label.size() + 1);
}

}  // namespace

TEST(Mpi, TwoRanksGiveTheGoldenLogitsAndCountTheirReductions) {
  GROAK_REQUIRE_MPIRUN();
  GROAK_REQUIRE_SHARED(fixture_dir() + "/logits.f32");
  const auto golden = read_f32(fixture_dir() + "/logits.f32");
  const Config c = load_model(fixture_dir()).config;
  const int64_t T = static_cast<int64_t>(read_tokens(fixture_dir() + "/tokens.txt").size());
  const int64_t L = c.num_layers, V = c.vocab_size;
  TempDir tmp;
  for (const std::string mode : {"full", "incremental"}) {
    std::string out;
    ASSERT_EQ(run_command(mpirun_groak(2, "logits -t 1 --model " + fixture_dir() + " --tokens-file " + fixture_dir() +
                                              "/tokens.txt --mode " + mode + " --out " + tmp / "l.f32"), &out), 0) << out;
    const auto logits = read_f32(tmp / "l.f32");
    const double err = max_rel_err(logits, golden);
    std::printf("[mpirun -np 2, %s] tiny-a max rel err %.3g (bar %.0e)\n", mode.c_str(), err, kGoldenTolerance);
    EXPECT_LT(err, kGoldenTolerance) << out;
    EXPECT_EQ(argmax_rows(logits, V), argmax_rows(golden, V));
    // Rank 0's counts: 1 + 2L all-reduces per pass (a pass per token in incremental mode), one gather of
    // its V/2 logit columns per token.
    const int64_t passes = mode == "full" ? 1 : T;
    const std::string r0 = out.substr(out.find("rank 0 ("));
    EXPECT_EQ(count_after(r0, "all-reduces"), passes * (1 + 2 * L)) << out;
    EXPECT_EQ(count_after(r0, "gathers"), passes) << out;
    EXPECT_NE(out.find("gathers " + std::to_string(passes) + " (" + std::to_string(T * V / 2) + " floats)"),
              std::string::npos) << out;
    EXPECT_NE(out.find("rank 1 ("), std::string::npos) << "rank 1 reports its memory and counts\n" << out;
  }
}

TEST(Mpi, GreedyGenerateGivesTheTextOfOneProcess) {
  GROAK_REQUIRE_MPIRUN();
  GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0");
  TempDir tmp;
  train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 512, tmp / "tok.model");
  const std::string args = "generate -t 1 --model " + fixture_dir() + " --tokenizer " + tmp / "tok.model" +
                           " -p 'The quick brown fox' -n 24 --temp 0 --ignore-eos";
  std::string log;
  ASSERT_EQ(run_command("{ " + std::string(GROAK_BIN) + " " + args + " > " + tmp / "one.txt; }", &log), 0) << log;
  ASSERT_EQ(run_command("{ " + mpirun_groak(2, args) + " > " + tmp / "two.txt; }", &log), 0) << log;
  const std::string one = read_text(tmp / "one.txt"), two = read_text(tmp / "two.txt");
  EXPECT_GT(one.size(), 10u);
  EXPECT_EQ(two, one) << "stdout of rank 0 (the other ranks print nothing)";
}

TEST(Mpi, RanksThatDoNotDivideTheKvHeadsGetOneClearError) {
  GROAK_REQUIRE_MPIRUN();
  GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0");
  TempDir tmp;
  std::string out;
  EXPECT_EQ(run_command(mpirun_groak(3, "logits -t 1 --model " + fixture_dir() + " --tokens 1,2,3 --out " + tmp / "l.f32"),
                        &out), 1) << out;
  const std::string needle = "3 ranks do not divide num_kv_heads (2)";
  const size_t at = out.find(needle);
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_EQ(out.find(needle, at + 1), std::string::npos) << "reported once, by rank 0:\n" << out;
  EXPECT_NE(out.find("rank 0 ("), std::string::npos) << "names the ranks and hosts:\n" << out;
  EXPECT_NE(out.find("rank 2 ("), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp / "l.f32"));
}

TEST(Mpi, ARankThatDiesEndsTheJob) {
  GROAK_REQUIRE_MPIRUN();
  GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0");
  // Rank 1 is killed a second into a long bench; the job must end (not hang) with a failure that says so.
  const std::string script = std::string(GROAK_BIN) + " bench -t 1 --no-probes -p 0 -n 4000 -r 1000 --model " + fixture_dir();
  std::string out;
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = run_command(mpirun_prefix(2) + "sh -c '[ \"$OMPI_COMM_WORLD_RANK\" = 1 ] && (sleep 1; kill -9 $$) & exec " +
                                 script + "'", &out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 124) << "the job hung until the time limit:\n" << out;
  EXPECT_LT(seconds, 120) << out;
  EXPECT_NE(out.find("signal 9"), std::string::npos) << "mpirun names the killed rank:\n" << out;
}

// ---- groak serve under mpirun -------------------------------------------------------------------------

namespace {

// `groak serve` as R ranks in the background on a free port: each rank writes its pid to DIR/rankN.pid,
// the log (both ranks, and mpirun's own words) goes to DIR/serve.log.
class MpiServe {
 public:
  MpiServe(const std::string& dir, int R, const std::string& args) : dir_(dir) {
    const std::string wrapped = mpirun_prefix(R) + "sh -c 'echo $$ > " + dir + "/rank$OMPI_COMM_WORLD_RANK.pid; exec " +
                                GROAK_BIN + " serve --port 0 " + args + "'";
    run_command("(" + wrapped + " > " + log_path() + " 2>&1 & echo $! > " + dir + "/mpirun.pid)");
    launcher_ = std::atoi(read_text(dir + "/mpirun.pid").c_str());
  }
  ~MpiServe() {
    if (launcher_ > 0) ::kill(launcher_, SIGTERM);
    ended(30);
  }
  std::string log_path() const { return dir_ + "/serve.log"; }
  std::string log() const { return read_text(log_path()); }
  // The port once rank 0 says "ready:", else -1 (the job ended first, or 60 s passed).
  int ready() {
    eventually([&] { return log().find("ready:") != std::string::npos || ended(0); }, 60);
    const std::string text = log();
    const size_t at = text.find("listening on http://127.0.0.1:");
    if (text.find("ready:") == std::string::npos || at == std::string::npos) return -1;
    return std::atoi(text.c_str() + at + std::strlen("listening on http://127.0.0.1:"));
  }
  pid_t rank_pid(int r) const { return std::atoi(read_text(dir_ + "/rank" + std::to_string(r) + ".pid").c_str()); }
  // True once the launcher (timeout, then mpirun) has exited, waiting up to `seconds`.
  bool ended(double seconds) {
    return eventually([&] { return launcher_ <= 0 || (::kill(launcher_, 0) != 0 && errno == ESRCH); }, seconds);
  }

 private:
  std::string dir_;
  pid_t launcher_ = -1;
};

// The tiny preset with its tokenizer, written once per test.
std::string tiny_served_model(const TempDir& tmp) {
  write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 3, tmp / "model", {});
  train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 512, tmp / "model/tokenizer.model");
  return tmp / "model";
}

}  // namespace

TEST(Mpi, ServeGivesTheGreedyTextOfOneProcessToConcurrentRequests) {
  GROAK_REQUIRE_MPIRUN();
  TempDir tmp;
  const std::string model = tiny_served_model(tmp);
  const std::string prompts[] = {"The quick brown fox", "Once upon a time", "In the beginning", "Hello"};
  // One process: groak generate, greedy.
  std::vector<std::string> alone;
  for (const std::string& p : prompts) {
    std::string log;
    ASSERT_EQ(run_command("{ " + std::string(GROAK_BIN) + " generate -t 1 --model " + model + " -p '" + p +
                          "' -n 24 --temp 0 --ignore-eos > " + tmp / "one.txt; }", &log), 0) << log;
    const std::string out = read_text(tmp / "one.txt");
    alone.push_back(out.substr(0, out.size() - 1));  // generate ends stdout with a newline
  }
  MpiServe server(tmp.path(), 2, "-t 1 --parallel 4 --model " + model);
  const int port = server.ready();
  ASSERT_GT(port, 0) << server.log();
  EXPECT_EQ(get(port, "/health").status, 200);
  // The four at once: batched together in the 2-rank passes, each the text of one process.
  std::vector<Reply> replies(4);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < 4; ++i)
    clients.emplace_back([&, i] {
      replies[i] = post(port, "/v1/completions", json{{"prompt", prompts[i]}, {"max_tokens", 24}, {"temperature", 0},
                                                      {"ignore_eos", true}});
    });
  for (auto& c : clients) c.join();
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_EQ(replies[i].status, 200) << replies[i].raw;
    EXPECT_EQ(replies[i].body["choices"][0]["text"].get<std::string>(), alone[i]) << prompts[i];
  }
  const Reply metrics = get(port, "/metrics");
  EXPECT_NE(metrics.raw.find("groak_batched_steps_total"), std::string::npos);
  EXPECT_EQ(metrics.raw.find("groak_batched_steps_total 0\n"), std::string::npos) << "the requests shared passes";
  EXPECT_NE(server.log().find("rank 1 ("), std::string::npos) << "rank 1 holds its share:\n" << server.log();
}

TEST(Mpi, ThePromptCacheKeepsEachRanksShare) {
  // One slot over 2 ranks: c finds a's long prefix in the prompt cache after b took the slot over; each
  // rank restores its share of the heads, and c's text is one process's.
  GROAK_REQUIRE_MPIRUN();
  TempDir tmp;
  const std::string model = tiny_served_model(tmp);
  const std::string shared = "In the beginning God created the heaven and the earth. And the earth was without form, "
                             "and void; and darkness was upon the face of the deep.";
  const std::string a = shared + " And God said", b = "Once upon a time there was a quick brown fox who jumped over "
                                                      "the lazy dog again and again, every single day",
                    c = shared + " Then the evening came";
  std::string log;
  ASSERT_EQ(run_command("{ " + std::string(GROAK_BIN) + " generate -t 1 --model " + model + " -p '" + c +
                        "' -n 12 --temp 0 --ignore-eos > " + tmp / "one.txt; }", &log), 0) << log;
  const std::string out = read_text(tmp / "one.txt");
  const std::string alone = out.substr(0, out.size() - 1);
  MpiServe server(tmp.path(), 2, "-t 1 --parallel 1 --cache-ram 64 --model " + model);
  const int port = server.ready();
  ASSERT_GT(port, 0) << server.log();
  Reply last;
  for (const std::string& p : {a, b, c}) {
    last = post(port, "/v1/completions", json{{"prompt", p}, {"max_tokens", 12}, {"temperature", 0}, {"ignore_eos", true}});
    ASSERT_EQ(last.status, 200) << last.raw;
  }
  EXPECT_GE(last.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), 32) << last.raw;
  EXPECT_EQ(last.body["choices"][0]["text"].get<std::string>(), alone);
  EXPECT_NE(get(port, "/metrics").raw.find("groak_prompt_cache_hits_total 1\n"), std::string::npos);
}

TEST(Mpi, ServeAnswers503WhenARankDiesAndTheJobEnds) {
  GROAK_REQUIRE_MPIRUN();
  TempDir tmp;
  const std::string model = tiny_served_model(tmp);
  MpiServe server(tmp.path(), 2, "-t 1 --parallel 1 --queue 8 --model " + model);
  const int port = server.ready();
  ASSERT_GT(port, 0) << server.log();
  // One slot: the first request runs, the others wait; all are in flight when rank 1 is killed.
  const json long_request{{"prompt", "Tell me"}, {"max_tokens", 480}, {"temperature", 0}, {"ignore_eos", true}};
  std::vector<Reply> replies(4);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < replies.size(); ++i)
    clients.emplace_back([&, i] { replies[i] = post(port, "/v1/completions", long_request); });
  ASSERT_TRUE(eventually([&] {
    const Reply m = get(port, "/metrics");
    return m.raw.find("groak_queue_length 3") != std::string::npos;
  })) << "three requests wait behind the first";
  ASSERT_EQ(::kill(server.rank_pid(1), SIGKILL), 0);
  for (auto& c : clients) c.join();
  int unavailable = 0;
  for (const Reply& r : replies) {
    if (r.status == 200) continue;  // the first may have finished before rank 1 died
    expect_error(r, 503, "tensor-parallel", "an in-flight request when rank 1 died");
    ++unavailable;
  }
  EXPECT_GE(unavailable, 3) << "the waiting requests get 503";
  EXPECT_TRUE(server.ended(30)) << "the job ends, nothing hangs:\n" << server.log();
  const std::string log = server.log();
  const std::string said = "groak serve: error: the tensor-parallel job is ending";
  ASSERT_NE(log.find(said), std::string::npos) << log;
  EXPECT_EQ(log.find(said, log.find(said) + 1), std::string::npos) << "said once, by rank 0:\n" << log;
  EXPECT_NE(log.find("rank 1"), std::string::npos) << "mpirun names the rank that died:\n" << log;
}

TEST(Mpi, ServeRefusesWhatSeveralRanksCannotOffer) {
  GROAK_REQUIRE_MPIRUN();
  TempDir tmp;
  const std::string model = tiny_served_model(tmp);
  std::string out;
  EXPECT_EQ(run_command(mpirun_groak(2, "serve -t 1 --port 0 --allow-inspect --model " + model), &out), 1) << out;
  const std::string needle = "--allow-inspect needs the whole model in one process";
  ASSERT_NE(out.find(needle), std::string::npos) << out;
  EXPECT_EQ(out.find(needle, out.find(needle) + 1), std::string::npos) << "said once:\n" << out;
  // Ranks that do not divide the kv heads (the tiny preset has 2): refused before anything listens.
  EXPECT_EQ(run_command(mpirun_groak(3, "serve -t 1 --port 0 --model " + model), &out), 1) << out;
  EXPECT_NE(out.find("3 ranks do not divide num_kv_heads"), std::string::npos) << out;
}

TEST(Mpi, ShareSetsRunAsTheWholeModelAndMismatchedRanksAreRefused) {
  GROAK_REQUIRE_MPIRUN();
  TempDir tmp;
  const std::string model = tiny_served_model(tmp);
  std::string log;
  for (const char* name : {"a", "b"}) {  // two models of the same shapes, each split in two
    if (std::string(name) == "b") write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 8, tmp / "model", {});
    ASSERT_EQ(run_command(groak() + " convert -t 1 --model " + model + " --out " + tmp / (std::string(name) + ".gguf"), &log), 0) << log;
    ASSERT_EQ(run_command(groak() + " shard -t 1 --ranks 2 --model " + tmp / (std::string(name) + ".gguf") + " --out " +
                          tmp / (std::string(name) + "-shares"), &log), 0) << log;
  }
  const std::string gen = " -p 'The quick brown fox' -n 16 --temp 0 --ignore-eos";
  ASSERT_EQ(run_command("{ " + groak() + " generate -t 1 --model " + tmp / "a.gguf" + gen + " > " + tmp / "one.txt; }", &log), 0) << log;
  ASSERT_EQ(run_command("{ " + mpirun_groak(2, "generate -t 1 --model " + tmp / "a-shares" + gen) + " > " + tmp / "two.txt; }",
                        &log), 0) << log;
  EXPECT_EQ(read_text(tmp / "two.txt"), read_text(tmp / "one.txt")) << "the shares give the whole model's text";
  // One process refuses a share set: a share is not the model.
  EXPECT_EQ(run_command(groak() + " generate --model " + tmp / "a-shares" + gen, &log), 1) << log;
  EXPECT_NE(log.find("sharded for 2 ranks"), std::string::npos) << log;
  // Rank 1's file from another model: refused by rank 0, once.
  fs::create_directories(tmp / "mixed");
  fs::copy_file(tmp / "a-shares/rank-0-of-2.gguf", tmp / "mixed/rank-0-of-2.gguf");
  fs::copy_file(tmp / "b-shares/rank-1-of-2.gguf", tmp / "mixed/rank-1-of-2.gguf");
  EXPECT_EQ(run_command(mpirun_groak(2, "generate -t 1 --model " + tmp / "mixed" + gen), &log), 1) << log;
  EXPECT_NE(log.find("rank 1 loaded another model than rank 0"), std::string::npos) << log;
  // A rank's file missing, and a set for another number of ranks: the file and the fix are named.
  fs::remove(tmp / "mixed/rank-1-of-2.gguf");
  EXPECT_EQ(run_command(mpirun_groak(2, "generate -t 1 --model " + tmp / "mixed" + gen), &log), 1) << log;
  EXPECT_NE(log.find("rank-1-of-2.gguf is missing"), std::string::npos) << log;
  EXPECT_EQ(run_command(mpirun_groak(1, "generate -t 1 --model " + tmp / "a-shares" + gen), &log), 1) << log;
  EXPECT_NE(log.find("mpirun -np 2"), std::string::npos) << log;
  // Ranks started with other arguments (mpirun's a : b form).
  EXPECT_EQ(run_command(mpirun_prefix(1) + GROAK_BIN + " generate -t 1 --model " + tmp / "a.gguf" + gen + " : -np 1 " +
                        GROAK_BIN + " generate -t 1 --model " + tmp / "a.gguf" + gen + " --seed 3", &log), 1) << log;
  EXPECT_NE(log.find("rank 1 was started with other arguments than rank 0"), std::string::npos) << log;
}

}  // namespace groak::test
