#include "runtime/chat.h"

#include <algorithm>

namespace groak {

size_t reply_tokens(const Tokenizer& tok, int32_t before, const std::vector<int32_t>& gen, const std::string& shown) {
  const std::string base = tok.decode({before});
  for (size_t k = gen.size(); k > 0; --k) {
    std::vector<int32_t> ids{before};
    ids.insert(ids.end(), gen.begin(), gen.begin() + static_cast<long>(k));
    const std::string text = tok.decode(ids);
    if (text.compare(0, base.size(), base) != 0) continue;
    if (shown.compare(0, text.size() - base.size(), text, base.size()) == 0 && text.size() - base.size() <= shown.size())
      return k;
  }
  return 0;
}

Chat::Chat(Engine& engine, const Tokenizer& tok, const ChatTemplate& tmpl, std::string system)
    : engine_(engine),
      tok_(tok),
      tmpl_(tmpl),
      system_turn_(system.empty() ? "" : tmpl.prefix("system") + system + tmpl.suffix("system")),
      pending_(system_turn_) {}

void Chat::reset() {
  engine_.reset();
  pending_ = system_turn_;
  carry_.clear();
}

Chat::Reply Chat::reply(const std::string& user, const GenerateOptions& opt,
                        const std::function<void(const std::string&)>& on_text, const std::atomic<bool>* cancel) {
  std::vector<int32_t> ids = carry_;
  if (engine_.position() == 0 && ids.empty() && tmpl_.bos) ids.push_back(tok_.bos_id());
  for (int32_t id : tok_.encode(pending_ + tmpl_.prefix("user") + user + tmpl_.suffix("user") + tmpl_.generation))
    ids.push_back(id);
  Reply r;
  if (static_cast<int64_t>(ids.size()) >= engine_.context() - engine_.position()) {
    r.fits = false;
    return r;
  }
  GenerateOptions o = opt;
  o.stop.insert(o.stop.end(), tmpl_.stop.begin(), tmpl_.stop.end());
  const int64_t start = engine_.position() + static_cast<int64_t>(ids.size());
  std::string shown;
  bool started = false;
  r.stats = generate(engine_, tok_, ids, o, [&](const std::string& t) {
    shown += t;
    std::string text = t;
    if (!started) {  // the space after "Assistant:" belongs to the template
      text.erase(0, std::min(text.find_first_not_of(' '), text.size()));
      started = !text.empty();
    }
    if (!text.empty()) on_text(text);
  }, cancel);
  // Keep exactly the reply's tokens in the cache: drop a stop string's, and carry the last one if it
  // was never run through the model.
  const std::vector<int32_t>& gen = r.stats.tokens;
  const size_t keep = reply_tokens(tok_, ids.back(), gen, shown);
  const int64_t in_cache = engine_.position() - start;
  carry_.clear();
  if (static_cast<int64_t>(keep) <= in_cache)
    engine_.rewind(start + static_cast<int64_t>(keep));
  else
    carry_.assign(gen.begin() + in_cache, gen.begin() + static_cast<long>(keep));
  pending_ = tmpl_.suffix("assistant");
  return r;
}

}  // namespace groak
