// permessage-deflate (RFC 7692) in a real browser: Chromium offers it on every
// connection (`permessage-deflate; client_max_window_bits`, RFC 7692 §7.1.2.2)
// and the server accepts it by default.
//
// - The page's own socket reports what the server's 101 agreed in `ws.extensions`
//   (RFC 6455 §9.1; RFC 7692 §7.1.1: the server answers both no_context_takeover
//   parameters). The page keeps its socket in a closure, so an init script keeps
//   a reference to every WebSocket the page constructs (a Proxy around the
//   constructor: the sockets are the browser's own, nothing in the page changes).
// - A 60 KiB message typed by one user round-trips and is shown intact to another,
//   and the server's frame trace (RUST_LOG=wschat::ws=trace, src/ws/trace.rs) shows
//   how it went: in from Chromium compressed (RSV1, §6.1; Chromium compresses what
//   it sends), and out to both users compressed, in a frame a fraction of the
//   message's size, the same length to both (the broadcast is compressed once,
//   and every client of the same window gets the same bytes, §7.2.1 with no
//   context takeover).
// - With --no-deflate the server accepts no extension: `ws.extensions` is empty,
//   no frame has RSV1 set, and the chat works as before.
import { scenario, assert, sleep } from './lib.mjs';

const TRACE = { RUST_LOG: 'info,wschat::ws=trace' };
// The chat's default limits are 4000 characters and 64 KiB messages.
const BIG_LIMITS = ['--max-text', '70000', '--max-message', '1048576'];
const AGREED = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

// Every WebSocket the page constructs, kept on window.__sockets.
async function keepSockets(user) {
  await user.page.addInitScript(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = new Proxy(Native, {
      construct(target, args) {
        const ws = Reflect.construct(target, args);
        window.__sockets.push(ws);
        return ws;
      },
    });
  });
}

// The `extensions` of the page's open socket (there must be exactly one).
async function openSocketExtensions(user) {
  const open = await user.page.evaluate(() => window.__sockets
    .filter((ws) => ws.readyState === WebSocket.OPEN)
    .map((ws) => ({ url: ws.url, extensions: ws.extensions })));
  assert.equal(open.length, 1, `${user.name}: open sockets ${JSON.stringify(open)}`);
  return open[0].extensions;
}

// One parsed line per frame of the trace (src/ws/trace.rs), e.g.
// "127.0.0.1:50312 out FIN=1 RSV=100 opcode=0x1 Text MASK=0 len=812 ...".
const FRAME = /(\S+:\d+) (in |out) FIN=([01]) RSV=([01]{3}) opcode=0x([0-9a-f]+) (\w+) MASK=([01]) len=(\d+)/;
function frames(logText) {
  return logText.split('\n').map((l) => FRAME.exec(l)).filter(Boolean).map((m) => ({
    peer: m[1], dir: m[2].trim(), fin: m[3] === '1', rsv: m[4], opcode: Number.parseInt(m[5], 16),
    masked: m[7] === '1', len: Number(m[8]),
  }));
}

// Waits (bounded) until `pred` holds of the frames logged after `from` characters.
async function waitFrames(server, from, pred, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const got = frames(server.logText().slice(from));
    if (pred(got)) return got;
    if (Date.now() > deadline) {
      throw new Error(`${what}: not in the trace; frames logged: ${JSON.stringify(got.slice(-20))}`);
    }
    await sleep(50);
  }
}

// `n` characters of words, the same every run: compressible the way
// chat text is, not trivially (no long repeats), with some non-ASCII.
function words(n, seed = 7) {
  const vocab = ('the of and to in is you that it he was for on are as with his they at be this have from '
    + 'or one had by word but not what all were we when your can said there use an each which she do how '
    + 'their if will up other about out many then them these so some her would make like him into time '
    + 'café naïve déjà vu ✓ 𝄞').split(' ');
  let x = seed;
  const parts = [];
  let len = 0;
  while (len <= n) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const w = vocab[Math.floor(x / 65536) % vocab.length]; // the high bits: an LCG's low ones cycle fast
    parts.push(w);
    len += [...w].length + 1;
  }
  const chars = [...parts.join(' ')].slice(0, n);
  if (chars[n - 1] === ' ') chars[n - 1] = '.'; // the server trims a message's ends
  return chars.join('');
}

