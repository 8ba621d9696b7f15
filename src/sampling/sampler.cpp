#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "util/error.h"

namespace groak {

namespace {

struct Candidate {
  int32_t id;
  float z;  // logit after penalty and temperature
};

// Most probable first; equal logits → lower id first, so every cut is deterministic.
bool before(const Candidate& a, const Candidate& b) {
  return a.z > b.z || (a.z == b.z && a.id < b.id);
}

// Largest logit, ties → lowest id; NaNs are skipped (id 0 if every logit is NaN).
int32_t argmax(const std::vector<float>& z) {
  int32_t best = -1;
  for (int32_t i = 0; i < static_cast<int32_t>(z.size()); ++i) {
    if (std::isnan(z[static_cast<size_t>(i)])) continue;
    if (best < 0 || z[static_cast<size_t>(i)] > z[static_cast<size_t>(best)]) best = i;
  }
  return best < 0 ? 0 : best;
}

void apply_repeat_penalty(std::vector<float>& z, const SamplingParams& p,
                          const std::vector<int32_t>& history) {
  if (p.repeat_penalty == 1.0f || p.repeat_last_n == 0 || history.empty()) return;
  const size_t n = p.repeat_last_n < 0 ? history.size()
                                       : std::min(history.size(), static_cast<size_t>(p.repeat_last_n));
  // Each distinct token is penalised once, however often it repeats (llama.cpp).
  std::vector<int32_t> recent(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
  std::sort(recent.begin(), recent.end());
  recent.erase(std::unique(recent.begin(), recent.end()), recent.end());
  for (int32_t id : recent) {
    if (id < 0 || static_cast<size_t>(id) >= z.size()) continue;
    float& v = z[static_cast<size_t>(id)];
    v = v > 0 ? v / p.repeat_penalty : v * p.repeat_penalty;
  }
}

// Runs every filter; returns the surviving tokens (most probable first) with their probabilities.
void filter(const float* logits, int vocab, const SamplingParams& p, const std::vector<int32_t>& history,
            std::vector<Candidate>& kept, std::vector<double>& prob) {
  std::vector<float> z(logits, logits + vocab);  // [vocab]
  apply_repeat_penalty(z, p, history);

  kept.clear();
  prob.clear();
  if (p.temperature == 0.0f) {
    kept.push_back({argmax(z), 0.0f});
    prob.push_back(1.0);
    return;
  }

  // Temperature divides in f32, as the runner divides in the logits' dtype.
  bool overflow = false;  // a tiny temperature (say 1e-40) sends logits to +inf; softmax would give NaN
  for (int32_t i = 0; i < vocab; ++i) {
    const float v = z[static_cast<size_t>(i)] / p.temperature;
    overflow = overflow || v == INFINITY;
    if (!std::isnan(v) && v != -INFINITY) kept.push_back({i, v});
  }
  // Nothing finite to sample from, or a temperature so small that the distribution is the argmax (its
  // limit as the temperature goes to 0): greedy.
  if (kept.empty() || overflow) {
    kept.clear();
    kept.push_back({argmax(z), 0.0f});
    prob.push_back(1.0);
    return;
  }

  // Top-k (ties at the cut → lower ids).
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < kept.size()) {
    std::nth_element(kept.begin(), kept.begin() + p.top_k, kept.end(), before);
    kept.resize(static_cast<size_t>(p.top_k));
  }
  std::sort(kept.begin(), kept.end(), before);

  // Softmax weights relative to the largest logit, in f64 so long tails still add up.
  auto weights = [&](std::vector<double>& w) {
    w.resize(kept.size());
    const double zmax = kept.front().z;
    for (size_t i = 0; i < kept.size(); ++i) w[i] = std::exp(static_cast<double>(kept[i].z) - zmax);
  };
  std::vector<double> w;

  // Top-p, official semantics (§5): walk the logits in ascending order accumulating softmax mass;
  // the first logit where the mass reaches 1 − top_p is the threshold, and every logit ≥ it stays
  // (ties kept). top_p = 1 keeps all. If rounding leaves the mass short of 1 − top_p (top_p ≈ 0) the
  // runner's argmax would fall back to keeping everything; we keep only the maximum, the intent.
  if (p.top_p < 1.0f) {
    weights(w);
    double total = 0;
    for (double x : w) total += x;
    const double target = 1.0 - static_cast<double>(p.top_p);
    float threshold = kept.front().z;
    double cumulative = 0;
    for (size_t j = kept.size(); j-- > 0;) {
      cumulative += w[j] / total;
      if (cumulative >= target) {
        threshold = kept[j].z;
        break;
      }
    }
    size_t n = 0;
    while (n < kept.size() && kept[n].z >= threshold) ++n;
    kept.resize(n);
  }

  // Min-p: p_i / p_max = exp(z_i − z_max) ≥ min_p.
  if (p.min_p > 0.0f) {
    weights(w);
    size_t n = 0;
    while (n < kept.size() && w[n] >= static_cast<double>(p.min_p)) ++n;
    kept.resize(std::max<size_t>(n, 1));
  }

  weights(prob);
  double total = 0;
  for (double x : prob) total += x;
  for (double& x : prob) x /= total;
}

}  // namespace

void validate(const SamplingParams& p) {
  auto fail = [](const std::string& what) {
    throw Error("sampling: " + what);
  };
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    fail("temperature " + std::to_string(p.temperature) + " must be finite and >= 0 (0 = greedy)");
  if (p.top_k < 0) fail("top_k " + std::to_string(p.top_k) + " must be >= 0 (0 = off)");
  if (!(p.top_p >= 0.0f && p.top_p <= 1.0f))
    fail("top_p " + std::to_string(p.top_p) + " must be in [0, 1] (1 = off)");
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
    fail("min_p " + std::to_string(p.min_p) + " must be in [0, 1] (0 = off)");
  if (!(p.repeat_penalty > 0.0f) || !std::isfinite(p.repeat_penalty))
    fail("repeat_penalty " + std::to_string(p.repeat_penalty) + " must be finite and > 0 (1 = off)");
  if (p.repeat_last_n < -1)
    fail("repeat_last_n " + std::to_string(p.repeat_last_n) + " must be >= -1 (-1 = whole history)");
}

std::vector<float> sampling_distribution(const float* logits, int vocab, const SamplingParams& params,
                                         const std::vector<int32_t>& history) {
  validate(params);
  if (vocab <= 0) throw Error("sampling: vocab " + std::to_string(vocab) + " must be > 0");
  std::vector<Candidate> kept;
  std::vector<double> prob;
  filter(logits, vocab, params, history, kept, prob);
  std::vector<float> out(static_cast<size_t>(vocab), 0.0f);
  for (size_t i = 0; i < kept.size(); ++i) out[static_cast<size_t>(kept[i].id)] = static_cast<float>(prob[i]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rng: reference algorithms from https://prng.di.unimi.it/ (public domain).

uint64_t Rng::splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed) {
  // splitmix64 spreads any seed (even 0) into a state that is not all zeros.
  for (uint64_t& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() {
  constexpr double kTwoToMinus53 = 1.0 / 9007199254740992.0;
  return static_cast<double>(next() >> 11) * kTwoToMinus53;
}

// ---------------------------------------------------------------------------------------------
// Sampler

Sampler::Sampler(SamplingParams params, int vocab) : params_(params), vocab_(vocab), rng_(params.seed) {
  validate(params_);
  if (vocab_ <= 0) throw Error("sampling: vocab " + std::to_string(vocab_) + " must be > 0");
}

int32_t Sampler::sample(const float* logits, const std::vector<int32_t>& history) {
  std::vector<Candidate> kept;
  std::vector<double> prob;
  filter(logits, vocab_, params_, history, kept, prob);
  if (kept.size() == 1) return kept.front().id;  // greedy or a single survivor: no draw needed
  // Inverse CDF over the survivors, most probable first.
  const double u = rng_.uniform();
  double cumulative = 0;
  for (size_t i = 0; i < kept.size(); ++i) {
    cumulative += prob[i];
    if (u < cumulative) return kept[i].id;
  }
  return kept.back().id;  // u landed in the rounding gap just below 1
}

}  // namespace groak
