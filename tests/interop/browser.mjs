// Drives the demo page of examples/server.rs in headless Chromium (Debian's
// `chromium`, through playwright-core): two pages as two users exchange
// messages, the page must show them, and screenshots are written.
//
// usage: node browser.mjs HTTP_URL SCREENSHOT.png
// env:   CHROMIUM=/path/to/chromium (default /usr/bin/chromium)
import { chromium } from "playwright-core";

const [url, shot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    // The wss:// test serves a certificate from a CA made for the test.
    "--ignore-certificate-errors",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  timeout: 30_000,
});
let failed = false;
try {
  const open = async (user) => {
    // A context each: two independent browser profiles, like two people.
    const context = await browser.newContext({
      viewport: { width: 900, height: 720 },
      ignoreHTTPSErrors: true,
    });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.on("pageerror", (e) => {
      console.error(`${user}: page error: ${e.message}`);
      failed = true;
    });
    await page.goto(url);
    await page.fill("#user", user);
    await page.click("#connect");
    await page.locator("#status", { hasText: /^connected$/ }).waitFor();
    return page;
  };
  const send = async (page, to, text, ack) => {
    await page.fill("#receiver", to);
    await page.fill("#text", text);
    await page.setChecked("#ack", ack);
    await page.click("#send");
  };
  const shows = (page, cls, text) => page.locator(`#log li.${cls}`, { hasText: text }).waitFor();

  const alice = await open("alice");
  const bob = await open("bob");
  // Chromium offers permessage-deflate; the hub must have accepted it.
  const extensions = await alice.evaluate("ws.extensions");
  if (!extensions.startsWith("permessage-deflate")) {
    throw new Error(`permessage-deflate not negotiated: ${JSON.stringify(extensions)}`);
  }
  console.log(`negotiated: ${extensions}`);
  await send(alice, "bob", "hello bob from alice", true);
  await shows(bob, "in", "alice: hello bob from alice");
  // Bob's page ACKs it; the hub tells alice how the delivery went, and the
  // demo server adds the attempts' timeline.
  await shows(alice, "sys", "delivered after 1 attempt");
  await alice.locator("#log .timeline span", { hasText: "#1 " }).waitFor();
  await send(bob, "alice", "hi alice, bob here", false);
  await shows(alice, "in", "bob: hi alice, bob here");
  // Both join a group; alice's group message reaches bob, not herself.
  for (const page of [alice, bob]) {
    await page.fill("#group", "lobby");
    await page.click("#join");
    await shows(page, "sys", "joined group lobby");
  }
  await alice.fill("#gtext", "hello lobby");
  await alice.click("#gsend");
  await shows(bob, "in", "[lobby] alice: hello lobby");
  await alice.click("#ping");
  await shows(alice, "sys", "pong");
  // Long enough to be compressed both ways.
  const long = "all work and no play makes jack a dull boy. ".repeat(20);
  await send(alice, "bob", long, false);
  await shows(bob, "in", `alice: ${long.trim()}`);
  // The live statistics table is filled from /health/failure-stats.
  await alice.locator("#stats td", { hasText: "retry_successes" }).waitFor();
  for (const [name, page] of [["alice", alice], ["bob", bob]]) {
    const errors = await page.locator("#log li.err").allTextContents();
    if (errors.length) throw new Error(`${name}'s page shows errors: ${errors.join("; ")}`);
  }
  await alice.screenshot({ path: shot, fullPage: true });
  await bob.screenshot({ path: shot.replace(/\.png$/, "-bob.png"), fullPage: true });
  for (const page of [alice, bob]) {
    await page.click("#disconnect");
    await shows(page, "sys", "closed (1000");
  }
  console.log(`ok: messages exchanged; screenshots ${shot}`);
} catch (e) {
  console.error(`browser test failed: ${e.message}`);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
