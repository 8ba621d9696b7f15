// Continuous batching (llama.cpp's server slots, vLLM's scheduler): one thread owns the model and runs
// steps; each step is ONE forward pass holding one decode token for every slot that is generating plus a
// bounded chunk of a prompt still being read, so the weights are read once for every sequence and a long
// prompt never stalls the others for more than a chunk. Requests wait in a bounded queue for a free slot.
// A slot keeps its KV cache after its request ends; a new request whose prompt starts with those tokens
// reuses them (prefix reuse); what a slot held is kept in the prompt cache when a request takes the
// slot over, for any later prompt that starts with it. With lookup decoding a decoding slot also runs
// guesses at its next tokens in the same pass and keeps those it would have sampled. Kernels are batch-invariant (perf.md), so a request's greedy text does not
// depend on who else is served.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/decoder.h"
#include <nlohmann/json.hpp>

#include "runtime/engine.h"
#include "runtime/inspect.h"
#include "sampling/logprobs.h"
#include "server/prompt_cache.h"
#include "tokenizer/tokenizer.h"

namespace groak {

// One generated token, or (id < 0) text released at the end with no token of its own, or (prompt) a
// prompt token with its logprob (echo + logprobs; all of them come before the first generated token).
struct TokenOut {
  int32_t id = -1;
  std::string text;               // text released with this token (stop strings hold text back)
  float logprob = 0;              // of `id`, when the job asked for logprobs
  std::vector<TokenLogprob> top;  // the most likely tokens, most likely first
  bool prompt = false;
  bool has_logprob = true;        // false for the first prompt token (nothing predicts it)
  // The inspect extension (JobParams::inspect): the pass that chose this token — the experts and gates of
  // every layer at the position it was predicted from, and the logit lens there (runtime/inspect_json.h).
  nlohmann::json inspect;
};

// Logit-lens tokens per layer in the inspect extension.
inline constexpr int64_t kServeLensTop = 5;

enum class FinishReason { Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

// OpenAI's default for /v1/completions: 16 tokens.
inline DecodeOptions default_job_decode() {
  DecodeOptions d;
  d.max_tokens = 16;
  return d;
}

struct JobParams {
  std::vector<int32_t> prompt;  // [1, context] ids in [0, vocab) (the HTTP layer checks)
  DecodeOptions decode = default_job_decode();  // max_tokens >= 1, prompt + max_tokens <= context
  int top_logprobs = -1;        // -1: none; N >= 0: the chosen token's logprob and the N most likely
  bool prompt_logprobs = false; // also the logprob of every prompt token after the first (echo)
  bool embedding = false;       // no generation: the mean of the prompt's final hidden states (JobResult)
  bool inspect = false;         // each generated token carries TokenOut::inspect (routing, logit lens)
};

struct JobResult {
  FinishReason finish = FinishReason::Stop;
  StopReason stop = StopReason::MaxTokens;  // in detail: EOS, a stop string, the token limit, the context
  std::string stop_string;              // StopReason::StopString: the one that appeared
  std::string error;                    // for FinishReason::Error
  int status = 500;                     // the HTTP status of an error: 503 when the server cannot go on
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;            // prompt tokens whose KV came from the slot's previous request
  int64_t completion_tokens = 0;
  double queued_seconds = 0, prompt_seconds = 0, decode_seconds = 0;
  std::vector<float> embedding;         // an embedding job: [d], the L2-normalised mean over the prompt
};

// A request for one sequence. The HTTP thread creates it, submits it and reads its tokens; the
// scheduler thread fills it. Thread-safe.
class ServeJob {
 public:
  explicit ServeJob(JobParams p) : params_(std::move(p)), created_(std::chrono::steady_clock::now()) {}
  const JobParams& params() const { return params_; }

  // Consumer: the client is gone; the scheduler frees the slot at its next step.
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  // Consumer: waits up to `timeout` for news, appends new tokens to `out` and returns true once the job
  // has finished (then result() is final and every token has been handed out).
  bool wait(std::vector<TokenOut>& out, std::chrono::milliseconds timeout);
  bool done() const;
  const JobResult& result() const { return result_; }  // after wait() returned true

