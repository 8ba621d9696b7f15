// OpenAI's reply shapes for /v1/completions and /v1/chat/completions, built in one place for both the
// whole reply and the streamed chunks: a choice entry, the envelope around the choices, logprobs (the
// legacy completions shape and the chat shape), usage and groak's timings extension.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace groak {

// One choice of a generation being assembled (text, tokens for logprobs, finish).
struct Choice {
  std::shared_ptr<ServeJob> job;
  int index = 0;
  size_t prompt = 0;          // which prompt
  std::string text;           // generated text so far
  std::vector<TokenOut> tokens, prompt_tokens;
  bool finished = false;
  bool started = false;       // chat: the leading space of the reply has been dropped
};

// Takes a job's news into its choice. Returns the generated tokens that arrived (prompt tokens go to
// prompt_tokens); sets finished once the job is done.
std::vector<TokenOut> take(Choice& c, std::chrono::milliseconds timeout);
constexpr auto kPoll = std::chrono::milliseconds(100);  // how often a waiting handler looks again
// A finished job that did not produce its reply, as the error the client gets: 503 when the server is
// shutting down or cannot go on (a lost rank), 500 when generation failed. Returns for any other finish.
void throw_if_failed(const JobResult& r);
// A reply's id: the prefix ("chatcmpl-", "msg_", …) and 16 random hex digits.
std::string random_id(const char* prefix);
// Chat: drops the space a reply starts with after "Assistant:" (the template's own separator).
std::string chat_delta(Choice& c, std::string text);

class ReplyShape {
 public:
  ReplyShape(bool chat, std::string id, int64_t created, std::string model, const Tokenizer& tok)
      : chat_(chat), id_(std::move(id)), created_(created), model_(std::move(model)), tok_(tok) {}

  enum class Part { Whole, Chunk };
  // One entry of "choices". Chat: "message" (Whole) or "delta" (Chunk; no text = an empty delta, role =
  // the opening chunk); completions: "text" either way. finish: null while streaming.
  nlohmann::json choice(int index, Part part, const std::optional<std::string>& text, nlohmann::json logprobs,
                        const char* finish, bool role = false) const;
  // The object around the choices: id, object, created, model.
  nlohmann::json reply(nlohmann::json choices, Part part) const;
  // Logprobs of a run of tokens: chat {"content": [...]}, completions the legacy object whose text
  // offsets start at `offset`.
  nlohmann::json logprobs(const std::vector<TokenOut>& toks, size_t offset) const;
  // Completions with echo: the prompt's tokens, whose text offsets index `text` (the prompt as returned:
  // SentencePiece's dummy-prefix space of the first token is not in it), then the generated ones after it.
  nlohmann::json echo_logprobs(const std::vector<TokenOut>& prompt, const std::string& text,
                               const std::vector<TokenOut>& generated) const;
  bool chat() const { return chat_; }

 private:
  bool chat_;
  std::string id_;
  int64_t created_;
  std::string model_;
  const Tokenizer& tok_;
};

nlohmann::json usage(const std::vector<Choice>& choices, size_t n_prompts);
nlohmann::json timings(const std::vector<Choice>& choices);

}  // namespace groak
