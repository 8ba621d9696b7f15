// ggml block formats: hand-built reference blocks for every type (bytes written here from the format
// definitions in ggml-common.h, values worked out by hand), exact fp16, dot_row against the dequantised
// row, and quantize→dequantize error bounds for the reference quantizers.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/quant.h"
#include "util/error.h"

namespace groak {
namespace {

constexpr uint16_t kHalfOne = 0x3C00;      // 1.0
constexpr uint16_t kHalfHalf = 0x3800;     // 0.5
constexpr uint16_t kHalfQuarter = 0x3400;  // 0.25
constexpr uint16_t kHalfMinusOne = 0xBC00; // -1.0

void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) { std::memcpy(b.data() + at, &v, 2); }

std::vector<float> dequant(GgmlType t, const std::vector<uint8_t>& b, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_row(t, b.data(), y.data(), n);
  return y;
}

// --------------------------------------------------------------------------------------------------------
// Tables

TEST(QuantTypes, TablesMatchGgml) {
  struct Row { GgmlType t; uint32_t number; const char* name; int64_t block; size_t bytes; };
  const Row rows[] = {
      {GgmlType::F32, 0, "F32", 1, 4},     {GgmlType::F16, 1, "F16", 1, 2},      {GgmlType::Q4_0, 2, "Q4_0", 32, 18},
      {GgmlType::Q4_1, 3, "Q4_1", 32, 20}, {GgmlType::Q5_0, 6, "Q5_0", 32, 22},  {GgmlType::Q5_1, 7, "Q5_1", 32, 24},
      {GgmlType::Q8_0, 8, "Q8_0", 32, 34}, {GgmlType::Q2_K, 10, "Q2_K", 256, 84}, {GgmlType::Q3_K, 11, "Q3_K", 256, 110},
      {GgmlType::Q4_K, 12, "Q4_K", 256, 144}, {GgmlType::Q5_K, 13, "Q5_K", 256, 176},
      {GgmlType::Q6_K, 14, "Q6_K", 256, 210}, {GgmlType::BF16, 30, "BF16", 1, 2},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(static_cast<uint32_t>(r.t), r.number) << r.name;
    EXPECT_TRUE(ggml_type_supported(r.number)) << r.name;
    EXPECT_STREQ(type_name(r.t), r.name);
    EXPECT_STREQ(ggml_type_name(r.number), r.name);
    EXPECT_EQ(block_size(r.t), r.block) << r.name;
    EXPECT_EQ(type_size(r.t), r.bytes) << r.name;
    EXPECT_EQ(row_bytes(r.t, 4 * kQK_K), static_cast<size_t>(4 * kQK_K / r.block) * r.bytes) << r.name;
  }
  EXPECT_EQ(row_bytes(GgmlType::Q8_0, 6144), 6528u);  // 192 blocks × 34
  EXPECT_EQ(row_bytes(GgmlType::Q4_0, 6144), 3456u);  // 192 × 18
  EXPECT_EQ(row_bytes(GgmlType::Q4_K, 0), 0u);
}

TEST(QuantTypes, EveryNumberHasANameAndOnlyReadTypesAreSupported) {
  // i-quants and ternary types are read (their table: quant_iquants_test.cpp); the rest only have names.
  EXPECT_TRUE(ggml_type_supported(16));
  EXPECT_STREQ(ggml_type_name(16), "IQ2_XXS");
  EXPECT_STREQ(ggml_type_name(23), "IQ4_XS");
  EXPECT_STREQ(ggml_type_name(29), "IQ1_M");
  EXPECT_STREQ(ggml_type_name(9), "Q8_1");
  EXPECT_STREQ(ggml_type_name(15), "Q8_K");
  EXPECT_STREQ(ggml_type_name(35), "TQ2_0");
  EXPECT_STREQ(ggml_type_name(4), "Q4_2 (removed)");
  EXPECT_STREQ(ggml_type_name(1000), "unknown");
  for (uint32_t n : {4u, 5u, 9u, 15u, 24u, 28u, 31u, 40u, 1000u}) EXPECT_FALSE(ggml_type_supported(n)) << n;
}

TEST(QuantTypes, RowBytesRejectsPartialBlocks) {
  EXPECT_THROW(row_bytes(GgmlType::Q4_0, 33), Error);
  EXPECT_THROW(row_bytes(GgmlType::Q4_K, 128), Error);
  EXPECT_THROW(row_bytes(GgmlType::F32, -1), Error);
  try {
    row_bytes(GgmlType::Q6_K, 100);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q6_K"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("256"), std::string::npos) << e.what();
  }
}

// --------------------------------------------------------------------------------------------------------
// fp16

TEST(QuantFp16, KnownValues) {
  EXPECT_EQ(fp16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(fp16_to_f32(0x3555), 0.333251953125f);
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(fp16_to_f32(0x03FF), 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_f32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(fp16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(fp16_to_f32(0x7C00), INFINITY);
  EXPECT_EQ(fp16_to_f32(0xFC00), -INFINITY);
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7E00)));
  EXPECT_TRUE(std::signbit(fp16_to_f32(0x8000)));

  EXPECT_EQ(f32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_fp16(65519.99f), 0x7BFF);  // below the rounding midpoint 65520
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7C00);   // the midpoint ties to even = inf
  EXPECT_EQ(f32_to_fp16(1e10f), 0x7C00);
  EXPECT_EQ(f32_to_fp16(-INFINITY), 0xFC00);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);       // half of the smallest subnormal: ties to even (0)
  EXPECT_EQ(f32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);       // 1.5 ulp ties to even (2)
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25) * 1.0001f), 0x0001);
  EXPECT_EQ(f32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie, even stays
  EXPECT_EQ(f32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie, odd rounds up
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -26)), 0x0400);  // rounds up into the normals
  EXPECT_EQ(f32_to_fp16(1e-30f), 0x0000);
  EXPECT_EQ(f32_to_fp16(-0.0f), 0x8000);
  const uint16_t nan = f32_to_fp16(NAN);
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
}

