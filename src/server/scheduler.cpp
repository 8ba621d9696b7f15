#include "server/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "runtime/follow.h"
#include "server/lookup.h"
#include "runtime/inspect_json.h"
#include "util/error.h"

namespace groak {

namespace {

// Prompt tokens whose logits one step may keep for prompt logprobs (echo + logprobs): bounds the logits
// buffer to (parallel + this) rows of the vocabulary.
constexpr int64_t kPromptLogitRows = 16;
// Shorter runs of tokens are not worth a prompt-cache entry (a copy, a lookup on every admission).
constexpr size_t kMinCachedPrompt = 32;
// Lookup decoding: steps a slot makes without guessing after its first guess missed.
constexpr int64_t kDraftRest = 8;
// Window of the tokens-per-second gauge.
constexpr double kRecentSeconds = 10.0;

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

int64_t checked_parallel(int parallel) {
  if (parallel < 1 || parallel > kMaxSequences)
    throw Error("--parallel must be in [1, " + std::to_string(kMaxSequences) + "], got " + std::to_string(parallel));
  return parallel;
}

int64_t checked_step_batch(const SchedulerOptions& opt) {
  if (opt.batch < 1 || opt.batch > kMaxProductRows)
    throw Error("--batch must be in [1, " + std::to_string(kMaxProductRows) + "], got " + std::to_string(opt.batch));
  if (opt.batch < opt.parallel)
    throw Error("--batch (" + std::to_string(opt.batch) + ") must hold at least one token per slot (--parallel " +
                std::to_string(opt.parallel) + ")");
  return opt.batch;
}

// How many leading tokens two sequences share.
size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

FinishReason finish_reason_of(StopReason r) {
  switch (r) {
    case StopReason::Eos:
    case StopReason::GrammarEnd:
    case StopReason::StopString: return FinishReason::Stop;
    case StopReason::MaxTokens:
    case StopReason::ContextFull: return FinishReason::Length;
    case StopReason::Cancelled: return FinishReason::Cancelled;
    case StopReason::Error: return FinishReason::Error;
  }
  return FinishReason::Error;
}

}  // namespace

// ---- Scheduler ----------------------------------------------------------------------------------------

Scheduler::Scheduler(const Model& model, const Tokenizer& tok, const SchedulerOptions& opt)
    : model_(model),
      tok_(tok),
      opt_(opt),
      engine_(model, EngineOptions{.context = opt.context,
                                   .sequences = checked_parallel(opt.parallel),
                                   .batch = checked_step_batch(opt),
                                   .cache_type = opt.cache_type,
                                   .threads = opt.threads,
                                   .kernels = opt.kernels}) {
  if (opt.chunk < 1) throw Error("--chunk must be >= 1, got " + std::to_string(opt.chunk));
  if (opt.queue < 0) throw Error("--queue must be >= 0, got " + std::to_string(opt.queue));
  check_tokenizer(tok, model.config);
  if (opt.spec_ngram < 0 || opt.draft_max < 1 || opt.draft_max > 64)
    throw Error("--spec-ngram must be >= 0 and --draft-max in [1, 64], got " + std::to_string(opt.spec_ngram) + " and " +
                std::to_string(opt.draft_max));
  const int64_t drafts = opt.spec_ngram > 0 ? opt.draft_max : 0;
  logits_.resize(static_cast<size_t>((opt.parallel * (1 + drafts) + kPromptLogitRows) * model.config.vocab_size));
  hidden_.resize(static_cast<size_t>((opt.parallel + kPromptLogitRows) * model.config.emb_size));
  slots_.resize(static_cast<size_t>(opt.parallel));
  for (int i = 0; i < opt.parallel; ++i) slots_[static_cast<size_t>(i)].seq = i;
  stats_.parallel = opt.parallel;
  stats_.context = engine_.context();
  stats_.kv_capacity = engine_.context() * opt.parallel;
  stats_.kv_bytes = engine_.cache().bytes();
  if (opt.cache_ram > 0) cache_.emplace(opt.cache_ram);
  stats_.prompt_cache_capacity = opt.cache_ram;
  publish_slots();
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  shutdown();
  thread_.join();
}

void Scheduler::shutdown() {
  std::deque<std::shared_ptr<ServeJob>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    dropped.swap(waiting_);
  }
  cv_.notify_all();
  for (auto& j : dropped) {
    JobResult r;
    r.finish = FinishReason::Cancelled;
    r.prompt_tokens = static_cast<int64_t>(j->params().prompt.size());
    j->finish(r);
  }
  // Jobs in slots are finished by the scheduler thread on its way out.
}

