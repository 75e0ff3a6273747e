// nginx in front of a wschat, as deploy/nginx.conf sets it up, for the browser tests
// (or in front of several nodes, as deploy/nginx-cluster.conf does: `new Nginx(label,
// { conf: CLUSTER_CONF })`, started with the nodes' ports; see clusterTestConfig).
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
export const CLUSTER_CONF = path.join(ROOT, 'deploy', 'nginx-cluster.conf');

// Still running when node exits (a crash between start and stop): killed.
const running = new Set();
process.on('exit', () => { for (const p of running) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });

// Spawns `bin` (no shell: the child's PID is the program's own), killed at exit if
// still running; its start, output and exit go to `logPath`. `proc.exited` resolves
// to { code, sig }.
export function spawnLogged(bin, args, logPath) {
  fs.appendFileSync(logPath, `\n=== start: ${bin} ${args.map((a) => a === '' ? "''" : a).join(' ')}\n`);
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  proc.exited = new Promise((resolve) => proc.once('exit', (code, sig) => {
    running.delete(proc);
    fs.appendFileSync(logPath, `=== exit: code=${code} signal=${sig}\n`);
    resolve({ code, sig });
  }));
  for (const s of [proc.stdout, proc.stderr]) s.on('data', (d) => fs.appendFileSync(logPath, d));
  return proc;
}

// A port that was free on 127.0.0.1 a moment ago.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

// `text` with each [from, to, times = 1] replaced; `from` must be found exactly `times`
// times, so that an edit of the file that breaks the test's copy fails the test.
function replaceAll(text, replacements, file) {
  let out = text;
  for (const [from, to, times = 1] of replacements) {
    const n = out.split(from).length - 1;
    if (n !== times) throw new Error(`${file}: expected "${from}" ${times === 1 ? 'once' : `${times} times`}, found it ${n} times; update tests/e2e/nginx.mjs`);
    out = out.split(from).join(to);
  }
  return out;
}

// The lines both files share: user, logs (and the temp paths), listen ports, certificate.
function commonReplacements({ user, httpsPort, httpPort, dir }, accessLog) {
  return [
    ['user www-data;', `user ${user};`],
    ['error_log /var/log/nginx/error.log;', `error_log ${dir}/error.log;`],
    [`access_log /var/log/nginx/access.log${accessLog};`, `access_log ${dir}/access.log${accessLog};\n    client_body_temp_path ${dir}/client_body;\n    proxy_temp_path ${dir}/proxy;\n    fastcgi_temp_path ${dir}/fastcgi;\n    uwsgi_temp_path ${dir}/uwsgi;\n    scgi_temp_path ${dir}/scgi;`],
    ['listen 80;', `listen 127.0.0.1:${httpPort};`],
    ['listen [::]:80;', ''],
    ['listen 443 ssl;', `listen 127.0.0.1:${httpsPort} ssl;`],
    ['listen [::]:443 ssl;', ''],
    ['/etc/letsencrypt/live/chat.example.org/fullchain.pem;', `${dir}/cert.pem;`],
    ['/etc/letsencrypt/live/chat.example.org/privkey.pem;', `${dir}/key.pem;`],
  ];
}

// deploy/nginx.conf with the test's ports, paths and certificate.
export function testConfig(text, { user, httpsPort, httpPort, upstreamPort, dir }) {
  return replaceAll(text, [
    ...commonReplacements({ user, httpsPort, httpPort, dir }, ''),
    ['server 127.0.0.1:8080;', `server 127.0.0.1:${upstreamPort};`],
  ], 'deploy/nginx.conf');
}

// deploy/nginx-cluster.conf with the test's ports, paths and certificate, and the two
// nodes' ports for 8081 and 8082. Each node is a `server` line in three upstreams (all
// the nodes; its own group; the other node's group, as its backup), so each of those
// is expected three times; the rest once, as in testConfig.
export const CLUSTER_NODE_PORTS = [8081, 8082];
export function clusterTestConfig(text, { user, httpsPort, httpPort, upstreamPorts, dir }) {
  if (upstreamPorts.length !== CLUSTER_NODE_PORTS.length) throw new Error(`deploy/nginx-cluster.conf has ${CLUSTER_NODE_PORTS.length} nodes, not ${upstreamPorts.length}`);
  const n = CLUSTER_NODE_PORTS.length;
  return replaceAll(text, [
    ...commonReplacements({ user, httpsPort, httpPort, dir }, ' wschat'),
    ...CLUSTER_NODE_PORTS.map((p, i) => [`server 127.0.0.1:${p} `, `server 127.0.0.1:${upstreamPorts[i]} `, n + 1]),
  ], 'deploy/nginx-cluster.conf');
}

// GET from 127.0.0.1:port, over https (certificate unchecked: it is the test's own) unless
// `secure` is false; resolves to the status and the Location header.
// `headers` are sent as they are (e.g. { Cookie: 'wschat_node=n2' }); with `body`, the
// answer's body is in it too.
export function get(port, urlPath, { secure = true, timeout = 2000, headers = {}, body = false } = {}) {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, path: urlPath, timeout, headers, ...(secure ? { rejectUnauthorized: false } : {}) };
    const req = (secure ? https : http).get(opts, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, location: res.headers.location, ...(body ? { body: text } : {}) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export class Nginx {
  // `conf`: DEPLOY_CONF (one wschat) or CLUSTER_CONF (its nodes).
  constructor(label, { conf = DEPLOY_CONF } = {}) {
    this.label = label;
    this.conf = conf;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wschat-nginx-'));
    this.logPath = path.join(LOGS, `${label}-nginx.log`);
    this.proc = null;
    this.port = 0; // https
    this.httpPort = 0;
  }

  get url() { return `https://127.0.0.1:${this.port}/chat/`; }

  // Starts nginx in front of 127.0.0.1:upstreamPort (CLUSTER_CONF: an array, the nodes'
  // ports) and waits until /chat/healthz answers 200 through it.
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
    const params = { user: os.userInfo().username, httpsPort: this.port, httpPort: this.httpPort, dir: this.dir };
    const text = fs.readFileSync(this.conf, 'utf8');
    fs.writeFileSync(conf, this.conf === CLUSTER_CONF
      ? clusterTestConfig(text, { ...params, upstreamPorts: upstreamPort })
      : testConfig(text, { ...params, upstreamPort }));
    const args = ['-p', this.dir, '-c', conf, '-e', path.join(this.dir, 'error.log'), '-g', `daemon off; pid ${path.join(this.dir, 'nginx.pid')};`];
    const proc = spawnLogged(NGINX, args, this.logPath);
    this.proc = proc;
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

  // The access log so far (a request's line is written when it ends: a WebSocket's when it closes).
  accessLog() {
    try { return fs.readFileSync(path.join(this.dir, 'access.log'), 'utf8'); } catch { return ''; }
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
    if (p) fs.appendFileSync(this.logPath, `--- error.log\n${this.errorLog()}${this.conf === CLUSTER_CONF ? `--- access.log\n${this.accessLog()}` : ''}`);
    this.proc = null;
    if (!keepDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