TEST(QuantFp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_EQ(h & 0x7C00, 0x7C00u);
      EXPECT_TRUE(std::isnan(fp16_to_f32(f32_to_fp16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_fp16(f), h) << std::hex << h;
  }
}

#if defined(__FLT16_MAX__)
// The compiler's _Float16 conversions (IEEE round to nearest even) are an independent oracle.
TEST(QuantFp16, MatchesCompilerFloat16) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const _Float16 v = std::bit_cast<_Float16>(static_cast<uint16_t>(h));
    const float want = static_cast<float>(v);
    const float got = fp16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got));
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want)) << std::hex << h;
    }
  }
  // A stride through all float bit patterns (prime step, so every exponent and many mantissas appear).
  for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 4099) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(u));
    if (std::isnan(f)) continue;
    const uint16_t want = std::bit_cast<uint16_t>(static_cast<_Float16>(f));
    ASSERT_EQ(f32_to_fp16(f), want) << std::hex << u;
  }
}
#endif

// --------------------------------------------------------------------------------------------------------
// Reference blocks, one per type. Each builds the bytes from the ggml-common.h struct and checks values
// worked out by hand.

TEST(QuantBlocks, F32F16BF16) {
  std::vector<uint8_t> f32(8);
  const float a = 1.5f, b = -2.0f;
  std::memcpy(f32.data(), &a, 4);
  std::memcpy(f32.data() + 4, &b, 4);
  EXPECT_EQ(dequant(GgmlType::F32, f32, 2), (std::vector<float>{1.5f, -2.0f}));

  std::vector<uint8_t> f16(8);
  put16(f16, 0, 0x3C00);  // 1
  put16(f16, 2, 0xC000);  // -2
  put16(f16, 4, 0x3555);  // 0.333251953125
  put16(f16, 6, 0x0001);  // 2^-24
  EXPECT_EQ(dequant(GgmlType::F16, f16, 4), (std::vector<float>{1.0f, -2.0f, 0.333251953125f, std::ldexp(1.0f, -24)}));

  std::vector<uint8_t> bf16(8);
  put16(bf16, 0, 0x3F80);  // 1
  put16(bf16, 2, 0xC0A0);  // -5
  put16(bf16, 4, 0x4049);  // 3.140625
  put16(bf16, 6, 0x0001);  // 2^-133, a float subnormal
  EXPECT_EQ(dequant(GgmlType::BF16, bf16, 4), (std::vector<float>{1.0f, -5.0f, 3.140625f, std::ldexp(1.0f, -133)}));
}

// block_q8_0 { half d; int8 qs[32]; }: y = d·q.
TEST(QuantBlocks, Q8_0) {
  std::vector<uint8_t> b(34);
  put16(b, 0, kHalfHalf);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(8 * j - 128));  // -128, -120 … 120
  const std::vector<float> y = dequant(GgmlType::Q8_0, b, 32);
  EXPECT_EQ(y[0], -64.0f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[31], 60.0f);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * static_cast<float>(8 * j - 128)) << j;
}

// block_q4_0 { half d; u8 qs[16]; }: element j = low nibble of qs[j], element j+16 = high nibble; y = d·(n − 8).
TEST(QuantBlocks, Q4_0) {
  std::vector<uint8_t> b(18);
  put16(b, 0, kHalfHalf);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = dequant(GgmlType::Q4_0, b, 32);
  EXPECT_EQ(y[0], -4.0f);   // (0 − 8)·0.5
  EXPECT_EQ(y[15], 3.5f);   // (15 − 8)·0.5
  EXPECT_EQ(y[16], 3.5f);   // high nibble of qs[0] = 15
  EXPECT_EQ(y[31], -4.0f);  // high nibble of qs[15] = 0
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * static_cast<float>(j - 8));
    EXPECT_EQ(y[j + 16], 0.5f * static_cast<float>(7 - j));
  }
}

// block_q4_1 { half d; half m; u8 qs[16]; }: y = d·n + m.
TEST(QuantBlocks, Q4_1) {
  std::vector<uint8_t> b(20);
  put16(b, 0, kHalfHalf);
  put16(b, 2, kHalfMinusOne);
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = dequant(GgmlType::Q4_1, b, 32);
  EXPECT_EQ(y[0], -1.0f);
  EXPECT_EQ(y[15], 6.5f);
  EXPECT_EQ(y[16], 6.5f);
  EXPECT_EQ(y[31], -1.0f);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * static_cast<float>(j) - 1.0f);
    EXPECT_EQ(y[j + 16], 0.5f * static_cast<float>(15 - j) - 1.0f);
  }
}

