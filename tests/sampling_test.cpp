// Sampling tests: every filter against distributions worked out by hand on 4–5 logits (the
// expected values are written as e^z / Σ e^z below, never computed by the code under test).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "sampling/sampler.h"
#include "util/error.h"

using groak::SamplingParams;

namespace {

constexpr double kTol = 1e-6;  // f32 probabilities of hand-derived f64 values

// Every filter off, temperature 1: the plain softmax.
SamplingParams plain() {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.0f;
  return p;
}

std::vector<float> dist(const std::vector<float>& logits, const SamplingParams& p,
                        const std::vector<int32_t>& history = {}) {
  return groak::sampling_distribution(logits.data(), static_cast<int>(logits.size()), p, history);
}

// softmax of `z` restricted to the ids in `keep` (others 0), written out.
std::vector<double> softmax_over(const std::vector<double>& z, const std::vector<int>& keep) {
  std::vector<double> out(z.size(), 0.0);
  double sum = 0;
  for (int i : keep) sum += std::exp(z[static_cast<size_t>(i)]);
  for (int i : keep) out[static_cast<size_t>(i)] = std::exp(z[static_cast<size_t>(i)]) / sum;
  return out;
}

void expect_dist(const std::vector<float>& got, const std::vector<double>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], kTol) << what << ": token " << i << " (worst difference " << worst << ")";
}

const std::vector<float> kRamp = {0, 1, 2, 3, 4};  // softmax ≈ .0117 .0317 .0861 .2341 .6364

}  // namespace

TEST(Sampling, NoFiltersIsSoftmax) {
  const double e = std::exp(1.0), s = 1 + e + e * e + e * e * e + e * e * e * e;
  expect_dist(dist(kRamp, plain()), {1 / s, e / s, e * e / s, e * e * e / s, e * e * e * e / s}, "softmax");
}

TEST(Sampling, Temperature) {
  SamplingParams p = plain();
  p.temperature = 2.0f;  // z / 2 = 0, .5, 1, 1.5, 2
  expect_dist(dist(kRamp, p), softmax_over({0, 0.5, 1, 1.5, 2}, {0, 1, 2, 3, 4}), "temperature 2");
  p.temperature = 0.5f;  // z / 0.5 = 0, 2, 4, 6, 8
  expect_dist(dist(kRamp, p), softmax_over({0, 2, 4, 6, 8}, {0, 1, 2, 3, 4}), "temperature 0.5");
}

// A temperature so small that z / T overflows f32 (1e-40 is even subnormal) is the argmax, the limit as T
// goes to 0, never NaN probabilities that make the sampler pick the least likely token (issue 9).
TEST(Sampling, TinyTemperatureIsGreedyNotNaN) {
  SamplingParams p = plain();
  for (float t : {1e-40f, 1e-30f}) {
    p.temperature = t;
    const std::vector<float> d = dist({1, 5, 3, -2}, p);
    expect_dist(d, {0, 1, 0, 0}, "tiny temperature");
    for (float x : d) EXPECT_FALSE(std::isnan(x));
    groak::Sampler s(p, 4);
    const std::vector<float> logits = {-1, 3, 2, 0.5f};
    for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sample(logits.data(), {}), 1) << t;
  }
}

TEST(Sampling, GreedyIsArgmaxLowestIdOnTies) {
  SamplingParams p = plain();
  p.temperature = 0.0f;
  const std::vector<float> logits = {1, 5, 5, 2};
  expect_dist(dist(logits, p), {0, 1, 0, 0}, "greedy");
  groak::Sampler s(p, 4);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sample(logits.data(), {}), 1);
}

TEST(Sampling, TopK) {
  SamplingParams p = plain();
  p.top_k = 2;  // keeps logits 3 (id 3) and 2 (id 1)
  const std::vector<float> logits = {0.5f, 2, -1, 3, 1};
  const double e = std::exp(1.0);
  expect_dist(dist(logits, p), {0, 1 / (1 + e), 0, e / (1 + e), 0}, "top_k 2");
  // A tie at the cut keeps the lower id.
  p.top_k = 2;
  expect_dist(dist({1, 2, 2, 2}, p), {0, 0.5, 0.5, 0}, "top_k tie");
  p.top_k = 10;  // larger than the vocab: no-op
  expect_dist(dist(kRamp, p), softmax_over({0, 1, 2, 3, 4}, {0, 1, 2, 3, 4}), "top_k > vocab");
}

