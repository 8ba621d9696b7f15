// POST /v1/completions and /v1/chat/completions: a parsed request becomes jobs for the scheduler, and
// their tokens become one reply or a stream of chunks (OpenAI's shapes: openai_reply.h).
#include <thread>

#include "server/openai.h"
#include "server/openai_reply.h"
#include "server/server.h"
#include "server/transport.h"

namespace groak {

using nlohmann::json;

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The inspect extension of a run of tokens: {"tokens": [{"id", "text", "position", "experts": [layer][k],
// "gates": [layer][k], "lens": [{"layer", "ids", "pieces", "probs"}]}]}, the routing and logit lens of the
// position each token was chosen from.
json inspect_of(const std::vector<TokenOut>& toks) {
  json out = json::array();
  for (const TokenOut& t : toks) {
    if (t.inspect.is_null()) continue;
    json e = t.inspect;
    e["id"] = t.id;
    e["text"] = t.text;
    out.push_back(std::move(e));
  }
  return {{"tokens", out}};
}

// A reply's calls in OpenAI's shape: [{"id", "type": "function", "function": {"name", "arguments"}}], with
// "index" when streamed.
json tool_calls_json(const std::vector<json>& calls, bool streamed) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c = {{"id", random_id("call_")}, {"type", "function"}, {"function", calls[i]}};
    if (streamed) c["index"] = i;
    out.push_back(std::move(c));
  }
  return out;
}

// The whole reply, once every choice has finished.
json whole_reply(const ReplyShape& shape, const GenerationRequest& g, std::vector<Choice>& choices) {
  for (Choice& c : choices) {
    while (!c.finished) {
      for (TokenOut& t : take(c, kPoll)) {
        c.text += shape.chat() ? chat_delta(c, t.text) : t.text;
        if (t.id >= 0) c.tokens.push_back(std::move(t));
      }
    }
    throw_if_failed(c.job->result());
  }
  json out = json::array();
  for (Choice& c : choices) {
    const char* finish = finish_reason_name(c.job->result().finish);
    json lp = nullptr;
    std::string text = c.text;
    if (!shape.chat() && g.echo) text = g.prompt_texts[c.prompt] + text;
    if (g.logprobs)
      lp = !shape.chat() && g.echo ? shape.echo_logprobs(c.prompt_tokens, g.prompt_texts[c.prompt], c.tokens)
                                   : shape.logprobs(c.tokens, 0);
    ToolReply calls;
    if (g.tools) {  // the reply's calls come out of its text
      calls = split_tool_calls(text);
      text = calls.content;
    }
    json choice = shape.choice(c.index, ReplyShape::Part::Whole, text, lp, finish);
    if (!calls.calls.empty()) {
      choice["message"]["tool_calls"] = tool_calls_json(calls.calls, false);
      if (text.empty()) choice["message"]["content"] = nullptr;
      choice["finish_reason"] = "tool_calls";
    }
    if (g.params.inspect) choice["inspect"] = inspect_of(c.tokens);
    out.push_back(std::move(choice));
  }
  json reply = shape.reply(out, ReplyShape::Part::Whole);
  reply["usage"] = usage(choices, g.prompts.size());
  reply["timings"] = timings(choices);
  return reply;
}

// A streaming response's state, shared with the content provider that httplib calls until it says done.
struct Stream {
  ReplyShape shape;
  GenerationRequest g;
  std::vector<Choice> choices;
  std::vector<ToolCallStream> tool_streams;  // [choices] with tools: text is held while it may open a call
  bool opened = false;
  std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();

  // Writes what is new; false when the client is gone. Sets *done after [DONE].
  bool pump(SseWriter& sse, bool* done);
};

bool Stream::pump(SseWriter& sse, bool* done) {
  using Part = ReplyShape::Part;
  auto send = [&](json choice) {
    last_write = std::chrono::steady_clock::now();
    return sse.event(shape.reply(json::array({std::move(choice)}), Part::Chunk));
  };
  if (!opened) {  // chat: the role first; completions with echo: the prompt first (unless its logprobs must come)
    opened = true;
    for (Choice& c : choices) {
      if (shape.chat()) {
        if (!send(shape.choice(c.index, Part::Chunk, std::nullopt, nullptr, nullptr, /*role=*/true))) return false;
      } else if (g.echo && !g.logprobs) {
        if (!send(shape.choice(c.index, Part::Chunk, g.prompt_texts[c.prompt], nullptr, nullptr))) return false;
      }
    }
  }
  bool all_done = true, any_news = false;
  std::vector<json> finishes;  // sent after the loop: the last one carries the timings
  for (Choice& c : choices) {
    if (c.finished) continue;
    const auto timeout = choices.size() == 1 ? kPoll : std::chrono::milliseconds(0);
    const size_t had_prompt = c.prompt_tokens.size();
    std::vector<TokenOut> toks = take(c, timeout);
    if (!shape.chat() && g.echo && g.logprobs && had_prompt == 0 && !c.prompt_tokens.empty()) {
      any_news = true;
      const std::string& text = g.prompt_texts[c.prompt];
      if (!send(shape.choice(c.index, Part::Chunk, text, shape.echo_logprobs(c.prompt_tokens, text, {}), nullptr)))
        return false;
    }
    for (TokenOut& t : toks) {
      any_news = true;
      std::string text = shape.chat() ? chat_delta(c, t.text) : t.text;
      if (g.tools) {
        text = tool_streams[static_cast<size_t>(c.index)].push(text);
        if (text.empty() && !g.logprobs) continue;  // held back (a call being written): nothing to send yet
      }
      if (t.id < 0 && text.empty()) continue;
      json lp = nullptr;
      // Offsets index the whole text the client assembles: the echoed prompt, then the completion.
      const size_t before = (!shape.chat() && g.echo ? g.prompt_texts[c.prompt].size() : 0) + c.text.size();
      if (g.logprobs && t.id >= 0) lp = shape.logprobs({t}, before);
      c.text += text;
      json choice = shape.choice(c.index, Part::Chunk, text, lp, nullptr);
      if (g.params.inspect && t.id >= 0) choice["inspect"] = inspect_of({t});
      if (!send(std::move(choice))) return false;
    }
    if (c.finished) {
      any_news = true;
      const JobResult& r = c.job->result();
      const char* finish = finish_reason_name(r.finish);
      if (g.tools) {  // held text, then the calls in one delta
        auto [rest, calls] = tool_streams[static_cast<size_t>(c.index)].end();
        if (!rest.empty()) {
          c.text += rest;
          if (!send(shape.choice(c.index, Part::Chunk, rest, nullptr, nullptr))) return false;
        }
        if (!calls.empty()) {
          json delta = shape.choice(c.index, Part::Chunk, std::nullopt, nullptr, nullptr);
          delta["delta"]["tool_calls"] = tool_calls_json(calls, true);
          if (!send(std::move(delta))) return false;
          finish = "tool_calls";
        }
      }
      json choice = shape.choice(c.index, Part::Chunk, shape.chat() ? std::nullopt : std::optional<std::string>(""),
                                 nullptr, finish);
      if (r.finish == FinishReason::Error) choice["error"] = r.error;
      finishes.push_back(std::move(choice));
    } else {
      all_done = false;
    }
  }
  for (size_t i = 0; i < finishes.size(); ++i) {
    json chunk = shape.reply(json::array({std::move(finishes[i])}), Part::Chunk);
    // Without include_usage the timings extension rides on the last chunk that has a choice (OpenAI's
    // clients read choices[0] of every chunk; an empty choices list comes only with usage).
    if (all_done && !g.include_usage && i + 1 == finishes.size()) chunk["timings"] = timings(choices);
    last_write = std::chrono::steady_clock::now();
    if (!sse.event(chunk)) return false;
  }
  if (all_done) {
    if (g.include_usage) {
      json last = shape.reply(json::array(), Part::Chunk);
      last["usage"] = usage(choices, g.prompts.size());
      last["timings"] = timings(choices);
      if (!sse.event(last)) return false;
    }
    *done = true;
    return sse.done();
  }
  // Several choices are polled without blocking; rest a moment when none had news.
  if (!any_news && choices.size() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return sse.keep_alive(last_write);
}

}  // namespace

std::vector<Choice> HttpServer::submit(const GenerationRequest& g, httplib::Response& res) {
  std::vector<Choice> choices;
  std::vector<std::shared_ptr<ServeJob>> jobs;
  for (size_t p = 0; p < g.prompts.size(); ++p)
    for (int i = 0; i < g.n; ++i) {
      JobParams params = g.params;
      params.prompt = g.prompts[p];
      params.decode.sampling.seed += static_cast<uint64_t>(i);  // the n choices of a prompt differ when sampling
      Choice c;
      c.job = std::make_shared<ServeJob>(std::move(params));
      c.index = static_cast<int>(choices.size());
      c.prompt = p;
      jobs.push_back(c.job);
      choices.push_back(std::move(c));
    }
  switch (scheduler_->submit(jobs)) {
    case Scheduler::Submit::Ok: break;
    case Scheduler::Submit::QueueFull: {
      const SchedulerStats s = scheduler_->stats();
      res.set_header("Retry-After", "1");
      throw ApiError(503,
                     "the server is busy: " + std::to_string(s.busy_slots) + " of " + std::to_string(s.parallel) +
                         " slots are working and " + std::to_string(s.queued) +
                         " requests are waiting (--parallel, --queue); retry later",
                     "", "server_error", "server_busy");
    }
    case Scheduler::Submit::ShuttingDown:
      if (const std::string why = scheduler_->lost(); !why.empty()) throw ApiError(503, why, "", "server_error", "unavailable");
      throw ApiError(503, "the server is shutting down", "", "server_error", "shutting_down");
  }
  return choices;
}

std::shared_ptr<CompiledGrammar> HttpServer::constraint(const nlohmann::ordered_json& body,
                                                         const std::optional<ToolRequest>& tools) {
  const RequestedGrammar r = requested_grammar(body);
  if (tools && tools->choice != ToolRequest::Choice::None) {
    if (!r.gbnf.empty())
      throw ApiError(400, r.field + " cannot go with tools: the reply is either calls or follows the format; drop one", r.field);
    return grammars_->get(tools_grammar(*tools), "tools");
  }
  return r.gbnf.empty() ? nullptr : grammars_->get(r.gbnf, r.field);
}

// The body again, keeping the keys' order (it was checked as JSON already): a schema's properties and a
// tool's parameters come out in the order they are listed. Parsed only when a field needs that order.
nlohmann::ordered_json ordered_body(const httplib::Request& req, const nlohmann::json& body) {
  bool shaped = false;
  for (const char* f : {"response_format", "grammar", "json_schema", "tools", "tool_choice"})
    shaped = shaped || (body.is_object() && body.contains(f));
  if (!shaped) return nlohmann::ordered_json::object();
  nlohmann::ordered_json b = nlohmann::ordered_json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (b.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
  return b;
}

RequestLimits HttpServer::limits() const {
  RequestLimits l;
  l.vocab = std::min<int64_t>(model_->config.vocab_size, tok_->vocab_size());
  l.context = scheduler_->context();
  l.max_choices = std::min(64, opt_.scheduler.parallel + opt_.scheduler.queue);
  l.allow_inspect = opt_.allow_inspect;
  return l;
}

void HttpServer::generation(const httplib::Request& req, httplib::Response& res, bool chat) {
  require_ready();
  const json body = parse_body(req);
  const nlohmann::ordered_json ordered = ordered_body(req, body);
  std::optional<ToolRequest> tools = chat ? parse_tools(ordered) : std::nullopt;
  GenerationRequest g = parse_generation_request(body, chat, *tok_, opt_.chat_template, limits(), tools);
  g.params.decode.grammar = constraint(ordered, tools);
  std::vector<Choice> choices = submit(g, res);
  ReplyShape shape(chat, random_id(chat ? "chatcmpl-" : "cmpl-"), unix_now(), opt_.model_id, *tok_);
  if (!g.stream) {
    send_json(res, 200, whole_reply(shape, g, choices));
    return;
  }
  std::vector<ToolCallStream> tool_streams(g.tools ? choices.size() : 0);
  auto stream = std::make_shared<Stream>(Stream{shape, std::move(g), std::move(choices), std::move(tool_streams)});
  auto provider = [stream](size_t, httplib::DataSink& sink) -> bool {
    SseWriter sse(sink);
    bool done = false;
    return stream->pump(sse, &done);
  };
  // Whatever ends the response (done, client gone, server stopping), no job outlives it.
  auto release = [stream](bool) {
    for (Choice& c : stream->choices)
      if (!c.job->done()) c.job->cancel();
  };
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider("text/event-stream", provider, release);
}

}  // namespace groak
