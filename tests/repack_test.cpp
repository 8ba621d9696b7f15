// The 8-row interleaved copies of Q4_0/Q8_0 matrices (kernels/repack.h, model/repack.h): the layout holds
// every byte where the header says, the AVX-512 VNNI products on a copy equal the in-place products bit
// for bit (any rows, any output range, any threads), the ops layer uses a copy only with a table that
// reads it, and a whole model gives the same logits with and without copies.
#include <cstring>
#include <random>

#include "convert/convert.h"
#include "kernel_util.h"
#include "kernels/context.h"
#include "kernels/ops.h"
#include "kernels/repack.h"
#include "model/loader.h"
#include "model/repack.h"
#include "runtime/engine.h"
#include "synth/synth.h"
#include "test_util.h"

namespace groak::test {

namespace {

// An [out, in] matrix of random q4_0/q8_0 rows, one leading pad byte (unaligned rows).
struct QuantMatrix {
  std::vector<uint8_t> bytes;
  Matrix m;
  QuantMatrix(GgmlType t, int64_t n_in, int64_t n_out, uint32_t seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    const size_t rb = row_bytes(t, n_in);
    bytes.resize(1 + rb * static_cast<size_t>(n_out));
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t o = 0; o < n_out; ++o) {
      for (float& v : row) v = d(g);
      quantize_row(t, row.data(), bytes.data() + 1 + rb * static_cast<size_t>(o), n_in);
    }
    m.format = WeightFormat::Ggml;
    m.ggml = t;
    m.layout = Layout::OutIn;
    m.n_in = n_in;
    m.n_out = n_out;
    m.data = bytes.data() + 1;
  }
};


// A copy made by the test itself, counting how often the ops layer asked for it.
class TestCopy final : public RepackedOnUse {
 public:
  explicit TestCopy(const Matrix& w) : bytes_(rows8_bytes(w)) {
    rows8_pack(w, 0, (w.n_out + 7) / 8, bytes_.data());
    m_ = rows8_view(w, bytes_.data());
  }
  const Matrix& get(Context&) const override {
    ++calls;
    return m_;
  }
  mutable int calls = 0;

 private:
  std::vector<uint8_t> bytes_;
  Matrix m_;
};

}  // namespace

TEST(Repack, LayoutHoldsEachRowsBytesWhereTheHeaderSays) {
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0}) {
    const int64_t n_in = 96, n_out = 13;  // 3 blocks; 2 groups, the second padded with row 12
    QuantMatrix q(t, n_in, n_out, 5);
    ASSERT_TRUE(rows8_eligible(q.m));
    const size_t B = t == GgmlType::Q8_0 ? 34 : 18;
    ASSERT_EQ(rows8_group_bytes(q.m), 8 * 3 * B);
    ASSERT_EQ(rows8_bytes(q.m), 2 * 8 * 3 * B);
    std::vector<uint8_t> out(rows8_bytes(q.m));
    rows8_pack(q.m, 0, 2, out.data());
    for (int64_t g = 0; g < 2; ++g)
      for (int64_t k = 0; k < 3; ++k) {
        const uint8_t* blk = out.data() + static_cast<size_t>(g) * 8 * 3 * B + static_cast<size_t>(k) * 8 * B;
        for (int j = 0; j < 8; ++j) {
          const uint8_t* src = q.m.data + static_cast<size_t>(std::min<int64_t>(8 * g + j, n_out - 1)) * q.m.stride() + k * B;
          EXPECT_EQ(std::memcmp(blk + 2 * j, src, 2), 0) << type_name(t) << " scale g" << g << " k" << k << " row " << j;
          for (size_t c = 0; c < (B - 2) / 4; ++c)
            EXPECT_EQ(std::memcmp(blk + 16 + 32 * c + 4 * j, src + 2 + 4 * c, 4), 0)
                << type_name(t) << " chunk " << c << " g" << g << " k" << k << " row " << j;
        }
      }
  }
}

TEST(Repack, OnlyWholeBlockQ4_0AndQ8_0RowsAreEligible) {
  EXPECT_TRUE(rows8_eligible(QuantMatrix(GgmlType::Q4_0, 64, 3, 1).m));
  EXPECT_FALSE(rows8_eligible(QuantMatrix(GgmlType::Q4_K, 256, 3, 1).m));
  Matrix inout = QuantMatrix(GgmlType::Q8_0, 64, 3, 1).m;
  inout.layout = Layout::InOut;
  EXPECT_FALSE(rows8_eligible(inout));
  Matrix f32;
  f32.n_in = 64;
  f32.n_out = 8;
  EXPECT_FALSE(rows8_eligible(f32));
}

