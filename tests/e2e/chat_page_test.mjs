// The chat page at GET / in a real browser (Debian's chromium, driven by playwright-core): it names the
// model, says the weights are random, streams a reply into the page as it is generated (several updates,
// not one), shows the speed, and its Stop button ends a reply; with inspect on, a clicked token of the
// reply shows its experts per layer and logit lens in a panel; against a server with an API key and a small
// context, it shows the server's error messages in the conversation (a missing key, with where to enter
// it) and sizes max_tokens to fit the context. Run by tests/e2e/run.sh (GROAK_URL, GROAK_KEY_URL,
// GROAK_KEY, CHROMIUM set).
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],  // root in a container, no GPU
});
let failed = false;
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(process.env.GROAK_URL + "/");
  await page.waitForFunction(() => document.getElementById("model").textContent.includes("tiny-e2e"), null, { timeout: 30000 });
  assert.ok(await page.isVisible("#random-banner"), "the page says the weights are random");
  console.log("ok   the page names the model and says its weights are random");

  // Count how often the reply's text changes while it streams.
  await page.fill("#temperature", "0");
  // Long enough to see it stream even from a fast server (two ranks of the tiny model: ~2000 tok/s here).
  await page.fill("#max_tokens", "1000");
  await page.evaluate(() => {
    window.__updates = 0;
    new MutationObserver(() => {
      const t = document.querySelector(".msg.assistant .text");
      if (t && t.textContent) window.__updates++;
    }).observe(document.getElementById("log"), { subtree: true, childList: true, characterData: true });
  });
  await page.fill("#input", "Hello, who are you?");
  await page.click("#send");
  await page.waitForSelector(".msg.user >> text=Hello, who are you?");
  await page.waitForSelector(".msg.assistant.done", { timeout: 60000 });
  const reply = await page.textContent(".msg.assistant .text");
  const updates = await page.evaluate(() => window.__updates);
  const meta = await page.textContent(".msg.assistant .meta");
  assert.ok(reply.length > 0, "a reply appeared");
  assert.ok(updates >= 3, `the reply streamed in (${updates} updates of the text)`);
  assert.match(meta, /tok\/s/, "the speed of the reply is shown");
  console.log(`ok   a reply streamed in (${updates} updates, ${JSON.stringify(meta)})`);

  // Stop: a long reply, stopped as soon as text appears.
  const finishedCounts = async () => {
    const m = await (await fetch(process.env.GROAK_URL + "/metrics")).text();
    const n = (reason) => Number(new RegExp(`^groak_sequences_finished_total\\{reason="${reason}"\\} (\\d+)`, "m").exec(m)[1]);
    return { cancelled: n("cancelled"), ended: n("stop") + n("length"), busy: Number(/^groak_slots_busy (\d+)/m.exec(m)[1]) };
  };
  const before = await finishedCounts();
  await page.fill("#max_tokens", "3000");
  await page.fill("#input", "Tell me a very long story.");
  await page.click("#send");
  await page.waitForFunction(() => {
    const all = document.querySelectorAll(".msg.assistant .text");
    return all.length === 2 && all[1].textContent.length > 0;
  }, null, { timeout: 60000 });
  // Clicked at once in the page: a fast server may have finished the reply already (Stop is then
  // disabled), which the check below accepts.
  await page.evaluate(() => { const b = document.getElementById("stop"); if (!b.disabled) b.click(); });
  await page.waitForSelector(".msg.assistant.done >> nth=1", { timeout: 30000 });
  const stopped = await page.textContent(".msg.assistant >> nth=1 >> .meta");
  if (/length|stop$/.test(stopped) && !/stopped/.test(stopped))
    console.log("note the reply ended by itself before Stop was clicked: " + stopped);
  else assert.match(stopped, /stopped/, "Stop ends the reply");
  assert.ok(await page.isEnabled("#send"), "Send is enabled again");
  if (/stopped/.test(stopped)) {
    // The browser hung up; the server frees the slot: it cancels the sequence, or (a fast server) the
    // sequence had already ended by itself while the last chunks were on their way.
    let now = before;
    for (let i = 0; i < 100; i++) {
      now = await finishedCounts();
      if (now.busy === 0 && now.cancelled + now.ended > before.cancelled + before.ended) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(now.busy === 0 && now.cancelled + now.ended > before.cancelled + before.ended,
              `the stopped reply's slot was freed (${JSON.stringify(before)} -> ${JSON.stringify(now)})`);
    if (now.cancelled === before.cancelled) console.log("note the server had ended the reply before the browser hung up");
  }
  console.log("ok   Stop ends a reply (" + JSON.stringify(stopped) + ")");
  assert.deepEqual(errors, [], "no script errors on the page");

  // Looking inside (the server runs with --allow-inspect): each token of the reply is clickable and the
  // panel shows its experts per layer and the logit lens. A server of several ranks cannot offer it.
  if (process.env.GROAK_RANKS && process.env.GROAK_RANKS !== "1") {
    assert.ok(!(await page.isVisible("#inspect-row")), "a server without --allow-inspect offers no inspect switch");
    console.log("ok   (several ranks: no inspect switch, as the server was started without --allow-inspect)");
  } else {
  assert.ok(await page.isVisible("#inspect-row"), "the inspect switch is offered");
  await page.check("#inspect");
  await page.fill("#max_tokens", "6");
  await page.fill("#input", "What is inside?");
  await page.click("#send");
  await page.waitForSelector(".msg.assistant.done >> nth=2", { timeout: 60000 });
  const toks = page.locator(".msg.assistant >> nth=2 >> .tok");
  assert.ok((await toks.count()) >= 1, "the inspected reply is made of clickable tokens");
  // A token of the random model may render as nothing (a zero-width piece): click the first one that shows.
  const shown = page.locator(".msg.assistant >> nth=2 >> .tok:visible");
  if ((await shown.count()) > 0) await shown.first().click();
  else await toks.first().dispatchEvent("click");
  await page.waitForSelector("#token-panel tr.layer");
  const layers = await page.locator("#token-panel tr.layer").count();
  const firstRow = await page.textContent("#token-panel tr.layer");
  assert.equal(layers, 2, "one row per layer of the tiny model");
  assert.match(firstRow, /^0\d+ \(\d\.\d\d\) \+ \d+ \(\d\.\d\d\)/, "layer 0: two experts with gates: " + firstRow);
  console.log("ok   a clicked token shows its experts per layer and logit lens: " + JSON.stringify(firstRow));
  if (process.env.GROAK_SCREENSHOT_DIR) await page.screenshot({ path: process.env.GROAK_SCREENSHOT_DIR + "/chat-inspect.png" });
  }
  assert.deepEqual(errors, [], "no script errors on the page");

  // A server with an API key: the page says what is missing and where to enter it, in the conversation.
  const keyed = await browser.newPage();
  keyed.on("pageerror", (e) => errors.push(e.message));
  await keyed.goto(process.env.GROAK_KEY_URL + "/");
  await keyed.waitForSelector(".msg.error", { timeout: 30000 });
  const keyError = await keyed.textContent(".msg.error");
  assert.match(keyError, /needs an API key/, "the missing key is explained: " + keyError);
  assert.match(keyError, /API key/, "the page says where to enter it");
  await keyed.fill("#input", "Hi");
  await keyed.click("#send");
  await keyed.waitForFunction(() => document.querySelectorAll(".msg.error").length >= 2, null, { timeout: 30000 });
  console.log("ok   a missing API key is explained in the conversation: " + JSON.stringify(keyError));
  // With the key, and max_tokens far beyond the 256-token context: the page asks for what fits.
  await keyed.fill("#api_key", process.env.GROAK_KEY);
  await keyed.dispatchEvent("#api_key", "change");
  await keyed.fill("#temperature", "0");
  await keyed.fill("#max_tokens", "100000");
  await keyed.waitForFunction(() => document.getElementById("model").textContent.includes("256 tokens"), null, { timeout: 30000 });
  await keyed.fill("#input", "Hello there");
  await keyed.click("#send");
  // The refused "Hi" left one finished assistant message; this is the second.
  await keyed.waitForSelector(".msg.assistant.done >> nth=1", { timeout: 60000 });
  const fitted = await keyed.textContent(".msg.assistant >> nth=1 >> .meta");
  assert.equal(await keyed.locator(".msg.error").count(), 2, "no new error once the key is given");
  const lastError = await keyed.locator(".msg.error").last().textContent();
  assert.doesNotMatch(fitted, /error/, "the reply was not refused: " + fitted + "; " + lastError);
  console.log("ok   with the key, max_tokens 100000 is sized to the 256-token context (" + JSON.stringify(fitted) + ")");
  assert.deepEqual(errors, [], "no script errors on the pages");
} catch (e) {
  failed = true;
  console.log("FAIL " + (e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