  // Producer (the scheduler thread; finish also Scheduler::abandon). The first finish is the result;
  // later emits and finishes are ignored.
  void emit(TokenOut t);
  void finish(JobResult r);
  std::chrono::steady_clock::time_point created() const { return created_; }

 private:
  const JobParams params_;
  const std::chrono::steady_clock::time_point created_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<TokenOut> pending_;
  bool done_ = false;
  JobResult result_;
};

struct SchedulerOptions {
  int parallel = 4;            // slots: sequences decoded together
  int64_t context = 0;         // positions per slot; 0 = the model's sequence_len
  int queue = 32;              // requests that may wait for a slot beyond the busy ones
  int threads = 0;             // compute threads; 0 = every core
  int64_t batch = 512;         // tokens per step at most (a prompt read while nobody decodes)
  int64_t chunk = 64;          // prompt tokens per step while other slots decode
  KvType cache_type = KvType::F32;
  const Kernels* kernels = nullptr;  // null = the fastest for this CPU
  uint64_t cache_ram = 0;      // bytes of the prompt cache (server/prompt_cache.h); 0 = off
  int spec_ngram = 0;          // lookup decoding (server/lookup.h): n-gram length to look up; 0 = off
  int draft_max = 8;           // draft tokens per slot and step at most
};

// One slot as /slots shows it.
struct SlotInfo {
  int id = 0;
  const char* state = "idle";  // "idle", "prompt" (reading it), "generating"
  int64_t cached_tokens = 0;   // tokens in its KV cache (kept after a request for prefix reuse)
  int64_t prompt_tokens = 0, generated_tokens = 0;  // of the request it runs
};

struct SchedulerStats {
  int parallel = 0;
  int64_t context = 0;
  int64_t queued = 0;                   // waiting for a slot
  int64_t busy_slots = 0;
  int64_t kv_used = 0, kv_capacity = 0; // positions holding a request's tokens, all positions
  uint64_t kv_bytes = 0;                // the whole cache, allocated up front
  uint64_t prompt_tokens = 0;           // prompt tokens of finished and running jobs
  uint64_t prompt_tokens_evaluated = 0; // of those, run through the model (the rest were reused)
  uint64_t generated_tokens = 0;
  uint64_t steps = 0, batched_steps = 0;  // forward passes; those holding 2+ sequences
  uint64_t finished[4] = {0, 0, 0, 0};    // jobs by FinishReason
  double step_seconds = 0;                // time spent in forward passes and sampling
  double recent_tokens_per_second = 0;    // generated tokens per second over the last 10 s
  int max_sequences_in_step = 0;
  // The prompt cache: its bound and use, entries saved, and prompts that took a prefix from it.
  uint64_t prompt_cache_capacity = 0, prompt_cache_bytes = 0, prompt_cache_entries = 0;
  uint64_t prompt_cache_saves = 0, prompt_cache_hits = 0, prompt_cache_hit_tokens = 0;
  uint64_t drafted_tokens = 0, accepted_tokens = 0;  // lookup decoding: guesses run, and kept
  std::vector<SlotInfo> slots;
};

class Scheduler {
 public:
  // The model and tokenizer must outlive the scheduler. Throws groak::Error for bad options or a tokenizer
  // of another vocabulary.
  Scheduler(const Model& model, const Tokenizer& tok, const SchedulerOptions& opt);
  ~Scheduler();  // finishes every job as cancelled and joins the thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  enum class Submit { Ok, QueueFull, ShuttingDown };
  // All of the jobs (the n choices of one request) or none: QueueFull when busy slots + waiting jobs
  // would exceed parallel + queue.
  Submit submit(const std::vector<std::shared_ptr<ServeJob>>& jobs);
  SchedulerStats stats() const;
  int parallel() const { return opt_.parallel; }
  int64_t context() const { return engine_.context(); }
  uint64_t kv_bytes() const { return engine_.cache().bytes(); }
  // Holds steps and admissions (tests use it to fill the queue deterministically).
  void pause(bool paused);
  // Finishes every job as cancelled; later submissions get ShuttingDown.
  void shutdown();
  // The server cannot go on (a rank of a sharded model is gone, or the job is ending): every job, waiting
  // or running, finishes now as an error with status 503 and `why`, from any thread and without waiting
  // for the scheduler thread (which may be stuck in a pass the other ranks never finish); later
  // submissions get ShuttingDown. The scheduler thread calls it itself when a pass fails on a group.
  void abandon(const std::string& why);
  // Why the server was abandoned; empty while it serves.
  std::string lost() const;