// block_q5_0 { half d; u8 qh[4]; u8 qs[16]; }: 5th bit of element j is bit j of qh (as a little-endian u32);
// y = d·(q − 16).
TEST(QuantBlocks, Q5_0) {
  std::vector<uint8_t> b(22);
  put16(b, 0, kHalfQuarter);
  b[2] = 0x01;  // bit 0: element 0
  b[5] = 0x80;  // bit 31: element 31
  for (int j = 0; j < 16; ++j) b[6 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = dequant(GgmlType::Q5_0, b, 32);
  EXPECT_EQ(y[0], 0.0f);     // (0 | 16) − 16
  EXPECT_EQ(y[1], -3.75f);   // (1 − 16)·0.25
  EXPECT_EQ(y[5], -2.75f);
  EXPECT_EQ(y[16], -0.25f);  // (15 − 16)·0.25
  EXPECT_EQ(y[20], -1.25f);  // (11 − 16)·0.25
  EXPECT_EQ(y[31], 0.0f);    // (0 | 16) − 16
  for (int j = 1; j < 16; ++j) EXPECT_EQ(y[j], 0.25f * static_cast<float>(j - 16));
  for (int j = 0; j < 15; ++j) EXPECT_EQ(y[j + 16], 0.25f * static_cast<float>(15 - j - 16));
}

// block_q5_1 { half d; half m; u8 qh[4]; u8 qs[16]; }: y = d·q + m.
TEST(QuantBlocks, Q5_1) {
  std::vector<uint8_t> b(24);
  put16(b, 0, kHalfQuarter);
  put16(b, 2, kHalfOne);
  b[4] = 0x01;
  b[7] = 0x80;
  for (int j = 0; j < 16; ++j) b[8 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = dequant(GgmlType::Q5_1, b, 32);
  EXPECT_EQ(y[0], 5.0f);    // 16·0.25 + 1
  EXPECT_EQ(y[1], 1.25f);   // 1·0.25 + 1
  EXPECT_EQ(y[16], 4.75f);  // 15·0.25 + 1
  EXPECT_EQ(y[31], 5.0f);   // 16·0.25 + 1
  EXPECT_EQ(y[20], 3.75f);  // 11·0.25 + 1
}

// block_q2_K { u8 scales[16]; u8 qs[64]; half d; half dmin; }. Element e = 128h + 32s + l: q = bits 2s of
// qs[32h + l]; sub-block 8h + 2s + l/16 with scale = low nibble, min = high nibble; y = d·sc·q − dmin·m.
TEST(QuantBlocks, Q2_K) {
  std::vector<uint8_t> b(84);
  for (int k = 0; k < 16; ++k) b[k] = static_cast<uint8_t>(k | ((15 - k) << 4));  // scale k, min 15 − k
  for (int i = 0; i < 64; ++i) b[16 + i] = 0xE4;  // 0b11'10'01'00: q = s for every element
  put16(b, 80, kHalfHalf);
  put16(b, 82, kHalfQuarter);
  const std::vector<float> y = dequant(GgmlType::Q2_K, b, 256);
  EXPECT_EQ(y[0], -3.75f);   // sub 0: 0.5·0·0 − 0.25·15
  EXPECT_EQ(y[40], -2.25f);  // s 1, l 8 → sub 2: 0.5·2·1 − 0.25·13
  EXPECT_EQ(y[200], 11.25f); // h 1, s 2, l 8 → sub 12: 0.5·12·2 − 0.25·3
  EXPECT_EQ(y[255], 22.5f);  // sub 15: 0.5·15·3 − 0
}

// block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d; }. 16 six-bit scales biased by 32: low
// nibbles in scales[0..7] (j < 8 low, j ≥ 8 high nibble of scales[j-8]), top two bits in scales[8 + j%4]
// at bit 2·(j/4). Element 128h + 32s + l: 2 low bits = bits 2s of qs[32h + l], minus 4 unless bit 4h+s of
// hmask[l] is set; y = d·(scale − 32)·q.
TEST(QuantBlocks, Q3_K) {
  std::vector<uint8_t> b(110);
  for (int l = 0; l < 32; ++l) b[l] = l < 16 ? 0x55 : 0xAA;  // hmask
  for (int i = 0; i < 64; ++i) b[32 + i] = 0xE4;            // low bits = s
  // Scales 24 + j (= j − 8 after the bias): j < 8 → 0b01'1xxx, j ≥ 8 → 0b10'0xxx.
  const uint8_t packed[12] = {0x08, 0x19, 0x2A, 0x3B, 0x4C, 0x5D, 0x6E, 0x7F, 0xA5, 0xA5, 0xA5, 0xA5};
  std::memcpy(b.data() + 96, packed, 12);
  put16(b, 108, kHalfHalf);
  const std::vector<float> y = dequant(GgmlType::Q3_K, b, 256);
  EXPECT_EQ(y[0], 0.0f);     // scale −8, q = 0 (hmask bit 0 set)
  EXPECT_EQ(y[40], 9.0f);    // s 1, l 8 → sub 2, scale −6; hmask[8] bit 1 clear → q = 1 − 4: 0.5·(−6)·(−3)
  EXPECT_EQ(y[200], 4.0f);   // h 1, s 2, l 8 → sub 12, scale 4; bit 6 of 0x55 set → q = 2
  EXPECT_EQ(y[255], 10.5f);  // h 1, s 3, l 31 → sub 15, scale 7; bit 7 of 0xAA set → q = 3
  EXPECT_EQ(y[63], -2.5f);   // s 1, l 31 → sub 3, scale −5; bit 1 of 0xAA set → q = 1
}

// block_q4_K { half d; half dmin; u8 scales[12]; u8 qs[128]; }. Sub-block j < 4: scale = scales[j] & 63,
// min = scales[j+4] & 63; j ≥ 4: scale = low nibble of scales[j+4] | (scales[j−4] >> 6) << 4, min = high
// nibble of scales[j+4] | (scales[j] >> 6) << 4. Chunk c: low nibbles of qs[32c..] = sub-block 2c, high
// nibbles = 2c+1; y = d·scale·q − dmin·min.
TEST(QuantBlocks, Q4_K) {
  std::vector<uint8_t> b(144);
  put16(b, 0, kHalfHalf);
  put16(b, 2, kHalfQuarter);
  // (scale, min) per sub-block: (1,5) (2,6) (3,7) (4,8) (49,2) (3,4) (5,6) (7,24): 0xC1 carries the top
  // bits of scale 4 (3 → 48 + 1), 0x48 those of min 7 (1 → 16 + 8).
  const uint8_t scales[12] = {0xC1, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x48, 0x21, 0x43, 0x65, 0x87};
  std::memcpy(b.data() + 4, scales, 12);
  for (int i = 0; i < 128; ++i) b[16 + i] = static_cast<uint8_t>((i & 15) | ((15 - (i & 15)) << 4));
  const std::vector<float> y = dequant(GgmlType::Q4_K, b, 256);
  EXPECT_EQ(y[0], -1.25f);   // sub 0, q 0: −0.25·5
  EXPECT_EQ(y[33], 12.5f);   // sub 1, high nibble of qs[1] = 14: 0.5·2·14 − 0.25·6
  EXPECT_EQ(y[100], 20.0f);  // sub 3, high nibble of qs[36] = 11: 0.5·4·11 − 0.25·8
  EXPECT_EQ(y[133], 122.0f); // sub 4, low nibble of qs[69] = 5: 0.5·49·5 − 0.25·2
  EXPECT_EQ(y[255], -6.0f);  // sub 7, high nibble of qs[127] = 0: −0.25·24
}

// block_q5_K { half d; half dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }: Q4_K plus a fifth bit (+16):
// bit 2c of qh[l] for element 64c + l, bit 2c+1 for element 64c + 32 + l.
TEST(QuantBlocks, Q5_K) {
  std::vector<uint8_t> b(176);
  put16(b, 0, kHalfHalf);
  put16(b, 2, kHalfQuarter);
  const uint8_t scales[12] = {0xC1, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x48, 0x21, 0x43, 0x65, 0x87};
  std::memcpy(b.data() + 4, scales, 12);
  for (int l = 0; l < 32; ++l) b[16 + l] = (l % 2 == 0) ? 0x01 : 0x82;
  for (int i = 0; i < 128; ++i) b[48 + i] = static_cast<uint8_t>((i & 15) | ((15 - (i & 15)) << 4));
  const std::vector<float> y = dequant(GgmlType::Q5_K, b, 256);
  EXPECT_EQ(y[0], 6.75f);    // qh[0] bit 0 → q 16: 0.5·1·16 − 1.25
  EXPECT_EQ(y[32], 13.5f);   // qh[0] bit 1 clear → q 15: 0.5·2·15 − 1.5
  EXPECT_EQ(y[33], 28.5f);   // qh[1] bit 1 → q 30: 0.5·2·30 − 1.5
  EXPECT_EQ(y[133], 122.0f); // qh[5] bit 4 clear → as Q4_K
  EXPECT_EQ(y[255], 50.0f);  // qh[31] bit 7 → q 16: 0.5·7·16 − 6
}

// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; half d; }. Element 128h + 32r + l: low 4 bits from
// ql[64h + l] (r = 0 low nibble, r = 2 high) or ql[64h + 32 + l] (r = 1 low, r = 3 high); top 2 bits =
// bits 2r of qh[32h + l]; scale = scales[8h + 2r + l/16]; y = d·scale·(q − 32).
TEST(QuantBlocks, Q6_K) {
  std::vector<uint8_t> b(210);
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      b[64 * h + l] = 0x5A;
      b[64 * h + 32 + l] = 0x3C;
    }
  }
  for (int i = 0; i < 64; ++i) b[128 + i] = 0xE4;  // top bits = r
  for (int k = 0; k < 16; ++k) b[192 + k] = static_cast<uint8_t>(static_cast<int8_t>(k - 8));
  put16(b, 208, kHalfHalf);
  // q by r: 0x0A − 32 = −22, 0x1C − 32 = −4, 0x25 − 32 = 5, 0x33 − 32 = 19.
  const std::vector<float> y = dequant(GgmlType::Q6_K, b, 256);
  EXPECT_EQ(y[0], 88.0f);    // scale −8: 0.5·(−8)·(−22)
  EXPECT_EQ(y[16], 77.0f);   // l 16 → scale −7
  EXPECT_EQ(y[40], 12.0f);   // r 1, l 8 → scale −6: 0.5·(−6)·(−4)
  EXPECT_EQ(y[212], 12.5f);  // h 1, r 2, l 20 → scales[13] = 5: 0.5·5·5
  EXPECT_EQ(y[255], 66.5f);  // h 1, r 3, l 31 → scales[15] = 7: 0.5·7·19
}

