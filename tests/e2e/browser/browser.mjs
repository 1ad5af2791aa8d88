// Drives Debian's chromium (headless, through puppeteer-core from npm: never a downloaded
// browser) for tests/e2e/test_browser.py. The spec comes as JSON on the command line:
// {"profile": dir, "scenarios": [names], <name>: {its spec}, ...}; one JSON line goes back:
//   {"ok": true, "result": {<name>: {...}, ...}}  or  {"ok": false, "error": "..."}
//
// Scenarios:
//   cors    open spec.allowed (a page of an origin LLMGatewayCORS lists) and spec.refused (a
//           page of another origin); in each, call the gateway (spec.gateway) with the
//           openai SDK's browser build (served by the page's own server under /sdk/openai/)
//           and with fetch: chat, a stream, an error. Reports what each page could read, and
//           the console errors of each.
//   status  open the status page (spec.page: LLMGatewayStatusControl on, ?refresh=1) on a
//           phone-sized screen: layout, a reload by itself, then (spec.control_page, without
//           refresh) the Drain and Enable buttons of spec.backend tapped; and every console
//           error, page error and failed request.
//
// The browser runs with a fresh profile (spec.profile), no sandbox (CI runs as root), no GPU,
// and nothing that talks to the network on its own.
import puppeteer from 'puppeteer-core';

const CHROMIUM = process.env.LLMGW_CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = 15000;

function launch(spec) {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: spec.profile,
    timeout: 30000,
    protocolTimeout: 60000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
      '--disable-dev-shm-usage', '--no-default-browser-check'],
  });
}

// Console errors, uncaught page errors and failed requests of a page, as they happen.
function watch(page) {
  const seen = { console: [], pageerrors: [], failed: [] };
  page.on('console', (m) => { if (m.type() === 'error') seen.console.push(m.text()); });
  page.on('pageerror', (e) => seen.pageerrors.push(String(e)));
  page.on('requestfailed', (r) => seen.failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  return seen;
}

// Runs inside the page: the SDK and fetch against the gateway. Every outcome is caught and
// described, so that the page of a refused origin reports what it could not do.
async function callGateway(gateway) {
  const out = {};
  const describe = (e) => ({ name: e?.constructor?.name, message: String(e?.message ?? e),
    status: e?.status ?? null, code: e?.code ?? e?.error?.code ?? null });
  let OpenAI;
  try {
    ({ OpenAI } = await import('/sdk/openai/client.mjs'));
  } catch (e) {
    return { import_error: String(e) };
  }
  const client = new OpenAI({ baseURL: `${gateway}/v1`, apiKey: 'browser-key-not-a-secret',
    dangerouslyAllowBrowser: true, maxRetries: 0, timeout: 20000 });
  try {
    const { data, response } = await client.chat.completions.create({
      model: 'gpt-mock', messages: [{ role: 'user', content: 'hello from a page' }],
    }).withResponse();
    out.chat = { content: data.choices[0].message.content, model: data.model,
      backend: response.headers.get('x-llmgw-backend'),
      attempts: response.headers.get('x-llmgw-attempts') };
  } catch (e) {
    out.chat = { error: describe(e) };
  }
  try {
    const stream = await client.chat.completions.create({
      model: 'gpt-mock', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'stream to a page' }],
    });
    let text = '', chunks = 0, finish = null, usage = null;
    for await (const chunk of stream) {
      chunks++;
      const c = chunk.choices?.[0];
      if (c?.delta?.content) text += c.delta.content;
      if (c?.finish_reason) finish = c.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    out.stream = { text, chunks, finish, usage };
  } catch (e) {
    out.stream = { error: describe(e) };
  }
  try {
    await client.chat.completions.create({
      model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] });
    out.sdk_error = { unexpected: 'success' };
  } catch (e) {
    out.sdk_error = describe(e);
  }
  try {
    const r = await fetch(`${gateway}/v1/chat/completions`, { method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer browser-key' },
      body: '{"model": "gpt-mock", "messages": [' });
    out.fetch_error = { status: r.status, body: await r.json(),
      backend: r.headers.get('x-llmgw-backend'), overhead: r.headers.get('x-llmgw-overhead-ms') };
  } catch (e) {
    out.fetch_error = { error: describe(e) };
  }
  return out;
}