 private:
  // A slot is one sequence of the engine. Free: no request (its cache may still serve a prefix);
  // Prompt: reading the prompt, a chunk per step; Decoding: one token per step.
  enum class SlotState : uint8_t { Free, Prompt, Decoding };
  struct Slot {
    int32_t seq = 0;
    SlotState state = SlotState::Free;
    std::shared_ptr<ServeJob> job;      // null when Free
    std::vector<int32_t> cached;        // tokens whose K/V are in the cache, == the sequence's length
    size_t prompt_done = 0;             // prompt tokens in the cache
    int32_t next = -1;                  // Decoding: sampled, not yet run through the model
    std::vector<int32_t> draft;         // this step's guesses after `next` (lookup decoding)
    int64_t draft_len = 0;              // how many to guess next time (grows while guesses hold)
    int64_t draft_rest = 0;             // steps left without guessing (draft_len 0)
    std::unique_ptr<Decoder> decoder;   // while the slot holds a job
    JobResult result;
    std::vector<TokenOut> prompt_lp;    // [prompt] logprobs of the prompt tokens (echo + logprobs)
    std::vector<double> embed_sum;      // [d] an embedding job's sum of hidden states so far
    std::unique_ptr<Inspector> inspector;  // an inspect job's recorder (routing and logit lens, no attention)
    uint64_t admitted = 0;              // admission order (prompts are read first come, first served)
    uint64_t last_used = 0;
    std::chrono::steady_clock::time_point t_admit, t_first;
  };
  enum class RowKind : uint8_t { Sample, PromptLogprob, Embed, Draft };
  struct Row {
    Slot* slot;
    RowKind kind;
    size_t prompt_index;  // PromptLogprob: the row predicts prompt[prompt_index + 1]
  };

  void loop();
  void admit(Slot& s, std::shared_ptr<ServeJob> job);  // scheduler thread
  // The slot's cached tokens into the prompt cache, unless it holds them; `keep`: an entry not to evict.
  void remember(const Slot& s, int64_t keep = -1);
  void step();
  void sample_row(Slot& s, const float* logits);
  // After the row of `next` was sampled: keeps the draft tokens the sampler picked in turn, each one's
  // row sampled for the token after it, and forgets the rest of the draft's cache positions.
  void verify_draft(Slot& s, const float* draft_logits);
  void embed_row(Slot& s, const float* hidden, bool last);
  void publish_slots();  // slot_info_ from slots_ (holding mu_)
  void finish(Slot& s, FinishReason r, const std::string& error = {});
  TokenOut logprobs_of(const float* logits, int32_t id, int top) const;

  const Model& model_;
  const Tokenizer& tok_;
  const SchedulerOptions opt_;
  Engine engine_;
  Batch batch_;
  std::vector<Row> rows_;
  std::vector<float> logits_;  // [parallel + kPromptLogitRows, vocab]
  std::vector<float> hidden_;  // [parallel + kPromptLogitRows, d] (embedding jobs)
  std::vector<Slot> slots_;
  ProbeFanout probes_;         // the inspectors of this step's slots
  std::optional<PromptCache> cache_;  // --cache-ram; the engine holds the copies
  uint64_t admissions_ = 0, uses_ = 0;
  int64_t step_tokens_ = 0;  // tokens generated by the current step

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<std::shared_ptr<ServeJob>> waiting_;
  std::vector<std::shared_ptr<ServeJob>> running_;  // taken from waiting_, not finished yet (abandon() ends them)
  std::string lost_;       // abandon()'s reason
  int64_t active_ = 0;     // slots holding a job
  bool paused_ = false, stop_ = false;
  SchedulerStats stats_;
  std::vector<SlotInfo> slot_info_;  // the slots as of the last step
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> recent_;  // (step end, tokens)
  std::thread thread_;
};

}  // namespace groak