// --------------------------------------------------------------------------------------------------------
// Whole k-quant blocks: pack chosen quants and scales with encoders written from the struct comments above,
// then check every element against d·scale·q − dmin·min computed from the chosen numbers (d = 0.5 and
// dmin = 0.25 keep every product exact).

struct BlockRng {
  std::mt19937 g{12345};
  int operator()(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); }
};

TEST(QuantBlocks, Q2_KEveryElement) {
  BlockRng rng;
  int sc[16], mn[16], q[256];
  for (int k = 0; k < 16; ++k) sc[k] = rng(0, 15), mn[k] = rng(0, 15);
  for (int& v : q) v = rng(0, 3);
  std::vector<uint8_t> b(84, 0);
  for (int k = 0; k < 16; ++k) b[k] = static_cast<uint8_t>(sc[k] | (mn[k] << 4));
  for (int e = 0; e < 256; ++e) b[16 + 32 * (e / 128) + e % 32] |= static_cast<uint8_t>(q[e] << (2 * ((e % 128) / 32)));
  put16(b, 80, kHalfHalf);
  put16(b, 82, kHalfQuarter);
  const std::vector<float> y = dequant(GgmlType::Q2_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 16;  // 8h + 2s + l/16 = e/16 for this layout
    EXPECT_EQ(y[e], 0.5f * sc[sub] * q[e] - 0.25f * mn[sub]) << e;
  }
}

