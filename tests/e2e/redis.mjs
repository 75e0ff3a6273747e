// A cluster for the browser tests: a real redis-server (Debian's package) and
// wschat nodes sharing it (--redis, --node).
//
// Redis runs on a free loopback port with no persistence (--save '' --appendonly
// no) in a fresh temporary folder, spawned without a shell (so the child's PID is
// redis-server itself) and stopped by that PID. The nodes are lib.mjs's Server with
// the cluster's flags and without --history-file (Redis holds the history then, and
// wschat refuses both), stopped by their PIDs as well.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Server, LOGS, WAIT } from './lib.mjs';
import { freePort, spawnLogged } from './nginx.mjs';

export const REDIS_SERVER = process.env.REDIS_SERVER || '/usr/bin/redis-server';

// One round trip of the Redis protocol: PING, answered +PONG.
function ping(port, timeout = 1000) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok) => { clearTimeout(timer); s.destroy(); resolve(ok); };
    const timer = setTimeout(() => done(false), timeout);
    s.once('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => { got += d; if (got.includes('\r\n')) done(got.startsWith('+PONG')); });
    s.once('error', () => done(false));
  });
}

export class Redis {
  constructor(label) {
    this.label = label;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wschat-redis-'));
    this.logPath = path.join(LOGS, `${label}-redis.log`);
    fs.writeFileSync(this.logPath, '');
    this.port = 0;
    this.proc = null;
  }

  get url() { return `redis://127.0.0.1:${this.port}`; }

  // Starts redis-server on a free port and waits until it answers PING.
  async start() {
    if (!fs.existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} not found: apt-get install redis-server (scripts/test-browser does)`);
    let lastErr;
    // A free port can be taken by someone else before redis binds it: try again with others.
    for (let attempt = 0; attempt < 3; attempt++) {
      try { return await this.#startOnce(); } catch (e) { lastErr = e; await this.stop({ keepDir: true }); }
    }
    throw lastErr;
  }

  // Stops it and starts it again on the same port, empty (it keeps nothing on disk):
  // a Redis restarted without persistence.
  async restart() {
    const port = this.port;
    await this.stop({ keepDir: true });
    return this.#startOnce(port);
  }

  async #startOnce(port = 0) {
    this.port = port || await freePort();
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir];
    const proc = spawnLogged(REDIS_SERVER, args, this.logPath);
    this.proc = proc;
    const deadline = Date.now() + WAIT;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`redis-server exited at start (${proc.exitCode ?? proc.signalCode}); see ${this.logPath}`);
      }
      // Our own child answers: not someone else's redis that held the port first.
      if (await ping(this.port) && proc.exitCode === null) return this;
      if (Date.now() > deadline) throw new Error(`redis-server: no PONG on port ${this.port} within ${WAIT} ms; see ${this.logPath}`);
      await sleep(50);
    }
  }

  // SIGTERM, bounded; then SIGKILL.
  async stop({ keepDir = false } = {}) {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM');
      const gone = await Promise.race([p.exited.then(() => true), sleep(5000).then(() => false)]);
      if (!gone) { p.kill('SIGKILL'); await p.exited; }
    }
    this.proc = null;
    if (!keepDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// One wschat node of the cluster on `redis`: lib.mjs's Server with the flags of a
// node instead of --history-file. Server's start waits for /healthz 200, which a
// node answers once it reaches Redis.
export class ClusterNode extends Server {
  constructor(label, redis, node, args = []) {
    super(label, null);
    this.redis = redis;
    this.node = node;
    this.args = args;
  }

  // A node keeps the history in Redis (and wschat refuses --history-file with it).
  storeArgs() { return ['--redis', this.redis.url, '--node', this.node]; }

  // Waits until this node's log has a line matching `re`; resolves to the match.
  async waitLog(re, timeout = WAIT) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const m = re.exec(this.logText());
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`${this.label}: no line matching ${re} within ${timeout} ms in ${this.logPath}:\n${this.logText().split('\n').slice(-15).join('\n')}`);
      await sleep(50);
    }
  }
}
