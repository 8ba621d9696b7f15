#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <istream>
#include <ostream>

#include "util/error.h"

namespace groak {

namespace {

constexpr char kMagic[8] = {'G', 'R', 'O', 'A', 'K', 'K', 'L', 'D'};
constexpr uint32_t kVersion = 1;

template <class T>
void put(std::ostream& out, T v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof v);
}
template <class T>
T get(std::istream& in, const std::string& file, const char* what) {
  T v{};
  if (!in.read(reinterpret_cast<char*>(&v), sizeof v))
    throw Error(file + ": truncated while reading " + what + "; the KL base file is damaged (write it again with "
                "--kl-divergence-base)");
  return v;
}

// log-softmax of one row, in double for the sums (the logits stay f32).
void log_softmax(const float* z, int64_t n, std::vector<double>& out) {
  const double mx = *std::max_element(z, z + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(z[i]) - mx);
  const double lse = mx + std::log(sum);
  out.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<double>(z[i]) - lse;
}

// Mean and standard error of the mean from running sums.
std::pair<double, double> mean_err(double sum, double sum2, int64_t n) {
  const double m = sum / static_cast<double>(n);
  const double var = std::max(0.0, sum2 / static_cast<double>(n) - m * m);
  return {m, n > 1 ? std::sqrt(var / static_cast<double>(n - 1)) : 0.0};
}

}  // namespace

void write_kld_header(std::ostream& out, const KldBaseHeader& h) {
  out.write(kMagic, sizeof kMagic);
  put(out, kVersion);
  put(out, h.vocab);
  put(out, h.ctx);
  put(out, h.chunks);
  out.write(reinterpret_cast<const char*>(h.tokens.data()), static_cast<std::streamsize>(h.tokens.size() * 4));
}

KldBaseHeader read_kld_header(std::istream& in, const std::string& file) {
  char magic[8] = {};
  if (!in.read(magic, sizeof magic) || std::memcmp(magic, kMagic, sizeof magic) != 0)
    throw Error(file + ": not a KL base file of groak (no GROAKKLD magic); write one with groak perplexity "
                "--kl-divergence-base FILE");
  const uint32_t version = get<uint32_t>(in, file, "the version");
  if (version != kVersion)
    throw Error(file + ": KL base file version " + std::to_string(version) + "; this groak reads version " +
                std::to_string(kVersion) + " (write it again with this groak)");
  KldBaseHeader h;
  h.vocab = get<uint32_t>(in, file, "the vocabulary size");
  h.ctx = get<uint32_t>(in, file, "the context size");
  h.chunks = get<uint32_t>(in, file, "the chunk count");
  constexpr uint64_t kMaxTokens = uint64_t{1} << 28;  // sane: a header claiming more is damaged
  if (h.vocab == 0 || h.ctx < 4 || h.chunks == 0 || uint64_t{h.ctx} * h.chunks > kMaxTokens)
    throw Error(file + ": the header (vocab " + std::to_string(h.vocab) + ", ctx " + std::to_string(h.ctx) + ", chunks " +
                std::to_string(h.chunks) + ") is damaged; write the file again with --kl-divergence-base");
  h.tokens.resize(static_cast<size_t>(h.ctx) * h.chunks);
  if (!in.read(reinterpret_cast<char*>(h.tokens.data()), static_cast<std::streamsize>(h.tokens.size() * 4)))
    throw Error(file + ": truncated in its token list; the KL base file is damaged");
  return h;
}