TEST(QuantBlocks, Q3_KEveryElement) {
  BlockRng rng;
  int sc[16], q[256];
  for (int& v : sc) v = rng(-32, 31);
  for (int& v : q) v = rng(-4, 3);
  std::vector<uint8_t> b(110, 0);
  for (int j = 0; j < 16; ++j) {
    const int s6 = sc[j] + 32;
    b[96 + (j % 8)] |= static_cast<uint8_t>((s6 & 15) << (j < 8 ? 0 : 4));
    b[96 + 8 + j % 4] |= static_cast<uint8_t>((s6 >> 4) << (2 * (j / 4)));
  }
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, s = (e % 128) / 32, l = e % 32;
    const int u = q[e] + 4;  // 0..7: bit 2 set ⇔ q ≥ 0 (no −4)
    b[32 + 32 * h + l] |= static_cast<uint8_t>((u & 3) << (2 * s));
    if (u & 4) b[l] |= static_cast<uint8_t>(1 << (4 * h + s));
  }
  put16(b, 108, kHalfHalf);
  const std::vector<float> y = dequant(GgmlType::Q3_K, b, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.5f * sc[e / 16] * q[e]) << e;
}

void pack_k4_scales(const int* sc, const int* mn, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
}

TEST(QuantBlocks, Q4_KAndQ5_KEveryElement) {
  BlockRng rng;
  int sc[8], mn[8], q[256];
  for (int k = 0; k < 8; ++k) sc[k] = rng(0, 63), mn[k] = rng(0, 63);
  for (int& v : q) v = rng(0, 31);
  std::vector<uint8_t> b4(144, 0), b5(176, 0);
  put16(b4, 0, kHalfHalf);
  put16(b4, 2, kHalfQuarter);
  put16(b5, 0, kHalfHalf);
  put16(b5, 2, kHalfQuarter);
  pack_k4_scales(sc, mn, b4.data() + 4);
  pack_k4_scales(sc, mn, b5.data() + 4);
  for (int e = 0; e < 256; ++e) {
    const int c = e / 64, hi = (e % 64) / 32, l = e % 32;
    b4[16 + 32 * c + l] |= static_cast<uint8_t>((q[e] & 15) << (4 * hi));
    b5[48 + 32 * c + l] |= static_cast<uint8_t>((q[e] & 15) << (4 * hi));
    if (q[e] & 16) b5[16 + l] |= static_cast<uint8_t>(1 << (2 * c + hi));
  }
  const std::vector<float> y4 = dequant(GgmlType::Q4_K, b4, 256);
  const std::vector<float> y5 = dequant(GgmlType::Q5_K, b5, 256);
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32;
    EXPECT_EQ(y4[e], 0.5f * sc[sub] * (q[e] & 15) - 0.25f * mn[sub]) << e;
    EXPECT_EQ(y5[e], 0.5f * sc[sub] * q[e] - 0.25f * mn[sub]) << e;
  }
}

TEST(QuantBlocks, Q6_KEveryElement) {
  BlockRng rng;
  int sc[16], q[256];
  for (int& v : sc) v = rng(-128, 127);
  for (int& v : q) v = rng(-32, 31);
  std::vector<uint8_t> b(210, 0);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, r = (e % 128) / 32, l = e % 32;
    const int u = q[e] + 32;
    b[64 * h + 32 * (r & 1) + l] |= static_cast<uint8_t>((u & 15) << (r < 2 ? 0 : 4));
    b[128 + 32 * h + l] |= static_cast<uint8_t>((u >> 4) << (2 * r));
  }
  for (int k = 0; k < 16; ++k) b[192 + k] = static_cast<uint8_t>(static_cast<int8_t>(sc[k]));
  put16(b, 208, kHalfHalf);
  const std::vector<float> y = dequant(GgmlType::Q6_K, b, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.5f * sc[e / 16] * q[e]) << e;
}

