#include "kernels/tensor.h"

#include <cassert>

namespace groak {

namespace {
size_t element_bytes(const Matrix& m) { return m.format == WeightFormat::F32 ? 4 : 1; }
}  // namespace

Matrix Matrix::slice_out(int64_t o0, int64_t n) const {
  assert(o0 >= 0 && n > 0 && o0 + n <= n_out && !packed && !rows8);
  Matrix v = *this;
  v.repacked = nullptr;
  v.row_stride = static_cast<int64_t>(stride());
  v.n_out = n;
  if (layout == Layout::InOut) {
    // Columns of every stored row: the start moves, rows stay `stride` apart.
    v.data = data + static_cast<size_t>(o0) * element_bytes(*this);
    if (format == WeightFormat::XaiInt8) {
      v.scale_stride = scale_row();
      v.scales = scales + static_cast<size_t>(o0) * 2;
    }
  } else {
    v.data = data + static_cast<size_t>(o0) * stride();
  }
  return v;
}

Matrix Matrix::slice_in(int64_t i0, int64_t n) const {
  assert(i0 >= 0 && n > 0 && i0 + n <= n_in && !packed && !rows8);
  Matrix v = *this;
  v.repacked = nullptr;
  v.row_stride = static_cast<int64_t>(stride());
  v.n_in = n;
  if (layout == Layout::InOut) {
    v.data = data + static_cast<size_t>(i0) * stride();
    if (format == WeightFormat::XaiInt8) {
      const int64_t block_len = n_in / scale_blocks;
      assert(i0 % block_len == 0 && n % block_len == 0);
      v.scale_stride = scale_row();
      v.scales = scales + static_cast<size_t>(i0 / block_len * scale_row()) * 2;
      v.scale_blocks = n / block_len;
    }
  } else if (format == WeightFormat::Ggml) {
    assert(i0 % block_size(ggml) == 0 && n % block_size(ggml) == 0);
    v.data = data + row_bytes(ggml, i0);
  } else {
    v.data = data + static_cast<size_t>(i0) * element_bytes(*this);
  }
  return v;
}

}  // namespace groak
