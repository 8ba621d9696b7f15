#include "convert/convert.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include "io/gguf_writer.h"
#include "io/mapped_file.h"
#include "io/output_file.h"
#include "kernels/kernels.h"
#include "model/name_map.h"
#include "util/error.h"

namespace groak {

namespace {

// One tensor of the output file: where its rows come from and how to store them.
struct OutTensor {
  std::string name;
  std::vector<int64_t> ne;        // ggml order: ne[0] = inputs (contiguous)
  GgmlType type;
  std::vector<Matrix> matrices;   // 2-D weights: one per expert (stacked along ne[2])
  const std::vector<float>* vec;  // 1-D norms
  uint64_t bytes() const {
    const int64_t rows = std::max<int64_t>(1, ne.size() > 1 ? ne[1] : 1) * (ne.size() > 2 ? ne[2] : 1);
    return static_cast<uint64_t>(rows) * row_bytes(type, ne[0]);
  }
};

// The int8 values of outputs [o0, o0 + n) of an xAI [in, out] matrix (or of a slice of its outputs:
// input rows m.stride() bytes apart), transposed: qt [n, n_in].
// Blocked so that each pass reads kT input rows (a few KB, cache resident) and writes kT contiguous
// values per output.
void transpose_int8(const Matrix& m, int64_t o0, int64_t n, int8_t* qt) {
  constexpr int64_t kT = 32;
  const int8_t* q = reinterpret_cast<const int8_t*>(m.data);
  for (int64_t i0 = 0; i0 < m.n_in; i0 += kT) {
    const int64_t i1 = std::min(i0 + kT, m.n_in);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = i0; i < i1; ++i) qt[r * m.n_in + i] = q[i * static_cast<int64_t>(m.stride()) + o0 + r];
  }
}

}  // namespace

void read_rows(const Matrix& m, int64_t o0, int64_t n, float* out, int8_t* qt) {
  if (m.layout == Layout::OutIn) {
    for (int64_t r = 0; r < n; ++r) reference_kernels().get_row(m, o0 + r, out + r * m.n_in);
    return;
  }
  if (m.format == WeightFormat::XaiInt8) {
    transpose_int8(m, o0, n, qt);
    const int64_t block_len = m.n_in / m.scale_blocks;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t b = 0; b < m.scale_blocks; ++b) {
        const float s = load_bf16(m.scales + 2 * static_cast<size_t>(b * m.scale_row() + o0 + r));
        for (int64_t i = b * block_len; i < (b + 1) * block_len; ++i)
          out[r * m.n_in + i] = static_cast<float>(qt[static_cast<size_t>(r * m.n_in + i)]) * s;  // exact
      }
    return;
  }
  for (int64_t i = 0; i < m.n_in; ++i) {  // f32 [in, out] (only small matrices: the router)
    const uint8_t* p = m.data + static_cast<size_t>(i) * m.stride() + 4 * static_cast<size_t>(o0);
    for (int64_t r = 0; r < n; ++r) out[r * m.n_in + i] = load_f32(p + 4 * r);
  }
}