// --------------------------------------------------------------------------------------------------------
// dot_row and unaligned rows

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                              GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

// Random bytes with every fp16 scale field replaced by a finite value, so values stay finite.
std::vector<uint8_t> random_row(GgmlType t, int64_t n, std::mt19937& g) {
  const size_t nb = row_bytes(t, n);
  std::vector<uint8_t> b(nb);
  for (uint8_t& v : b) v = static_cast<uint8_t>(g());
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  auto half_at = [&](size_t at) { put16(b, at, f32_to_fp16(u(g))); };
  std::vector<size_t> halves;  // offsets of the ggml_half fields in one block
  switch (t) {
    case GgmlType::F32:
      for (size_t i = 0; i < nb; i += 4) { const float f = u(g); std::memcpy(b.data() + i, &f, 4); }
      return b;
    case GgmlType::F16: for (size_t i = 0; i < nb; i += 2) half_at(i); return b;
    case GgmlType::BF16: for (size_t i = 0; i < nb; i += 2) { const uint16_t h = static_cast<uint16_t>(std::bit_cast<uint32_t>(u(g)) >> 16); put16(b, i, h); } return b;
    case GgmlType::Q8_0: case GgmlType::Q4_0: case GgmlType::Q5_0: halves = {0}; break;
    case GgmlType::Q4_1: case GgmlType::Q5_1: case GgmlType::Q4_K: case GgmlType::Q5_K: halves = {0, 2}; break;
    case GgmlType::Q2_K: halves = {80, 82}; break;
    case GgmlType::Q3_K: halves = {108}; break;
    case GgmlType::Q6_K: halves = {208}; break;
    default: ADD_FAILURE() << "random_row knows no scale fields of " << type_name(t); return b;
  }
  for (size_t blk = 0; blk < nb; blk += type_size(t))
    for (size_t h : halves) half_at(blk + h);
  return b;
}

TEST(QuantDot, DotRowEqualsDotOfDequantisedRow) {
  std::mt19937 g(7);
  constexpr int64_t n = 2 * kQK_K;
  std::vector<float> x(n);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (float& v : x) v = u(g);
  for (GgmlType t : kAllTypes) {
    const std::vector<uint8_t> row = random_row(t, n, g);
    const std::vector<float> y = dequant(t, row, n);
    float want = 0.f;  // f32, index order: dot_row's documented order
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_TRUE(std::isfinite(y[i])) << type_name(t);
      want += y[i] * x[i];
    }
    EXPECT_EQ(dot_row(t, row.data(), x.data(), n), want) << type_name(t);
  }
}

TEST(QuantDot, UnalignedRowsGiveTheSameValues) {
  std::mt19937 g(11);
  constexpr int64_t n = kQK_K;
  std::vector<float> x(n, 0.25f);
  for (GgmlType t : kAllTypes) {
    const std::vector<uint8_t> row = random_row(t, n, g);
    const std::vector<float> want = dequant(t, row, n);
    for (size_t shift : {1, 3}) {
      std::vector<uint8_t> buf(row.size() + shift);
      std::memcpy(buf.data() + shift, row.data(), row.size());
      std::vector<float> got(n + 1);
      dequantize_row(t, buf.data() + shift, got.data() + 1, n);  // misaligned output too
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i + 1], want[i]) << type_name(t) << " shift " << shift << " i " << i;
      EXPECT_EQ(dot_row(t, buf.data() + shift, x.data(), n), dot_row(t, row.data(), x.data(), n)) << type_name(t);
    }
  }
}

// --------------------------------------------------------------------------------------------------------
// Quantizers

TEST(QuantQuantize, Q8_0ExactBlock) {
  // amax = 127/16 makes d = 1/16 exactly, so q = 16·x = 8j − 127 with no rounding.
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(8 * j - 127) / 16.f;
  std::vector<uint8_t> b(34);
  quantize_row(GgmlType::Q8_0, x, b.data(), 32);
  uint16_t d;
  std::memcpy(&d, b.data(), 2);
  EXPECT_EQ(d, 0x2C00);  // 0.0625
  for (int j = 0; j < 32; ++j) EXPECT_EQ(static_cast<int8_t>(b[2 + j]), 8 * j - 127) << j;
  const std::vector<float> y = dequant(GgmlType::Q8_0, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], x[j]);
}

