#include "convert/xai_export.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include "io/xai_checkpoint.h"
#include "kernels/tensor.h"
#include "model/name_map.h"
#include "synth/pickle_writer.h"
#include "synth/synth.h"
#include "util/error.h"

namespace groak {

namespace fs = std::filesystem;
using pickle::NpArray;
using pickle::NpDType;

double quantize_xai_int8(const float* w_rows, int64_t n_in, int64_t n_out, int64_t blocks, int8_t* q,
                         uint16_t* scales) {
  const int64_t len = n_in / blocks;
  double max_err = 0;
  for (int64_t o = 0; o < n_out; ++o) {
    const float* w = w_rows + o * n_in;  // output o's weights over all inputs [n_in]
    for (int64_t b = 0; b < blocks; ++b) {
      float amax = 0;
      for (int64_t i = b * len; i < (b + 1) * len; ++i) {
        if (!std::isfinite(w[i]))
          throw Error("weight [input " + std::to_string(i) + ", output " + std::to_string(o) + "] is " +
                      std::to_string(w[i]) + "; a checkpoint of non-finite weights cannot be quantised");
        amax = std::max(amax, std::fabs(w[i]));
      }
      const uint16_t sb = f32_to_bf16(amax / 127.0f);  // RNE, as a bf16 cast rounds
      scales[b * n_out + o] = sb;
      if (!q) continue;
      const float s = bf16_to_f32(sb);
      for (int64_t i = b * len; i < (b + 1) * len; ++i) {
        // the bf16 scale may round down: w / s can pass 127.5 by a hair, hence the clamp
        const float v = s > 0 ? std::clamp(std::nearbyint(w[i] / s), -127.0f, 127.0f) : 0.0f;
        q[i * n_out + o] = static_cast<int8_t>(v);
        max_err = std::max(max_err, std::fabs(static_cast<double>(v) * s - static_cast<double>(w[i])));
      }
    }
  }
  return max_err;
}

namespace {

// All output rows of a matrix, dequantised: [n_out, n_in].
std::vector<float> output_rows(const Matrix& m) {
  constexpr int64_t kRows = 64;  // an xAI int8 source is transposed through qt, kRows outputs at a time
  std::vector<float> w(static_cast<size_t>(m.n_out * m.n_in));
  std::vector<int8_t> qt(static_cast<size_t>(kRows * m.n_in));
  for (int64_t o0 = 0; o0 < m.n_out; o0 += kRows)
    read_rows(m, o0, std::min(kRows, m.n_out - o0), w.data() + o0 * m.n_in, qt.data());
  return w;
}

std::vector<const Matrix*> matrices_for(const Model& model, Role r, int64_t layer) {
  const LayerWeights& L = model.weights.layers[static_cast<size_t>(layer)];
  auto experts = [](const ExpertMatrices& x) {
    std::vector<const Matrix*> v;
    for (const Matrix& m : x.list) v.push_back(&m);
    return v;
  };
  switch (r) {
    case Role::Query: return {&L.query};
    case Role::Key: return {&L.key};
    case Role::Value: return {&L.value};
    case Role::AttnLinear: return {&L.linear};
    case Role::Router: return {&L.router};
    case Role::MoeLinear: return experts(L.moe_linear);
    case Role::MoeLinearV: return experts(L.moe_linear_v);
    case Role::MoeLinear1: return experts(L.moe_linear_1);
    default: return {};
  }
}

const std::vector<float>& vector_for(const Model& model, Role r, int64_t layer) {
  if (r == Role::FinalNorm) return model.weights.rms_norm;
  const LayerWeights& L = model.weights.layers[static_cast<size_t>(layer)];
  switch (r) {
    case Role::RmsNorm: return L.rms_norm;
    case Role::RmsNorm1: return L.rms_norm_1;
    case Role::RmsNorm2: return L.rms_norm_2;
    default: return L.rms_norm_3;
  }
}

// The int8 weight [E, n_in, n_out] of one file and its bf16 scales [E, blocks, n_out]. The scales are
// computed up front; the weight one expert at a time, as the pickler asks for its bytes in order.
class Int8Tensor {
 public:
  Int8Tensor(std::vector<const Matrix*> experts, int64_t blocks, double& max_err)
      : experts_(std::move(experts)), blocks_(blocks), max_err_(max_err) {
    const Matrix& m0 = *experts_[0];
    n_in_ = m0.n_in;
    n_out_ = m0.n_out;
    scales_.resize(experts_.size() * static_cast<size_t>(blocks_ * n_out_));
    for (size_t e = 0; e < experts_.size(); ++e) {
      const std::vector<float> w = output_rows(*experts_[e]);
      quantize_xai_int8(w.data(), n_in_, n_out_, blocks_, nullptr, scales_.data() + e * blocks_ * n_out_);
    }
  }

