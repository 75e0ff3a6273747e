// Behind nginx (deploy/nginx.conf, see nginx.mjs): TLS at the proxy, the page and its
// WebSocket under /chat/, wschat started with --trust-proxy 127.0.0.1.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { scenario, assert, Server, WAIT, sleep } from './lib.mjs';
import { Nginx, get } from './nginx.mjs';

// A WebSocket client by hand, from a chosen loopback address (a browser cannot choose
// one): connects from `localAddress` to 127.0.0.1:port (over TLS when `secure`), sends
// an upgrade for `urlPath` with `headers`, and resolves to { status, socket }.
function rawUpgrade({ port, secure, localAddress, urlPath, headers = {} }) {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, localAddress };
    const socket = secure ? tls.connect({ ...opts, rejectUnauthorized: false }) : net.connect(opts);
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer from 127.0.0.1:${port} within ${WAIT} ms`)); }, WAIT);
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      const lines = [`GET ${urlPath} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13',
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
    let got = Buffer.alloc(0);
    const onData = (d) => {
      got = Buffer.concat([got, d]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      socket.off('data', onData);
      const status = Number(got.subarray(0, end).toString().split(' ')[1]);
      resolve({ status, socket });
    };
    socket.on('data', onData);
    socket.once('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// A masked client text frame (RFC 6455 §5.2, §5.3), for short texts.
function textFrame(text) {
  const payload = Buffer.from(text);
  assert.ok(payload.length < 126);
  const mask = crypto.randomBytes(4);
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]);
}

async function waitLog(server, re, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const log = fs.readFileSync(server.logPath, 'utf8');
    const m = re.exec(log);
    if (m) return m[0];
    if (Date.now() > deadline) throw new Error(`no line matching ${re} in ${server.logPath}:\n${log.split('\n').slice(-20).join('\n')}`);
    await sleep(50);
  }
}

scenario('two users chat through nginx over wss: under /chat/, and wschat sees each forwarded client', async (scn) => {
  const server = new Server('proxy', path.join(scn.tmp, 'history.jsonl'));
  // --session-grace 1: the raw sockets' users leave a second after they close.
  server.args = ['--trust-proxy', '127.0.0.1', '--max-per-ip', '3', '--session-grace', '1'];
  scn.servers.push(server);
  await server.start();
  const nginx = new Nginx('proxy');
  const raw = [];
  try {
    await nginx.start(server.port);
    const origin = `https://127.0.0.1:${nginx.port}`;

    // What the config says besides the chat: / and /chat lead to /chat/, and plain http to https.
    assert.deepEqual(await get(nginx.port, '/'), { status: 302, location: `${origin}/chat/` });
    assert.deepEqual(await get(nginx.port, '/chat'), { status: 301, location: `${origin}/chat/` });
    assert.deepEqual(await get(nginx.httpPort, '/chat/', { secure: false }), { status: 301, location: 'https://127.0.0.1/chat/' });

    // The page connects relative to its own URL: wss:, under /chat/.
    const sockets = [];
    const alice = await scn.user('alice', { ignoreHTTPSErrors: true });
    alice.page.on('websocket', (ws) => sockets.push(ws.url()));
    await alice.open(nginx.url);
    const bob = await (await scn.user('bob', { ignoreHTTPSErrors: true })).open(nginx.url);
    assert.deepEqual(sockets, [`wss://127.0.0.1:${nginx.port}/chat/ws`]);
    assert.ok((await alice.statusText()).includes('Online'), 'alice is online');
    await alice.waitUsers(['alice', 'bob']);
    await bob.waitUsers(['alice', 'bob']);
    await alice.waitSystem('join', 'bob joined');
    await alice.say('hello through nginx');
    await bob.waitMessage('hello through nginx');
    await bob.say('and back over wss');
    await alice.waitMessage('and back over wss');
    for (const u of [alice, bob]) {
      assert.deepEqual((await u.messages()).map((m) => [m.from, m.text]),
        [['alice', 'hello through nginx'], ['bob', 'and back over wss']], `${u.name} sees both messages in order`);
    }
    await alice.shot('proxy-alice.png');

    // Three more clients, from 127.0.0.5-7 through nginx, with the page's origin. Each is
    // counted under its own forwarded address: were they counted as nginx (127.0.0.1,
    // where alice and bob already are), --max-per-ip 3 would refuse at least two.
    const present = ['alice', 'bob'];
    for (const [i, from] of ['127.0.0.5', '127.0.0.6', '127.0.0.7'].entries()) {
      const name = `carol${i + 1}`;
      const r = await rawUpgrade({ port: nginx.port, secure: true, localAddress: from, urlPath: '/chat/ws', headers: { Origin: origin } });
      raw.push(r.socket);
      assert.equal(r.status, 101, `${name} from ${from} through nginx`);
      r.socket.write(textFrame(JSON.stringify({ type: 'hello', name })));
      present.push(name);
      await alice.waitUsers(present);
    }

    // A client that skips nginx and forges X-Forwarded-For from an untrusted address
    // (127.0.0.9) is taken for what it is.
    const forged = await rawUpgrade({ port: server.port, secure: false, localAddress: '127.0.0.9', urlPath: '/ws', headers: { 'X-Forwarded-For': '127.0.0.42' } });
    raw.push(forged.socket);
    assert.equal(forged.status, 101);
    forged.socket.write(textFrame(JSON.stringify({ type: 'hello', name: 'mallory' })));
    await alice.waitUsers([...present, 'mallory']);

    // The log names each client: the forwarded address via nginx, the untrusted one by its own.
    for (const s of raw) s.destroy();
    await alice.waitUsers(['alice', 'bob']);
    for (const from of ['127.0.0.5', '127.0.0.6', '127.0.0.7']) {
      const line = await waitLog(server, new RegExp(`^.*${from.replaceAll('.', '\\.')} via 127\\.0\\.0\\.1:\\d+ #\\d+: closed after.*$`, 'm'));
      console.log(`wschat log: ${line}`);
    }
    const line = await waitLog(server, /^.* 127\.0\.0\.9:\d+ #\d+: closed after.*$/m);
    console.log(`wschat log: ${line}`);
    assert.ok(!fs.readFileSync(server.logPath, 'utf8').includes('127.0.0.42'), 'the forged address is in the log');

    // The browsers, closed: their lines name the client nginx forwarded (127.0.0.1 here)
    // and the nginx connection it came through.
    await alice.assertHealthy();
    await alice.context.close();
    scn.users = scn.users.filter((u) => u !== alice);
    await bob.waitUsers(['bob']);
    await waitLog(server, /^.* 127\.0\.0\.1 via 127\.0\.0\.1:\d+ #\d+: closed after.*$/m);
  } finally {
    for (const s of raw) s.destroy();
    await nginx.stop();
  }
});
