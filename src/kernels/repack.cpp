#include "kernels/repack.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace groak {

bool rows8_eligible(const Matrix& w) {
  return w.format == WeightFormat::Ggml && w.layout == Layout::OutIn && !w.rows8 &&
         (w.ggml == GgmlType::Q4_0 || w.ggml == GgmlType::Q8_0) && w.n_in % 32 == 0 && w.n_in > 0 && w.n_in <= (int64_t{1} << 20) && w.n_out > 0;
}

size_t rows8_group_bytes(const Matrix& w) { return 8 * row_bytes(w.ggml, w.n_in); }

size_t rows8_bytes(const Matrix& w) { return static_cast<size_t>((w.n_out + 7) / 8) * rows8_group_bytes(w); }

void rows8_pack(const Matrix& w, int64_t g0, int64_t g1, uint8_t* out) {
  assert(rows8_eligible(w));
  const size_t B = w.ggml == GgmlType::Q8_0 ? 34 : 18;  // bytes per block: f16 scale + quants
  const int64_t nb = w.n_in / 32;
  const size_t chunks = (B - 2) / 4;
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* row[8];
    for (int j = 0; j < 8; ++j)
      row[j] = w.data + static_cast<size_t>(std::min<int64_t>(8 * g + j, w.n_out - 1)) * w.stride();
    uint8_t* dst = out + static_cast<size_t>(g) * rows8_group_bytes(w);
    for (int64_t k = 0; k < nb; ++k) {
      for (int j = 0; j < 8; ++j) std::memcpy(dst + 2 * j, row[j] + k * B, 2);
      dst += 16;
      for (size_t c = 0; c < chunks; ++c)
        for (int j = 0; j < 8; ++j, dst += 4) std::memcpy(dst, row[j] + k * B + 2 + 4 * c, 4);
    }
  }
}

Matrix rows8_view(const Matrix& w, const uint8_t* data) {
  Matrix v = w;
  v.data = data;
  v.row_stride = 0;
  v.packed = nullptr;
  v.repacked = nullptr;
  v.rows8 = true;
  return v;
}

}  // namespace groak
