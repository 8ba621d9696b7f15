// The default kernels: same interface and formulas as the reference (ref.cpp) but dot products
// accumulate in f32 in runs of kChunk inputs (vectorisable), the runs in double. Within ~1e-6 of the
// reference (tests/kernels_test.cpp checks it); the element-wise kernels are the reference ones.
#include <algorithm>
#include <vector>

#include "kernels/kernels.h"

namespace groak {

namespace {

constexpr int64_t kChunk = 64;  // inputs summed in f32 before the running sum (double) takes them

// y = x·W for an [in, out] matrix: stream the rows of W once, accumulating every output.
// For int8 the scale is factored out of each input block (spec §7.1):
//   y[o] = Σ_b s[b][o] · Σ_{i in block b} x[i]·q[i][o]
void matmul_inout(const Matrix& w, const float* x, float* y, int64_t n_rows) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  std::vector<float> acc(static_cast<size_t>(n_rows * n_out));   // [n_rows, n_out] f32 run of ≤ kChunk inputs
  std::vector<double> blk(static_cast<size_t>(n_rows * n_out));  // [n_rows, n_out] one scale block
  std::vector<double> sum(static_cast<size_t>(n_rows * n_out), 0.0);  // [n_rows, n_out]
  std::vector<float> row(static_cast<size_t>(n_out));                 // one row of W (int8 widened, unscaled)
  const int64_t blocks = w.format == WeightFormat::XaiInt8 ? w.scale_blocks : 1;
  const int64_t block_len = n_in / blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    std::fill(blk.begin(), blk.end(), 0.0);
    for (int64_t i0 = b * block_len; i0 < (b + 1) * block_len; i0 += kChunk) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t i = i0; i < std::min(i0 + kChunk, (b + 1) * block_len); ++i) {
        if (w.format == WeightFormat::F32) {
          for (int64_t o = 0; o < n_out; ++o) row[o] = load_f32(w.data + 4 * static_cast<size_t>(i * n_out + o));
        } else {
          const int8_t* q = reinterpret_cast<const int8_t*>(w.data) + i * n_out;
          for (int64_t o = 0; o < n_out; ++o) row[o] = static_cast<float>(q[o]);
        }
        for (int64_t r = 0; r < n_rows; ++r) {
          const float xi = x[r * n_in + i];
          float* a = acc.data() + r * n_out;
          for (int64_t o = 0; o < n_out; ++o) a[o] += xi * row[o];
        }
      }
      for (size_t k = 0; k < acc.size(); ++k) blk[k] += acc[k];
    }
    // Column scales factor out of each input block (spec §7.1): y[o] = Σ_b s[b][o] · Σ_{i∈b} x[i]·q[i][o].
    for (int64_t r = 0; r < n_rows; ++r) {
      const double* a = blk.data() + r * n_out;
      double* yr = sum.data() + r * n_out;
      if (w.format == WeightFormat::F32) {
        for (int64_t o = 0; o < n_out; ++o) yr[o] += a[o];
      } else {
        const uint8_t* s = w.scales + 2 * static_cast<size_t>(b * n_out);
        for (int64_t o = 0; o < n_out; ++o) yr[o] += static_cast<double>(load_bf16(s + 2 * o)) * a[o];
      }
    }
  }
  for (int64_t r = 0; r < n_rows * n_out; ++r) y[r] = static_cast<float>(sum[r]);
}

// y = x·W for an [out, in] matrix: one dot product per output unit.
void matmul_outin(const Matrix& w, const float* x, float* y, int64_t n_rows) {
  const int64_t n_in = w.n_in;
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t o = 0; o < w.n_out; ++o) {
    reference_kernels().get_row(w, o, row.data());
    for (int64_t r = 0; r < n_rows; ++r) {
      const float* xr = x + r * n_in;
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
      y[r * w.n_out + o] = static_cast<float>(sum);
    }
  }
}

void fast_matmul(const Matrix& w, const float* x, float* y, int64_t n_rows) {
  if (w.layout == Layout::InOut)
    matmul_inout(w, x, y, n_rows);
  else
    matmul_outin(w, x, y, n_rows);
}

}  // namespace

const Kernels& fast_kernels() {
  static const Kernels k = [] {
    Kernels f = reference_kernels();
    f.name = "fast";
    f.matmul = fast_matmul;
    return f;
  }();
  return k;
}

}  // namespace groak