// Spec §5: ascending cumulative softmax of kRamp is .0117, .0433, .1295, .3636, 1; the threshold is
// the first logit whose cumulative mass reaches 1 − top_p.
TEST(Sampling, TopPOfficialNucleus) {
  const std::vector<double> z = {0, 1, 2, 3, 4};
  SamplingParams p = plain();
  p.top_p = 0.8f;  // 1 − p = .2 → threshold logit 3
  expect_dist(dist(kRamp, p), softmax_over(z, {3, 4}), "top_p .8");
  p.top_p = 0.87f;  // .13 > .1295 → still 3; the kept mass .8705 is above .87
  expect_dist(dist(kRamp, p), softmax_over(z, {3, 4}), "top_p .87");
  p.top_p = 0.875f;  // .125 ≤ .1295 → threshold 2
  expect_dist(dist(kRamp, p), softmax_over(z, {2, 3, 4}), "top_p .875");
}

TEST(Sampling, TopPEdgeCases) {
  SamplingParams p = plain();
  // top_p = 1 keeps everything, even a token with negligible mass.
  expect_dist(dist({0, -30, 1}, p), softmax_over({0, -30, 1}, {0, 1, 2}), "top_p 1");
  // Ties at the threshold are kept. Logits 1,3,3,0,2: ascending cumulative mass .0195, .0725,
  // .2166, .6083 (first 3), 1 (second 3).
  const std::vector<float> tied = {1, 3, 3, 0, 2};
  const std::vector<double> zt = {1, 3, 3, 0, 2};
  for (float top_p : {0.3f, 0.5f, 0.75f}) {  // threshold on the first or the second 3
    p.top_p = top_p;
    expect_dist(dist(tied, p), softmax_over(zt, {1, 2}), "ties at the threshold");
  }
  p.top_p = 0.8f;  // .2 ≤ .2166 → threshold 2
  expect_dist(dist(tied, p), softmax_over(zt, {1, 2, 4}), "top_p .8 with ties");
  // A tiny top_p (and 0) keeps only the maximum.
  for (float top_p : {1e-6f, 0.0f}) {
    p.top_p = top_p;
    expect_dist(dist(kRamp, p), {0, 0, 0, 0, 1}, "tiny top_p");
  }
}

TEST(Sampling, TopPRenormalisesAfterTopK) {
  SamplingParams p = plain();
  p.top_k = 3;    // {2,3,4}: probabilities .0900 .2447 .6652
  p.top_p = 0.9f; // .1: .0900 < .1 ≤ .3347 → threshold 3. Over all 5 it would have been 2.
  expect_dist(dist(kRamp, p), softmax_over({0, 1, 2, 3, 4}, {3, 4}), "top_k then top_p");
}

TEST(Sampling, MinP) {
  SamplingParams p = plain();
  const std::vector<double> z = {0, 1, 2, 3, 4};
  p.min_p = 0.1f;  // keep e^(z−4) ≥ .1 ⇔ z ≥ 4 − 2.303
  expect_dist(dist(kRamp, p), softmax_over(z, {2, 3, 4}), "min_p .1");
  p.min_p = 0.2f;  // z ≥ 4 − 1.609
  expect_dist(dist(kRamp, p), softmax_over(z, {3, 4}), "min_p .2");
  p.min_p = 1.0f;  // only the maximum (and anything tied with it)
  expect_dist(dist({0, 2, 2}, p), {0, 0.5, 0.5}, "min_p 1");
}

TEST(Sampling, RepetitionPenalty) {
  SamplingParams p = plain();
  p.repeat_penalty = 2.0f;
  const std::vector<float> logits = {2, -1, 0.5f, 3, -2};
  const std::vector<int32_t> history = {0, 1, 1};
  // Token 0 (positive) is divided, token 1 (negative) multiplied, each once.
  expect_dist(dist(logits, p, history), softmax_over({1, -2, 0.5, 3, -2}, {0, 1, 2, 3, 4}), "penalty");
  p.repeat_last_n = 1;  // only the last token (1) counts
  expect_dist(dist(logits, p, history), softmax_over({2, -2, 0.5, 3, -2}, {0, 1, 2, 3, 4}), "last_n 1");
  p.repeat_last_n = 0;
  expect_dist(dist(logits, p, history), softmax_over({2, -1, 0.5, 3, -2}, {0, 1, 2, 3, 4}), "last_n 0");
  p.repeat_last_n = -1;  // whole history; ids outside the vocab are ignored
  expect_dist(dist(logits, p, {0, 99, -5}), softmax_over({1, -1, 0.5, 3, -2}, {0, 1, 2, 3, 4}), "last_n -1");
  // Penalty comes before temperature: (2/2, −1·2, …) / 0.5.
  p.repeat_last_n = 64;
  p.temperature = 0.5f;
  expect_dist(dist(logits, p, history), softmax_over({2, -4, 1, 6, -4}, {0, 1, 2, 3, 4}), "penalty, then T");
  // ...and before greedy: 3 / 1.1 < 2.9.
  SamplingParams g = plain();
  g.temperature = 0.0f;
  g.repeat_penalty = 1.1f;
  expect_dist(dist({3, 2.9f}, g, {0}), {0, 1}, "penalised greedy");
}