PerplexityReport perplexity(Engine& session, const std::vector<int32_t>& tokens, int64_t max_chunks, std::ostream* save,
                            std::istream* base, const std::function<void(const PerplexityReport&)>& on_chunk,
                            const std::atomic<bool>* cancel) {
  const int64_t ctx = session.context(), V = session.model().config.vocab_size;
  const int64_t first = ctx / 2;  // positions [first, ctx - 1) predict tokens first+1 .. ctx-1
  if (ctx < 4) throw Error("the context (--ctx) must be at least 4 tokens for perplexity, got " + std::to_string(ctx));
  int64_t chunks = static_cast<int64_t>(tokens.size()) / ctx;
  if (max_chunks > 0) chunks = std::min(chunks, max_chunks);
  if (chunks == 0)
    throw Error("the text has " + std::to_string(tokens.size()) + " tokens, fewer than one window of " +
                std::to_string(ctx) + " (--ctx); give a longer text or a smaller --ctx");
  PerplexityReport rep;
  rep.ctx = ctx;
  if (save) {
    KldBaseHeader h{static_cast<uint32_t>(V), static_cast<uint32_t>(ctx), static_cast<uint32_t>(chunks),
                    std::vector<int32_t>(tokens.begin(), tokens.begin() + chunks * ctx)};
    write_kld_header(*save, h);
  }
  double nll = 0, nll2 = 0, kl = 0, kl2 = 0;
  int64_t same = 0;
  std::vector<float> logits, base_row(static_cast<size_t>(V));
  std::vector<double> lp, row_out;
  std::vector<float> lp_f32(static_cast<size_t>(V));
  for (int64_t c = 0; c < chunks; ++c) {
    const int32_t* window = tokens.data() + c * ctx;
    session.reset();
    session.eval(std::span<const int32_t>(window, static_cast<size_t>(ctx)), logits, LogitRows::All);  // [ctx, V]
    for (int64_t j = first; j < ctx - 1; ++j) {
      const float* z = logits.data() + j * V;
      log_softmax(z, V, lp);
      const double l = -lp[static_cast<size_t>(window[j + 1])];
      if (!std::isfinite(l))
        throw Error("non-finite log-probability at chunk " + std::to_string(c + 1) + ", position " + std::to_string(j) +
                    "; the model produces NaN/Inf (check it with groak info --check-weights)");
      nll += l;
      nll2 += l * l;
      if (save) {
        for (int64_t v = 0; v < V; ++v) lp_f32[static_cast<size_t>(v)] = static_cast<float>(lp[static_cast<size_t>(v)]);
        save->write(reinterpret_cast<const char*>(lp_f32.data()), static_cast<std::streamsize>(V * 4));
        if (!*save) throw Error("writing the KL base file failed (disk full?)");
      }
      if (base) {
        if (!base->read(reinterpret_cast<char*>(base_row.data()), static_cast<std::streamsize>(V * 4)))
          throw Error("the KL base file ends early (at chunk " + std::to_string(c + 1) + "); it is truncated");
        // KL(base || model) = sum_v p_base(v) (log p_base(v) - log p_model(v)).
        double k = 0;
        int64_t top_base = 0, top_model = 0;
        for (int64_t v = 0; v < V; ++v) {
          const double lb = base_row[static_cast<size_t>(v)];
          k += std::exp(lb) * (lb - lp[static_cast<size_t>(v)]);
          if (base_row[static_cast<size_t>(v)] > base_row[static_cast<size_t>(top_base)]) top_base = v;
          if (lp[static_cast<size_t>(v)] > lp[static_cast<size_t>(top_model)]) top_model = v;
        }
        k = std::max(k, 0.0);  // rounding can leave -1e-17 for identical rows
        kl += k;
        kl2 += k * k;
        same += top_base == top_model;
        if (!rep.kld) rep.kld = KldStats{};
        rep.kld->max = std::max(rep.kld->max, k);
      }
      ++rep.scored;
    }
    rep.chunks = c + 1;
    const auto [m, e] = mean_err(nll, nll2, rep.scored);
    rep.ppl = std::exp(m);
    rep.ppl_err = e * rep.ppl;  // delta method: d exp(m) = exp(m) dm
    rep.chunk_ppl.push_back(rep.ppl);
    if (base) {
      const auto [km, ke] = mean_err(kl, kl2, rep.scored);
      rep.kld->mean = km;
      rep.kld->err = ke;
      const double p = static_cast<double>(same) / static_cast<double>(rep.scored);
      rep.kld->same_top = p;
      rep.kld->same_top_err = rep.scored > 1 ? std::sqrt(p * (1 - p) / static_cast<double>(rep.scored - 1)) : 0.0;
    }
    if (on_chunk) on_chunk(rep);
    if (cancel && cancel->load() && c + 1 < chunks) {
      rep.cancelled = true;
      break;
    }
  }
  return rep;
}

}  // namespace groak
