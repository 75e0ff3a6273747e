// The README's first steps, as a newcomer runs them: its browser-console example
// works from the page the README names, and the cross-origin mistake it warns about
// is refused with a reason the server also logs.
import fs from 'node:fs';
import path from 'node:path';
import { scenario, assert, ROOT, WAIT } from './lib.mjs';

// The one-line ```js block of the README, with the README's port swapped for the test's.
function consoleExample(port) {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const m = readme.match(/```js\n(.*)\n```/);
  assert.ok(m, 'README has a ```js console example');
  assert.ok(m[1].includes('ws://127.0.0.1:8080/'), `the example connects to the README's own URL: ${m[1]}`);
  return m[1].replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`);
}

scenario("the README's console example chats from the README's URL", async (scn) => {
  const server = await scn.server('readme-console');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await scn.user('bob');
  await bob.page.goto(server.httpUrl);
  // The example logs every message it receives; collect them.
  const logged = [];
  bob.page.on('console', (m) => logged.push(m.text()));
  await bob.page.evaluate(consoleExample(server.port));
  await alice.waitMessage('hello from the console');
  await alice.say('hi, console');
  const deadline = Date.now() + WAIT;
  while (!logged.some((l) => l.includes('"text":"hi, console"')) && Date.now() < deadline) {
    await bob.page.waitForTimeout(50);
  }
  assert.ok(logged.some((l) => l.includes('"text":"hi, console"')), `console got: ${JSON.stringify(logged)}`);
});

scenario('a socket from another origin is refused, and the log says why', async (scn) => {
  const server = await scn.server('readme-origin');
  const u = await scn.user('carol');
  await u.page.goto(server.httpUrl);
  const code = await u.page.evaluate((port) => new Promise((resolve) => {
    const ws = new WebSocket(`ws://localhost:${port}`);
    ws.onopen = () => resolve('open');
    ws.onclose = (e) => resolve(e.code);
  }), server.port);
  assert.equal(code, 1006, 'the handshake must fail');
  const want = `refused GET / (origin http://127.0.0.1:${server.port}): 403 Forbidden: a page from http://127.0.0.1:${server.port} may not`;
  const deadline = Date.now() + WAIT;
  while (!fs.readFileSync(server.logPath, 'utf8').includes(want) && Date.now() < deadline) {
    await u.page.waitForTimeout(50);
  }
  const log = fs.readFileSync(server.logPath, 'utf8');
  assert.ok(log.includes(want), `no ${JSON.stringify(want)} in the server log:\n${log.slice(-2000)}`);
  assert.ok(log.includes(`--allow-origin http://127.0.0.1:${server.port}`), 'the log line says how to allow it');
});
