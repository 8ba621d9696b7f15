// What a new user meets in the first hour, each a behaviour that was wrong once: serve with a model that
// cannot load exits with the error (it used to hang), a second serve on a used port fails, streams end as
// OpenAI's do, detokenize is byte-exact, echoed logprob offsets index the returned text, -p "" --bos is
// a prompt, a chat message needs content, the bearer scheme is case-insensitive, `| head` is not an
// error, GET on a POST endpoint is 405; and the habits people bring from llama.cpp (-m, -np, -ngl,
// /completion, /props, /slots, /v1/embeddings, CORS).
#include <cmath>
#include <fstream>
#include <sstream>

#include "runtime/engine.h"
#include "server_util.h"
#include "test_util.h"

namespace groak::test {

namespace {

std::string groak_bin() { return GROAK_BIN; }

// Lines of text that are not empty.
size_t line_count(const std::string& text) {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) n += !l.empty();
  return n;
}

}  // namespace

class FirstHour : public Serve {
 protected:
  std::string model() const { return *dir_ / "model"; }
  std::string tok() const { return *dir_ / "tok.model"; }
};

// 0. A model that cannot load ends serve with its error, every time (a race made it hang 9 times in 10).
TEST_F(FirstHour, ServeWithAModelThatCannotLoadExitsWithTheError) {
  const std::string corrupt = *dir_ / "corrupt.gguf";
  { std::ofstream(corrupt) << "GGUF but not really"; }
  const std::string small_tok = *dir_ / "tok300.model";
  train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 400, small_tok);
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"--model /nonexistent/grok", "/nonexistent/grok"},
      {"--model " + corrupt, "corrupt.gguf"},
      {"--model " + model() + " --tokenizer " + small_tok, "vocab"},
  };
  for (const Case& c : cases) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      SCOPED_TRACE(c.args + " attempt " + std::to_string(attempt));
      std::string out;
      // timeout: a hang shows as 124, not as a stuck test.
      const int rc = run_command("timeout 60 " + groak_bin() + " serve --port 0 -t 1 " + c.args, &out);
      EXPECT_EQ(rc, 1) << out;
      EXPECT_NE(out.find("error"), std::string::npos) << out;
      EXPECT_NE(out.find(c.needle), std::string::npos) << out;
    }
  }
}

// 1. A second server on a used port fails at once naming the port (no address/port reuse).
TEST_F(FirstHour, ASecondServeOnAUsedPortFailsNamingIt) {
  auto r = start();
  std::string out;
  const int rc = run_command("timeout 60 " + groak_bin() + " serve --model " + model() + " --tokenizer " + tok() +
                                 " --port " + std::to_string(r->port),
                             &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("port " + std::to_string(r->port) + " is in use"), std::string::npos) << out;
  EXPECT_EQ(get(r->port, "/health").status, 200) << "the first server stops serving";
}

// 2. The chunk with empty choices comes only with stream_options.include_usage, and comes last.
TEST_F(FirstHour, AnEmptyChoicesChunkOnlyWhenUsageIsAsked) {
  auto r = start();
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    SCOPED_TRACE(path);
    json body = {{"max_tokens", 5}, {"temperature", 0}, {"stream", true}};
    if (std::string(path) == "/v1/completions")
      body["prompt"] = "Once upon";
    else
      body["messages"] = {{{"role", "user"}, {"content", "Hi"}}};
    bool done = false;
    auto events = sse_events(stream(r->port, path, body), &done);
    ASSERT_FALSE(events.empty());
    EXPECT_TRUE(done);
    for (const json& e : events) EXPECT_FALSE(e["choices"].empty()) << "a chunk without choices: " << e.dump();
    EXPECT_FALSE(events.back()["choices"][0]["finish_reason"].is_null()) << events.back().dump();
    body["stream_options"] = {{"include_usage", true}};
    events = sse_events(stream(r->port, path, body), &done);
    ASSERT_GE(events.size(), 2u);
    EXPECT_TRUE(events.back()["choices"].empty()) << events.back().dump();
    EXPECT_GT(events.back()["usage"]["completion_tokens"].get<int>(), 0) << events.back().dump();
    for (size_t i = 0; i + 1 < events.size(); ++i) EXPECT_FALSE(events[i]["choices"].empty()) << events[i].dump();
  }
}

