// Shared helpers for the real-browser end-to-end tests.
//
// Every scenario starts its own `wschat` binary on a free loopback port (port 0,
// the real port parsed from its stdout) with a fresh --history-file, drives Debian's
// Chromium through playwright-core with one browser context per chat user, and
// stops everything it started (by PID) at the end, also when the scenario fails.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const WWW = path.join(ROOT, 'www');
export const INDEX_FILE_URL = pathToFileURL(path.join(WWW, 'index.html')).href;
export const OUT = path.join(ROOT, 'test-output');
export const SHOTS = path.join(OUT, 'screenshots');
export const LOGS = path.join(OUT, 'logs');
// WSCHAT_BIN may point at another build of the server (e.g. a debug build).
export const BIN = process.env.WSCHAT_BIN || path.join(ROOT, 'target', 'release', 'wschat');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
export const WAIT = 10_000; // default bound for every single wait

fs.mkdirSync(SHOTS, { recursive: true });
fs.mkdirSync(LOGS, { recursive: true });

// Children still alive when node exits (e.g. a crash between start and cleanup) are killed.
const children = new Set();
process.on('exit', () => { for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } } });

const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

// ------------------------------------------------------------------ server
export class Server {
  constructor(label, historyFile) {
    this.label = label;
    this.historyFile = historyFile;
    this.port = 0;
    this.proc = null;
    this.args = []; // more flags for the next start, e.g. ['--max-text', '8000']
    this.env = {}; // more environment for the next start, e.g. { RUST_LOG: 'info,wschat::ws=trace' }
    this.logPath = path.join(LOGS, `${label}.log`);
    fs.writeFileSync(this.logPath, '');
  }

  get httpUrl() { return `http://127.0.0.1:${this.port}/`; }
  get wsUrl() { return `ws://127.0.0.1:${this.port}/ws`; }

  log(s) { fs.appendFileSync(this.logPath, s); }

  // Everything in this server's log so far (its stdout and stderr, and the start/exit lines).
  logText() { return fs.readFileSync(this.logPath, 'utf8'); }

