// `groak serve`'s Messages API through the official `@anthropic-ai/sdk` npm client, unchanged: a message
// (its shape, usage, stop reasons), the same greedy text as /v1/chat/completions, streaming (its events and
// the same text), stop_sequences, errors in Anthropic's shape (an image block, no max_tokens) and x-api-key
// authentication, and the tool use flow (tool_use blocks whose input validates, a tool_result sent back).
// Run by tests/e2e/run.sh (GROAK_URL, GROAK_KEY_URL and GROAK_KEY set).
import assert from "node:assert/strict";
import { check, finish } from "./checks.mjs";
import Anthropic from "@anthropic-ai/sdk";
import Ajv from "ajv";

const client = new Anthropic({ baseURL: process.env.GROAK_URL, apiKey: "unused", maxRetries: 0, timeout: 120000 });

const ask = {
  model: "tiny-e2e",
  max_tokens: 24,
  temperature: 0,
  system: "You answer in one line.",
  messages: [{ role: "user", content: "Name three colours." }],
};

let plain;
await check("messages.create", async () => {
  plain = await client.messages.create(ask);
  assert.equal(plain.type, "message");
  assert.equal(plain.role, "assistant");
  assert.ok(plain.id.startsWith("msg_"));
  assert.equal(plain.content.length, 1);
  assert.equal(plain.content[0].type, "text");
  assert.ok(["end_turn", "max_tokens"].includes(plain.stop_reason), plain.stop_reason);
  assert.ok(plain.usage.input_tokens > 0);
  assert.ok(plain.usage.output_tokens > 0 && plain.usage.output_tokens <= 24);
  if (plain.stop_reason === "max_tokens") assert.equal(plain.usage.output_tokens, 24);
});

await check("the same greedy text as /v1/chat/completions", async () => {
  const r = await fetch(process.env.GROAK_URL + "/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ max_tokens: 24, temperature: 0, messages: [{ role: "system", content: ask.system }, ...ask.messages] }),
  });
  const chat = await r.json();
  assert.equal(plain.content[0].text, chat.choices[0].message.content);
});

await check("text blocks and a conversation", async () => {
  const r = await client.messages.create({
    ...ask,
    system: [{ type: "text", text: "You answer in one line." }],
    messages: [
      { role: "user", content: [{ type: "text", text: "Name three " }, { type: "text", text: "colours." }] },
      { role: "assistant", content: plain.content[0].text },
      { role: "user", content: "And three more." },
    ],
  });
  assert.equal(r.content[0].type, "text");
  // Blocks join as they are: the first turn's prompt is the one above, now read from the slot's cache.
  assert.ok(r.usage.cache_read_input_tokens > 0, JSON.stringify(r.usage));
});

await check("streamed message = the same message unstreamed", async () => {
  const seen = new Set();
  let text = "";
  const stream = await client.messages.create({ ...ask, stream: true });
  for await (const ev of stream) {
    seen.add(ev.type);
    if (ev.type === "content_block_delta") text += ev.delta.text;
    if (ev.type === "message_delta") assert.equal(ev.delta.stop_reason, plain.stop_reason);
  }
  assert.equal(text, plain.content[0].text);
  for (const t of ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"])
    assert.ok(seen.has(t), `event ${t}`);
  const final = await client.messages.stream(ask).finalMessage();
  assert.equal(final.content[0].text, plain.content[0].text);
});

await check("stop_sequences end the text and are named", async () => {
  const text = plain.content[0].text;
  const stop = text.slice(3, 5);
  assert.ok(stop.length > 0, "the reply is long enough to cut");
  const r = await client.messages.create({ ...ask, stop_sequences: [stop] });
  assert.equal(r.stop_reason, "stop_sequence");
  assert.equal(r.stop_sequence, stop);
  assert.ok(text.startsWith(r.content[0].text) && !r.content[0].text.includes(stop), r.content[0].text);
});

await check("an image block is a 400 in Anthropic's shape", async () => {
  await assert.rejects(
    client.messages.create({ ...ask, messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "AA==" } }] }] }),
    (e) => e instanceof Anthropic.BadRequestError && e.status === 400 && e.error.type === "error" &&
      e.error.error.type === "invalid_request_error" && /image/.test(e.error.error.message),
  );
});

await check("no max_tokens is a 400 naming it", async () => {
  const { max_tokens, ...rest } = ask;
  await assert.rejects(client.messages.create(rest),
    (e) => e instanceof Anthropic.BadRequestError && /max_tokens/.test(e.error.error.message));
});

await check("x-api-key: the right key is served, a wrong one is a 401", async () => {
  const keyed = new Anthropic({ baseURL: process.env.GROAK_KEY_URL, apiKey: process.env.GROAK_KEY, maxRetries: 0 });
  const r = await keyed.messages.create({ ...ask, max_tokens: 4 });
  assert.equal(r.usage.output_tokens, 4);
  const wrong = new Anthropic({ baseURL: process.env.GROAK_KEY_URL, apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(wrong.messages.create({ ...ask, max_tokens: 4 }),
    (e) => e instanceof Anthropic.AuthenticationError && e.error.error.type === "authentication_error");
});

const tools = [{
  name: "get_weather", description: "The weather in a city",
  input_schema: { type: "object", properties: { city: { type: "string", maxLength: 10 }, unit: { enum: ["C", "F"] } },
                  required: ["city", "unit"], additionalProperties: false },
}];
const validInput = new Ajv({ strict: true }).compile(tools[0].input_schema);

await check("tools: tool_choice any gives a tool_use block whose input validates; the result goes back", async () => {
  const question = [{ role: "user", content: "What is the weather in Paris?" }];
  const r = await client.messages.create({ model: "tiny-e2e", max_tokens: 300, temperature: 1, messages: question,
                                           tools, tool_choice: { type: "any" } });
  assert.equal(r.stop_reason, "tool_use");
  const uses = r.content.filter((b) => b.type === "tool_use");
  assert.ok(uses.length >= 1, JSON.stringify(r.content));
  for (const u of uses) {
    assert.equal(u.name, "get_weather");
    assert.ok(validInput(u.input), JSON.stringify(u.input));
  }
  const next = await client.messages.create({
    model: "tiny-e2e", max_tokens: 8, temperature: 0, tools,
    messages: [...question, { role: "assistant", content: r.content },
               { role: "user", content: uses.map((u) => ({ type: "tool_result", tool_use_id: u.id, content: "18 C" })) }],
  });
  assert.equal(next.type, "message");
});

await check("tools: streamed, the client assembles the tool_use block from input_json_delta", async () => {
  const stream = client.messages.stream({ model: "tiny-e2e", max_tokens: 300, temperature: 1, tools,
    messages: [{ role: "user", content: "Weather in Oslo?" }], tool_choice: { type: "tool", name: "get_weather" } });
  const msg = await stream.finalMessage();
  assert.equal(msg.stop_reason, "tool_use");
  const use = msg.content.find((b) => b.type === "tool_use");
  assert.ok(use && validInput(use.input), JSON.stringify(msg.content));
});

await check("tools: an input_schema groak cannot enforce is a 400 naming it", async () => {
  const bad = [{ name: "x", input_schema: { type: "object", properties: { n: { type: "integer", minimum: 0 } } } }];
  await assert.rejects(client.messages.create({ ...ask, tools: bad }),
    (e) => e instanceof Anthropic.BadRequestError && /tools\[0\]\.input_schema/.test(e.error.error.message));
});

finish();
