// ggml's i-quants, ternary quants and MXFP4 (kernels/quant_iquants.cpp): the type table, dequantisation bit
// for bit against llama.cpp's gguf-py (committed blocks in tests/fixtures/iquants, always; and every tensor of
// the small files llama-quantize wrote, when those and gguf-py are present), hand-worked blocks for the
// element orders, and dot_row against the dequantised row.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "io/gguf.h"
#include "kernels/quant.h"
#include "test_util.h"

namespace groak::test {
namespace {


uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Index of the first element whose bits differ (or n when none do).
size_t first_difference(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (bits_of(a[i]) != bits_of(b[i])) return i;
  return n;
}

struct TypeRow {
  GgmlType t;
  uint32_t number;
  const char* name;
  int64_t block;
  size_t bytes;
};
// ggml.h numbers, sizeof(block_*) of ggml-common.h.
const TypeRow kIquantTypes[] = {
    {GgmlType::IQ2_XXS, 16, "IQ2_XXS", 256, 66}, {GgmlType::IQ2_XS, 17, "IQ2_XS", 256, 74},
    {GgmlType::IQ3_XXS, 18, "IQ3_XXS", 256, 98}, {GgmlType::IQ1_S, 19, "IQ1_S", 256, 50},
    {GgmlType::IQ4_NL, 20, "IQ4_NL", 32, 18},    {GgmlType::IQ3_S, 21, "IQ3_S", 256, 110},
    {GgmlType::IQ2_S, 22, "IQ2_S", 256, 82},     {GgmlType::IQ4_XS, 23, "IQ4_XS", 256, 136},
    {GgmlType::IQ1_M, 29, "IQ1_M", 256, 56},     {GgmlType::TQ1_0, 34, "TQ1_0", 256, 54},
    {GgmlType::TQ2_0, 35, "TQ2_0", 256, 66},     {GgmlType::MXFP4, 39, "MXFP4", 32, 17},
};


TEST(IQuantTypes, TablesMatchGgml) {
  for (const TypeRow& r : kIquantTypes) {
    EXPECT_EQ(static_cast<uint32_t>(r.t), r.number) << r.name;
    EXPECT_TRUE(ggml_type_supported(r.number)) << r.name;
    EXPECT_STREQ(type_name(r.t), r.name);
    EXPECT_STREQ(ggml_type_name(r.number), r.name);
    EXPECT_EQ(block_size(r.t), r.block) << r.name;
    EXPECT_EQ(type_size(r.t), r.bytes) << r.name;
    EXPECT_EQ(row_bytes(r.t, 6144), static_cast<size_t>(6144 / r.block) * r.bytes) << r.name;
    // groak writes every type it reads (tests/quantize_test.cpp, tests/quantize_iquants_test.cpp).
    EXPECT_TRUE(has_quantizer(r.t)) << r.name;
  }
  // Still refused: activation-only formats, plain integers, F64 and the removed numbers.
  for (uint32_t n : {4u, 5u, 9u, 15u, 24u, 25u, 26u, 27u, 28u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 1000u})
    EXPECT_FALSE(ggml_type_supported(n)) << n << " " << ggml_type_name(n);
}

// ---------------------------------------------------------------------------------------------------------
// Committed blocks with gguf-py's values (tests/fixtures/iquants/README.md says how they were made).

TEST(IQuantDequant, FixtureBlocksEqualGgufPyBitForBit) {
  const std::string dir = std::string(GROAK_SOURCE_DIR) + "/tests/fixtures/iquants/";
  int checked = 0;
  for (const TypeRow& r : kIquantTypes) {
    if (r.t == GgmlType::MXFP4) continue;  // gguf-py of c392e5094 predates it: hand-worked below
    const std::vector<uint8_t> blocks = read_bytes(dir + r.name + ".blocks");
    const std::vector<uint8_t> raw = read_bytes(dir + r.name + ".f32");
    ASSERT_FALSE(blocks.empty()) << "missing " << dir << r.name << ".blocks";
    ASSERT_EQ(blocks.size() % r.bytes, 0u) << r.name;
    const int64_t n = static_cast<int64_t>(blocks.size() / r.bytes) * r.block;
    ASSERT_EQ(raw.size(), static_cast<size_t>(n) * 4) << r.name;
    std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    std::memcpy(want.data(), raw.data(), raw.size());
    dequantize_row(r.t, blocks.data(), got.data(), n);
    const size_t at = first_difference(got.data(), want.data(), got.size());
    EXPECT_EQ(at, got.size()) << r.name << ": element " << at << " (block " << static_cast<int64_t>(at) / r.block
                              << ") is " << got[std::min(at, got.size() - 1)] << ", gguf-py says "
                              << want[std::min(at, want.size() - 1)] << "; see quant_iquants.cpp's dq_ for "
                              << r.name;
    // dot_row is the dequantised row times x, summed in index order.
    std::vector<float> x(static_cast<size_t>(n));
    std::mt19937 g(5);
    std::normal_distribution<float> nd;
    for (float& v : x) v = nd(g);
    float sum = 0.f;
    for (int64_t i = 0; i < n; ++i) sum += want[static_cast<size_t>(i)] * x[static_cast<size_t>(i)];
    EXPECT_EQ(bits_of(dot_row(r.t, blocks.data(), x.data(), n)), bits_of(sum)) << r.name;
    ++checked;
  }
  EXPECT_EQ(checked, 11);
}

// ---------------------------------------------------------------------------------------------------------
// Hand-worked blocks: element order and scale arithmetic written out from the format definitions.

void put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

TEST(IQuantDequant, Tq2_0ElementOrder) {
  // Element 128h + 32l + m = bits 2l…2l+1 of qs[32h + m], value (q − 1)·d.
  uint8_t b[66] = {};
  b[0] = 0b11100100;  // element 0: q 0 → −d; element 32: q 1 → 0; element 64: q 2 → d; element 96: q 3 → 2d
  b[33] = 0b00000010;  // element 128 + 1: q 2 → d, 161, 193, 225: q 0 → −d
  put16(b + 64, 0x3800);  // d = 0.5
  float y[256];
  dequantize_row(GgmlType::TQ2_0, b, y, 256);
  EXPECT_EQ(y[0], -0.5f);
  EXPECT_EQ(y[32], 0.f);
  EXPECT_EQ(y[64], 0.5f);
  EXPECT_EQ(y[96], 1.f);
  EXPECT_EQ(y[129], 0.5f);
  EXPECT_EQ(y[161], -0.5f);
  EXPECT_EQ(y[1], -0.5f);  // q 0 everywhere else
}

TEST(IQuantDequant, Tq1_0ReadsBase3Digits) {
  // A byte holds ⌈v·256/243⌉ for the 5-digit ternary number v whose first digit is the most significant:
  // digits (2, 0, 1, 1, 0) → v = 2·81 + 0·27 + 1·9 + 1·3 + 0 = 174 → byte ⌈174·256/243⌉ = 184.
  uint8_t b[54] = {};  // byte 0: every digit 0 → −d
  b[7] = 184;
  b[40] = 184;  // second run: elements 160 + 16n + 8
  // qh bytes hold 4 digits, scaled as a 5-digit number with a last digit 0: (2, 1, 0, 2) → v = 195 → 206.
  b[50] = (195 * 256 + 242) / 243;
  put16(b + 52, 0x4000);  // d = 2
  float y[256];
  dequantize_row(GgmlType::TQ1_0, b, y, 256);
  const float want[5] = {2.f, -2.f, 0.f, 0.f, -2.f};  // (digit − 1)·d
  for (int n = 0; n < 5; ++n) {
    EXPECT_EQ(y[32 * n + 7], want[n]) << "digit " << n;
    EXPECT_EQ(y[160 + 16 * n + 8], want[n]) << "digit " << n;
  }
  // qh byte 2 holds elements 240 + 4n + 2.
  EXPECT_EQ(y[242], 2.f);
  EXPECT_EQ(y[246], 0.f);
  EXPECT_EQ(y[250], -2.f);
  EXPECT_EQ(y[254], 2.f);
  EXPECT_EQ(y[0], -2.f);
}

TEST(IQuantDequant, Iq4NlAndIq4XsUseTheNonLinearLevels) {
  uint8_t nl[18] = {};
  put16(nl, 0x3C00);  // d = 1
  nl[2] = 0xF0;       // element 0: level 0 = −127; element 16: level 15 = 113
  nl[17] = 0x78;      // element 15: level 8 = 1; element 31: level 7 = −10
  float y[32];
  dequantize_row(GgmlType::IQ4_NL, nl, y, 32);
  EXPECT_EQ(y[0], -127.f);
  EXPECT_EQ(y[16], 113.f);
  EXPECT_EQ(y[15], 1.f);
  EXPECT_EQ(y[31], -10.f);

  uint8_t xs[136] = {};
  put16(xs, 0x3800);        // d = 0.5
  put16(xs + 2, 0b10 << 6);  // scales_h: sub-block 3 gets high bits 2 → scale (2 << 4 | low) − 32
  xs[4 + 1] = 0x50;         // scales_l[1]: sub-block 2 low nibble 0, sub-block 3 low nibble 5
  xs[8 + 16 * 3] = 0x0F;    // sub-block 3, element 96: level 15 = 113; element 112: level 0 = −127
  float z[256];
  dequantize_row(GgmlType::IQ4_XS, xs, z, 256);
  EXPECT_EQ(z[96], 0.5f * (37 - 32) * 113);
  EXPECT_EQ(z[112], 0.5f * (37 - 32) * -127);
  EXPECT_EQ(z[64], 0.5f * (0 - 32) * -127);  // sub-block 2: scale 0 − 32, nibble 0
}

TEST(IQuantDequant, Mxfp4ScalesByAPowerOfTwo) {
  // ggml's MXFP4 (added after c392e5094): E8M0 exponent byte e, Q4_0's nibble order, value
  // kvalues_mxfp4[nibble] · 2^(e − 128) where kvalues_mxfp4 are the E2M1 values doubled.
  uint8_t b[17] = {};
  b[0] = 130;  // 2^2 = 4
  for (int j = 0; j < 16; ++j) b[1 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  dequantize_row(GgmlType::MXFP4, b, y, 32);
  const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, 0, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 8 * e2m1[j]) << j;
    EXPECT_EQ(y[j + 16], 8 * e2m1[15 - j]) << j + 16;
  }
  b[0] = 0;  // 2^-128: a float subnormal, kept (ggml_e8m0_to_fp32_half does not flush it)
  dequantize_row(GgmlType::MXFP4, b, y, 32);
  EXPECT_EQ(y[2], 2 * std::ldexp(1.f, -128));
  b[0] = 254;  // 2^126
  dequantize_row(GgmlType::MXFP4, b, y, 32);
  EXPECT_EQ(y[7], 12 * std::ldexp(1.f, 126));
}

TEST(IQuantDequant, Iq2XxsGridSignsAndScale) {
  // Sub-block 0: grid indices 0 (all 0x08) and 255; sign byte 0 = ksigns[1] = 0x81 (weights 0 and 7
  // negative); scale 3 → db = d·3.5·0.25.
  uint8_t b[66] = {};
  put16(b, 0x3C00);  // d = 1
  b[2 + 1] = 255;    // group 1 uses the last grid entry
  const uint32_t aux = (3u << 28) | 1u;  // scale 3; group 0 signs index 1
  std::memcpy(b + 6, &aux, 4);
  float y[256];
  dequantize_row(GgmlType::IQ2_XXS, b, y, 256);
  const float db = 1.f * 3.5f * 0.25f;
  EXPECT_EQ(y[0], -db * 8);
  EXPECT_EQ(y[1], db * 8);
  EXPECT_EQ(y[7], -db * 8);
  EXPECT_EQ(y[32], 0.25f * 0.5f * 8);  // sub-block 1: scale 0, index 0, no signs
}

// ---------------------------------------------------------------------------------------------------------
// Every tensor of the small files llama-quantize wrote, against gguf-py (skipped when either is absent).

// The folder of small-k-<type>.gguf files ($GROAK_SMALL_K_TYPES, else ../models/small-k-types beside the
// repository) and llama.cpp's gguf-py ($GROAK_GGUF_PY, else ../peer/llama.cpp/gguf-py).
std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}
std::string small_k_types_dir() {
  return env_or("GROAK_SMALL_K_TYPES", std::string(GROAK_SOURCE_DIR) + "/../models/small-k-types");
}
std::string gguf_py_dir() { return env_or("GROAK_GGUF_PY", std::string(GROAK_SOURCE_DIR) + "/../peer/llama.cpp/gguf-py"); }