  // Starts the binary on this.port (0 the first time) and waits for its "http://127.0.0.1:PORT/" line.
  async start({ tries = 1 } = {}) {
    assert.ok(fs.existsSync(BIN), `server binary ${BIN} not found: run cargo build --release --bin wschat`);
    let lastErr;
    for (let i = 0; i < tries; i++) {
      try { return await this.#startOnce(); } catch (e) { lastErr = e; await sleep(300); }
    }
    throw lastErr;
  }

  // Where this server keeps the rooms' history: its file.
  storeArgs() { return ['--history-file', this.historyFile]; }

  async #startOnce() {
    const args = ['--addr', `127.0.0.1:${this.port}`, '--www', WWW, ...this.storeArgs(), ...this.args];
    const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', ...this.env };
    this.log(`\n=== start: ${Object.keys(this.env).map((k) => `${k}=${env[k]} `).join('')}${BIN} ${args.join(' ')}\n`);
    const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    children.add(proc);
    this.proc = proc;
    const exited = new Promise((resolve) => proc.once('exit', (code, sig) => {
      children.delete(proc);
      this.log(`=== exit: code=${code} signal=${sig}\n`);
      resolve({ code, sig });
    }));
    proc.exitedPromise = exited;
    proc.stderr.on('data', (d) => this.log(d.toString()));
    let out = '';
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label}: no "http://127.0.0.1:PORT/" line on stdout within ${WAIT} ms; see ${this.logPath}`)), WAIT);
      proc.stdout.on('data', (d) => {
        const s = d.toString();
        this.log(s);
        out += s;
        const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      });
      proc.once('error', (e) => { clearTimeout(timer); reject(e); });
      exited.then(({ code, sig }) => { clearTimeout(timer); reject(new Error(`${this.label}: server exited early (code ${code}, signal ${sig}); see ${this.logPath}`)); });
    });
    if (this.port) assert.equal(port, this.port, 'server restarted on a different port');
    this.port = port;
    // It answers on the port before we go on.
    const deadline = Date.now() + WAIT;
    for (;;) {
      try {
        const r = await fetch(`${this.httpUrl}healthz`, { signal: AbortSignal.timeout(2000) });
        if (r.status === 200) break;
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`${this.label}: /healthz did not answer 200 within ${WAIT} ms`);
      await sleep(50);
    }
    return this;
  }

  // Kills the process (SIGKILL by default) and waits for it to be gone.
  async kill(signal = 'SIGKILL') {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill(signal);
    const gone = await Promise.race([p.exitedPromise.then(() => true), sleep(5000).then(() => false)]);
    if (!gone) { p.kill('SIGKILL'); await p.exitedPromise; }
  }

  async stop() { await this.kill('SIGTERM'); }
}

// --------------------------------------------------------------- browser
let browserPromise = null;
export function browser() {
  if (!browserPromise) {
    // launch() gives every run a fresh temporary profile (user-data-dir).
    browserPromise = chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  }
  return browserPromise;
}
export async function closeBrowser() {
  if (browserPromise) { const b = await browserPromise; browserPromise = null; await b.close(); }
}
after(closeBrowser);

// One chat participant: its own browser context (own cookies/localStorage) and page.
export class User {
  constructor(scn, name, page, context) {
    this.scn = scn;
    this.name = name;
    this.page = page;
    this.context = context;
    this.pageErrors = [];
    this.dialogs = [];
    this.consoleErrors = [];
    this.wsFramesIn = [];
    this.wsFramesOut = [];
  }

  async open(url, { setName = true } = {}) {
    await this.page.goto(url, { timeout: WAIT });
    if (setName) {
      const name = this.page.locator('#name');
      await name.waitFor({ state: 'visible', timeout: WAIT });
      await name.fill(this.name);
      await name.press('Enter');
      await this.page.locator('#name-dialog').waitFor({ state: 'hidden', timeout: WAIT });
    }
    await this.waitOnline();
    return this;
  }

  // From now on the page's new sockets go to a closed port, so that it stays away
  // (reconnecting in vain) until releaseReconnects().
  async holdReconnects() {
    await this.page.evaluate(() => {
      const Real = window.WebSocket;
      window.__blockWs = true;
      window.WebSocket = function (url, p) {
        if (window.__blockWs) return new Real('ws://127.0.0.1:1/blocked');
        return new Real(url, p);
      };
      window.WebSocket.prototype = Real.prototype;
      Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
    });
  }

  async releaseReconnects() {
    await this.page.evaluate(() => { window.__blockWs = false; });
  }

  async waitState(state, timeout = WAIT) {
    try {
      await this.page.waitForFunction((s) => document.querySelector('#status')?.dataset.state === s, state, { timeout, polling: 50 });
    } catch (e) {
      throw new Error(`${this.name}: #status did not become "${state}" within ${timeout} ms (now: ${await this.statusText()})`);
    }
  }
  waitOnline(timeout = WAIT) { return this.waitState('online', timeout); }
  statusText() { return this.page.locator('#status').innerText({ timeout: WAIT }); }

  // Types a message in the composer and presses Enter, as a person would.
  async say(text) {
    const input = this.page.locator('#input');
    await input.fill(text);
    await input.press('Enter');
  }

  // Messages confirmed by the server, as shown: id, sender, text, own mark.
  messages() {
    return this.page.$$eval('#messages > li.msg[data-id]', (els) => els.map((e) => ({
      id: Number(e.dataset.id),
      from: e.querySelector('.from')?.textContent ?? null,
      text: e.querySelector('.text')?.textContent ?? null,
      own: e.classList.contains('own'),
      time: e.querySelector('.time')?.textContent ?? null,
    })));
  }
  systemLines() {
    return this.page.$$eval('#messages > li.sys', (els) => els.map((e) => ({ kind: e.dataset.kind, text: e.querySelector('.sys-text')?.textContent ?? e.textContent })));
  }
  users() {
    return this.page.$$eval('#users > li', (els) => els.map((e) => e.querySelector('.uname')?.textContent ?? ''));
  }

  // Waits until a confirmed message with exactly this text is visible.
  async waitMessage(text, timeout = WAIT) {
    const loc = this.page.locator('#messages > li.msg[data-id]').filter({ has: this.page.locator('.text', { hasText: text }) });
    try {
      await this.page.waitForFunction((t) => [...document.querySelectorAll('#messages > li.msg[data-id] .text')].some((e) => e.textContent === t), text, { timeout, polling: 50 });
      await loc.first().waitFor({ state: 'visible', timeout });
    } catch (e) {
      throw new Error(`${this.name}: message ${JSON.stringify(text.slice(0, 80))} not shown within ${timeout} ms; shown: ${JSON.stringify((await this.messages()).map((m) => m.text.slice(0, 40)))}`);
    }
    return loc.first();
  }
  async waitSystem(kind, textPart, timeout = WAIT) {
    try {
      await this.page.waitForFunction(([k, t]) => [...document.querySelectorAll('#messages > li.sys')]
        .some((e) => e.dataset.kind === k && e.textContent.includes(t) && e.getClientRects().length > 0), [kind, textPart], { timeout, polling: 50 });
    } catch (e) {
      throw new Error(`${this.name}: no visible "${kind}" system line containing ${JSON.stringify(textPart)}; lines: ${JSON.stringify(await this.systemLines())}`);
    }
  }
  async waitUsers(names, timeout = WAIT) {
    const want = [...names].sort();
    try {
      await this.page.waitForFunction((w) => {
        const got = [...document.querySelectorAll('#users > li .uname')].map((e) => e.textContent).sort();
        return JSON.stringify(got) === JSON.stringify(w);
      }, want, { timeout, polling: 50 });
    } catch (e) {
      throw new Error(`${this.name}: presence list is ${JSON.stringify(await this.users())}, want ${JSON.stringify(want)}`);
    }
  }

  async shot(file) {
    await this.page.screenshot({ path: path.join(SHOTS, file), timeout: WAIT });
    return path.join(SHOTS, file);
  }

  // The page itself never threw and no alert/confirm/prompt ever opened.
  async assertHealthy() {
    assert.deepEqual(this.pageErrors, [], `${this.name}: uncaught errors in the page`);
    assert.deepEqual(this.dialogs, [], `${this.name}: a JavaScript dialog was opened`);
    const spied = await this.page.evaluate(() => window.__dialogCalls);
    assert.deepEqual(spied, [], `${this.name}: alert/confirm/prompt was called`);
  }
}