// 3. tokenize | detokenize gives back exactly the bytes.
TEST_F(FirstHour, DetokenizeWritesExactlyTheText) {
  const std::string file = *dir_ / "detok.txt";
  std::string out;
  for (const std::string text : {"hello world", "two\nlines", " spaced  out "}) {
    ASSERT_EQ(run_command("printf '%s' '" + text + "' | " + groak_bin() + " tokenize --tokenizer " + tok() + " | " +
                              groak_bin() + " detokenize --tokenizer " + tok() + " > " + file,
                          &out),
              0)
        << out;
    EXPECT_EQ(read_text(file), text);
  }
}

// 4. With echo and logprobs, text_offset[i] is where tokens[i] starts in the returned text.
TEST_F(FirstHour, EchoedLogprobOffsetsIndexTheReturnedText) {
  auto r = start();
  for (const std::string prompt : {"Hello world", " leading space", "a"}) {
    SCOPED_TRACE(prompt);
    Reply c = post(r->port, "/v1/completions",
                   json{{"prompt", prompt}, {"echo", true}, {"logprobs", 1}, {"max_tokens", 3}, {"temperature", 0}});
    ASSERT_EQ(c.status, 200) << c.raw;
    const json& ch = c.body["choices"][0];
    const std::string text = ch["text"];
    ASSERT_EQ(text.rfind(prompt, 0), 0u) << "the echo does not start with the prompt: " << text;
    const json& lp = ch["logprobs"];
    ASSERT_EQ(lp["tokens"].size(), lp["text_offset"].size());
    std::string joined;
    for (const json& t : lp["tokens"]) joined += t.get<std::string>();
    // The tokens are the text, or the text after the first token's dummy-prefix space (dropped by decode).
    const bool dummy = joined == " " + text;
    ASSERT_TRUE(joined == text || dummy) << "tokens '" << joined << "' vs text '" << text << "'";
    for (size_t i = 0; i < lp["tokens"].size(); ++i) {
      const std::string t = lp["tokens"][i];
      const size_t at = lp["text_offset"][i];
      ASSERT_LE(at, text.size()) << i;
      const std::string want = i == 0 && dummy ? t.substr(1) : t;
      EXPECT_EQ(text.substr(at, want.size()), want) << "token " << i << " '" << t << "' at " << at << " in '" << text << "'";
    }
  }
}

// 5. -p "" --bos is the BOS token alone; usage errors are one sentence naming the option.
TEST_F(FirstHour, AnEmptyPromptWithBosRunsAndUsageErrorsAreOneSentence) {
  const std::string g = groak_bin() + " generate --model " + model() + " --tokenizer " + tok() + " -t 1 ";
  std::string out;
  EXPECT_EQ(run_command(g + "-p '' --bos -n 3 --temp 0", &out), 0) << out;
  EXPECT_NE(out.find("prompt: 1 token"), std::string::npos) << out;
  EXPECT_EQ(run_command(g + "-p '' -n 3", &out), 1) << out;
  EXPECT_NE(out.find("--bos"), std::string::npos) << out;
  struct Case {
    std::string args, needle;
  };
  for (const Case& c : std::vector<Case>{{"", "-p TEXT"}, {"-p x --temp", "--temp"}, {"-p x --top-p 3", "--top-p"},
                                         {"-p x --frobnicate", "frobnicate"}}) {
    SCOPED_TRACE(c.args);
    EXPECT_EQ(run_command(g + c.args, &out), 2) << out;
    EXPECT_NE(out.find(c.needle), std::string::npos) << out;
    EXPECT_EQ(out.find("is required"), std::string::npos) << out;
    EXPECT_EQ(line_count(out), 1u) << out;
    EXPECT_EQ(out.rfind("groak generate: ", 0), 0u) << out;
  }
}

// 6. A chat message without content is a 400 naming it, in OpenAI's error shape.
TEST_F(FirstHour, AChatMessageWithoutContentIsA400) {
  auto r = start();
  expect_error(post(r->port, "/v1/chat/completions", json{{"messages", {{{"role", "user"}}}}}), 400,
               "messages[0].content", "no content");
  expect_error(post(r->port, "/v1/chat/completions",
                    json{{"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", nullptr}}}}}),
               400, "messages[1].content", "null content");
}

