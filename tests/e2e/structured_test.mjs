// Constrained output through the official `openai` npm client: 1,000 replies sampled at temperature 1
// from a random-weight model with response_format json_schema (nested objects, enums, arrays, optional and
// nullable fields), every one parsed and validated by Ajv (an independent JSON Schema validator); then
// json_object, a schema groak cannot enforce refused with a 400 that names it, and the tool call flow.
// Run by tests/e2e/run.sh (GROAK_URL set).
import assert from "node:assert/strict";
import Ajv from "ajv";
import { check, finish } from "./checks.mjs";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.GROAK_URL + "/v1", apiKey: "unused", maxRetries: 0, timeout: 300000 });

const schema = {
  type: "object",
  properties: {
    id: { type: "integer" },
    name: { type: "string", minLength: 1, maxLength: 12 },
    status: { enum: ["active", "suspended", "deleted"] },
    address: {
      type: "object",
      properties: {
        city: { type: "string", maxLength: 10 },
        country: { enum: ["US", "FR", "DE", "JP"] },
        zip: { type: ["string", "null"], maxLength: 6 },
      },
      required: ["city", "country"],
      additionalProperties: false,
    },
    orders: {
      type: "array",
      maxItems: 3,
      items: {
        type: "object",
        properties: { sku: { type: "string", maxLength: 8 }, qty: { type: "integer" }, price: { type: "number" }, gift: { type: "boolean" } },
        required: ["sku", "qty"],
        additionalProperties: false,
      },
    },
    note: { anyOf: [{ type: "string", maxLength: 10 }, { type: "null" }] },
  },
  required: ["id", "name", "status", "address", "orders"],
  additionalProperties: false,
};
const validate = new Ajv({ strict: true, allErrors: true }).compile(schema);

const kSamples = 1000, kPerRequest = 12, kConcurrent = 1;  // n: --parallel + --queue (12) at most

await check(`${kSamples} json_schema replies at temperature 1 all parse and validate`, async () => {
  let done = 0, requests = 0, bad = [];
  const keys = new Set();
  async function worker() {
    while (requests * kPerRequest < kSamples) {
      const seed = requests++;
      const n = Math.min(kPerRequest, kSamples - seed * kPerRequest);
      const r = await client.chat.completions.create({
        model: "tiny-e2e",
        messages: [{ role: "user", content: "Give me a customer record as JSON." }],
        temperature: 1, max_tokens: 1000, n, seed,
        response_format: { type: "json_schema", json_schema: { name: "customer", strict: true, schema } },
      });
      for (const c of r.choices) {
        done++;
        let v;
        try {
          v = JSON.parse(c.message.content);
        } catch (e) {
          bad.push(`not JSON (${c.finish_reason}): ${c.message.content}`);
          continue;
        }
        if (!validate(v)) bad.push(`${JSON.stringify(validate.errors)}: ${c.message.content}`);
        if (c.finish_reason !== "stop") bad.push(`finish_reason ${c.finish_reason}: ${c.message.content}`);
        for (const k of Object.keys(v)) keys.add(k);
        if (v.orders) for (const o of v.orders) for (const k of Object.keys(o)) keys.add("orders." + k);
      }
    }
  }
  await Promise.all(Array.from({ length: kConcurrent }, worker));
  assert.equal(done, kSamples);
  assert.deepEqual(bad.slice(0, 3), [], `${bad.length} of ${done} invalid`);
  // Random sampling reached the optional fields too: the grammar allowed them, not just the required ones.
  for (const k of ["note", "orders.price", "orders.gift"]) assert.ok(keys.has(k), `some reply has ${k}`);
});

await check("json_object: a finished reply is a JSON object", async () => {
  const r = await client.completions.create({ model: "m", prompt: "{}", max_tokens: 300, temperature: 1, n: 8, response_format: { type: "json_object" } });
  let finished = 0;
  for (const c of r.choices) {
    if (c.finish_reason !== "stop") continue;
    finished++;
    const v = JSON.parse(c.text);
    assert.ok(v && typeof v === "object" && !Array.isArray(v), c.text);
  }
  assert.ok(finished > 0, "some reply finished within 300 tokens");
});

await check("a schema groak cannot enforce is a 400 naming it", async () => {
  const bad = { type: "object", properties: { code: { type: "string", pattern: "^[A-Z]{3}$" } } };
  await assert.rejects(
    client.chat.completions.create({
      model: "m", messages: [{ role: "user", content: "x" }],
      response_format: { type: "json_schema", json_schema: { name: "x", schema: bad } },
    }),
    (e) => e.status === 400 && /properties\.code\.pattern/.test(e.message),
  );
});

// Tool calls: the official client's tool flow. The reply's calls name a listed tool and their arguments
// validate against its parameters; the assistant message goes back with the tool's result.
const tools = [
  { type: "function", function: { name: "get_weather", description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string", maxLength: 10 }, unit: { enum: ["C", "F"] } },
                  required: ["city", "unit"], additionalProperties: false } } },
  { type: "function", function: { name: "add", description: "Adds two integers",
    parameters: { type: "object", properties: { a: { type: "integer" }, b: { type: "integer" } },
                  required: ["a", "b"], additionalProperties: false } } },
];
const argsValid = Object.fromEntries(tools.map((t) => [t.function.name, new Ajv({ strict: true }).compile(t.function.parameters)]));
const question = [{ role: "user", content: "What is the weather in Paris, and what is 2 + 3?" }];

await check("tool calls: required choice, arguments valid, then the tool's result back", async () => {
  const r = await client.chat.completions.create({
    model: "tiny-e2e", messages: question, tools, tool_choice: "required", temperature: 1, max_tokens: 600, seed: 9,
  });
  const msg = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  assert.ok(msg.tool_calls.length >= 1);
  for (const call of msg.tool_calls) {
    assert.equal(call.type, "function");
    assert.ok(argsValid[call.function.name], `a listed tool: ${call.function.name}`);
    assert.ok(argsValid[call.function.name](JSON.parse(call.function.arguments)), call.function.arguments);
  }
  const results = msg.tool_calls.map((c) => ({ role: "tool", tool_call_id: c.id, content: "42" }));
  const next = await client.chat.completions.create({
    model: "tiny-e2e", messages: [...question, msg, ...results], tools, max_tokens: 8, temperature: 0,
  });
  assert.equal(next.choices[0].message.role, "assistant");
});

await check("tool calls: a named tool, streamed through the client's stream helper", async () => {
  const stream = client.chat.completions.stream({
    model: "tiny-e2e", messages: question, tools, tool_choice: { type: "function", function: { name: "add" } },
    temperature: 1, max_tokens: 300, seed: 3,
  });
  const done = await stream.finalChatCompletion();
  const calls = done.choices[0].message.tool_calls;
  assert.equal(calls.length, 1);
  assert.equal(calls[0].function.name, "add");
  assert.ok(argsValid.add(JSON.parse(calls[0].function.arguments)), calls[0].function.arguments);
  assert.equal(done.choices[0].finish_reason, "tool_calls");
});

finish();