// The copy's products equal the in-place ones bit for bit: rows 1 … 70 (decode, the few-row blocks, the
// 8-row tiles and their rests), partial groups, output ranges that start inside a group.
TEST(Repack, VnniProductOnTheCopyEqualsInPlace) {
  const Kernels* vnni = avx512_vnni_kernels();
  if (!vnni) GTEST_SKIP() << "this CPU has no AVX-512 VNNI: no table reads the repacked layout here";
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0})
    for (int64_t n_out : {37, 272}) {
      const int64_t n_in = 512;
      QuantMatrix q(t, n_in, n_out, 7);
      TestCopy copy(q.m);
      Context ctx(1, vnni);
      const Matrix& r = copy.get(ctx);
      for (int64_t rows : {1, 2, 3, 7, 8, 9, 17, 70}) {
        const auto x = randn(static_cast<size_t>(rows * n_in), 11);
        std::vector<float> a(static_cast<size_t>(rows * n_out)), b(a.size(), -1.f);
        kernel_matmul(*vnni, q.m, x.data(), a.data(), rows);
        kernel_matmul(*vnni, r, x.data(), b.data(), rows);
        EXPECT_EQ(a, b) << type_name(t) << " n_out " << n_out << " rows " << rows;
        // A range starting inside a group writes exactly its own columns.
        std::vector<float> c(a.size(), -1.f);
        kernel_matmul(*vnni, r, x.data(), c.data(), rows, 3, 29);
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t o = 0; o < n_out; ++o) {
            const size_t at = static_cast<size_t>(i * n_out + o);
            ASSERT_EQ(c[at], o >= 3 && o < 29 ? a[at] : -1.f) << type_name(t) << " row " << i << " col " << o;
          }
      }
    }
}

// ops.h multiplies the copy only with a table that reads it; every table gives its own results unchanged.
TEST(Repack, OpsUseTheCopyOnlyWithATableThatReadsIt) {
  const int64_t n_in = 256, n_out = 300, rows = 5;
  QuantMatrix q(GgmlType::Q4_0, n_in, n_out, 3);
  TestCopy copy(q.m);
  Matrix view = q.m;
  view.repacked = &copy;
  const auto x = randn(static_cast<size_t>(rows * n_in), 4);
  std::vector<const Kernels*> tables = {&portable_kernels(), avx2_kernels(), avx512_vnni_kernels()};
  for (const Kernels* k : tables) {
    if (!k) continue;
    for (int threads : {1, 2}) {
      Context ctx(threads, k);
      std::vector<float> plain(static_cast<size_t>(rows * n_out)), with(plain.size());
      copy.calls = 0;
      matmul(ctx, q.m, x.data(), plain.data(), rows);
      matmul(ctx, view, x.data(), with.data(), rows);
      EXPECT_EQ(copy.calls, k->reads_rows8 ? 1 : 0) << k->name;
      EXPECT_EQ(plain, with) << k->name << " threads " << threads;
    }
  }
}

// A model's copies: made on first use, the same logits as in place; slices (a tensor-parallel share)
// drop a whole matrix's copy.
TEST(Repack, ModelLogitsAreTheSameWithCopies) {
  TempDir tmp;
  write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 3, tmp / "raw", {});
  for (const char* type : {"q4_0", "q8_0"}) {
    const std::string file = tmp / (std::string(type) + ".gguf");
    {
      Model src = load_model(tmp / "raw");
      ConvertOptions o;
      o.out = file;
      o.plan.file_type = &parse_file_type(type);
      o.plan.pure = true;
      convert_model(src, o);
    }
    Model plain = load_model(file), packed = load_model(file);
    repack_on_use(packed);
    EXPECT_EQ(plain.repack_bytes, 0u);
    EXPECT_GT(packed.repack_bytes, 0u) << type;
    ASSERT_NE(packed.weights.layers[0].moe_linear.list[0].repacked, nullptr) << type;
    EXPECT_EQ(packed.weights.layers[0].query.slice_out(0, 8).repacked, nullptr);
    const std::vector<int32_t> toks = {5, 17, 300, 2, 99, 7, 41, 8, 250};
    for (const Kernels* k : {&fast_kernels(), &portable_kernels()}) {
      std::vector<float> a, b;
      Engine ea(plain, {.context = 16, .kernels = k}), eb(packed, {.context = 16, .kernels = k});
      ea.eval(toks, a, LogitRows::All);
      eb.eval(toks, b, LogitRows::All);
      EXPECT_EQ(a, b) << type << " " << k->name;
      for (int step = 0; step < 3; ++step) {  // decode: one row per product
        const int32_t t = 11 + step;
        ea.eval({&t, 1}, a, LogitRows::LastOnly);
        eb.eval({&t, 1}, b, LogitRows::LastOnly);
        EXPECT_EQ(a, b) << type << " " << k->name << " decode step " << step;
      }
    }
  }
}

}  // namespace groak::test
