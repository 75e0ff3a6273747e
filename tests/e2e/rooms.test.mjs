// Rooms and sessions in the page: separate rooms, #room links, a silent
// reload inside the session's grace, a taken name.
import { scenario, assert } from './lib.mjs';

scenario('two users in different rooms do not see each other\'s messages; a #room link joins that room', async (scn) => {
  const server = await scn.server('rooms');
  const alice = await (await scn.user('alice')).open(server.httpUrl + '#rust');
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  await alice.waitUsers(['alice']);
  await bob.waitUsers(['bob']);
  await alice.say('only for rust');
  await alice.waitMessage('only for rust');
  await bob.say('only for the lobby');
  await bob.waitMessage('only for the lobby');
  assert.deepEqual((await bob.messages()).map((m) => m.text), ['only for the lobby']);
  assert.deepEqual((await alice.messages()).map((m) => m.text), ['only for rust']);

  // bob follows a link to #rust: same connection, the rust room's history.
  await bob.page.evaluate(() => { location.hash = '#rust'; });
  await bob.waitMessage('only for rust');
  await bob.waitUsers(['alice', 'bob']);
  assert.deepEqual((await bob.messages()).map((m) => m.text), ['only for rust']);
  await bob.say('bob is in rust now');
  await alice.waitMessage('bob is in rust now');

  // bob is still in the lobby: what is said there while he looks at rust is unread.
  const carol = await (await scn.user('carol')).open(server.httpUrl);
  await carol.say('lobby news');
  await carol.waitMessage('lobby news');
  const lobbyBadge = bob.page.locator('#rooms li[data-room="lobby"] .badge');
  await lobbyBadge.waitFor({ state: 'visible', timeout: 10_000 });
  assert.equal(await lobbyBadge.innerText(), '1');
  assert.equal(await bob.page.title(), '(1) wschat', 'the title counts the unread');
  assert.equal((await bob.messages()).some((m) => m.text === 'lobby news'), false);
  // Back to the lobby with the keyboard (Alt+Up): the badge goes, the message is there.
  await bob.page.locator('#input').press('Alt+ArrowUp');
  await bob.waitMessage('lobby news');
  assert.equal(await lobbyBadge.count(), 0);
  assert.equal(await bob.page.title(), 'wschat');
  assert.equal(new URL(bob.page.url()).hash, '#lobby');

  // The join field makes a room and goes there.
  await bob.page.locator('#join-room').fill('New-Room');
  await bob.page.locator('#join-room').press('Enter');
  await bob.page.waitForFunction(() => location.hash === '#new-room', null, { timeout: 10_000 });
  await bob.page.locator('#rooms li[data-room="new-room"].current').waitFor({ timeout: 10_000 });
  await bob.say('first in new-room');
  await bob.waitMessage('first in new-room');
  await alice.assertHealthy();
  await bob.assertHealthy();
});

scenario('a reload inside the grace shows no leave or join to the other user', async (scn) => {
  const server = await scn.server('grace');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  await alice.waitUsers(['alice', 'bob']);
  await alice.waitSystem('join', 'bob joined');
  await bob.page.reload();
  await bob.waitOnline();
  assert.equal(await bob.page.locator('#me-name').innerText(), 'bob', 'the session kept the name');
  await bob.say('back after a reload');
  await alice.waitMessage('back after a reload');
  const lines = (await alice.systemLines()).filter((l) => ['join', 'leave', 'presence'].includes(l.kind));
  assert.deepEqual(lines, [{ kind: 'join', text: 'bob joined' }], 'no leave, no second join');
});

scenario('a taken name is refused with a clear message', async (scn) => {
  const server = await scn.server('taken');
  await (await scn.user('alice')).open(server.httpUrl);
  const other = await scn.user('Alice');
  await other.page.goto(server.httpUrl, { timeout: 10_000 });
  await other.page.locator('#name').waitFor({ state: 'visible', timeout: 10_000 });
  await other.page.locator('#name').fill('Alice');
  await other.page.locator('#name').press('Enter');
  // The server refuses it; the dialog comes back and says why.
  await other.page.waitForFunction(() => document.querySelector('#name-dialog')?.open &&
    /taken/i.test(document.querySelector('#name-error')?.textContent || ''), null, { timeout: 10_000 });
  await other.page.locator('#name').fill('carol');
  await other.page.locator('#name').press('Enter');
  await other.page.waitForFunction(() => document.querySelector('#me-name')?.textContent === 'carol', null, { timeout: 10_000 });
});

scenario('typing shows under the list and clears', async (scn) => {
  const server = await scn.server('typing');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  await alice.waitUsers(['alice', 'bob']);
  await alice.page.locator('#input').fill('I am writing something');
  await bob.page.waitForFunction(() => document.querySelector('#typing')?.textContent === 'alice is typing…', null, { timeout: 10_000 });
  assert.equal(await alice.page.locator('#typing').innerText(), '', 'not shown to the typist');
  await alice.page.locator('#input').press('Enter');
  await bob.waitMessage('I am writing something');
  assert.equal(await bob.page.locator('#typing').innerText(), '', 'the message ends the notice');
  // Shown for about 5 s when no message follows.
  await alice.page.waitForTimeout(2100);
  await alice.page.locator('#input').fill('again');
  await bob.page.waitForFunction(() => document.querySelector('#typing')?.textContent === 'alice is typing…', null, { timeout: 10_000 });
  await bob.page.waitForFunction(() => document.querySelector('#typing')?.textContent === '', null, { timeout: 10_000 });
  await bob.assertHealthy();
});