  void fill_weight(uint8_t* buf, uint64_t off, size_t n) {
    const uint64_t per = static_cast<uint64_t>(n_in_ * n_out_);
    while (n > 0) {
      const size_t e = static_cast<size_t>(off / per);
      if (e != current_) load(e);
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, per - off % per));
      std::memcpy(buf, q_.data() + off % per, k);
      buf += k;
      off += k;
      n -= k;
    }
  }
  void fill_scales(uint8_t* buf, uint64_t off, size_t n) const {
    std::memcpy(buf, reinterpret_cast<const uint8_t*>(scales_.data()) + off, n);
  }
  std::vector<int64_t> shape(bool merged) const {
    return merged ? std::vector<int64_t>{static_cast<int64_t>(experts_.size()), n_in_, n_out_}
                  : std::vector<int64_t>{n_in_, n_out_};
  }

 private:
  void load(size_t e) {
    const std::vector<float> w = output_rows(*experts_[e]);
    q_.resize(static_cast<size_t>(n_in_ * n_out_));
    std::vector<uint16_t> s(static_cast<size_t>(blocks_ * n_out_));
    const double err = quantize_xai_int8(w.data(), n_in_, n_out_, blocks_, q_.data(), s.data());
    if (!std::equal(s.begin(), s.end(), scales_.begin() + static_cast<std::ptrdiff_t>(e * s.size())))
      throw Error("internal: the scales of a second read differ from the first");
    max_err_ = std::max(max_err_, err);
    current_ = e;
  }

  std::vector<const Matrix*> experts_;
  int64_t blocks_, n_in_ = 0, n_out_ = 0;
  double& max_err_;
  std::vector<uint16_t> scales_;
  std::vector<int8_t> q_;
  size_t current_ = SIZE_MAX;
};

// A float32 array copied from memory.
NpArray f32_array(std::vector<int64_t> shape, std::shared_ptr<const std::vector<float>> v) {
  NpArray a;
  a.dtype = NpDType::F32;
  a.shape = std::move(shape);
  a.fill = [v](uint8_t* buf, uint64_t off, size_t n) {
    std::memcpy(buf, reinterpret_cast<const uint8_t*>(v->data()) + off, n);
  };
  return a;
}

// The embedding [vocab, d] f32, read row by row from the model (any format) as the pickler asks.
NpArray embedding_array(const Matrix& m) {
  NpArray a;
  a.dtype = NpDType::F32;
  a.shape = {m.n_out, m.n_in};
  a.fill = [&m](uint8_t* buf, uint64_t off, size_t n) {
    const uint64_t row_bytes = 4 * static_cast<uint64_t>(m.n_in);
    const int64_t r0 = static_cast<int64_t>(off / row_bytes), r1 = static_cast<int64_t>((off + n - 1) / row_bytes) + 1;
    std::vector<float> rows(static_cast<size_t>((r1 - r0) * m.n_in));
    read_rows(m, r0, r1 - r0, rows.data(), nullptr);
    std::memcpy(buf, reinterpret_cast<const uint8_t*>(rows.data()) + (off - static_cast<uint64_t>(r0) * row_bytes), n);
  };
  return a;
}

void check_exportable(const Model& model, const std::string& out_dir) {
  if (model.shard_count > 1 || model.weights.vocab_begin != 0)
    throw Error("this process holds one shard of the model; convert it on one machine, without mpirun");
  if (model.weights.in_out_embed.layout != Layout::OutIn)
    throw Error("internal: the embedding is expected one row per token");
  std::error_code ec;
  if (fs::exists(out_dir, ec) && (!fs::is_directory(out_dir, ec) || !fs::is_empty(out_dir, ec)))
    throw Error(out_dir + " exists and is not an empty folder; an xAI checkpoint is a folder (ckpt-0/, config.json, "
                "tokenizer.model): pass --out a new or empty folder");
}

}  // namespace