scenario('a 60 KiB message goes compressed both ways, and is shown intact', async (scn) => {
  const server = await scn.server('deflate', { args: BIG_LIMITS, env: TRACE });
  const alice = await scn.user('alice');
  const bob = await scn.user('bob');
  await keepSockets(alice);
  await keepSockets(bob);
  await alice.open(server.httpUrl);
  await bob.open(server.httpUrl);

  for (const u of [alice, bob]) {
    assert.equal(await openSocketExtensions(u), AGREED, `${u.name}: ws.extensions`);
  }

  const text = words(61_440);
  assert.equal([...text].length, 61_440);
  const bytes = Buffer.byteLength(JSON.stringify({ type: 'say', text }));
  const from = server.logText().length;
  await alice.say(text);
  await bob.waitMessage(text, 20_000);
  await alice.waitMessage(text, 20_000);
  const shown = await bob.messages();
  const mine = shown.filter((m) => m.text === text);
  assert.equal(mine.length, 1, 'bob sees it once');
  assert.equal(mine[0].from, 'alice');
  assert.equal(mine[0].text.length, text.length, 'shown whole');

  // In: Chromium's say, compressed. Out: the broadcast, compressed, to both.
  const big = (f) => f.opcode === 1 && f.len > 1000;
  const got = await waitFrames(server, from, (fs) => fs.filter((f) => f.dir === 'out' && big(f)).length >= 2
    && fs.some((f) => f.dir === 'in' && big(f)), 'the 60 KiB message in and out');
  const ins = got.filter((f) => f.dir === 'in' && big(f));
  const outs = got.filter((f) => f.dir === 'out' && big(f));
  console.log(`# the say (${bytes} bytes of JSON) came in as ${JSON.stringify(ins)}; the broadcast went out as ${JSON.stringify(outs)}`);
  assert.equal(ins.length, 1, 'one big frame in');
  assert.deepEqual([ins[0].rsv, ins[0].masked, ins[0].fin], ['100', true, true], 'the say came in compressed (RSV1), masked, in one frame');
  assert.ok(ins[0].len < bytes / 2, `the say: ${ins[0].len} bytes on the wire for ${bytes}`);
  assert.equal(outs.length, 2, 'the broadcast went to two clients');
  assert.equal(new Set(outs.map((f) => f.peer)).size, 2, 'to two different peers');
  for (const f of outs) {
    assert.deepEqual([f.rsv, f.masked, f.fin], ['100', false, true], `out to ${f.peer}: compressed (RSV1), unmasked, one frame`);
    assert.ok(f.len < bytes / 2, `out to ${f.peer}: ${f.len} bytes on the wire for a message of more than ${bytes}`);
  }
  assert.equal(outs[0].len, outs[1].len, 'the same compressed bytes for both');
  // Nothing of the message went out uncompressed.
  assert.equal(got.filter((f) => f.dir === 'out' && f.rsv === '000' && f.len > 60_000).length, 0);
  await bob.shot('deflate-bob.png');
});

scenario('with --no-deflate no extension is agreed and the chat still works', async (scn) => {
  const server = await scn.server('no-deflate', { args: ['--no-deflate'], env: TRACE });
  const alice = await scn.user('alice');
  const bob = await scn.user('bob');
  await keepSockets(alice);
  await keepSockets(bob);
  await alice.open(server.httpUrl);
  await bob.open(server.httpUrl);
  for (const u of [alice, bob]) {
    assert.equal(await openSocketExtensions(u), '', `${u.name}: ws.extensions`);
  }
  const text = words(3000, 11);
  const from = server.logText().length;
  await alice.say(text);
  await bob.waitMessage(text);
  await alice.waitMessage(text);
  await bob.say('and back');
  await alice.waitMessage('and back');
  const got = await waitFrames(server, from, (fs) => fs.filter((f) => f.dir === 'out' && f.len > 3000).length >= 2,
    'the 3000-character message out');
  const big = got.filter((f) => f.opcode === 1 && f.len > 3000);
  console.log(`# --no-deflate: the 3000-character message as ${JSON.stringify(big)}`);
  assert.ok(big.every((f) => f.rsv === '000'), 'no RSV bit on the wire');
  assert.equal(frames(server.logText()).filter((f) => f.rsv !== '000').length, 0, 'no frame of the whole run had an RSV bit');
});
