// llama-server's own endpoints, for clients written against it: POST /completion (its request fields and
// reply: content, stop, timings; streamed as data: events without [DONE]), GET /props, GET /slots, and
// the embeddings endpoint both servers share (POST /v1/embeddings: OpenAI's shape).
#include <cmath>

#include "server/openai.h"
#include "server/openai_reply.h"
#include "server/server.h"
#include "server/transport.h"

namespace groak {

using nlohmann::json;

namespace {

// llama-server's stop_type: why generation ended.
const char* stop_type(const JobResult& r) {
  if (r.finish != FinishReason::Stop) return r.finish == FinishReason::Length ? "limit" : "none";
  return r.stop == StopReason::StopString ? "word" : "eos";
}

json generation_settings(const JobParams& p, int64_t context) {
  const SamplingParams& s = p.decode.sampling;
  return {{"n_ctx", context},           {"n_predict", p.decode.max_tokens}, {"temperature", s.temperature},
          {"top_k", s.top_k},           {"top_p", s.top_p},                 {"min_p", s.min_p},
          {"repeat_penalty", s.repeat_penalty}, {"repeat_last_n", s.repeat_last_n}, {"seed", s.seed},
          {"stop", p.decode.stop},      {"ignore_eos", p.decode.ignore_eos}};
}

}  // namespace

void HttpServer::props(const httplib::Request&, httplib::Response& res) {
  json out = {{"total_slots", opt_.scheduler.parallel}, {"model_path", opt_.model_id}, {"build_info", "groak 0.1"}};
  if (ready_) {
    JobParams defaults;
    out["default_generation_settings"] = generation_settings(defaults, scheduler_->context());
    out["default_generation_settings"]["n_predict"] = -1;
    const ChatTemplate& t = opt_.chat_template;
    out["chat_template"] = t.system + t.user + t.assistant + t.generation;
  }
  send_json(res, 200, out);
}

void HttpServer::slots(const httplib::Request&, httplib::Response& res) {
  require_ready();
  json out = json::array();
  for (const SlotInfo& s : scheduler_->stats().slots)
    out.push_back({{"id", s.id}, {"n_ctx", scheduler_->context()}, {"is_processing", std::string(s.state) != "idle"},
                   {"state", s.state}, {"n_past", s.cached_tokens}, {"n_prompt_tokens", s.prompt_tokens},
                   {"n_decoded", s.generated_tokens}});
  send_json(res, 200, out);
}

void HttpServer::completion(const httplib::Request& req, httplib::Response& res) {
  require_ready();
  json body = parse_body(req);
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  // Its fields in OpenAI's names; n_predict -1 (the default) runs to EOS or the end of the context.
  RequestLimits lim = limits();
  if (auto it = body.find("n_predict"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) throw ApiError(400, "n_predict must be an integer (-1 = until EOS)", "n_predict");
    if (it->get<int64_t>() >= 0) body["max_tokens"] = *it;
    body.erase("n_predict");
  }
  lim.max_tokens_room = !body.contains("max_tokens");
  for (const char* unsupported : {"n_probs"})
    if (body.contains(unsupported) && !body[unsupported].is_null() && body[unsupported] != 0)
      throw ApiError(400, std::string(unsupported) + " is not supported by groak's /completion", unsupported);
  for (const char* openai_only : {"n", "echo", "logprobs", "stream_options"}) body.erase(openai_only);
  GenerationRequest g = parse_generation_request(body, /*chat=*/false, *tok_, opt_.chat_template, lim);
  g.params.decode.grammar = constraint(ordered_body(req, body), std::nullopt);
  if (g.prompts.size() != 1) throw ApiError(400, "/completion takes one prompt; use /v1/completions for several", "prompt");
  auto choices = std::make_shared<std::vector<Choice>>(submit(g, res));
  const int64_t context = scheduler_->context();
  auto final_object = [choices, context, prompt = g.prompt_texts[0], model = opt_.model_id](const std::string& content) {
    Choice& c = (*choices)[0];
    const JobResult& r = c.job->result();
    json t = timings(*choices);
    return json{{"content", content},
                {"stop", true},
                {"model", model},
                {"prompt", prompt},
                {"tokens_predicted", r.completion_tokens},
                {"tokens_evaluated", r.prompt_tokens},
                {"tokens_cached", r.cached_tokens},
                {"stop_type", stop_type(r)},
                {"stopped_eos", r.stop == StopReason::Eos},
                {"stopped_word", r.stop == StopReason::StopString},
                {"stopped_limit", r.finish == FinishReason::Length},
                {"truncated", false},
                {"generation_settings", generation_settings(c.job->params(), context)},
                {"timings", t}};
  };
  if (!g.stream) {
    Choice& c = (*choices)[0];
    while (!c.finished)
      for (TokenOut& t : take(c, kPoll)) c.text += t.text;
    throw_if_failed(c.job->result());
    send_json(res, 200, final_object(c.text));
    return;
  }
  auto last_write = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  auto provider = [choices, final_object, last_write](size_t, httplib::DataSink& sink) -> bool {
    SseWriter sse(sink);
    Choice& c = (*choices)[0];
    for (TokenOut& t : take(c, kPoll)) {
      if (t.text.empty()) continue;
      *last_write = std::chrono::steady_clock::now();
      if (!sse.event(json{{"content", t.text}, {"stop", false}})) return false;
    }
    if (c.finished) {
      json last = final_object("");
      if (c.job->result().finish == FinishReason::Error) last["error"] = c.job->result().error;
      if (!sse.event(last)) return false;
      sink.done();  // llama-server ends the stream here (no [DONE])
      return true;
    }
    return sse.keep_alive(*last_write);
  };
  auto release = [choices](bool) {
    if (!(*choices)[0].job->done()) (*choices)[0].job->cancel();
  };
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", provider, release);
}

void HttpServer::embeddings(const httplib::Request& req, httplib::Response& res) {
  require_ready();
  const json body = parse_body(req);
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object {\"input\": ...}");
  auto it = body.find("input");
  if (it == body.end()) it = body.find("content");  // llama-server's name
  if (it == body.end() || it->is_null()) throw ApiError(400, "input is required: a string, strings or token ids", "input");
  if (auto f = body.find("encoding_format"); f != body.end() && !f->is_null() && *f != "float")
    throw ApiError(400, "encoding_format must be \"float\" (groak returns plain numbers)", "encoding_format");
  // The input in the completions' prompt shape: parse it the same way (strings, token ids, lists).
  json as_prompt = {{"prompt", *it}, {"max_tokens", 1}};
  RequestLimits lim = limits();
  lim.max_choices = opt_.scheduler.parallel + opt_.scheduler.queue;
  const GenerationRequest g = parse_generation_request(as_prompt, /*chat=*/false, *tok_, opt_.chat_template, lim);
  GenerationRequest e = g;
  e.params.embedding = true;
  std::vector<Choice> choices = submit(e, res);
  json data = json::array();
  int64_t tokens = 0;
  for (Choice& c : choices) {
    while (!c.finished) take(c, kPoll);
    const JobResult& r = c.job->result();
    throw_if_failed(r);
    if (r.finish != FinishReason::Stop) throw ApiError(503, "the embedding was not computed: " + (r.error.empty() ? std::string("the server is shutting down") : r.error), "", "server_error");
    data.push_back({{"object", "embedding"}, {"index", c.index}, {"embedding", r.embedding}});
    tokens += r.prompt_tokens;
  }
  send_json(res, 200, {{"object", "list"}, {"data", data}, {"model", opt_.model_id},
                       {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
}

}  // namespace groak
