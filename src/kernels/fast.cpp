// Portable kernels for any CPU: same interface and formulas as the reference (ref.cpp), but dot
// products accumulate in f32 in runs of kChunk inputs (vectorisable), the runs in double. Within ~1e-6
// of the reference (tests/kernels_test.cpp); the element-wise kernels are the reference ones. The
// dispatcher (dispatch.cpp) uses this table where no SIMD table fits the CPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"

namespace groak {

namespace {

constexpr int64_t kChunk = 64;  // inputs summed in f32 before the running sum (double) takes them

// y = x·W for an [in, out] matrix over outputs [o0, o1): stream the rows of W once.
// For int8 the scale is factored out of each input block (spec §7.1):
//   y[o] = Σ_b s[b][o] · Σ_{i in block b} x[i]·q[i][o]
void matmul_inout(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const Matrix& w = *a.w;
  const int64_t n_in = w.n_in, n = o1 - o0, R = a.n_rows;
  std::vector<float> acc(static_cast<size_t>(R * n));            // [R, n] f32 run of ≤ kChunk inputs
  std::vector<double> blk(static_cast<size_t>(R * n));           // [R, n] one scale block
  std::vector<double> sum(static_cast<size_t>(R * n), 0.0);      // [R, n]
  std::vector<float> row(static_cast<size_t>(n));                // one row of W (int8 widened, unscaled)
  const int64_t blocks = w.format == WeightFormat::XaiInt8 ? w.scale_blocks : 1;
  const int64_t block_len = n_in / blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    std::fill(blk.begin(), blk.end(), 0.0);
    for (int64_t i0 = b * block_len; i0 < (b + 1) * block_len; i0 += kChunk) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t i = i0; i < std::min(i0 + kChunk, (b + 1) * block_len); ++i) {
        const uint8_t* src = w.data + static_cast<size_t>(i) * w.stride();
        if (w.format == WeightFormat::F32) {
          for (int64_t o = 0; o < n; ++o) row[o] = load_f32(src + 4 * static_cast<size_t>(o0 + o));
        } else {
          const int8_t* q = reinterpret_cast<const int8_t*>(src) + o0;
          for (int64_t o = 0; o < n; ++o) row[o] = static_cast<float>(q[o]);
        }
        for (int64_t r = 0; r < R; ++r) {
          const float xi = a.x[r * n_in + i];
          float* ar = acc.data() + r * n;
          for (int64_t o = 0; o < n; ++o) ar[o] += xi * row[o];
        }
      }
      for (size_t k = 0; k < acc.size(); ++k) blk[k] += acc[k];
    }
    for (int64_t r = 0; r < R; ++r) {
      const double* ab = blk.data() + r * n;
      double* yr = sum.data() + r * n;
      if (w.format == WeightFormat::F32) {
        for (int64_t o = 0; o < n; ++o) yr[o] += ab[o];
      } else {
        const uint8_t* s = w.scales + 2 * static_cast<size_t>(b * w.scale_row() + o0);
        for (int64_t o = 0; o < n; ++o) yr[o] += static_cast<double>(load_bf16(s + 2 * o)) * ab[o];
      }
    }
  }
  for (int64_t r = 0; r < R; ++r)
    for (int64_t o = 0; o < n; ++o) a.y[r * a.y_stride + o0 + o] = static_cast<float>(sum[r * n + o]);
}

// y = x·W for an [out, in] matrix: one dot product per output unit.
void matmul_outin(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const Matrix& w = *a.w;
  const int64_t n_in = w.n_in;
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t o = o0; o < o1; ++o) {
    reference_kernels().get_row(w, o, row.data());
    for (int64_t r = 0; r < a.n_rows; ++r) {
      const float* xr = a.x + r * n_in;
      double sum = 0;
      for (int64_t i0 = 0; i0 < n_in; i0 += kChunk) {
        // 8 independent f32 lanes per run: vectorisable without reassociating anything.
        float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        const int64_t end = std::min(i0 + kChunk, n_in);
        int64_t i = i0;
        for (; i + 8 <= end; i += 8)
          for (int j = 0; j < 8; ++j) part[j] += xr[i + j] * row[i + j];
        double run = 0;
        for (; i < end; ++i) run += static_cast<double>(xr[i]) * row[i];
        for (int j = 0; j < 8; ++j) run += part[j];
        sum += run;
      }
      a.y[r * a.y_stride + o] = static_cast<float>(sum);
    }
  }
}

void portable_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float*) {
  if (a.w->layout == Layout::InOut)
    matmul_inout(a, o0, o1);
  else
    matmul_outin(a, o0, o1);
}

// One cache row of type t widened to f32: [hd].
void kv_row(const void* base, KvType t, int64_t offset, int64_t hd, float* out) {
  const uint8_t* p = static_cast<const uint8_t*>(base) + static_cast<size_t>(offset) * kv_type_bytes(t);
  if (t == KvType::F32) {
    std::memcpy(out, p, 4 * static_cast<size_t>(hd));
    return;
  }
  for (int64_t i = 0; i < hd; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    out[i] = t == KvType::F16 ? fp16_to_f32(h) : bf16_to_f32(h);
  }
}

constexpr int64_t kMaxHeadDim = 256;  // rows are widened through a stack buffer, this many at a time

void portable_dots(const float* q, const void* K, KvType t, int64_t stride, int64_t n, int64_t hd, float* out) {
  float k[kMaxHeadDim];
  for (int64_t j = 0; j < n; ++j) {
    float dot = 0.f;
    for (int64_t i0 = 0; i0 < hd; i0 += kMaxHeadDim) {
      const int64_t m = std::min(kMaxHeadDim, hd - i0);
      kv_row(K, t, j * stride + i0, m, k);
      for (int64_t i = 0; i < m; ++i) dot += q[i0 + i] * k[i];
    }
    out[j] = dot;
  }
}

void portable_weighted_sum(const float* p, const void* V, KvType t, int64_t stride, int64_t n, int64_t hd, float* out) {
  float v[kMaxHeadDim];
  std::fill(out, out + hd, 0.f);
  for (int64_t j = 0; j < n; ++j) {
    if (p[j] == 0.f) continue;
    for (int64_t i0 = 0; i0 < hd; i0 += kMaxHeadDim) {
      const int64_t m = std::min(kMaxHeadDim, hd - i0);
      kv_row(V, t, j * stride + i0, m, v);
      for (int64_t i = 0; i < m; ++i) out[i0 + i] += p[j] * v[i];
    }
  }
}

// gelu_tanh in float, as u / (1 + e^(−2z)) (ref.cpp says why), −2z clamped where e^(−2z) stays finite.
void portable_gelu_tanh(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float u = x[i];
    const float z = 0.7978845608028654f * (u + 0.044715f * u * u * u);
    x[i] = u / (1.f + std::exp(std::fmin(std::fmax(-2.f * z, -87.f), 88.f)));
  }
}

}  // namespace

const Kernels& portable_kernels() {
  static const Kernels k = [] {
    Kernels f = reference_kernels();
    f.name = "portable";
    f.matmul = portable_matmul;
    f.dots = portable_dots;
    f.weighted_sum = portable_weighted_sum;
    f.gelu_tanh = portable_gelu_tanh;
    return f;
  }();
  return k;
}

}  // namespace groak