// 7. The Authorization scheme is case-insensitive (RFC 7235).
TEST_F(FirstHour, TheBearerSchemeIsCaseInsensitive) {
  ServerOptions o = options();
  o.api_key = "sekret";
  auto r = start(o);
  for (const char* scheme : {"Bearer", "bearer", "BEARER"}) {
    httplib::Client c("127.0.0.1", r->port);
    auto res = c.Get("/v1/models", httplib::Headers{{"Authorization", std::string(scheme) + " sekret"}});
    ASSERT_TRUE(res) << scheme;
    EXPECT_EQ(res->status, 200) << scheme << ": " << res->body;
  }
  httplib::Client c("127.0.0.1", r->port);
  auto res = c.Get("/v1/models", httplib::Headers{{"Authorization", "Basic sekret"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
}

// 8. A reader that closed the pipe ends generate quietly with 141 (128 + SIGPIPE), nothing on stderr.
TEST_F(FirstHour, AClosedPipeEndsGenerateQuietly) {
  const std::string rc_file = *dir_ / "pipe.rc", err_file = *dir_ / "pipe.err";
  std::string out;
  // The reader closes its end at once and lingers, so every write of generate meets a closed pipe.
  run_command("{ " + groak_bin() + " generate --model " + model() + " --tokenizer " + tok() +
                  " -p 'Once upon a time' -n 20 --ignore-eos -t 1 2> " + err_file + "; echo $? > " + rc_file +
                  "; } | { exec 0<&-; sleep 1; }",
              &out);
  EXPECT_EQ(read_text(rc_file), "141\n");
  EXPECT_EQ(read_text(err_file).find("error"), std::string::npos) << read_text(err_file);
}

// 9. A known path with the wrong method is 405 with Allow, not 404.
TEST_F(FirstHour, AWrongMethodIs405WithAllow) {
  auto r = start();
  httplib::Client c("127.0.0.1", r->port);
  auto g = c.Get("/v1/chat/completions");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 405) << g->body;
  EXPECT_NE(g->get_header_value("Allow").find("POST"), std::string::npos);
  auto p = c.Post("/v1/models", "{}", "application/json");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 405) << p->body;
  EXPECT_NE(p->get_header_value("Allow").find("GET"), std::string::npos);
  EXPECT_EQ(c.Get("/v2/nothing")->status, 404);
}

// Copied llama.cpp command lines: -m, -np, -ngl N (ignored with one note), -c.
TEST_F(FirstHour, LlamaCppShortOptionsWork) {
  std::string out;
  EXPECT_EQ(run_command(groak_bin() + " generate -m " + model() + " --tokenizer " + tok() +
                            " -ngl 99 -c 64 -p 'Once' -n 2 -t 1",
                        &out),
            0)
      << out;
  EXPECT_NE(out.find("-ngl 99 ignored: no GPU offload"), std::string::npos) << out;
  EXPECT_EQ(run_command(groak_bin() + " generate -m " + model() + " --tokenizer " + tok() +
                            " --n-gpu-layers=40 -p 'Once' -n 2 -t 1",
                        &out),
            0)
      << out;
  // -np is --parallel: a bad count is refused naming --parallel (the model is never loaded).
  EXPECT_EQ(run_command(groak_bin() + " serve -m " + model() + " -np 0", &out), 2) << out;
  EXPECT_NE(out.find("--parallel"), std::string::npos) << out;
}

// llama-server's /completion (its fields, its reply), /props and /slots.
TEST_F(FirstHour, LlamaServerEndpoints) {
  auto r = start();
  Reply oa = post(r->port, "/v1/completions", json{{"prompt", "Once upon"}, {"max_tokens", 6}, {"temperature", 0}});
  ASSERT_EQ(oa.status, 200) << oa.raw;
  Reply l = post(r->port, "/completion", json{{"prompt", "Once upon"}, {"n_predict", 6}, {"temperature", 0}});
  ASSERT_EQ(l.status, 200) << l.raw;
  EXPECT_EQ(l.body["content"], oa.body["choices"][0]["text"]);
  EXPECT_EQ(l.body["tokens_predicted"], 6);
  EXPECT_EQ(l.body["stop_type"], "limit");
  EXPECT_TRUE(l.body["timings"].contains("predicted_n"));
  // Streamed: content pieces, then a final object with stop: true; no [DONE].
  bool done = false;
  auto events = sse_events(stream(r->port, "/completion", json{{"prompt", "Once upon"}, {"n_predict", 6}, {"temperature", 0},
                                                              {"stream", true}}),
                           &done);
  ASSERT_FALSE(events.empty());
  EXPECT_FALSE(done);
  std::string text;
  for (const json& e : events) text += e["content"].get<std::string>();
  EXPECT_EQ(text, l.body["content"]);
  EXPECT_TRUE(events.back()["stop"].get<bool>());
  Reply props = get(r->port, "/props");
  ASSERT_EQ(props.status, 200) << props.raw;
  EXPECT_EQ(props.body["total_slots"], options().scheduler.parallel);
  EXPECT_EQ(props.body["default_generation_settings"]["n_ctx"], options().scheduler.context);
  Reply slots = get(r->port, "/slots");
  ASSERT_EQ(slots.status, 200) << slots.raw;
  ASSERT_EQ(slots.body.size(), static_cast<size_t>(options().scheduler.parallel));
  // The reply can arrive just before the scheduler frees the slot: poll until every slot is idle.
  EXPECT_TRUE(eventually([&] {
    slots = get(r->port, "/slots");
    for (const json& s : slots.body)
      if (s["is_processing"].get<bool>() || s["state"] != "idle") return false;
    return true;
  })) << slots.raw;
}

// /v1/embeddings: the mean over the prompt's tokens of the final-normed hidden state, unit length.
TEST_F(FirstHour, EmbeddingsAreTheMeanPooledFinalHiddenState) {
  auto r = start();
  const std::vector<std::string> inputs = {"routing of tokens", "a different sentence entirely"};
  Reply e = post(r->port, "/v1/embeddings", json{{"input", inputs}, {"model", "x"}});
  ASSERT_EQ(e.status, 200) << e.raw;
  ASSERT_EQ(e.body["data"].size(), 2u);
  const int64_t d = model_->config.emb_size;
  for (size_t k = 0; k < inputs.size(); ++k) {
    SCOPED_TRACE(inputs[k]);
    const std::vector<float> got = e.body["data"][k]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(static_cast<int64_t>(got.size()), d);
    // The oracle: one forward pass asking for every token's hidden state, pooled here.
    const std::vector<int32_t> ids = tok_->encode(inputs[k]);
    Engine engine(*model_, {.context = 256});
    Batch b;
    for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], 0, static_cast<int64_t>(i), true);
    std::vector<float> logits(ids.size() * static_cast<size_t>(model_->config.vocab_size));
    std::vector<float> hidden(ids.size() * static_cast<size_t>(d));
    engine.forward(b, logits.data(), hidden.data());
    std::vector<double> mean(static_cast<size_t>(d), 0.0);
    for (size_t i = 0; i < ids.size(); ++i)
      for (int64_t j = 0; j < d; ++j) mean[static_cast<size_t>(j)] += hidden[i * static_cast<size_t>(d) + static_cast<size_t>(j)];
    double norm = 0;
    for (double v : mean) norm += v * v;
    norm = std::sqrt(norm);
    double got_norm = 0;
    for (int64_t j = 0; j < d; ++j) {
      EXPECT_NEAR(got[static_cast<size_t>(j)], mean[static_cast<size_t>(j)] / norm, 1e-5) << j;
      got_norm += static_cast<double>(got[static_cast<size_t>(j)]) * got[static_cast<size_t>(j)];
    }
    EXPECT_NEAR(got_norm, 1.0, 1e-5);
  }
  EXPECT_EQ(e.body["usage"]["prompt_tokens"], tok_->encode(inputs[0]).size() + tok_->encode(inputs[1]).size());
  expect_error(post(r->port, "/v1/embeddings", json{{"model", "x"}}), 400, "input is required", "no input");
}

