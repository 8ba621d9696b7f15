#include "runtime/follow.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "util/error.h"

namespace groak {

namespace {

enum class Op : int64_t { Open = 1, Step = 2, Close = 3, Quit = 4, SavePrefix = 5, LoadPrefix = 6, DropPrefix = 7 };
static_assert(static_cast<int64_t>(Op::SavePrefix) == static_cast<int64_t>(PrefixOp::Save) &&
              static_cast<int64_t>(Op::LoadPrefix) == static_cast<int64_t>(PrefixOp::Load) &&
              static_cast<int64_t>(Op::DropPrefix) == static_cast<int64_t>(PrefixOp::Drop));

// Every message starts with this; a step's payload follows in a second broadcast.
struct Header {
  int64_t op = 0, id = 0;
  int64_t a = 0, b = 0, c = 0, d = 0;  // open: context, sequences, batch, cache type; step: tokens, sequences
};

// A batch token on the wire: token, seq, pos, logits.
constexpr int kTokenFields = 4;

bool leads(const Communicator& comm) { return comm.size() > 1 && comm.rank() == 0; }

}  // namespace

void announce_open(Communicator& comm, int64_t id, const EngineShape& e) {
  if (!leads(comm)) return;
  Header h{static_cast<int64_t>(Op::Open), id, e.context, e.sequences, e.batch, static_cast<int64_t>(e.cache_type)};
  comm.broadcast(&h, sizeof h);
}

void announce_step(Communicator& comm, int64_t id, const Batch& batch, const KVCache& kv) {
  if (!leads(comm)) return;
  Header h{static_cast<int64_t>(Op::Step), id, batch.size(), kv.n_seq(), 0, 0};
  comm.broadcast(&h, sizeof h);
  // [n_seq] cache lengths before the pass, then [tokens][kTokenFields].
  std::vector<int64_t> payload;
  payload.reserve(static_cast<size_t>(kv.n_seq() + batch.size() * kTokenFields));
  for (int64_t s = 0; s < kv.n_seq(); ++s) payload.push_back(kv.length(s));
  for (const BatchToken& t : batch.tokens) payload.insert(payload.end(), {t.token, t.seq, t.pos, t.logits ? 1 : 0});
  comm.broadcast(payload.data(), payload.size() * sizeof(int64_t));
}

void announce_close(Communicator& comm, int64_t id) {
  if (!leads(comm)) return;
  Header h{static_cast<int64_t>(Op::Close), id, 0, 0, 0, 0};
  comm.broadcast(&h, sizeof h);
}

void announce_prefix(Communicator& comm, int64_t id, PrefixOp op, int64_t key, int64_t seq, int64_t n) {
  if (!leads(comm)) return;
  Header h{static_cast<int64_t>(op), id, key, seq, n, 0};
  comm.broadcast(&h, sizeof h);
}

void release_followers(Communicator& comm) {
  if (!leads(comm)) return;
  Header h{static_cast<int64_t>(Op::Quit), 0, 0, 0, 0, 0};
  comm.broadcast(&h, sizeof h);
}

void follow(const Model& model, Context& ctx) {
  Communicator& comm = model.comm();
  std::map<int64_t, std::unique_ptr<Engine>> engines;
  std::vector<int64_t> payload;
  std::vector<float> logits;
  Batch batch;
  for (;;) {
    Header h;
    comm.broadcast(&h, sizeof h);
    switch (static_cast<Op>(h.op)) {
      case Op::Open: {
        std::string error;
        try {
          engines[h.id] = std::make_unique<Engine>(
              model, ctx, EngineOptions{.context = h.a, .sequences = h.b, .batch = h.c, .cache_type = static_cast<KvType>(h.d)});
        } catch (const std::exception& e) {
          error = e.what();
        }
        comm.agree(error);  // rank 0 throws if any rank failed, then closes nothing and quits
        break;
      }
      case Op::Step: {
        const int64_t T = h.a, n_seq = h.b;
        payload.resize(static_cast<size_t>(n_seq + T * kTokenFields));
        comm.broadcast(payload.data(), payload.size() * sizeof(int64_t));
        auto it = engines.find(h.id);
        if (it == engines.end()) throw Error("rank 0 ran a pass of engine " + std::to_string(h.id) + " that this rank never opened");
        Engine& s = *it->second;
        if (n_seq != s.sequences()) throw Error("rank 0's engine has " + std::to_string(n_seq) + " sequences, this rank's " +
                                                std::to_string(s.sequences()));
        for (int64_t q = 0; q < n_seq; ++q) s.set_length(static_cast<int32_t>(q), payload[static_cast<size_t>(q)]);
        batch.clear();
        const int64_t* t = payload.data() + n_seq;
        for (int64_t i = 0; i < T; ++i, t += kTokenFields)
          batch.add(static_cast<int32_t>(t[0]), static_cast<int32_t>(t[1]), t[2], t[3] != 0);
        logits.resize(static_cast<size_t>(std::max<int64_t>(1, batch.n_logits()) * model.config.vocab_size));
        s.forward(batch, logits.data());
        break;
      }
      case Op::Close:
        engines.erase(h.id);
        break;
      case Op::SavePrefix:
      case Op::LoadPrefix:
      case Op::DropPrefix: {
        auto it = engines.find(h.id);
        if (it == engines.end()) throw Error("rank 0 used a prompt-cache copy of engine " + std::to_string(h.id) +
                                             " that this rank never opened");
        const auto seq = static_cast<int32_t>(h.b);
        const Op op = static_cast<Op>(h.op);
        if (op == Op::SavePrefix) it->second->save_prefix(h.a, seq, h.c);
        if (op == Op::LoadPrefix) it->second->load_prefix(h.a, seq, h.c);
        if (op == Op::DropPrefix) it->second->drop_prefix(h.a);
        break;
      }
      case Op::Quit:
        return;
      default:
        throw Error("unknown message " + std::to_string(h.op) + " from rank 0 (groak versions differ between ranks?)");
    }
  }
}

}  // namespace groak