TEST(QuantQuantize, Q8_KActivationBlock) {
  // block_q8_K: f32 d, int8 qs[256], int16 bsums[16]. The largest magnitude is x[7] = −127/4, so
  // iscale = −127/max = 4, q = nearest_int(4·x) (ties to even), d = 1/iscale = 0.25.
  float x[256];
  for (int j = 0; j < 256; ++j) x[j] = static_cast<float>(j % 61 - 30) / 8.f;  // 4x = (j%61 − 30)/2: ties
  x[7] = -127.f / 4.f;
  x[200] = 127.f / 4.f;  // the same magnitude later: the first one sets the sign
  std::vector<uint8_t> b(q8_K_row_bytes(256));
  ASSERT_EQ(b.size(), 292u);
  quantize_row_q8_K(x, b.data(), 256);
  float d;
  std::memcpy(&d, b.data(), 4);
  EXPECT_EQ(d, 0.25f);
  int sums[16] = {};
  for (int j = 0; j < 256; ++j) {
    const int8_t q = static_cast<int8_t>(b[4 + j]);
    EXPECT_EQ(q, static_cast<int>(std::nearbyint(4.f * x[j]))) << j;
    sums[j / 16] += q;
  }
  EXPECT_EQ(static_cast<int8_t>(b[4 + 1]), -14);  // 4·(−29/8) = −14.5 → −14 (even)
  EXPECT_EQ(static_cast<int8_t>(b[4 + 7]), -127);
  for (int g = 0; g < 16; ++g) {
    int16_t s;
    std::memcpy(&s, b.data() + 260 + 2 * g, 2);
    EXPECT_EQ(s, sums[g]) << g;
  }
  std::vector<float> y(256);
  dequantize_row_q8_K(b.data(), y.data(), 256);
  EXPECT_EQ(y[7], x[7]);
  EXPECT_EQ(y[1], -3.5f);
  // All zeros: d = 0, qs = 0, sums = 0.
  std::fill(x, x + 256, 0.f);
  std::fill(b.begin(), b.end(), uint8_t{0xAB});
  quantize_row_q8_K(x, b.data(), 256);
  EXPECT_EQ(b, std::vector<uint8_t>(292, 0));
  EXPECT_THROW(q8_K_row_bytes(255), Error);
}

TEST(QuantQuantize, Q4_0ExactBlock) {
  // The largest magnitude is −8, so d = −8/−8 = 1 and q = trunc(x + 8.5) = x + 8.
  float x[32];
  for (int j = 0; j < 16; ++j) {
    x[j] = static_cast<float>(j - 8);
    x[j + 16] = static_cast<float>(7 - j);
  }
  std::vector<uint8_t> b(18);
  quantize_row(GgmlType::Q4_0, x, b.data(), 32);
  uint16_t d;
  std::memcpy(&d, b.data(), 2);
  EXPECT_EQ(d, kHalfOne);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b[2 + j], static_cast<uint8_t>(j | ((15 - j) << 4))) << j;
  const std::vector<float> y = dequant(GgmlType::Q4_0, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], x[j]);
}

TEST(QuantQuantize, Q4_0PositiveMaximumMapsToMinusEight) {
  // Largest magnitude +4: d = 4/−8 = −0.5, and 4 becomes q = 0 → (0 − 8)·(−0.5) = 4 exactly.
  float x[32] = {};
  x[3] = 4.f;
  x[7] = -3.f;
  std::vector<uint8_t> b(18);
  quantize_row(GgmlType::Q4_0, x, b.data(), 32);
  uint16_t d;
  std::memcpy(&d, b.data(), 2);
  EXPECT_EQ(fp16_to_f32(d), -0.5f);
  EXPECT_EQ(b[2 + 3] & 15, 0);
  const std::vector<float> y = dequant(GgmlType::Q4_0, b, 32);
  EXPECT_EQ(y[3], 4.f);
  EXPECT_EQ(y[7], -3.f);  // q = trunc(6 + 8.5) = 14 → (14 − 8)·(−0.5)
  EXPECT_EQ(y[0], 0.f);
}

struct ErrStats {
  double max_abs = 0, rmse = 0, rms = 0;
};

ErrStats round_trip(GgmlType t, const std::vector<float>& x, std::vector<float>* out = nullptr) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(row_bytes(t, n));
  quantize_row(t, x.data(), q.data(), n);
  const std::vector<float> y = dequant(t, q, n);
  ErrStats s;
  for (int64_t i = 0; i < n; ++i) {
    const double e = std::abs(static_cast<double>(x[i]) - y[i]);
    s.max_abs = std::max(s.max_abs, e);
    s.rmse += e * e;
    s.rms += static_cast<double>(x[i]) * x[i];
  }
  s.rmse = std::sqrt(s.rmse / n);
  s.rms = std::sqrt(s.rms / n);
  if (out) *out = y;
  return s;
}

std::vector<float> gaussian(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = nd(g);
  return x;
}

TEST(QuantQuantize, BlockOf32ErrorBounds) {
  const std::vector<float> x = gaussian(64 * 32, 3);
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    std::vector<float> y;
    round_trip(t, x, &y);
    for (size_t blk = 0; blk < x.size(); blk += 32) {
      float amax = 0;
      for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::abs(x[blk + j]));
      // Q8_0: |x − q·d| ≤ d/2 plus 127 ulps of the fp16 d (2^-11 relative); d = amax/127.
      // Q4_0: d = amax/8 and the value opposite the maximum clips from q = 16 to 15: error ≤ d (+ fp16 d).
      const double bound = t == GgmlType::Q8_0 ? (0.5 + 127.0 / 2048) * amax / 127 : (1.0 + 8.0 / 2048) * amax / 8;
      for (size_t j = 0; j < 32; ++j)
        ASSERT_LE(std::abs(static_cast<double>(x[blk + j]) - y[blk + j]), bound) << type_name(t) << " at " << blk + j;
    }
  }
}

