// Direct messages in the page: a person in the people list opens a conversation, the DM
// reaches only the two, typing shows in the conversation, an offline person is named as
// such, and a reload keeps the conversations without showing a DM twice.
import { scenario, assert, WAIT } from './lib.mjs';

// The button of a person in the presence list.
const person = (u, name) => u.page.locator('#users li .person').filter({ has: u.page.locator('.uname', { hasText: name }) });

async function waitUntil(what, fn, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

scenario('a DM shows only to the two: opened from the people list, an unread badge and the title count it, carol never sees it', async (scn) => {
  const server = await scn.server('dm-private');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  const carol = await (await scn.user('carol')).open(server.httpUrl);
  for (const u of [alice, bob, carol]) await u.waitUsers(['alice', 'bob', 'carol']);
  await alice.say('hello lobby');
  await bob.waitMessage('hello lobby');

  // alice clicks bob in the people list: the conversation with bob, in the address too.
  await person(alice, 'bob').click();
  await alice.page.waitForFunction(() => location.hash === '#@bob', null, { timeout: WAIT });
  assert.equal(await alice.page.locator('#view-title').innerText(), 'bob');
  assert.deepEqual(await alice.messages(), [], 'the conversation starts empty, without the lobby');
  await alice.page.locator('#dms li[data-dm="bob"].current').waitFor();
  await alice.say('psst bob: the secret word is quince');
  const sent = await alice.waitMessage('psst bob: the secret word is quince');
  assert.ok(await sent.evaluate((e) => e.classList.contains('own')), 'alice sees it as hers');

  // bob, looking at the lobby: an unread conversation with alice, bold, counted in the title.
  const entry = bob.page.locator('#dms li[data-dm="alice"]');
  await entry.locator('.badge').waitFor();
  assert.equal(await entry.locator('.badge').innerText(), '1');
  assert.ok(await entry.evaluate((e) => e.classList.contains('unread')));
  const weight = await entry.locator('button').evaluate((e) => Number(getComputedStyle(e).fontWeight));
  assert.ok(weight >= 700, `an unread conversation is bold (font-weight ${weight})`);
  assert.equal(await bob.page.title(), '(1) wschat', 'the title counts the unread DM');
  assert.equal((await bob.messages()).some((m) => m.text.includes('quince')), false, 'not in the lobby log');

  // bob opens it: the message, the badge and the title count gone; he replies.
  await entry.locator('button').click();
  await bob.waitMessage('psst bob: the secret word is quince');
  assert.equal(await bob.page.locator('#view-title').innerText(), 'alice');
  assert.equal(await entry.locator('.badge').count(), 0);
  assert.equal(await bob.page.title(), 'wschat');
  await bob.say('got it, alice');
  await alice.waitMessage('got it, alice');
  await bob.waitMessage('got it, alice');
  assert.deepEqual((await alice.messages()).map((m) => [m.from, m.text, m.own]),
    [['alice', 'psst bob: the secret word is quince', true], ['bob', 'got it, alice', false]]);
  assert.deepEqual((await bob.messages()).map((m) => [m.from, m.text, m.own]),
    [['alice', 'psst bob: the secret word is quince', false], ['bob', 'got it, alice', true]]);

  // alice goes back to the lobby and says something there. Once carol has that, anything
  // the server sent her before it has arrived too: none of it is a DM.
  await alice.page.locator('#rooms li[data-room="lobby"] button').click();
  await alice.waitMessage('hello lobby');
  assert.equal((await alice.messages()).some((m) => /quince|got it/.test(m.text)), false, 'the lobby log holds no DM');
  await alice.say('back in the lobby');
  await carol.waitMessage('back in the lobby');
  const carolSees = await carol.page.evaluate(() => document.title + '\n' + document.body.innerText + '\n' + document.body.textContent);
  assert.ok(!/quince|got it, alice/.test(carolSees), 'carol\'s page shows nothing of the DMs');
  assert.equal(await carol.page.locator('#dms li').count(), 0, 'carol has no conversation');
  assert.ok(carol.wsFramesIn.some((f) => f.includes('back in the lobby')), 'carol\'s frames are recorded');
  assert.deepEqual(carol.wsFramesIn.filter((f) => /quince|got it, alice|"type":"dm"/.test(f)), [], 'no DM frame reached carol');
});

scenario('DM typing shows in the conversation and clears, and not in a room', async (scn) => {
  const server = await scn.server('dm-typing');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  await alice.waitUsers(['alice', 'bob']);
  await bob.waitUsers(['alice', 'bob']);
  await person(alice, 'bob').click();
  // bob with the keyboard: the person in the list takes the focus and Enter opens the conversation.
  await person(bob, 'alice').focus();
  await bob.page.keyboard.press('Enter');
  await bob.page.waitForFunction(() => location.hash === '#@alice', null, { timeout: WAIT });
  assert.equal(await bob.page.evaluate(() => document.activeElement?.id), 'input', 'the composer has the focus');

  const typing = (u) => u.page.locator('#typing').innerText();
  await alice.page.locator('#input').fill('writing to you, bob');
  await bob.page.waitForFunction(() => document.querySelector('#typing')?.textContent === 'alice is typing…', null, { timeout: WAIT });
  assert.equal(await typing(alice), '', 'not shown to the typist');
  assert.ok(alice.wsFramesOut.some((f) => { const m = JSON.parse(f); return m.type === 'typing' && m.to === 'bob' && !m.room; }),
    'the notice is sent to bob, not to a room');
  await alice.page.locator('#input').press('Enter');
  await bob.waitMessage('writing to you, bob');
  assert.equal(await typing(bob), '', 'the message ends the notice');

  // Shown for about 5 s when no message follows.
  await alice.page.waitForTimeout(2100);
  await alice.page.locator('#input').fill('and more');
  await bob.page.waitForFunction(() => document.querySelector('#typing')?.textContent === 'alice is typing…', null, { timeout: WAIT });
  await bob.page.waitForFunction(() => document.querySelector('#typing')?.textContent === '', null, { timeout: WAIT });

  // bob goes to the lobby with Alt+Up (the side panel's order: rooms, then DMs), and back
  // with Alt+Down, and up again. Alice's DM notice still reaches his page but is not shown there.
  await bob.page.locator('#input').press('Alt+ArrowUp');
  await bob.page.waitForFunction(() => location.hash === '#lobby', null, { timeout: WAIT });
  await bob.page.locator('#input').press('Alt+ArrowDown');
  await bob.page.waitForFunction(() => location.hash === '#@alice', null, { timeout: WAIT });
  await bob.waitMessage('writing to you, bob');
  await bob.page.locator('#input').press('Alt+ArrowUp');
  await bob.page.waitForFunction(() => location.hash === '#lobby', null, { timeout: WAIT });
  const notices = () => bob.wsFramesIn.filter((f) => f.includes('"type":"typing"')).length;
  const before = notices();
  await alice.page.waitForTimeout(2100);
  await alice.page.locator('#input').fill('and even more');
  await waitUntil('bob to receive the typing notice', async () => notices() > before);
  await bob.page.waitForTimeout(200);
  assert.equal(await typing(bob), '', 'a DM notice is not shown in a room');
});

scenario('a DM to someone offline says so; a reload keeps the conversations and a DM sent meanwhile shows once', async (scn) => {
  // wschat::chat at debug logs when a session's last connection closed (its grace begins).
  const server = await scn.server('dm-offline', { env: { RUST_LOG: 'info,wschat::chat=debug' } });
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  await alice.waitUsers(['alice', 'bob']);

  // A conversation by its address, with nobody of that name online.
  await alice.page.evaluate(() => { location.hash = '#@nobody'; });
  await alice.page.waitForFunction(() => document.querySelector('#view-title')?.textContent === 'nobody', null, { timeout: WAIT });
  await alice.say('anyone there?');
  const failed = alice.page.locator('#messages > li[data-testid="failed"][data-error-code="user_offline"]');
  await failed.waitFor();
  assert.match(await failed.innerText(), /nobody is not online/);
  await alice.waitSystem('offline', 'nobody is not online');
  assert.equal(await alice.page.locator('#view-note').innerText(), 'not online');
  await alice.page.locator('#dms li[data-dm="nobody"].offline').waitFor();

  // A DM bob gets while he is here, unread.
  await person(alice, 'bob').click();
  await alice.say('first, before you go');
  await alice.waitMessage('first, before you go');
  await bob.page.locator('#dms li[data-dm="alice"] .badge').waitFor();

  // bob's tab leaves the page (his session is in its grace), a DM is sent meanwhile.
  await bob.page.goto('about:blank');
  await waitUntil('bob\'s session to be in its grace', async () => /\("bob"\): last connection #\d+ closed; in its grace/.test(server.logText()));
  await alice.say('second, while you were away');
  await alice.waitMessage('second, while you were away');

  // bob comes back in the same tab: silently, with both DMs, each once.
  await bob.page.goto(server.httpUrl);
  await bob.waitOnline();
  assert.equal(await bob.page.locator('#name-dialog').evaluate((d) => d.open), false, 'no name asked');
  const entry = bob.page.locator('#dms li[data-dm="alice"]');
  await bob.page.waitForFunction(() => document.querySelector('#dms li[data-dm="alice"] .badge')?.textContent === '2', null, { timeout: WAIT });
  await entry.locator('button').click();
  await bob.waitMessage('second, while you were away');
  assert.deepEqual((await bob.messages()).map((m) => m.text), ['first, before you go', 'second, while you were away']);
  // A plain reload: the same two, nothing repeated.
  await bob.page.reload();
  await bob.waitOnline();
  await bob.waitMessage('second, while you were away');
  assert.deepEqual((await bob.messages()).map((m) => m.text), ['first, before you go', 'second, while you were away']);
  // And he answers: alice's conversation gets it.
  await bob.say('back now');
  await alice.waitMessage('back now');
});
