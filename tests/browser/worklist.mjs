// The worklist as a radiologist uses it, in Debian's Chromium (headless):
// sign in, see the urgent study first, open it, toggle the heatmap,
// acknowledge it, agree with a finding; then the admin tab's echo and a
// model's state. Saves a screenshot of each step. Prints one JSON line of what it saw; exits
// non-zero on the first thing that does not work.
// Usage: node worklist.mjs BASE_URL TOKEN OUT_DIR
import { chromium } from "playwright-core";

const [base, token, out] = process.argv.slice(2);
const seen = {};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.setDefaultTimeout(20000);

  await page.goto(base + "/");
  await page.fill("#token", token);
  await page.click("#signin-button");
  await page.waitForSelector("#worklist tbody tr[data-study]");
  const rows = await page.$$eval("#worklist tbody tr[data-study]", (trs) =>
    trs.map((t) => ({ study: t.dataset.study, priority: t.dataset.priority, text: t.innerText })));
  seen.rows = rows.length;
  seen.first_priority = rows[0].priority;
  seen.priorities = rows.map((r) => r.priority);
  seen.whoami = await page.textContent("#whoami");
  await page.screenshot({ path: out + "/worklist.png" });

  await page.click("#worklist tbody tr[data-study]:first-child");
  await page.waitForFunction(() => {
    const i = document.querySelector("#viewer img");
    return i && i.complete && i.naturalWidth > 0;
  });
  seen.image_width = await page.$eval("#viewer img", (i) => i.naturalWidth);
  seen.findings = await page.$$eval("#findings tbody tr", (trs) => trs.map((t) => ({ label: t.dataset.label, flagged: t.dataset.flagged })));

  await page.click("#toggle-heatmap");
  await page.waitForFunction(() => {
    const v = document.querySelector("#viewer"), i = document.querySelector("#viewer img");
    return v.dataset.showing === "heatmap" && i.complete && i.naturalWidth > 0;
  });
  seen.heatmap_label = await page.$eval("#heatmap-label", (s) => s.value);
  await page.screenshot({ path: out + "/heatmap.png" });

  await page.click("#ack");
  // The study panel is rebuilt after each action: wait for the new one.
  await page.waitForFunction(() => document.querySelector("#ack")?.textContent.startsWith("Acknowledged"));
  seen.ack = await page.textContent("#ack");

  await page.click("#findings tbody tr:first-child button.agree");
  await page.waitForFunction(() => document.querySelector("#findings tbody tr:first-child .verdict")?.textContent === "agree");
  seen.verdict = await page.textContent("#findings tbody tr:first-child .verdict");
  await page.screenshot({ path: out + "/study.png" });

  await page.click("#tab-admin");
  await page.waitForSelector("#destinations tbody tr button.echo");
  await page.click("#destinations tbody tr:first-child button.echo");
  await page.waitForFunction(() => /[✓✗]/.test(document.querySelector("#destinations .echo-result").textContent));
  seen.echo = await page.textContent("#destinations .echo-result");
  // Model monitoring: a row per model and label, with its daily chart.
  await page.waitForSelector("#monitoring tbody tr");
  seen.monitoring = await page.$$eval("#monitoring tbody tr", (trs) => trs.map((t) => ({
    model: t.dataset.model, label: t.dataset.label,
    bars: t.querySelectorAll("svg.sparkline rect").length, rate: t.children[4].textContent })));
  // Put the model in shadow from its row; the table reloads with who set it.
  await page.selectOption("#models tbody tr:first-child select.model-state", "shadow");
  await page.waitForFunction(() => /ada,/.test(document.querySelector("#models tbody tr:first-child").textContent));
  seen.model_state = await page.$eval("#models tbody tr:first-child select.model-state", (s) => s.value);
  await page.screenshot({ path: out + "/admin.png" });
  seen.errors = errors;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