void Scheduler::abandon(const std::string& why) {
  std::vector<std::shared_ptr<ServeJob>> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (lost_.empty()) lost_ = why;  // from here on submit() refuses
    jobs.assign(waiting_.begin(), waiting_.end());
    waiting_.clear();
    jobs.insert(jobs.end(), running_.begin(), running_.end());
  }
  // Finished before the scheduler thread is told to stop: on its way out it would finish them as cancelled
  // (a job's first finish is its result).
  for (auto& j : jobs) {
    JobResult r;
    r.finish = FinishReason::Error;
    r.status = 503;
    r.error = why;
    r.prompt_tokens = static_cast<int64_t>(j->params().prompt.size());
    j->finish(r);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
}

std::string Scheduler::lost() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lost_;
}

void Scheduler::pause(bool paused) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = paused;
  }
  cv_.notify_all();
}

Scheduler::Submit Scheduler::submit(const std::vector<std::shared_ptr<ServeJob>>& jobs) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ || !lost_.empty()) return Submit::ShuttingDown;
    const int64_t pending = active_ + static_cast<int64_t>(waiting_.size());
    if (pending + static_cast<int64_t>(jobs.size()) > opt_.parallel + opt_.queue) return Submit::QueueFull;
    for (const auto& j : jobs) waiting_.push_back(j);
  }
  cv_.notify_all();
  return Submit::Ok;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SchedulerStats s = stats_;
  s.queued = static_cast<int64_t>(waiting_.size());
  s.busy_slots = active_;
  int64_t tokens = 0;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [t, n] : recent_)
    if (seconds(now - t) <= kRecentSeconds) tokens += n;
  s.recent_tokens_per_second = static_cast<double>(tokens) / kRecentSeconds;
  s.slots = slot_info_;
  return s;
}