async function scenarioCors(browser, spec) {
  const result = {};
  for (const [name, url] of [['allowed', spec.allowed], ['refused', spec.refused]]) {
    const page = await browser.newPage();
    const seen = watch(page);
    await page.goto(url, { waitUntil: 'load', timeout: STEP_TIMEOUT });
    const calls = await page.evaluate(callGateway, spec.gateway);
    result[name] = { origin: await page.evaluate(() => location.origin), calls, ...seen };
    await page.close();
  }
  return result;
}

// The layout facts a phone user cares about, read in the page.
function layout() {
  const doc = document.documentElement;
  const scroll = document.querySelector('.scroll');
  const buttons = [...document.querySelectorAll('button')];
  const h1 = document.querySelector('h1');
  return {
    title: document.title,
    innerWidth: window.innerWidth,
    pageScrollWidth: doc.scrollWidth,
    tableScrollWidth: scroll ? scroll.scrollWidth : null,
    tableClientWidth: scroll ? scroll.clientWidth : null,
    h1FontPx: h1 ? parseFloat(getComputedStyle(h1).fontSize) : null,
    bodyFontPx: parseFloat(getComputedStyle(document.body).fontSize),
    buttons: buttons.map((b) => { const r = b.getBoundingClientRect();
      return { text: b.textContent, width: r.width, height: r.height }; }),
    rows: [...document.querySelectorAll('tr[data-backend]')].map((tr) => ({
      backend: tr.dataset.backend,
      state: tr.querySelector('td.st')?.textContent.trim(),
      action: tr.querySelector('button')?.value ?? null })),
    now: document.querySelector('p')?.textContent ?? '',
  };
}

async function scenarioStatus(browser, spec) {
  const page = await browser.newPage();
  await page.emulate({ viewport: { width: 390, height: 844, deviceScaleFactor: 3,
    isMobile: true, hasTouch: true, isLandscape: false },
  userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) '
    + 'Chrome/120.0 Mobile Safari/537.36' });
  const seen = watch(page);
  const result = {};
  const first = await page.goto(spec.page, { waitUntil: 'load', timeout: STEP_TIMEOUT });
  result.status = first.status();
  result.headers = first.headers();
  result.first = await page.evaluate(layout);
  // ?refresh=1: the page reloads itself (the Refresh header), nobody clicking.
  const t0 = Date.now();
  await page.waitForNavigation({ waitUntil: 'load', timeout: 8000 });
  result.reloaded_after_ms = Date.now() - t0;
  result.reloaded = await page.evaluate(layout);
  // The controls on the page without ?refresh, so that no reload races the taps.
  await page.goto(spec.control_page, { waitUntil: 'load', timeout: STEP_TIMEOUT });
  // Tap Drain in row `spec.backend`: the form posts, the page comes back (303) with the state.
  const tap = async (action) => {
    const sel = `tr[data-backend="${spec.backend}"] button[value="${action}"]`;
    const button = await page.waitForSelector(sel, { timeout: STEP_TIMEOUT });
    await button.scrollIntoView();
    const [response] = await Promise.all([
      page.waitForNavigation({ waitUntil: 'load', timeout: STEP_TIMEOUT }),
      button.tap(),
    ]);
    return { status: response?.status() ?? null, url: page.url(), after: await page.evaluate(layout) };
  };
  result.drain = await tap('drain');
  result.enable = await tap('enable');
  Object.assign(result, seen);
  await page.close();
  return result;
}

const SCENARIOS = { cors: scenarioCors, status: scenarioStatus };

// spec.scenarios: names to run in order in one browser (its start is most of the cost);
// each reports its own result, or {error} without stopping the others.
async function main() {
  const spec = JSON.parse(process.argv[2] || '{}');
  const names = spec.scenarios || [];
  for (const name of names) {
    if (!SCENARIOS[name]) throw new Error(`unknown scenario ${name}`);
  }
  const started = Date.now();
  const browser = await launch(spec);
  const result = { launch_ms: Date.now() - started, version: await browser.version() };
  try {
    for (const name of names) {
      const t0 = Date.now();
      try {
        result[name] = await SCENARIOS[name](browser, spec[name]);
      } catch (e) {
        result[name] = { error: String(e?.stack ?? e) };
      }
      result[name].elapsed_ms = Date.now() - t0;
    }
  } finally {
    await browser.close();
  }
  result.total_ms = Date.now() - started;
  return result;
}

main().then(
  (result) => { console.log(JSON.stringify({ ok: true, result })); },
  (e) => { console.log(JSON.stringify({ ok: false, error: String(e?.stack ?? e) })); },
);
