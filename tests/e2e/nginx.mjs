// nginx in front of a wschat, as deploy/nginx.conf sets it up, for the browser tests.
//
// The config is deploy/nginx.conf itself with only these lines replaced (each must
// match exactly once, so an edit of the file that breaks this copy fails the test):
// the `user` (the test's own), the listen ports (free ports on 127.0.0.1, instead
// of 80/443 on every interface), the upstream port (the wschat under test), the
// certificate (a self-signed one made here with openssl), and the log files; the
// temp paths are added. nginx runs in the foreground (`daemon off`) with its prefix,
// pid file, logs and temp files in a fresh temporary folder, as a child of this
// process (spawned without a shell, so the child's PID is nginx's master itself),
// and is stopped by that PID — and, if it will not go, its workers by theirs.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, LOGS, WAIT } from './lib.mjs';

export const NGINX = process.env.NGINX || '/usr/sbin/nginx';
export const DEPLOY_CONF = path.join(ROOT, 'deploy', 'nginx.conf');

// Still running when node exits (a crash between start and stop): killed.
const running = new Set();
process.on('exit', () => { for (const p of running) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });

// A port that was free on 127.0.0.1 a moment ago.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

// deploy/nginx.conf with the test's ports, paths and certificate.
export function testConfig(text, { user, httpsPort, httpPort, upstreamPort, dir }) {
  const replacements = [
    ['user www-data;', `user ${user};`],
    ['error_log /var/log/nginx/error.log;', `error_log ${dir}/error.log;`],
    ['access_log /var/log/nginx/access.log;', `access_log ${dir}/access.log;\n    client_body_temp_path ${dir}/client_body;\n    proxy_temp_path ${dir}/proxy;\n    fastcgi_temp_path ${dir}/fastcgi;\n    uwsgi_temp_path ${dir}/uwsgi;\n    scgi_temp_path ${dir}/scgi;`],
    ['server 127.0.0.1:8080;', `server 127.0.0.1:${upstreamPort};`],
    ['listen 80;', `listen 127.0.0.1:${httpPort};`],
    ['listen [::]:80;', ''],
    ['listen 443 ssl;', `listen 127.0.0.1:${httpsPort} ssl;`],
    ['listen [::]:443 ssl;', ''],
    ['/etc/letsencrypt/live/chat.example.org/fullchain.pem;', `${dir}/cert.pem;`],
    ['/etc/letsencrypt/live/chat.example.org/privkey.pem;', `${dir}/key.pem;`],
  ];
  let out = text;
  for (const [from, to] of replacements) {
    const n = out.split(from).length - 1;
    if (n !== 1) throw new Error(`deploy/nginx.conf: expected "${from}" once, found it ${n} times; update tests/e2e/nginx.mjs`);
    out = out.replace(from, to);
  }
  return out;
}

// GET from 127.0.0.1:port, over https (certificate unchecked: it is the test's own) unless
// `secure` is false; resolves to the status and the Location header.
export function get(port, urlPath, { secure = true, timeout = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, path: urlPath, timeout, ...(secure ? { rejectUnauthorized: false } : {}) };
    const req = (secure ? https : http).get(opts, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, location: res.headers.location }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export class Nginx {
  constructor(label) {
    this.label = label;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wschat-nginx-'));
    this.logPath = path.join(LOGS, `${label}-nginx.log`);
    this.proc = null;
    this.port = 0; // https
    this.httpPort = 0;
  }

  get url() { return `https://127.0.0.1:${this.port}/chat/`; }

  // Starts nginx in front of 127.0.0.1:upstreamPort and waits until /chat/healthz answers 200 through it.
  async start(upstreamPort) {
    if (!fs.existsSync(NGINX)) throw new Error(`${NGINX} not found: apt-get install nginx (scripts/test-browser does)`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', path.join(this.dir, 'key.pem'), '-out', path.join(this.dir, 'cert.pem'), '-days', '2',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore', timeout: WAIT });
    let lastErr;
    // A free port can be taken by someone else before nginx binds it: try again with others.
    for (let attempt = 0; attempt < 3; attempt++) {
      try { return await this.#startOnce(upstreamPort); } catch (e) { lastErr = e; await this.stop({ keepDir: true }); }
    }
    throw lastErr;
  }

  async #startOnce(upstreamPort) {
    this.port = await freePort();
    this.httpPort = await freePort();
    const conf = path.join(this.dir, 'nginx.conf');
    fs.writeFileSync(conf, testConfig(fs.readFileSync(DEPLOY_CONF, 'utf8'), {
      user: os.userInfo().username, httpsPort: this.port, httpPort: this.httpPort, upstreamPort, dir: this.dir,
    }));
    const args = ['-p', this.dir, '-c', conf, '-e', path.join(this.dir, 'error.log'), '-g', `daemon off; pid ${path.join(this.dir, 'nginx.pid')};`];
    fs.appendFileSync(this.logPath, `\n=== start: ${NGINX} ${args.join(' ')}\n`);
    const proc = spawn(NGINX, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(proc);
    this.proc = proc;
    proc.exited = new Promise((resolve) => proc.once('exit', (code, sig) => {
      running.delete(proc);
      fs.appendFileSync(this.logPath, `=== exit: code=${code} signal=${sig}\n`);
      resolve({ code, sig });
    }));
    for (const s of [proc.stdout, proc.stderr]) s.on('data', (d) => fs.appendFileSync(this.logPath, d));
    const deadline = Date.now() + WAIT;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`nginx exited at start (${proc.exitCode ?? proc.signalCode}); see ${this.logPath} and ${this.dir}/error.log:\n${this.errorLog()}`);
      }
      try {
        if ((await get(this.port, '/chat/healthz')).status === 200) return this;
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`nginx: https://127.0.0.1:${this.port}/chat/healthz did not answer 200 within ${WAIT} ms:\n${this.errorLog()}`);
      await sleep(50);
    }
  }

  errorLog() {
    try { return fs.readFileSync(path.join(this.dir, 'error.log'), 'utf8'); } catch { return '(no error.log)'; }
  }

  // nginx's workers, by PID (from /proc), so that they can be killed if the master is.
  #workers() {
    const pid = this.proc?.pid;
    try { return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { return []; }
  }

  // SIGTERM (nginx's fast shutdown: the master stops its workers), bounded; then SIGKILL, workers too.
  async stop({ keepDir = false } = {}) {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const workers = this.#workers();
      p.kill('SIGTERM');
      const gone = await Promise.race([p.exited.then(() => true), sleep(5000).then(() => false)]);
      if (!gone) {
        p.kill('SIGKILL');
        for (const w of workers) { try { process.kill(w, 'SIGKILL'); } catch { /* gone */ } }
        await p.exited;
      }
    }
    if (p) fs.appendFileSync(this.logPath, `--- error.log\n${this.errorLog()}`);
    this.proc = null;
    if (!keepDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
