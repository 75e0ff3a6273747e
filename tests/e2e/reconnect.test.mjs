// Losing the server: offline status, automatic reconnect with resume, queued messages,
// and no gap and no duplicate afterwards.
import { scenario, assert, sleep } from './lib.mjs';

function assertNoGapNoDup(name, msgs, expectedTexts) {
  const ids = msgs.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `${name}: a message id is shown twice: ${ids}`);
  for (let i = 1; i < ids.length; i++) assert.equal(ids[i], ids[i - 1] + 1, `${name}: gap or disorder in ids ${ids}`);
  assert.deepEqual(msgs.map((m) => m.text), expectedTexts, `${name}: conversation`);
}

scenario('server SIGKILLed and restarted on the same port: offline shown, reconnects, queued message sent, no gap, no duplicate', async (scn) => {
  const server = await scn.server('restart');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  const before = ['before 1', 'before 2', 'before 3'];
  await alice.say(before[0]);
  await alice.waitMessage(before[0]);
  await bob.say(before[1]);
  await bob.waitMessage(before[1]);
  await alice.say(before[2]);
  for (const u of [alice, bob]) for (const t of before) await u.waitMessage(t);

  await server.kill('SIGKILL');
  for (const u of [alice, bob]) {
    await u.waitState('offline');
    assert.match(await u.statusText(), /Offline/);
    assert.match(await u.statusText(), /connection lost|cannot reach/);
    assert.equal(await u.page.locator('#send').isDisabled(), true, `${u.name}: send is disabled while offline`);
  }
  await alice.waitSystem('disconnect', 'Disconnected');

  // Typed while offline: shown as pending, not yet a message.
  await alice.say('typed while offline');
  await alice.say('and one more');
  const pending = alice.page.locator('#messages > li.msg.pending');
  await pending.first().waitFor({ state: 'visible' });
  assert.equal(await pending.count(), 2);
  assert.match(await pending.first().locator('.state').innerText(), /will be sent/);
  assert.match(await alice.page.locator('#offline-hint').innerText(), /offline/i);
  await alice.shot('restart-alice-offline.png');
  await bob.shot('restart-bob-offline.png');

  await sleep(1500); // let the reconnect attempts back off a little
  await server.start({ tries: 20 }); // same port, same --history-file

  for (const u of [alice, bob]) await u.waitOnline(20_000);
  for (const u of [alice, bob]) {
    await u.waitMessage('typed while offline', 15_000);
    await u.waitMessage('and one more', 15_000);
  }
  await pending.first().waitFor({ state: 'detached' });
  await alice.waitSystem('reconnect', 'Reconnected');

  // Someone new sees the whole history once.
  const carol = await (await scn.user('carol')).open(server.httpUrl);
  await bob.say('after restart');
  const all = [...before, 'typed while offline', 'and one more', 'after restart'];
  for (const u of [alice, bob, carol]) {
    await u.waitMessage('after restart');
    assertNoGapNoDup(u.name, await u.messages(), all);
  }
  const a = await alice.messages();
  assert.deepEqual(a.map((m) => m.own), [true, false, true, true, true, false]);
  await alice.shot('restart-alice-reconnected.png');
  await bob.shot('restart-bob-reconnected.png');
  await carol.shot('restart-carol.png');
});

scenario('messages sent while a page was away arrive after it resumes, exactly once', async (scn) => {
  const server = await scn.server('resume');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  await alice.say('one');
  await bob.waitMessage('one');

  // Kill the server; bob is back before alice (alice's reconnect is delayed by
  // blocking her socket), and talks while alice is still away.
  await alice.holdReconnects();
  await server.kill('SIGKILL');
  await alice.waitState('offline');
  await server.start({ tries: 20 });
  await bob.waitOnline(20_000);
  const missed = ['two', 'three', 'four'];
  for (const t of missed) { await bob.say(t); await bob.waitMessage(t); }

  await alice.releaseReconnects();
  await alice.page.locator('#retry').click({ timeout: 15_000 }).catch(() => { /* it may already be reconnecting */ });
  await alice.waitOnline(20_000);
  for (const t of missed) await alice.waitMessage(t);
  await alice.waitSystem('reconnect', 'caught up on 3 missed messages');
  assertNoGapNoDup('alice', await alice.messages(), ['one', ...missed]);
  await bob.say('five');
  await alice.waitMessage('five');
  assertNoGapNoDup('alice', await alice.messages(), ['one', ...missed, 'five']);
  // alice resumed from the last id she had seen before the server went away.
  const oneId = (await alice.messages())[0].id;
  const hellos = alice.wsFramesOut.map((f) => JSON.parse(f)).filter((m) => m.type === 'hello');
  assert.equal(hellos.length, 2);
  assert.deepEqual(hellos[0].rooms, { lobby: null });
  assert.equal(hellos[1].name, 'alice');
  assert.deepEqual(hellos[1].rooms, { lobby: oneId });
  // The session token of the first welcome (the restarted server no longer knows it).
  assert.match(hellos[1].session, /^[0-9a-f]{32}$/);
  await alice.shot('resume-alice.png');
});

scenario('a server that closes the connection is reported with its close code and reason', async (scn) => {
  const server = await scn.server('close-code');
  const alice = await scn.user('alice');
  await alice.page.addInitScript(() => {
    const Real = window.WebSocket;
    window.__closes = [];
    window.WebSocket = function (url, p) {
      const ws = new Real(url, p);
      ws.addEventListener('close', (e) => window.__closes.push([e.code, e.reason]));
      return ws;
    };
    window.WebSocket.prototype = Real.prototype;
    Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  });
  await alice.open(server.httpUrl);
  await server.stop(); // SIGTERM: a graceful server says goodbye (1001) before leaving
  await alice.waitState('offline');
  const [[code, reason]] = await alice.page.evaluate(() => window.__closes);
  assert.equal(code, 1001, 'the server closed with 1001 (going away)');
  const status = await alice.statusText();
  assert.ok(status.includes(`Offline — closed by server: 1001${reason ? ' ' + reason : ''}`), `status ${JSON.stringify(status)} shows close ${code} ${reason}`);
  await alice.waitSystem('disconnect', `closed by server: 1001`);
  assert.match(await alice.page.locator('#people-title').innerText(), /Last seen/i, 'presence is marked as not live');
  await alice.shot('close-code-alice.png');
});