export class Scenario {
  constructor(t, label) {
    this.t = t;
    this.label = label;
    this.users = [];
    this.servers = [];
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wschat-e2e-'));
  }

  // `args` and `env` are the server's flags and environment from its first start on.
  async server(label = this.label, { args = [], env = {} } = {}) {
    const s = new Server(slug(label), path.join(this.tmp, `history-${this.servers.length}.jsonl`));
    s.args = args;
    s.env = env;
    this.servers.push(s);
    await s.start();
    return s;
  }

  // Extra options (e.g. hasTouch, isMobile) go to browser.newContext as they are.
  async user(name, { viewport = { width: 960, height: 680 }, colorScheme = 'light', ...contextOptions } = {}) {
    const b = await browser();
    const context = await b.newContext({ viewport, colorScheme, reducedMotion: 'reduce', ...contextOptions });
    context.setDefaultTimeout(WAIT);
    const page = await context.newPage();
    const u = new User(this, name, page, context);
    page.on('pageerror', (e) => u.pageErrors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') u.consoleErrors.push(m.text()); });
    page.on('dialog', (d) => { u.dialogs.push(`${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });
    page.on('websocket', (ws) => {
      ws.on('framereceived', (f) => { if (typeof f.payload === 'string') u.wsFramesIn.push(f.payload); });
      ws.on('framesent', (f) => { if (typeof f.payload === 'string') u.wsFramesOut.push(f.payload); });
    });
    // A spy on alert/confirm/prompt that still lets the real dialog open (and be caught above).
    await page.addInitScript(() => {
      window.__dialogCalls = [];
      for (const f of ['alert', 'confirm', 'prompt']) {
        const orig = window[f];
        window[f] = function (...a) { window.__dialogCalls.push([f, ...a.map(String)]); return orig.apply(this, a); };
      }
    });
    this.users.push(u);
    return u;
  }

  async cleanup(failed) {
    if (failed) {
      for (const u of this.users) {
        try { await u.shot(`FAILED-${slug(this.label)}-${slug(u.name)}.png`); } catch { /* page gone */ }
        try { fs.writeFileSync(path.join(LOGS, `FAILED-${slug(this.label)}-${slug(u.name)}.html`), await u.page.content()); } catch { /* page gone */ }
      }
    }
    for (const u of this.users) { try { await u.context.close(); } catch { /* ignore */ } }
    for (const s of this.servers) { try { await s.stop(); } catch { /* ignore */ } }
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

// A test with its own server(s) and browser contexts, cleaned up whatever happens.
export function scenario(name, fn, { timeout = 60_000 } = {}) {
  test(name, { timeout }, async (t) => {
    const scn = new Scenario(t, name);
    let failed = true;
    try {
      await fn(scn);
      for (const u of scn.users) await u.assertHealthy();
      failed = false;
    } finally {
      await scn.cleanup(failed);
    }
  });
}

// Puts screenshots next to each other in one picture.
export async function sideBySide(files, out) {
  const b = await browser();
  const context = await b.newContext({ viewport: { width: 1960, height: 720 } });
  try {
    const page = await context.newPage();
    const imgs = files.map((f) => `<figure><img src="data:image/png;base64,${fs.readFileSync(f).toString('base64')}"><figcaption>${path.basename(f)}</figcaption></figure>`).join('');
    await page.setContent(`<!doctype html><style>body{margin:0;padding:12px;display:flex;gap:12px;background:#888;font:14px sans-serif}figure{margin:0}img{display:block;border:1px solid #333}figcaption{color:#fff;padding:4px 0}</style>${imgs}`);
    await page.locator('body').screenshot({ path: out });
  } finally {
    await context.close();
  }
}

export { assert, sleep };
