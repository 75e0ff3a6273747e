// Two wschat nodes sharing their rooms through a real Redis, behind nginx as
// deploy/nginx-cluster.conf sets it up (see nginx.mjs and redis.mjs). Each browser is
// pinned to one node by the config's wschat_node cookie; node 1 is killed, and the
// page that was on it comes back through nginx on node 2 with every message once, in
// order.
import { scenario, assert, sleep } from './lib.mjs';
import { Nginx, CLUSTER_CONF, get } from './nginx.mjs';
import { Redis, ClusterNode } from './redis.mjs';

const NODE_TIMEOUT = 3; // s: --node-timeout of both nodes

// The rendered log: ids unique and consecutive, texts exactly these, in this order.
function assertNoGapNoDup(name, msgs, texts) {
  const ids = msgs.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `${name}: a message id is shown twice: ${ids}`);
  for (let i = 1; i < ids.length; i++) assert.equal(ids[i], ids[i - 1] + 1, `${name}: gap or disorder in ids ${ids}`);
  assert.deepEqual(msgs.map((m) => m.text), texts, `${name}: the conversation`);
}

// The server's frames a page received, parsed.
const framesIn = (u) => u.wsFramesIn.map((f) => { try { return JSON.parse(f); } catch { return null; } }).filter(Boolean);
const re = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

