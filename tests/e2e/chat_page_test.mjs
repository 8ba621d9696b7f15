// The chat page at GET / in a real browser (Debian's chromium, driven by playwright-core): it names the
// model, says the weights are random, streams a reply into the page as it is generated (several updates,
// not one), shows the speed, and its Stop button ends a reply. Run by tests/e2e/run.sh (GROAK_URL,
// CHROMIUM set).
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
  await page.fill("#max_tokens", "300");
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
  await page.fill("#max_tokens", "3000");
  await page.fill("#input", "Tell me a very long story.");
  await page.click("#send");
  await page.waitForFunction(() => {
    const all = document.querySelectorAll(".msg.assistant .text");
    return all.length === 2 && all[1].textContent.length > 0;
  }, null, { timeout: 60000 });
  await page.click("#stop");
  await page.waitForSelector(".msg.assistant.done >> nth=1", { timeout: 30000 });
  const stopped = await page.textContent(".msg.assistant >> nth=1 >> .meta");
  if (/length|stop$/.test(stopped) && !/stopped/.test(stopped))
    console.log("note the reply ended by itself before Stop was clicked: " + stopped);
  else assert.match(stopped, /stopped/, "Stop ends the reply");
  assert.ok(await page.isEnabled("#send"), "Send is enabled again");
  if (/stopped/.test(stopped)) {
    // The browser hung up; the server must have cancelled the sequence and freed its slot.
    let cancelled = 0, busy = -1;
    for (let i = 0; i < 100 && !(cancelled >= 1 && busy === 0); i++) {
      const m = await (await fetch(process.env.GROAK_URL + "/metrics")).text();
      cancelled = Number(/^groak_sequences_finished_total\{reason="cancelled"\} (\d+)/m.exec(m)[1]);
      busy = Number(/^groak_slots_busy (\d+)/m.exec(m)[1]);
      if (!(cancelled >= 1 && busy === 0)) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(cancelled >= 1 && busy === 0, `the stopped reply's slot was freed (cancelled ${cancelled}, busy ${busy})`);
  }
  console.log("ok   Stop ends a reply (" + JSON.stringify(stopped) + ")");
  assert.deepEqual(errors, [], "no script errors on the page");
} catch (e) {
  failed = true;
  console.log("FAIL " + (e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