TEST(IQuantDequant, EveryTensorOfLlamaQuantizeFilesEqualsGgufPy) {
  const std::string models = small_k_types_dir(), py = gguf_py_dir();
  if (!fs::is_directory(models))
    GTEST_SKIP() << "needs the small-k-<type>.gguf files llama-quantize wrote (" << models
                 << ", or set GROAK_SMALL_K_TYPES); skipped (tests/fixtures/iquants covers every type without them)";
  const std::string python = "PYTHONPATH=" + py + " /usr/bin/python3";
  if (run_command(python + " -c 'import gguf.quants, numpy'") != 0)
    GTEST_SKIP() << "needs llama.cpp's gguf-py (" << py << ", or set GROAK_GGUF_PY) and numpy; skipped";
  std::map<std::string, int> tensors_per_type;
  int files = 0;
  for (const auto& e : fs::directory_iterator(models)) {
    const std::string path = e.path().string();
    if (e.path().extension() != ".gguf") continue;
    TempDir out;
    std::string listing;
    ASSERT_EQ(run_command(python + " " + GROAK_SOURCE_DIR + "/tests/gguf_py_dequant.py " + path + " " + out.path(),
                          &listing),
              0)
        << listing;
    const GgufFile g = GgufFile::open(path);
    ++files;
    for (size_t k = 0; k < g.tensors().size(); ++k) {
      const GgufTensor& t = g.tensors()[k];
      const std::vector<float> want = read_f32(out / (std::to_string(k) + ".f32"));
      ASSERT_EQ(want.size(), static_cast<size_t>(t.n_elements())) << path << " " << t.name;
      std::vector<float> got(want.size());
      dequantize_row(t.type, t.data, got.data(), t.n_elements());
      const size_t at = first_difference(got.data(), want.data(), got.size());
      EXPECT_EQ(at, got.size()) << path << ": tensor " << t.name << " (" << type_name(t.type) << ") element " << at
                                << " is " << got[std::min(at, got.size() - 1)] << ", gguf-py says "
                                << want[std::min(at, got.size() - 1)];
      ++tensors_per_type[type_name(t.type)];
    }
  }
  std::string summary;
  for (const auto& [name, n] : tensors_per_type) summary += " " + name + "×" + std::to_string(n);
  std::printf("[ compared ] %d files, tensors per type:%s\n", files, summary.c_str());
  for (const TypeRow& r : kIquantTypes) {
    if (r.t == GgmlType::MXFP4) continue;
    EXPECT_GT(tensors_per_type[r.name], 0) << "no " << r.name << " tensor in " << models;
  }
}

}  // namespace
}  // namespace groak::test
