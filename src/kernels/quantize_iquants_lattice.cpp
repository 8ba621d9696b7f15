// The search tables of the i-quant quantizers: each codebook's points as odd integers, the key → grid index
// map and the neighbour lists of off-grid keys, as ggml's iq2xs_init_impl / iq3xs_init_impl build them
// (ggml-quants.c, c392e5094). ggml builds them from its kgrid_* tables of levels; the grids groak already
// has (quant_iquants_grids.h) are those levels mapped to dequantisation values, so the levels are read back
// from them. Built once per process under std::call_once; read-only afterwards, so any number of threads
// may quantize at once.
#include <algorithm>
#include <array>
#include <cfloat>
#include <mutex>
#include <vector>

#include "kernels/quant_iquants_grids.h"
#include "kernels/quantize_iquants.h"
#include "util/error.h"

namespace groak::quant {

namespace {

struct LatticeSpec {
  int dims;      // elements per point
  int bits;      // bits per level in a key
  int size;      // points
  int nwant;     // distinct distances kept in a neighbour list
  int max_level; // the largest level a quantizer can ask for (keys with larger levels are never looked up)
};

LatticeSpec spec_of(Lattice which) {
  switch (which) {
    case Lattice::IQ2_XXS: return {8, 2, 256, 2, 2};
    case Lattice::IQ2_XS: return {8, 2, 512, 2, 2};
    case Lattice::IQ2_S: return {8, 2, 1024, 1, 2};
    case Lattice::IQ1: return {8, 2, 2048, 3, 2};
    case Lattice::IQ3_XXS: return {4, 3, 256, 2, 7};
    case Lattice::IQ3_S: return {4, 3, 512, 3, 7};
  }
  return {};
}

// The level (0 …) of element j of point i, read from groak's dequantisation grids.
int level_of(Lattice which, int i, int j) {
  auto byte = [](uint64_t entry, int k) { return static_cast<uint8_t>(entry >> (8 * k)); };
  // IQ2 grids hold the magnitudes 0x08, 0x19, 0x2b for levels 0, 1, 2.
  auto iq2_level = [](uint8_t v) { return v == 0x08 ? 0 : v == 0x19 ? 1 : v == 0x2b ? 2 : -1; };
  switch (which) {
    case Lattice::IQ2_XXS: return iq2_level(byte(iq2xxs_grid[i], j));
    case Lattice::IQ2_XS: return iq2_level(byte(iq2xs_grid[i], j));
    case Lattice::IQ2_S: return iq2_level(byte(iq2s_grid[i], j));
    case Lattice::IQ1: return static_cast<int8_t>(byte(iq1s_grid[i], j)) + 1;  // −1, 0, 1
    case Lattice::IQ3_XXS: {
      // iq3xxs_grid: 4, 12, …, 52 for levels 0 … 6 (8l + 4), and 62 for level 7.
      const int v = byte(iq3xxs_grid[i], j);
      return v == 62 ? 7 : (v - 4) % 8 == 0 && v <= 52 ? (v - 4) / 8 : -1;
    }
    case Lattice::IQ3_S: {
      const int v = byte(iq3s_grid[i], j);  // odd values 1 … 15: level (v − 1)/2
      return v % 2 == 1 && v <= 15 ? (v - 1) / 2 : -1;
    }
  }
  return -1;
}

// One codebook's storage; LatticeCodebook views it.
struct LatticeTables {
  std::vector<int8_t> points;
  std::vector<float> points_f;
  std::vector<int32_t> map;
  std::vector<uint32_t> offset;
  std::vector<uint16_t> neighbours;
};

void build(Lattice which, LatticeTables& t) {
  const LatticeSpec s = spec_of(which);
  t.points.resize(static_cast<size_t>(s.size) * s.dims);
  const uint32_t n_keys = 1u << (s.bits * s.dims);
  t.map.assign(n_keys, -1);
  t.offset.assign(n_keys, 0);
  for (int i = 0; i < s.size; ++i) {
    uint32_t key = 0;
    for (int j = 0; j < s.dims; ++j) {
      const int l = level_of(which, i, j);
      if (l < 0) throw Error("i-quant grid entry with a value outside its levels (quant_iquants_grids.cpp is damaged)");
      t.points[static_cast<size_t>(i) * s.dims + j] = static_cast<int8_t>(2 * l + 1);
      key |= static_cast<uint32_t>(l) << (s.bits * j);
    }
    t.map[key] = i;
  }
  t.points_f.assign(t.points.begin(), t.points.end());
  // Neighbour lists: every point at the nwant smallest distinct distances, by distance then index (ggml
  // sorts (distance, index) pairs, so the order is total and this gives the same lists).
  std::vector<int> dist(static_cast<size_t>(s.size));
  std::vector<int> levels;  // the nwant smallest distinct distances
  int key_q[8];
  const uint32_t level_mask = (1u << s.bits) - 1;
  t.neighbours.clear();
  for (uint32_t key = 0; key < n_keys; ++key) {
    if (t.map[key] >= 0) continue;
    bool reachable = true;
    for (int j = 0; j < s.dims; ++j) {
      const int l = static_cast<int>((key >> (s.bits * j)) & level_mask);
      reachable = reachable && l <= s.max_level;
      key_q[j] = 2 * l + 1;
    }
    if (!reachable) continue;
    levels.clear();
    for (int i = 0; i < s.size; ++i) {
      const int8_t* p = &t.points[static_cast<size_t>(i) * s.dims];
      int d2 = 0;
      for (int j = 0; j < s.dims; ++j) d2 += (p[j] - key_q[j]) * (p[j] - key_q[j]);
      dist[static_cast<size_t>(i)] = d2;
      // Keep the nwant smallest distinct values, sorted.
      size_t at = 0;
      while (at < levels.size() && levels[at] < d2) ++at;
      if (at < levels.size() && levels[at] == d2) continue;
      if (at >= static_cast<size_t>(s.nwant)) continue;
      levels.insert(levels.begin() + static_cast<ptrdiff_t>(at), d2);
      if (levels.size() > static_cast<size_t>(s.nwant)) levels.pop_back();
    }
    t.offset[key] = static_cast<uint32_t>(t.neighbours.size());
    t.neighbours.push_back(0);  // the count, filled below
    uint16_t count = 0;
    for (int d2 : levels) {
      for (int i = 0; i < s.size; ++i) {
        if (dist[static_cast<size_t>(i)] != d2) continue;
        t.neighbours.push_back(static_cast<uint16_t>(i));
        ++count;
      }
    }
    t.neighbours[t.offset[key]] = count;
  }
}

constexpr int kLattices = 6;

}  // namespace

const LatticeCodebook& lattice(Lattice which) {
  static std::array<std::once_flag, kLattices> once;
  static std::array<LatticeTables, kLattices> tables;
  static std::array<LatticeCodebook, kLattices> books;
  const auto k = static_cast<size_t>(which);
  std::call_once(once[k], [&] {
    build(which, tables[k]);
    const LatticeSpec s = spec_of(which);
    LatticeCodebook& b = books[k];
    b.dims_ = s.dims;
    b.bits_ = s.bits;
    b.size_ = s.size;
    b.points_ = tables[k].points.data();
    b.points_f_ = tables[k].points_f.data();
    b.map_ = tables[k].map.data();
    b.offset_ = tables[k].offset.data();
    b.neighbours_ = tables[k].neighbours.data();
  });
  return books[k];
}

namespace {

// best_neighbour for points of kDims elements (a constant, so the distance loop unrolls; the sum is still
// taken in index order).
template <int kDims>
int best_neighbour_of(const LatticeCodebook& cb, uint32_t key, const float* x, const float* w, float scale, int8_t* l) {
  const std::span<const uint16_t> nb = cb.neighbours(key);
  float best_d2 = FLT_MAX;
  int best = nb[0];  // ggml asserts that some distance is below FLT_MAX; only non-finite input gets here
  for (uint16_t g : nb) {
    const float* p = cb.point_f(g);
    float d2 = 0;
    for (int i = 0; i < kDims; ++i) {
      const float diff = scale * p[i] - x[i];
      d2 += w[i] * diff * diff;
    }
    if (d2 < best_d2) {
      best_d2 = d2;
      best = g;
    }
  }
  const int8_t* p = cb.point(best);
  for (int i = 0; i < kDims; ++i) l[i] = static_cast<int8_t>((p[i] - 1) / 2);
  return best;
}

}  // namespace

int best_neighbour(const LatticeCodebook& cb, uint32_t key, const float* x, const float* w, float scale, int8_t* l) {
  return cb.dims() == 8 ? best_neighbour_of<8>(cb, key, x, w, scale, l) : best_neighbour_of<4>(cb, key, x, w, scale, l);
}

float search_lattice_scale(const LatticeSearch& s, const float* xval, const float* w, const float* waux, float max,
                           int8_t* l, bool* on_grid) {
  const LatticeCodebook& cb = *s.cb;
  const int dims = cb.dims(), groups = s.n / dims;
  const int top = 2 * (s.max_level + 1) - 1;  // 2·kMaxQ − 1: the largest odd level
  int8_t laux[32];
  bool on_grid_aux[8];
  if (s.start != LatticeSearch::OnGridStart::Kept)
    for (int k = 0; k < groups; ++k) on_grid[k] = s.start == LatticeSearch::OnGridStart::AllOnGrid;
  float best = 0;
  float scale = max / static_cast<float>(top);
  for (int is = -s.steps; is <= s.steps; ++is) {
    const float id = (static_cast<float>(top) + static_cast<float>(is) * s.step) / max;
    const float this_scale = 1 / id;
    for (int k = 0; k < groups; ++k) {
      int8_t* lk = laux + dims * k;
      for (int i = 0; i < dims; ++i) lk[i] = odd_level(id, xval[dims * k + i], s.max_level);
      const uint32_t key = cb.key_of(lk);
      on_grid_aux[k] = cb.find(key) >= 0;
      if (!on_grid_aux[k]) best_neighbour(cb, key, xval + dims * k, waux + dims * k, this_scale, lk);
    }
    const LevelFit f = fit_odd_levels(xval, w, laux, s.n);
    if (f.sumq2 > 0 && f.sumqx * f.sumqx > best * f.sumq2) {
      scale = f.sumqx / f.sumq2;
      best = scale * f.sumqx;
      std::copy(laux, laux + s.n, l);
      std::copy(on_grid_aux, on_grid_aux + groups, on_grid);
    }
  }
  bool any_off_grid = false;
  for (int k = 0; k < groups; ++k) any_off_grid = any_off_grid || !on_grid[k];
  if (any_off_grid && scale > 0) {
    const float id = 1 / scale;
    for (int k = 0; k < groups; ++k) {
      if (on_grid[k] && !s.refit_all_groups) continue;
      int8_t* lk = l + dims * k;
      for (int i = 0; i < dims; ++i) lk[i] = odd_level(id, xval[dims * k + i], s.max_level);
      const uint32_t key = cb.key_of(lk);
      if (cb.find(key) < 0) best_neighbour(cb, key, xval + dims * k, waux + dims * k, scale, lk);
    }
    const LevelFit f = fit_odd_levels(xval, w, l, s.n);
    if (f.sumq2 > 0) scale = f.sumqx / f.sumq2;
  }
  return scale;
}

}  // namespace groak::quant