void Scheduler::remember(const Slot& s, int64_t keep) {
  if (!cache_ || s.cached.size() < kMinCachedPrompt || cache_->covers(s.cached)) return;
  const auto n = static_cast<int64_t>(s.cached.size());
  std::vector<int64_t> dropped;
  const int64_t key = cache_->add(s.cached, engine_.prefix_bytes(n), dropped, keep);
  for (int64_t k : dropped) engine_.drop_prefix(k);
  if (key < 0) return;  // larger than the whole cache
  try {
    engine_.save_prefix(key, s.seq, n);
  } catch (const std::bad_alloc&) {  // no memory for the copy: serve on without it
    cache_->remove(key);
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.prompt_cache_saves;
}

void Scheduler::admit(Slot& s, std::shared_ptr<ServeJob> job) {
  const JobParams& p = job->params();
  // Reuse the cached prefix, but always run the last prompt token (its logits pick the first token).
  size_t reuse = std::min(common_prefix(s.cached, p.prompt), p.prompt.size() - 1);
  if (p.prompt_logprobs || p.embedding) reuse = 0;  // every prompt token's logits (or hidden state) are needed
  // A longer prefix from the prompt cache replaces the slot's; what the slot held beyond the part that
  // stays goes to the cache first.
  PromptCache::Hit hit;
  if (cache_ && !p.prompt_logprobs && !p.embedding) {
    hit = cache_->find(p.prompt);
    hit.tokens = std::min(hit.tokens, p.prompt.size() - 1);
  }
  const bool from_cache = hit.tokens > reuse && hit.tokens >= kMinCachedPrompt;
  if (s.cached.size() > (from_cache ? 0 : reuse)) remember(s, from_cache ? hit.key : -1);
  if (from_cache) {
    engine_.load_prefix(hit.key, s.seq, static_cast<int64_t>(hit.tokens));
    s.cached.assign(p.prompt.begin(), p.prompt.begin() + static_cast<std::ptrdiff_t>(hit.tokens));
    reuse = hit.tokens;
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.prompt_cache_hits;
    stats_.prompt_cache_hit_tokens += hit.tokens;
  }
  s.cached.resize(reuse);
  engine_.set_length(s.seq, static_cast<int64_t>(reuse));
  s.prompt_done = reuse;
  s.next = -1;
  s.draft.clear();
  s.draft_len = opt_.draft_max;
  s.decoder = std::make_unique<Decoder>(engine_, s.seq, tok_, p.decode, p.prompt);
  s.result = JobResult{};
  s.result.prompt_tokens = static_cast<int64_t>(p.prompt.size());
  s.result.cached_tokens = static_cast<int64_t>(reuse);
  s.result.queued_seconds = seconds(std::chrono::steady_clock::now() - job->created());
  s.prompt_lp.clear();
  s.embed_sum.assign(p.embedding ? static_cast<size_t>(model_.config.emb_size) : 0, 0.0);
  s.inspector.reset();
  if (p.inspect) {  // the reply's positions: the last prompt token's and each generated token's
    const auto prompt = static_cast<int64_t>(p.prompt.size());
    const int64_t positions =
        p.decode.max_tokens < 0 ? engine_.context() : std::min(prompt + p.decode.max_tokens, engine_.context());
    s.inspector = std::make_unique<Inspector>(
        engine_.ctx(), model_,
        InspectOptions{.positions = positions, .seq = s.seq, .lens_top = kServeLensTop,
                       .lens_from = prompt - 1, .attention = false});
  }
  if (p.prompt_logprobs) {
    s.prompt_lp.assign(p.prompt.size(), TokenOut{});
    for (size_t i = 0; i < p.prompt.size(); ++i) {
      s.prompt_lp[i].id = p.prompt[i];
      s.prompt_lp[i].prompt = true;
    }
    s.prompt_lp[0].has_logprob = false;
  }
  s.admitted = ++admissions_;
  s.last_used = ++uses_;
  s.t_admit = std::chrono::steady_clock::now();
  s.job = std::move(job);
  s.state = SlotState::Prompt;
}

void Scheduler::finish(Slot& s, FinishReason r, const std::string& error) {
  if (r != FinishReason::Cancelled && r != FinishReason::Error && s.decoder) {
    // Whatever the stream still holds belongs to the reply (the decoder knows when it does not).
    if (std::string rest = s.decoder->finish_text(); !rest.empty()) {
      TokenOut t;
      t.text = std::move(rest);
      s.job->emit(std::move(t));
    }
  }
  const auto now = std::chrono::steady_clock::now();
  s.result.finish = r;
  s.result.error = error;
  s.inspector.reset();
  if (s.result.completion_tokens > 0) {
    s.result.prompt_seconds = seconds(s.t_first - s.t_admit);
    s.result.decode_seconds = seconds(now - s.t_first);
  } else {
    s.result.prompt_seconds = seconds(now - s.t_admit);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase(running_, s.job);
    --active_;
    ++stats_.finished[static_cast<int>(r)];
  }
  s.job->finish(std::move(s.result));
  s.job.reset();
  s.decoder.reset();
  s.next = -1;
  s.state = SlotState::Free;
  std::lock_guard<std::mutex> lock(mu_);
  publish_slots();
}

TokenOut Scheduler::logprobs_of(const float* logits, int32_t id, int top) const {
  Logprobs lp = token_logprobs(logits, model_.config.vocab_size, id, top);
  TokenOut t;
  t.id = id;
  t.logprob = lp.logprob;
  t.top = std::move(lp.top);
  return t;
}

void Scheduler::sample_row(Slot& s, const float* logits) {
  const JobParams& p = s.job->params();
  Decoder& dec = *s.decoder;
  const Decoder::Token d = dec.next(logits);
  if (s.result.completion_tokens == 0) s.t_first = std::chrono::steady_clock::now();
  if (d.id >= 0) {
    TokenOut t = p.top_logprobs >= 0 ? logprobs_of(logits, d.id, p.top_logprobs) : TokenOut{};
    if (s.inspector) {
      const int64_t at = engine_.position(s.seq) - 1;  // the position whose logits chose d.id
      t.inspect = inspect_token_json(*s.inspector, at, [&](int32_t id) { return tok_.piece(id); });
    }
    t.id = d.id;
    t.text = d.text;
    ++s.result.completion_tokens;
    ++step_tokens_;
    s.job->emit(std::move(t));
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.generated_tokens;
  }
  if (dec.done()) {
    s.result.stop = dec.reason();
    s.result.stop_string = dec.stop_string();
    finish(s, finish_reason_of(dec.reason()), dec.error());
  } else {
    s.next = d.id;
    s.state = SlotState::Decoding;
  }
}

void Scheduler::verify_draft(Slot& s, const float* draft_logits) {
  const int64_t V = model_.config.vocab_size;
  size_t kept = 0;
  while (kept < s.draft.size() && s.job && s.next == s.draft[kept]) {
    s.cached.push_back(s.draft[kept]);  // its K/V, written by this pass, stay
    sample_row(s, draft_logits + static_cast<int64_t>(kept) * V);
    ++kept;
  }
  engine_.rewind(static_cast<int64_t>(s.cached.size()), s.seq);  // the guesses that did not hold
  // Guess more while guesses hold; after a miss as many as held; none after a miss of the first (a
  // guess costs a row of the pass, and on a mixture of experts its own experts' weights), until
  // kDraftRest steps have passed.
  s.draft_len = kept == s.draft.size() ? std::min<int64_t>(opt_.draft_max, 2 * s.draft_len) : static_cast<int64_t>(kept);
  s.draft_rest = s.draft_len == 0 ? kDraftRest : 0;
  std::lock_guard<std::mutex> lock(mu_);
  stats_.drafted_tokens += s.draft.size();
  stats_.accepted_tokens += kept;
  s.draft.clear();
}

void Scheduler::embed_row(Slot& s, const float* hidden, bool last) {
  const int64_t d = model_.config.emb_size;
  for (int64_t i = 0; i < d; ++i) s.embed_sum[static_cast<size_t>(i)] += hidden[i];
  if (!last) return;
  // Mean over the prompt's tokens, then unit length (what OpenAI's and llama-server's embeddings return).
  double norm = 0;
  for (double v : s.embed_sum) norm += v * v;
  norm = std::sqrt(norm);
  s.result.embedding.resize(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i)
    s.result.embedding[static_cast<size_t>(i)] = static_cast<float>(norm > 0 ? s.embed_sum[static_cast<size_t>(i)] / norm : 0.0);
  finish(s, FinishReason::Stop);
}

void Scheduler::step() {
  const int64_t V = model_.config.vocab_size;
  batch_.clear();
  rows_.clear();
  step_tokens_ = 0;
  int64_t n_decode = 0;
  int sequences = 0;
  int64_t decoding = 0;
  for (const Slot& s : slots_) decoding += s.state == SlotState::Decoding;
  for (Slot& s : slots_) {
    if (s.state != SlotState::Decoding) continue;
    const int64_t pos = engine_.position(s.seq);
    batch_.add(s.next, s.seq, pos, true);
    s.cached.push_back(s.next);
    s.next = -1;
    rows_.push_back({&s, RowKind::Sample, 0});
    ++n_decode;
    ++sequences;
    // Lookup decoding: guesses after `next`, within the context, the tokens the job may still generate and
    // the pass (a token kept for every slot still to come).
    s.draft.clear();
    if (s.draft_len == 0 && --s.draft_rest <= 0) s.draft_len = 1;
    if (opt_.spec_ngram > 0 && !s.inspector && s.draft_len > 0) {
      const DecodeOptions& d = s.job->params().decode;
      int64_t room = std::min({s.draft_len, engine_.context() - pos - 1,
                               engine_.batch() - batch_.size() - (decoding - n_decode)});
      if (d.max_tokens >= 0) room = std::min(room, d.max_tokens - s.result.completion_tokens - 1);
      s.draft = lookup_draft(s.cached, opt_.spec_ngram, room);
      for (size_t i = 0; i < s.draft.size(); ++i) {
        batch_.add(s.draft[i], s.seq, pos + 1 + static_cast<int64_t>(i), true);
        rows_.push_back({&s, RowKind::Draft, i});
      }
    }
  }
  // Prompts, first come first served, in what is left of this step's budget.
  std::vector<Slot*> reading;
  for (Slot& s : slots_)
    if (s.state == SlotState::Prompt) reading.push_back(&s);
  std::sort(reading.begin(), reading.end(), [](const Slot* a, const Slot* b) { return a->admitted < b->admitted; });
  int64_t budget = std::min(n_decode > 0 ? opt_.chunk : opt_.batch, engine_.batch() - batch_.size());
  int64_t logit_rows_left = kPromptLogitRows;
  uint64_t evaluated = 0;
  for (Slot* s : reading) {
    if (budget <= 0) break;
    const JobParams& p = s->job->params();
    const bool every_row = p.prompt_logprobs || p.embedding;  // rows kept for all prompt tokens
    int64_t n = std::min(static_cast<int64_t>(p.prompt.size() - s->prompt_done), budget);
    if (every_row) n = std::min(n, logit_rows_left);
    if (n <= 0) continue;
    for (int64_t i = 0; i < n; ++i) {
      const size_t at = s->prompt_done + static_cast<size_t>(i);
      const bool last = at + 1 == p.prompt.size();
      batch_.add(p.prompt[at], s->seq, engine_.position(s->seq) + i, last || every_row);
      if (p.embedding)
        rows_.push_back({s, RowKind::Embed, at});
      else if (last)
        rows_.push_back({s, RowKind::Sample, at});
      else if (p.prompt_logprobs)
        rows_.push_back({s, RowKind::PromptLogprob, at});
      s->cached.push_back(p.prompt[at]);
    }
    if (every_row) logit_rows_left -= n;
    s->prompt_done += static_cast<size_t>(n);
    budget -= n;
    evaluated += static_cast<uint64_t>(n);
    ++sequences;
  }
  if (batch_.size() == 0) return;

  const auto t0 = std::chrono::steady_clock::now();
  const bool any_embedding = std::any_of(rows_.begin(), rows_.end(), [](const Row& r) { return r.kind == RowKind::Embed; });
  probes_.probes.clear();
  for (Slot& s : slots_)
    if (s.inspector && s.state != SlotState::Free) probes_.probes.push_back(s.inspector.get());
  engine_.probe(probes_.probes.empty() ? nullptr : &probes_);
  engine_.forward(batch_, logits_.data(), any_embedding ? hidden_.data() : nullptr);
  for (size_t r = 0; r < rows_.size(); ++r) {
    const Row& row = rows_[r];
    Slot& s = *row.slot;
    const float* lg = logits_.data() + static_cast<int64_t>(r) * V;
    if (row.kind == RowKind::Draft) continue;  // read with the row of its slot's `next`
    if (!s.job) continue;  // finished by an earlier row of this step (cannot happen: one Sample row per slot)
    if (row.kind == RowKind::Embed) {
      embed_row(s, hidden_.data() + static_cast<int64_t>(r) * model_.config.emb_size,
                row.prompt_index + 1 == s.job->params().prompt.size());
    } else if (row.kind == RowKind::PromptLogprob) {
      const JobParams& p = s.job->params();
      const int32_t id = p.prompt[row.prompt_index + 1];
      TokenOut& t = s.prompt_lp[row.prompt_index + 1];
      t = logprobs_of(lg, id, std::max(p.top_logprobs, 0));
      t.prompt = true;
    } else {
      for (TokenOut& t : s.prompt_lp) s.job->emit(std::move(t));  // the prompt's logprobs come first
      s.prompt_lp.clear();
      sample_row(s, lg);
      if (!s.draft.empty()) verify_draft(s, lg + V);  // its draft's rows follow this one
    }
  }
  const auto t1 = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.steps;
  if (sequences >= 2) ++stats_.batched_steps;
  stats_.max_sequences_in_step = std::max(stats_.max_sequences_in_step, sequences);
  stats_.step_seconds += seconds(t1 - t0);
  stats_.prompt_tokens_evaluated += evaluated;
  recent_.push_back({t1, step_tokens_});
  while (!recent_.empty() && seconds(t1 - recent_.front().first) > kRecentSeconds) recent_.pop_front();
  int64_t used = 0;
  for (const Slot& s : slots_)
    if (s.job) used += engine_.position(s.seq);
  stats_.kv_used = used;
  if (cache_) {
    stats_.prompt_cache_bytes = cache_->bytes();
    stats_.prompt_cache_entries = cache_->entries();
  }
  publish_slots();
}

void Scheduler::publish_slots() {  // under mu_
  slot_info_.resize(slots_.size());
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    SlotInfo& o = slot_info_[i];
    o.id = s.seq;
    o.state = s.state == SlotState::Free ? "idle" : s.state == SlotState::Prompt ? "prompt" : "generating";
    o.cached_tokens = static_cast<int64_t>(s.cached.size());
    o.prompt_tokens = s.job ? static_cast<int64_t>(s.job->params().prompt.size()) : 0;
    o.generated_tokens = s.job ? s.result.completion_tokens : 0;
  }
}