namespace {

// xAI int8 -> q8_0 without re-rounding: a block of 32 inputs that shares one bf16 scale exactly
// representable in fp16 becomes d = scale, qs = the int8 values. Returns false if not possible.
// q: output o's int8 values over all inputs [n_in].
bool exact_q8_0_block(const Matrix& m, int64_t o, const int8_t* q, int64_t i0, uint8_t* dst) {
  const int64_t block_len = m.n_in / m.scale_blocks;
  if (i0 / block_len != (i0 + 31) / block_len) return false;
  const float s = load_bf16(m.scales + 2 * static_cast<size_t>((i0 / block_len) * m.scale_row() + o));
  const uint16_t h = f32_to_fp16(s);
  if (fp16_to_f32(h) != s) return false;
  std::memcpy(dst, &h, 2);
  std::memcpy(dst + 2, q + i0, 32);
  return true;
}

// Runs body(r0, r1) over [0, n) split into `workers` contiguous ranges on their own threads (joined
// before returning; the first exception is rethrown).
template <typename F>
void parallel_ranges(int64_t n, int64_t workers, const F& body) {
  workers = std::max<int64_t>(1, std::min<int64_t>(n, workers));
  if (workers == 1) {
    body(int64_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  std::exception_ptr error;
  std::mutex error_mutex;
  for (int64_t w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      try {
        body(n * w / workers, n * (w + 1) / workers);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

class SplitWriter {
 public:
  SplitWriter(const ConvertOptions& opt, const std::vector<OutTensor>& tensors) : opt_(opt) {
    // Partition the tensors into files of at most split_max_bytes (a tensor is never cut).
    std::vector<std::vector<size_t>> parts(1);
    uint64_t size = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const uint64_t b = tensors[i].bytes();
      if (opt.split_max_bytes && !parts.back().empty() && size + b > opt.split_max_bytes) {
        parts.emplace_back();
        size = 0;
      }
      parts.back().push_back(i);
      size += b;
    }
    parts_ = parts;
  }
  size_t count() const { return parts_.size(); }
  const std::vector<size_t>& part(size_t i) const { return parts_[i]; }
  std::string path(size_t i) const {
    if (parts_.size() == 1) return opt_.out;
    std::string base = opt_.out;
    if (base.size() > 5 && base.compare(base.size() - 5, 5, ".gguf") == 0) base.resize(base.size() - 5);
    char suffix[64];
    std::snprintf(suffix, sizeof suffix, "-%05zu-of-%05zu.gguf", i + 1, parts_.size());
    return base + suffix;
  }

 private:
  const ConvertOptions& opt_;
  std::vector<std::vector<size_t>> parts_;
};

void write_metadata(GgufWriter& w, const Model& m, const ConvertOptions& opt) {
  const Config& c = m.config;
  w.add_string("general.architecture", "grok");
  w.add_string("general.name", opt.name);
  w.add_u32("general.file_type", opt.plan.file_type->ftype);
  w.add_u32("general.quantization_version", 2);
  w.add_u32("grok.context_length", static_cast<uint32_t>(c.sequence_len));
  w.add_u32("grok.embedding_length", static_cast<uint32_t>(c.emb_size));
  w.add_u32("grok.block_count", static_cast<uint32_t>(c.num_layers));
  w.add_u32("grok.feed_forward_length", static_cast<uint32_t>(c.ffn_size()));
  w.add_u32("grok.attention.head_count", static_cast<uint32_t>(c.num_q_heads));
  w.add_u32("grok.attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  w.add_u32("grok.attention.key_length", static_cast<uint32_t>(c.key_size));
  w.add_u32("grok.attention.value_length", static_cast<uint32_t>(c.key_size));
  w.add_f32("grok.attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.add_f32("grok.rope.freq_base", static_cast<float>(c.rope_base));
  w.add_u32("grok.rope.dimension_count", static_cast<uint32_t>(c.key_size));
  w.add_u32("grok.expert_count", static_cast<uint32_t>(c.num_experts));
  w.add_u32("grok.expert_used_count", static_cast<uint32_t>(c.num_selected_experts));
  // llama.cpp hard-codes these three for Grok; groak records them so that other values survive.
  w.add_f32("grok.embedding_multiplier_scale", static_cast<float>(c.embedding_multiplier_scale));
  w.add_f32("grok.output_multiplier_scale", static_cast<float>(c.output_multiplier_scale));
  w.add_f32("grok.attn_output_multiplier", static_cast<float>(c.attn_output_multiplier));
  if (opt.vocab) {
    const VocabSpec& v = *opt.vocab;
    w.add_string("tokenizer.ggml.model", v.model);
    w.add_string("tokenizer.ggml.pre", "default");
    w.add_strings("tokenizer.ggml.tokens", v.tokens);
    w.add_f32s("tokenizer.ggml.scores", v.scores);
    w.add_i32s("tokenizer.ggml.token_type", v.types);
    if (v.bos >= 0) w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos));
    if (v.eos >= 0) w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos));
    if (v.unk >= 0) w.add_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk));
    if (v.pad >= 0) w.add_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(v.pad));
    w.add_bool("tokenizer.ggml.add_bos_token", false);  // the official runner does not prepend BOS
    w.add_bool("tokenizer.ggml.add_eos_token", false);
  }
  if (opt.imatrix) {  // the keys llama-quantize records
    w.add_string("quantize.imatrix.file", opt.imatrix_file);
    w.add_string("quantize.imatrix.dataset", opt.imatrix->dataset);
    w.add_i32("quantize.imatrix.entries_count", static_cast<int32_t>(opt.imatrix->entries.size()));
    w.add_i32("quantize.imatrix.chunks_count", opt.imatrix->chunks);
  }
}

}  // namespace