TEST(Sampling, NonFiniteLogits) {
  const float inf = std::numeric_limits<float>::infinity();
  SamplingParams p = plain();
  expect_dist(dist({-inf, 0, -inf, 0}, p), {0, 0.5, 0, 0.5}, "-inf removed");
  expect_dist(dist({-inf, -inf}, p), {1, 0}, "all -inf falls back to greedy");
}

TEST(Sampling, InvalidParamsThrow) {
  const auto bad = [](auto edit) {
    SamplingParams p;
    edit(p);
    return p;
  };
  const std::vector<SamplingParams> cases = {
      bad([](SamplingParams& p) { p.temperature = -1; }),
      bad([](SamplingParams& p) { p.temperature = std::nanf(""); }),
      bad([](SamplingParams& p) { p.top_k = -1; }),
      bad([](SamplingParams& p) { p.top_p = 1.5f; }),
      bad([](SamplingParams& p) { p.min_p = -0.1f; }),
      bad([](SamplingParams& p) { p.repeat_penalty = 0; }),
      bad([](SamplingParams& p) { p.repeat_last_n = -2; }),
  };
  for (const SamplingParams& p : cases) {
    EXPECT_THROW(groak::Sampler(p, 5), groak::Error);
    EXPECT_THROW(dist(kRamp, p), groak::Error);
  }
  EXPECT_THROW(groak::Sampler(SamplingParams{}, 0), groak::Error);
}

// splitmix64's first output from state 0 is the published 0xe220a8397b1dcdaf; the xoshiro256**
// values come from an independent Python port of the reference C code.
TEST(Sampling, RngKnownAnswers) {
  uint64_t state = 0;
  EXPECT_EQ(groak::Rng::splitmix64(state), 0xe220a8397b1dcdafULL);
  groak::Rng rng(42);
  EXPECT_EQ(rng.next(), 0x15780b2e0c2ec716ULL);
  EXPECT_EQ(rng.next(), 0x6104d9866d113a7eULL);
  EXPECT_EQ(rng.next(), 0xae17533239e499a1ULL);
  for (int i = 0; i < 1000; ++i) {
    const double u = rng.uniform();
    ASSERT_TRUE(u >= 0.0 && u < 1.0);
  }
}

TEST(Sampling, SameSeedSameDraws) {
  SamplingParams p = plain();
  p.seed = 7;
  groak::Sampler a(p, 5), b(p, 5);
  p.seed = 8;
  groak::Sampler c(p, 5);
  std::vector<int32_t> da, db, dc;
  for (int i = 0; i < 200; ++i) {
    da.push_back(a.sample(kRamp.data(), da));
    db.push_back(b.sample(kRamp.data(), db));
    dc.push_back(c.sample(kRamp.data(), dc));
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
}

TEST(Sampling, EmpiricalFrequenciesMatch) {
  constexpr int kDraws = 20000;
  constexpr double kFreqTol = 0.015;  // > 4 standard deviations for every p at 20k draws
  for (int top_k : {0, 2}) {
    SamplingParams p = plain();
    p.top_k = top_k;
    const std::vector<float> want = dist(kRamp, p);
    groak::Sampler s(p, 5);
    std::vector<int> count(5, 0);
    for (int i = 0; i < kDraws; ++i) ++count[static_cast<size_t>(s.sample(kRamp.data(), {}))];
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_NEAR(count[i] / double(kDraws), want[i], kFreqTol) << "token " << i << ", top_k " << top_k;
      if (want[i] == 0) {
        EXPECT_EQ(count[i], 0) << "a filtered token was drawn";
      }
    }
  }
}

// The defaults on a Grok-sized vocabulary: runs, and draws only from the kept tokens.
TEST(Sampling, DefaultsOnFullVocab) {
  constexpr int kVocab = 131072;
  std::vector<float> logits(kVocab);
  for (int i = 0; i < kVocab; ++i) logits[static_cast<size_t>(i)] = std::sin(0.37f * i) * 8;
  const std::vector<float> d = dist(logits, SamplingParams{});
  int kept = 0;
  for (float x : d) kept += x > 0;
  EXPECT_GE(kept, 1);
  EXPECT_LE(kept, SamplingParams{}.top_k);
  groak::Sampler s(SamplingParams{}, kVocab);
  for (int i = 0; i < 20; ++i) EXPECT_GT(d[static_cast<size_t>(s.sample(logits.data(), {}))], 0.0f);
}