scenario('two users on two nodes behind nginx: the node of one is killed, and its page comes back on the other through nginx with no gap and no duplicate', async (scn) => {
  const redis = new Redis('cluster');
  const nodes = [];
  const nginx = new Nginx('cluster', { conf: CLUSTER_CONF });
  try {
    await redis.start();
    for (const name of ['n1', 'n2']) {
      const node = new ClusterNode(`cluster-${name}`, redis, name, ['--trust-proxy', '127.0.0.1', '--node-timeout', String(NODE_TIMEOUT)]);
      // "#3 joined as "alice" (user 7)": which node a page is on.
      node.env = { RUST_LOG: 'info,wschat::chat::hub=debug' };
      nodes.push(node);
      await node.start();
    }
    const [n1, n2] = nodes;
    await nginx.start(nodes.map((n) => n.port));
    const origin = `https://127.0.0.1:${nginx.port}`;
    const wsUrl = `wss://127.0.0.1:${nginx.port}/chat/ws`;

    // The cookie picks a node; without it, either. /chat still leads to /chat/.
    for (const cookie of ['wschat_node=n1', 'wschat_node=n2', '']) {
      assert.equal((await get(nginx.port, '/chat/healthz', { headers: cookie ? { Cookie: cookie } : {} })).status, 200, `healthz with "${cookie}"`);
    }
    assert.deepEqual(await get(nginx.port, '/chat'), { status: 301, location: `${origin}/chat/` });

    // alice is pinned to n1, bob to n2, each in a context of their own.
    const pinned = async (name, node) => {
      const u = await scn.user(name, { ignoreHTTPSErrors: true });
      await u.context.addCookies([{ name: 'wschat_node', value: node, domain: '127.0.0.1', path: '/chat/', secure: true }]);
      u.sockets = [];
      u.page.on('websocket', (ws) => u.sockets.push(ws.url()));
      return u;
    };
    const alice = await pinned('alice', 'n1');
    await alice.open(nginx.url);
    await n1.waitLog(/#\d+ joined as "alice"/);
    const bob = await pinned('bob', 'n2');
    await bob.open(nginx.url);
    await n2.waitLog(/#\d+ joined as "bob"/);
    assert.doesNotMatch(n2.logText(), /joined as "alice"/, 'alice is on n1 only');
    assert.doesNotMatch(n1.logText(), /joined as "bob"/, 'bob is on n2 only');
    // The page and its WebSocket came through the pinned group, from that node.
    const access = nginx.accessLog();
    assert.match(access, new RegExp(`"GET /chat/ HTTP/1\\.1" 200 node=wschat_n1 upstream=127\\.0\\.0\\.1:${n1.port} `), access);
    assert.match(access, new RegExp(`"GET /chat/ HTTP/1\\.1" 200 node=wschat_n2 upstream=127\\.0\\.0\\.1:${n2.port} `), access);

    // Presence spans the nodes, and so do messages, both ways.
    await alice.waitUsers(['alice', 'bob']);
    await bob.waitUsers(['alice', 'bob']);
    const before = ['hello from n1', 'hello from n2', 'n1 again'];
    await alice.say(before[0]);
    await bob.waitMessage(before[0]);
    await bob.say(before[1]);
    await alice.waitMessage(before[1]);
    await alice.say(before[2]);
    for (const u of [alice, bob]) { await u.waitMessage(before[2]); assertNoGapNoDup(u.name, await u.messages(), before); }
    const lastBefore = (await alice.messages()).at(-1).id;
    await alice.shot('cluster-alice-on-n1.png');

    // alice's reconnects are held back (to a closed port) until bob has talked, so that
    // those messages are surely from while she was away.
    await alice.holdReconnects();

    const t0 = Date.now();
    await n1.kill('SIGKILL');
    await alice.waitState('offline');
    const tOffline = Date.now() - t0;
    await alice.waitSystem('disconnect', 'Disconnected');
    assert.equal(await bob.page.locator('#status').getAttribute('data-state'), 'online', 'bob, on n2, stays online');
    const missed = ['while alice was away 1', 'while alice was away 2'];
    for (const t of missed) { await bob.say(t); await bob.waitMessage(t); }
    await alice.shot('cluster-alice-offline.png');

    // Let her through: the page's next attempt (by itself, on its backoff) goes to nginx,
    // whose n1 group finds n1 gone and takes n1's backup, n2.
    await alice.releaseReconnects();
    await alice.waitOnline(20_000);
    const tBack = Date.now() - t0;
    for (const t of missed) await alice.waitMessage(t);
    await alice.waitSystem('reconnect', 'caught up on 2 missed messages');
    assertNoGapNoDup('alice', await alice.messages(), [...before, ...missed]);
    await n2.waitLog(/#\d+ joined as "alice"/);
    assert.match(nginx.errorLog(), new RegExp(`connect\\(\\) failed \\(111: Connection refused\\) while connecting to upstream.*upstream: "http://127\\.0\\.0\\.1:${n1.port}/ws"`),
      'nginx tried n1 for her and went on to n2');
    // Every WebSocket of hers was nginx's (the blocked attempts never left the page).
    assert.deepEqual(alice.sockets.filter((u) => !u.includes('/blocked')), [wsUrl, wsUrl]);
    // She resumed her session from the last id she saw.
    const hellos = alice.wsFramesOut.map((f) => JSON.parse(f)).filter((m) => m.type === 'hello');
    assert.equal(hellos.length, 2);
    assert.deepEqual(hellos[1].rooms, { lobby: lastBefore });
    assert.match(hellos[1].session, /^[0-9a-f]{32}$/);
    // New requests, pinned to n1 or not, go to n2 (the groups' passive failover).
    for (const cookie of ['wschat_node=n1', '', '', 'wschat_node=n2']) {
      assert.equal((await get(nginx.port, '/chat/healthz', { headers: cookie ? { Cookie: cookie } : {} })).status, 200, `healthz with "${cookie}", n1 down`);
    }
    const adopted = /takes up session of user \d+ \("alice"\) from another node/.test(n2.logText());

    // n2 gives n1 up after --node-timeout; alice, back on n2 by then, is still there, as alice.
    await n2.waitLog(/node n1 silent for --node-timeout: its \d+ user\(s\) leave/, (NODE_TIMEOUT + 7) * 1000);
    const tTimeout = Date.now() - t0;
    await alice.waitUsers(['alice', 'bob']);
    await bob.waitUsers(['alice', 'bob']);
    const aboutAlice = framesIn(bob).filter((m) => (m.type === 'leave' || m.type === 'join') && m.user?.name === 'alice');
    if (adopted) assert.deepEqual(aboutAlice, [], 'her session moved to n2: bob saw her neither leave nor come back');

    // Sending from her page still works, both ways, and nothing is shown twice.
    await alice.say('back, on n2');
    await bob.waitMessage('back, on n2');
    await bob.say('welcome back');
    await alice.waitMessage('welcome back');
    const all = [...before, ...missed, 'back, on n2', 'welcome back'];
    for (const u of [alice, bob]) assertNoGapNoDup(u.name, await u.messages(), all);
    assert.deepEqual((await alice.messages()).map((m) => m.id), (await bob.messages()).map((m) => m.id), 'the same ids on both pages');
    assert.deepEqual((await alice.messages()).map((m) => m.own), [true, false, true, false, false, true, false]);
    await alice.shot('cluster-alice-on-n2.png');
    await bob.shot('cluster-bob.png');
    console.log(`cluster: n1 killed; alice offline after ${tOffline} ms, back on n2 after ${tBack} ms `
      + `(${adopted ? 'her session taken up from n1' : 'a new session'}), n1 given up after ${tTimeout} ms`);
  } finally {
    await nginx.stop();
    for (const n of nodes) { try { await n.stop(); } catch { /* ignore */ } }
    await redis.stop();
  }
});