void Scheduler::loop() {
  for (;;) {
    std::vector<std::shared_ptr<ServeJob>> incoming;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || (!paused_ && (active_ > 0 || !waiting_.empty())); });
      if (stop_) break;
      // Admit waiting jobs into free slots (cancelled ones are dropped on the way).
      int64_t free = opt_.parallel - active_;
      while (free > 0 && !waiting_.empty()) {
        running_.push_back(waiting_.front());
        incoming.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
        --free;
        ++active_;
      }
    }
    for (auto& job : incoming) {
      if (job->cancelled()) {
        std::lock_guard<std::mutex> lock(mu_);
        std::erase(running_, job);
        --active_;
        ++stats_.finished[static_cast<int>(FinishReason::Cancelled)];
        JobResult r;
        r.finish = FinishReason::Cancelled;
        r.prompt_tokens = static_cast<int64_t>(job->params().prompt.size());
        job->finish(r);
        continue;
      }
      // The free slot whose cache shares the longest prefix with the prompt; else the least recently used.
      Slot* best = nullptr;
      size_t best_common = 0;
      for (Slot& s : slots_) {
        if (s.state != SlotState::Free) continue;
        const size_t common = common_prefix(s.cached, job->params().prompt);
        if (!best || common > best_common || (common == best_common && s.last_used < best->last_used)) {
          best = &s;
          best_common = common;
        }
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.prompt_tokens += job->params().prompt.size();
      }
      admit(*best, std::move(job));
    }
    for (Slot& s : slots_)
      if (s.state != SlotState::Free && s.job->cancelled()) finish(s, FinishReason::Cancelled);
    try {
      step();
    } catch (const PassFailed& e) {  // the other ranks cannot finish this pass: the group is gone
      std::fprintf(stderr, "groak serve: %s\n", e.what());
      abandon(std::string("the server lost a rank of its tensor-parallel group (") + e.what() + "); it is stopping");
      return;  // the engine's cache no longer matches the other ranks': nothing more can run
    } catch (const std::exception& e) {  // bad_alloc and the like: fail the running jobs, keep serving
      std::fprintf(stderr, "groak serve: step failed: %s\n", e.what());
      for (Slot& s : slots_) {
        if (s.state == SlotState::Free) continue;
        finish(s, FinishReason::Error, e.what());
        s.cached.clear();
        engine_.reset(s.seq);
      }
    }
  }
  for (Slot& s : slots_)
    if (s.state != SlotState::Free) finish(s, FinishReason::Cancelled);
}

}  // namespace groak