XaiExportReport export_xai_checkpoint(const Model& model, const XaiExportOptions& opt,
                                      const ConvertProgress& progress) {
  const std::string& out_dir = opt.out_dir;
  const std::string& tokenizer_path = opt.tokenizer;
  check_exportable(model, out_dir);
  const Config& c = model.config;
  const std::string config_json = config_to_json_converted(c, model.location, opt.random_weights);  // throws before any file exists
  const std::vector<SynthTensor> plan = synth_plan(c.with_widening_for_ffn());
  const std::vector<RoleAt> order = xai_file_order(c.num_layers);

  XaiExportReport rep;
  std::vector<fs::path> written;  // removed again if the job ends early
  const fs::path ckpt = fs::path(out_dir) / "ckpt-0";
  std::error_code ec;
  fs::create_directories(ckpt, ec);
  if (ec) throw Error(ckpt.string() + ": cannot create the folder (" + ec.message() + ")");
  try {
    // Total bytes for the progress line (sizes only, no payloads).
    uint64_t total = 0, done = 0;
    for (const SynthTensor& t : plan) {
      NpArray w{t.quantized() ? NpDType::I8 : NpDType::F32, t.shape, {}};
      total += t.quantized() ? pickle::pickled_size_quantized_weight(w, NpArray{NpDType::BF16, t.scales_shape, {}})
                             : pickle::pickled_size_ndarray(w);
    }
    if (progress) progress(0, total);
    for (size_t i = 0; i < plan.size(); ++i) {
      const SynthTensor& t = plan[i];
      const RoleAt& at = order[i];
      written.push_back(ckpt / synth_tensor_file_name(t.index));
      pickle::write_atomically(written.back().string(), [&](pickle::FileSink& f) {
        pickle::ProgressSink sink(f, done, total, progress);
        if (t.quantized()) {
          const int64_t blocks = t.scales_shape[t.scales_shape.size() - 2];  // 1 or 8 (§7.1)
          Int8Tensor src(matrices_for(model, at.role, at.layer), blocks, rep.max_abs_error);
          NpArray w{NpDType::I8, t.shape, [&](uint8_t* b, uint64_t o, size_t n) { src.fill_weight(b, o, n); }};
          NpArray s{NpDType::BF16, t.scales_shape, [&](uint8_t* b, uint64_t o, size_t n) { src.fill_scales(b, o, n); }};
          if (src.shape(t.shape.size() == 3) != t.shape)
            throw Error("internal: " + t.path + " does not have the planned shape");
          pickle::pickle_quantized_weight(sink, w, s);
        } else if (at.role == Role::InOutEmbed) {
          pickle::pickle_ndarray(sink, embedding_array(model.weights.in_out_embed));
        } else if (at.role == Role::Router) {
          const Matrix& r = *matrices_for(model, at.role, at.layer)[0];  // [d, E]
          const std::vector<float> rows = output_rows(r);                // [E, d]
          auto v = std::make_shared<std::vector<float>>(rows.size());
          for (int64_t e = 0; e < r.n_out; ++e)
            for (int64_t j = 0; j < r.n_in; ++j) (*v)[static_cast<size_t>(j * r.n_out + e)] = rows[static_cast<size_t>(e * r.n_in + j)];
          pickle::pickle_ndarray(sink, f32_array(t.shape, v));
        } else {
          auto v = std::make_shared<const std::vector<float>>(vector_for(model, at.role, at.layer));
          pickle::pickle_ndarray(sink, f32_array(t.shape, v));
        }
      });
      rep.bytes += fs::file_size(written.back());
      rep.files.push_back(written.back().string());
      if (progress) progress(done, total);
    }
    if (!tokenizer_path.empty()) {
      written.push_back(fs::path(out_dir) / "tokenizer.model");
      fs::copy_file(tokenizer_path, written.back(), ec);
      if (ec) throw Error(written.back().string() + ": cannot copy the tokenizer from " + tokenizer_path + " (" + ec.message() + ")");
      rep.files.push_back(written.back().string());
    }
    written.push_back(fs::path(out_dir) / "config.json");  // last: a folder with it is complete
    pickle::write_atomically(written.back().string(), [&](pickle::FileSink& f) {
      f.write(reinterpret_cast<const uint8_t*>(config_json.data()), config_json.size());
    });
    rep.files.push_back(written.back().string());
    if (progress) progress(total, total);
  } catch (...) {
    for (const fs::path& p : written) fs::remove(p, ec);
    fs::remove(ckpt, ec);  // only if empty
    throw;
  }
  return rep;
}

}  // namespace groak
