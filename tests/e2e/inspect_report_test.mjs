// groak inspect's report.html in a real browser (Debian's chromium, driven by playwright-core), opened from
// disk with every network request refused: it renders every figure without a page error, in under 5 s,
// the attention selector redraws, the PNG buttons produce PNG images. Screenshots of the page and of each
// figure go to $GROAK_SCREENSHOT_DIR (docs/INSIDE.md's pictures are made this way). Run by
// tests/e2e/run.sh (GROAK_REPORT = the report's path, CHROMIUM set).
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],  // root in a container, no GPU
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [], requests = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.route("**", (route) => {
    const url = route.request().url();
    if (url.startsWith("file:") || url.startsWith("data:")) return route.continue();
    requests.push(url);
    return route.abort();
  });
  const t0 = Date.now();
  await page.goto(pathToFileURL(process.env.GROAK_REPORT).href);
  await page.waitForSelector("body[data-ready='1']", { timeout: 5000 });
  const ms = Date.now() - t0;
  assert.deepEqual(errors, [], "no page errors");
  assert.deepEqual(requests, [], "self-contained: nothing fetched from a network");
  assert.ok(ms < 5000, `rendered in ${ms} ms`);
  console.log(`ok   the report rendered offline in ${ms} ms, no page errors`);

  assert.ok(await page.isVisible("#random-banner"), "the report says the weights are random");
  const figures = ["experts", "usage", "routing", "attention", "residual", "lens"];
  for (const id of figures) {
    // Something was drawn: some pixel of the canvas is neither white nor transparent.
    const drawn = await page.evaluate((id) => {
      const c = document.getElementById(id), d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) return true;
      return false;
    }, id);
    assert.ok(drawn, `figure ${id} is drawn`);
  }
  console.log(`ok   all ${figures.length} figures are drawn`);

  const before = await page.evaluate(() => document.getElementById("attention").toDataURL());
  const heads = await page.$$eval("#att-head option", (o) => o.length);
  assert.ok(heads > 1, "a head selector");
  await page.selectOption("#att-head", String(heads - 1));
  const after = await page.evaluate(() => document.getElementById("attention").toDataURL());
  assert.notEqual(before, after, "choosing another head redraws the attention map");
  console.log(`ok   the head selector redraws the attention map (${heads} heads)`);

  const [download] = await Promise.all([page.waitForEvent("download"), page.click("button[data-png='experts']")]);
  assert.equal(download.suggestedFilename(), "groak-inspect-experts.png");
  const png = await page.evaluate(() => document.getElementById("lens").toDataURL("image/png"));
  assert.ok(png.startsWith("data:image/png;base64,") && png.length > 1000, "PNG export of a figure");
  console.log("ok   PNG export: " + download.suggestedFilename());

  const dir = process.env.GROAK_SCREENSHOT_DIR;
  if (dir) {
    await page.selectOption("#att-head", "0");
    await page.screenshot({ path: `${dir}/report.png`, fullPage: true });
    for (const id of figures) await page.locator(`#fig-${id}`).screenshot({ path: `${dir}/${id}.png` });
    console.log(`ok   screenshots in ${dir}`);
  }
} catch (e) {
  failed = true;
  console.error("FAIL " + (e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
