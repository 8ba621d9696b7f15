// A conversation held in one engine's KV cache (`groak chat`): each user turn is rendered through the
// chat template and appended, the reply is generated after it, and exactly the reply's tokens stay in
// the cache, so the next turn continues without re-reading the history.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/chat_template.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"

namespace groak {

class Chat {
 public:
  // engine, tok and tmpl must outlive the chat. `system`: an opening system message (may be empty).
  Chat(Engine& engine, const Tokenizer& tok, const ChatTemplate& tmpl, std::string system);

  struct Reply {
    bool fits = true;     // false: the turn does not fit the context (nothing ran; reset() to go on)
    GenerateStats stats;  // of the reply
  };
  // One user turn. The reply streams through on_text without the template's separator space; it ends
  // at the template's stop strings as well as opt's. `cancel` stops it at the next token (what was
  // generated stays in the conversation).
  Reply reply(const std::string& user, const GenerateOptions& opt, const std::function<void(const std::string&)>& on_text,
              const std::atomic<bool>* cancel = nullptr);
  // Forgets the conversation (the system message opens the next turn again).
  void reset();

 private:
  Engine& engine_;
  const Tokenizer& tok_;
  const ChatTemplate& tmpl_;
  const std::string system_turn_;
  std::string pending_;         // text to feed before the next user turn
  std::vector<int32_t> carry_;  // reply tokens not yet in the cache
};

// How many of the generated tokens make up the reply that was shown (a stop string's tokens are not
// part of it). `before` is the token the reply follows, so its leading space survives decoding.
size_t reply_tokens(const Tokenizer& tok, int32_t before, const std::vector<int32_t>& generated, const std::string& shown);

}  // namespace groak