TEST(QuantQuantize, KQuantErrorBounds) {
  // Relative RMS error on N(0, 1) data, about step/sqrt(12) of each format (measured: Q8_0 0.0053,
  // Q6_K 0.0176, Q4_K 0.071); the bounds leave ~25% margin, so a broken scale search fails them.
  const std::vector<float> x = gaussian(64 * kQK_K, 5);
  const ErrStats q4 = round_trip(GgmlType::Q4_K, x);
  const ErrStats q6 = round_trip(GgmlType::Q6_K, x);
  const ErrStats q8 = round_trip(GgmlType::Q8_0, x);
  std::printf("relative rmse: Q8_0 %.5f  Q6_K %.5f  Q4_K %.5f\n", q8.rmse / q8.rms, q6.rmse / q6.rms, q4.rmse / q4.rms);
  EXPECT_LT(q8.rmse / q8.rms, 0.01);
  EXPECT_LT(q6.rmse / q6.rms, 0.022);
  EXPECT_LT(q4.rmse / q4.rms, 0.09);
  // Worst single element, in units of the data's rms.
  EXPECT_LT(q6.max_abs / q6.rms, 0.1);
  EXPECT_LT(q4.max_abs / q4.rms, 0.5);
}

// Digests of the bytes that ggml's quantize_row_*_ref produces for a fixed input (computed once with a
// transcription of ggml-quants.c, which matched quantize_row byte for byte on 64K random values per
// type). Any drift from ggml's rounding changes them. The input uses a plain LCG so it is the same with
// every standard library.
TEST(QuantQuantize, MatchesGgmlReferenceBytes) {
  constexpr int kN = 256 * 8;
  std::vector<float> x(kN);
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < kN; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float u = static_cast<float>(s >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    const float block_scale = static_cast<float>((i / 256) % 5 + 1) * 0.37f;
    x[i] = (u * 2.0f - 1.0f) * block_scale * ((i % 61 == 0) ? 6.0f : 1.0f);
  }
  auto fnv1a = [](const std::vector<uint8_t>& b) {
    uint64_t h = 1469598103934665603ull;
    for (uint8_t v : b) h = (h ^ v) * 1099511628211ull;
    return h;
  };
  const struct { GgmlType t; uint64_t digest; } want[] = {
      {GgmlType::Q8_0, 0x33af0eea67bdaa24ull},
      {GgmlType::Q4_0, 0xba993581170e8950ull},
      {GgmlType::Q4_K, 0x40962c82a4796729ull},
      {GgmlType::Q6_K, 0xc7f5e012007855fdull},
  };
  for (const auto& w : want) {
    std::vector<uint8_t> b(row_bytes(w.t, kN));
    quantize_row(w.t, x.data(), b.data(), kN);
    EXPECT_EQ(fnv1a(b), w.digest) << type_name(w.t) << ": quantize_row no longer matches ggml's reference bytes";
  }
}

TEST(QuantQuantize, SpecialBlocks) {
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
    const int64_t n = kQK_K;
    // All zeros (and values below ggml's GROUP_MAX_EPS) come back as zeros.
    for (float v : {0.f, 1e-20f}) {
      std::vector<float> y;
      round_trip(t, std::vector<float>(n, v), &y);
      for (float f : y) ASSERT_LE(std::abs(f), 1e-19f) << type_name(t);
    }
    // A constant block and a ramp come back close.
    std::vector<float> ramp(n);
    for (int64_t i = 0; i < n; ++i) ramp[i] = static_cast<float>(i % 32) - 10.f;
    EXPECT_LT(round_trip(t, ramp).max_abs, 1.5) << type_name(t);
    EXPECT_LT(round_trip(t, std::vector<float>(n, 3.f)).max_abs, 0.05) << type_name(t);
    // Non-finite input must not be undefined behaviour (the sanitizer build checks); values are garbage.
    std::vector<float> bad(n, 1.f);
    bad[5] = NAN;
    bad[40] = INFINITY;
    bad[41] = -INFINITY;
    std::vector<uint8_t> q(row_bytes(t, n));
    quantize_row(t, bad.data(), q.data(), n);
  }
}

TEST(QuantQuantize, FloatTypesAndErrors) {
  const float x[4] = {1.f, -0.333333343f, 65504.f, 1e-8f};
  std::vector<uint8_t> b(16);
  quantize_row(GgmlType::F16, x, b.data(), 4);
  EXPECT_EQ(dequant(GgmlType::F16, b, 4), (std::vector<float>{1.f, fp16_to_f32(0xB555), 65504.f, fp16_to_f32(f32_to_fp16(1e-8f))}));
  quantize_row(GgmlType::F32, x, b.data(), 4);
  EXPECT_EQ(dequant(GgmlType::F32, b, 4), (std::vector<float>(x, x + 4)));
  quantize_row(GgmlType::BF16, x, b.data(), 4);
  EXPECT_EQ(dequant(GgmlType::BF16, b, 2)[0], 1.f);

  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K,
                     GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::TQ1_0, GgmlType::TQ2_0})
    EXPECT_TRUE(has_quantizer(t)) << type_name(t);
  EXPECT_TRUE(has_quantizer(GgmlType::IQ4_XS));
  std::vector<uint8_t> q(400);
  std::vector<float> y(256);
  // ggml refuses the 2-bit codebooks without an importance matrix; so does groak, naming the way out.
  try {
    quantize_row(GgmlType::IQ2_XXS, y.data(), q.data(), 256);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("importance matrix"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quantize_row(GgmlType::Q8_0, y.data(), q.data(), 40), Error);
}

}  // namespace
}  // namespace groak