namespace {

// llama-quantize's rule: these types make garbage without an importance matrix, so it refuses.
bool needs_imatrix(GgmlType t, const std::string& name, const FileType& ft) {
  const bool embed_or_output = name == "token_embd.weight" || name == "output.weight";
  return t == GgmlType::IQ2_XXS || t == GgmlType::IQ2_XS || t == GgmlType::IQ2_S || t == GgmlType::IQ1_S ||
         (t == GgmlType::IQ1_M && !embed_or_output) ||
         (t == GgmlType::Q2_K && std::string(ft.name) == "Q2_K_S" && name != "token_embd.weight");
}

// The imatrix columns of matrix `e` of tensor t: [n_in], or null.
const float* imatrix_for(const ConvertOptions& opt, const OutTensor& t, size_t e) {
  if (!opt.imatrix) return nullptr;
  const auto it = opt.imatrix->entries.find(t.name);
  if (it == opt.imatrix->entries.end()) return nullptr;
  return it->second.data() + e * static_cast<size_t>(t.ne[0]);
}

}  // namespace

ConvertReport convert_model(const Model& model, const ConvertOptions& opt, const ConvertProgress& progress) {
  const Config& c = model.config;
  const Weights& w = model.weights;
  const FileType& ft = *opt.plan.file_type;
  ConvertReport rep;
  if (opt.imatrix) check_imatrix(*opt.imatrix, model);
  QuantPlanOptions plan = opt.plan;
  plan.has_imatrix = opt.imatrix != nullptr;
  const bool has_output = w.lm_head.data != w.in_out_embed.data;
  QuantPlanner planner(c, plan, has_output);

  // The output tensors, named and shaped as llama.cpp expects (ne[0] = input dimension), in llama.cpp's
  // order (the planner's per-layer counters follow it).
  std::vector<OutTensor> tensors;
  auto add_matrix = [&](const std::string& name, std::vector<Matrix> ms, std::vector<int64_t> ne, bool keep_f32) {
    std::string note;
    GgmlType t = keep_f32 ? GgmlType::F32 : planner.type_for(name, ne, &note);
    if (opt.keep_types && !keep_f32 && ms[0].format == WeightFormat::Ggml) {
      t = ms[0].ggml;
      note.clear();
    }
    if (!note.empty()) rep.fallbacks.push_back(note);
    // Quantizing an already block-quantized weight rounds it twice (llama.cpp asks for the same flag).
    auto block_quantized = [](GgmlType g) { return block_size(g) > 1; };
    const bool quantized_src = ms[0].format == WeightFormat::Ggml && block_quantized(ms[0].ggml);
    if (quantized_src && block_quantized(t) && t != ms[0].ggml && !opt.allow_requantize)
      throw Error("tensor '" + name + "' is already quantized (" + type_name(ms[0].ggml) + "); quantizing it to " +
                  type_name(t) + " rounds it a second time; convert from the original weights, or pass "
                  "--allow-requantize");
    rep.types.emplace_back(name, t);
    tensors.push_back({name, std::move(ne), t, std::move(ms), nullptr});
  };
  auto add_norm = [&](const std::string& name, const std::vector<float>& v) {
    rep.types.emplace_back(name, GgmlType::F32);
    tensors.push_back({name, {static_cast<int64_t>(v.size())}, GgmlType::F32, {}, &v});
  };
  const int64_t d = c.emb_size, f = c.ffn_size(), E = c.num_experts;
  // Rows of the vocabulary: all of them, or a share's (groak shard).
  add_matrix(gguf_name(Role::InOutEmbed, -1), {w.in_out_embed}, {d, w.in_out_embed.n_out}, false);
  add_norm(gguf_name(Role::FinalNorm, -1), w.rms_norm);
  if (has_output) add_matrix("output.weight", {w.lm_head}, {d, w.lm_head.n_out}, false);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = w.layers[static_cast<size_t>(l)];
    add_norm(gguf_name(Role::RmsNorm, l), L.rms_norm);
    add_matrix(gguf_name(Role::Query, l), {L.query}, {d, c.q_size()}, false);
    add_matrix(gguf_name(Role::Key, l), {L.key}, {d, c.kv_size()}, false);
    add_matrix(gguf_name(Role::Value, l), {L.value}, {d, c.kv_size()}, false);
    add_matrix(gguf_name(Role::AttnLinear, l), {L.linear}, {c.q_size(), d}, false);
    add_norm(gguf_name(Role::RmsNorm1, l), L.rms_norm_1);
    add_norm(gguf_name(Role::RmsNorm2, l), L.rms_norm_2);
    add_matrix(gguf_name(Role::Router, l), {L.router}, {d, E}, true);  // llama.cpp keeps the router f32
    add_matrix(gguf_name(Role::MoeLinear, l), L.moe_linear.list, {d, f, E}, false);
    add_matrix(gguf_name(Role::MoeLinearV, l), L.moe_linear_v.list, {d, f, E}, false);
    add_matrix(gguf_name(Role::MoeLinear1, l), L.moe_linear_1.list, {f, d, E}, false);
    add_norm(gguf_name(Role::RmsNorm3, l), L.rms_norm_3);
  }

  // What cannot be written is refused before any output exists: first a missing imatrix (the more useful
  // message), then a type groak has no quantizer for.
  for (const OutTensor& t : tensors)
    if (!t.vec && needs_imatrix(t.type, t.name, ft) && !(opt.imatrix && opt.imatrix->entries.count(t.name)))
      throw Error("tensor '" + t.name + "' would be stored as " + type_name(t.type) + ", which needs an importance " +
                  (opt.imatrix ? "matrix entry, and the imatrix has none for it" : "matrix (--imatrix FILE)") +
                  ": make one with groak imatrix, or choose a type of 3 bits or more");
  for (const OutTensor& t : tensors)
    if (!t.vec && !has_quantizer(t.type))
      throw Error("tensor '" + t.name + "' would be stored as " + type_name(t.type) + ", which groak cannot write "
                  "yet; choose another --type or override it with --tensor-type");
  const int64_t workers = opt.threads > 0 ? opt.threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
  uint64_t total = 0, done = 0;
  for (const auto& t : tensors) total += t.bytes();
  SplitWriter split(opt, tensors);
  // Output rows converted at a time: enough for every worker, few enough that the buffers stay small.
  const int64_t tile_rows = std::max<int64_t>(256, 32 * workers);
  std::vector<std::string> out_paths;  // every part checked before anything is written
  for (size_t p = 0; p < split.count(); ++p) out_paths.push_back(checked_output_path(split.path(p), opt.inputs));
  std::vector<std::unique_ptr<GgufWriter>> parts;  // renamed into place together, once all are complete
  for (size_t p = 0; p < split.count(); ++p) {
    parts.push_back(std::make_unique<GgufWriter>(out_paths[p]));
    GgufWriter& out = *parts.back();
    if (p == 0) {
      write_metadata(out, model, opt);
      if (opt.extra_metadata) opt.extra_metadata(out);
    } else {
      out.add_string("general.architecture", "grok");
    }
    if (split.count() > 1) {
      out.add_u16("split.no", static_cast<uint16_t>(p));
      out.add_u16("split.count", static_cast<uint16_t>(split.count()));
      out.add_i32("split.tensors.count", static_cast<int32_t>(tensors.size()));
    }
    for (size_t i : split.part(p)) out.add_tensor(tensors[i].name, tensors[i].ne, static_cast<uint32_t>(tensors[i].type), tensors[i].bytes());
    out.write_header();
    for (size_t i : split.part(p)) {
      const OutTensor& t = tensors[i];
      if (t.vec) {
        out.write_data(t.vec->data(), t.vec->size() * 4);
      } else {
        const int64_t n_in = t.ne[0];
        const size_t rb = row_bytes(t.type, n_in);
        std::vector<float> rows(static_cast<size_t>(tile_rows * n_in));  // [tile, n_in]
        std::vector<uint8_t> buf(static_cast<size_t>(tile_rows) * rb);    // [tile] rows of t.type
        std::vector<int8_t> qt;  // [tile, n_in] transposed int8 (xAI sources)
        for (size_t e = 0; e < t.matrices.size(); ++e) {
          const Matrix& m = t.matrices[e];
          const bool int8_to_q8 = m.format == WeightFormat::XaiInt8 && t.type == GgmlType::Q8_0;
          // Already stored in the type asked: copied as it is (as llama-quantize does), never re-rounded.
          const bool copy = m.format == WeightFormat::Ggml && m.ggml == t.type && m.layout == Layout::OutIn;
          if (m.format == WeightFormat::XaiInt8) qt.resize(static_cast<size_t>(tile_rows * n_in));
          const float* imatrix = imatrix_for(opt, t, e);
          for (int64_t o0 = 0; o0 < m.n_out; o0 += tile_rows) {
            const int64_t n = std::min(tile_rows, m.n_out - o0);
            // Each worker reads (transposes, dequantises) and encodes its own rows: nothing serial but the write.
            std::atomic<uint64_t> exact{0}, rerounded{0};
            parallel_ranges(n, workers, [&](int64_t r0, int64_t r1) {
              if (copy) {
                for (int64_t r = r0; r < r1; ++r)
                  std::memcpy(buf.data() + static_cast<size_t>(r) * rb, m.data + static_cast<size_t>(o0 + r) * m.stride(), rb);
                return;
              }
              float* src = rows.data() + r0 * n_in;
              int8_t* q = qt.empty() ? nullptr : qt.data() + r0 * n_in;
              read_rows(m, o0 + r0, r1 - r0, src, q);
              uint8_t* dst = buf.data() + static_cast<size_t>(r0) * rb;
              if (!int8_to_q8) {
                quantize_rows(t.type, src, dst, r1 - r0, n_in, imatrix);
                return;
              }
              for (int64_t r = r0; r < r1; ++r, src += n_in, dst += rb)
                for (int64_t b = 0; b < n_in; b += 32) {
                  uint8_t* blk = dst + (b / 32) * 34;
                  if (exact_q8_0_block(m, o0 + r, qt.data() + r * n_in, b, blk)) {
                    ++exact;
                  } else {
                    quantize_row(GgmlType::Q8_0, src + b, blk, 32);
                    ++rerounded;
                  }
                }
            });
            rep.exact_int8_blocks += exact;
            rep.requantized_blocks += rerounded;
            out.write_data(buf.data(), static_cast<size_t>(n) * rb);
            done += static_cast<uint64_t>(n) * rb;
            if (m.layout == Layout::OutIn)  // rows done: let the page cache keep them, not our RSS
              release_pages(m.data + static_cast<size_t>(o0) * m.stride(),
                            static_cast<size_t>(n - 1) * m.stride() + m.packed_row_bytes());
            if (progress) progress(done, total);
          }
          release_pages(m.data, m.span_bytes());
          if (m.scales) release_pages(m.scales, m.scale_bytes());
        }
      }
      out.end_tensor();
    }
    out.finish();
    rep.files.push_back(out.path());
    rep.bytes += out.bytes_written();
  }
  for (auto& part : parts) part->commit();
  return rep;
}

}  // namespace groak