// --cors: the origin on every answer and a 204 preflight; without it, no CORS headers.
TEST_F(FirstHour, CorsOnlyWhenAsked) {
  {
    auto r = start();
    httplib::Client c("127.0.0.1", r->port);
    auto g = c.Get("/v1/models", httplib::Headers{{"Origin", "http://localhost:3000"}});
    ASSERT_TRUE(g);
    EXPECT_FALSE(g->has_header("Access-Control-Allow-Origin"));
  }
  ServerOptions o = options();
  o.cors_origin = "http://localhost:3000";
  auto r = start(o);
  httplib::Client c("127.0.0.1", r->port);
  auto pre = c.Options("/v1/chat/completions",
                       httplib::Headers{{"Origin", "http://localhost:3000"}, {"Access-Control-Request-Method", "POST"}});
  ASSERT_TRUE(pre);
  EXPECT_EQ(pre->status, 204);
  EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
  EXPECT_NE(pre->get_header_value("Access-Control-Allow-Methods").find("POST"), std::string::npos);
  EXPECT_NE(pre->get_header_value("Access-Control-Allow-Headers").find("Authorization"), std::string::npos);
  auto g = c.Get("/v1/models", httplib::Headers{{"Origin", "http://localhost:3000"}});
  ASSERT_TRUE(g);
  EXPECT_EQ(g->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
}

}  // namespace groak::test
