// `groak serve` through the official `openai` npm client, unchanged: models, completions (plain,
// streamed, logprobs), chat (plain, streamed), error cases, and 8 requests at once (4 slots + queue),
// each greedy reply equal to the same request served alone. Run by tests/e2e/run.sh (GROAK_URL set).
import assert from "node:assert/strict";
import { check, finish } from "./checks.mjs";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.GROAK_URL + "/v1", apiKey: "unused", maxRetries: 0, timeout: 120000 });

const greedy = { temperature: 0, ignore_eos: true };

await check("models.list names the one model", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, ["tiny-e2e"]);
});

let plain;
await check("completions.create", async () => {
  plain = await client.completions.create({ model: "tiny-e2e", prompt: "Once upon a time", max_tokens: 16, ...greedy });
  assert.equal(plain.object, "text_completion");
  assert.equal(plain.choices.length, 1);
  assert.ok(plain.choices[0].text.length > 0, "some text");
  assert.equal(plain.choices[0].finish_reason, "length");
  assert.equal(plain.usage.completion_tokens, 16);
  assert.equal(plain.usage.total_tokens, plain.usage.prompt_tokens + 16);
});

await check("streamed completion = the same completion unstreamed", async () => {
  const stream = await client.completions.create({ model: "any-name", prompt: "Once upon a time", max_tokens: 16, stream: true, ...greedy });
  let text = "", chunks = 0, finish = null;
  for await (const chunk of stream) {
    chunks++;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, plain.choices[0].text);
  assert.equal(finish, "length");
  assert.ok(chunks >= 10, `tokens arrive one by one (${chunks} chunks)`);
});

await check("logprobs (legacy shape)", async () => {
  const r = await client.completions.create({ model: "m", prompt: "The answer is", max_tokens: 4, logprobs: 3, ...greedy });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, 4);
  assert.equal(lp.token_logprobs.length, 4);
  assert.equal(lp.top_logprobs.length, 4);
  assert.equal(lp.text_offset.length, 4);
  for (let i = 0; i < 4; i++) {
    assert.ok(lp.token_logprobs[i] <= 0);
    const top = Object.values(lp.top_logprobs[i]);
    assert.ok(top.length >= 1 && top.length <= 3);
    // Greedy: the chosen token is the most likely one.
    assert.ok(Math.abs(Math.max(...top) - lp.token_logprobs[i]) < 1e-5, "greedy token has the top logprob");
  }
  assert.equal(lp.tokens.join(""), r.choices[0].text);
});

let chat;
const messages = [{ role: "system", content: "You are brief." }, { role: "user", content: "Say something." }];
await check("chat.completions.create", async () => {
  chat = await client.chat.completions.create({ model: "tiny-e2e", messages, max_tokens: 12, ...greedy });
  assert.equal(chat.object, "chat.completion");
  assert.equal(chat.choices[0].message.role, "assistant");
  assert.equal(typeof chat.choices[0].message.content, "string");
  assert.ok(chat.usage.prompt_tokens > 5);
});

await check("streamed chat = the same chat unstreamed", async () => {
  const stream = await client.chat.completions.create({ model: "tiny-e2e", messages, max_tokens: 12, stream: true,
                                                        stream_options: { include_usage: true }, ...greedy });
  let text = "", role = null, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      if (c.delta.content) text += c.delta.content;
    }
  }
  assert.equal(role, "assistant");
  assert.equal(text, chat.choices[0].message.content);
  assert.equal(usage.completion_tokens, chat.usage.completion_tokens);
});

await check("errors: 400 with the OpenAI error shape", async () => {
  const cases = [
    [() => client.completions.create({ model: "m", prompt: "hi", temperature: -1 }), /temperature must be >= 0/],
    [() => client.completions.create({ model: "m", prompt: "hi", top_p: 2 }), /top_p must be in \(0, 1\]/],
    [() => client.completions.create({ model: "m", prompt: "hi", max_tokens: 0 }), /max_tokens must be >= 1/],
    [() => client.completions.create({ model: "m", prompt: [5, 99999] }), /outside the vocabulary/],
    [() => client.chat.completions.create({ model: "m", messages: [] }), /messages is empty/],
    [() => client.chat.completions.create({ model: "m", messages: [{ role: "robot", content: "x" }] }), /not a role/],
  ];
  for (const [call, message] of cases) {
    await assert.rejects(call, (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `BadRequestError, got ${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 400);
      assert.match(e.message, message);
      assert.equal(typeof e.error.type, "string");
      return true;
    });
  }
});

await check("8 requests at once: all served, each as if alone", async () => {
  const prompts = ["Alpha", "Bravo charlie", "Delta echo foxtrot", "Golf", "Hotel india juliett kilo", "Lima", "Mike november", "Oscar papa"];
  const alone = [];
  for (const p of prompts) alone.push((await client.completions.create({ model: "m", prompt: p, max_tokens: 10, ...greedy })).choices[0].text);
  const together = await Promise.all(prompts.map((p) => client.completions.create({ model: "m", prompt: p, max_tokens: 10, ...greedy })));
  together.forEach((r, i) => assert.equal(r.choices[0].text, alone[i], `prompt ${i}`));
  const metrics = await (await fetch(process.env.GROAK_URL + "/metrics")).text();
  const batched = Number(/^groak_batched_steps_total (\d+)/m.exec(metrics)[1]);
  assert.ok(batched > 0, "some steps served several requests");
});

finish();
console.log("all openai client checks passed");
