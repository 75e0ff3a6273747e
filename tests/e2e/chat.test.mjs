// Several people chatting in separate browser contexts.
import path from 'node:path';
import { scenario, sideBySide, assert, SHOTS } from './lib.mjs';

scenario('three users see the same messages in the same order, with presence and join/leave lines', async (scn) => {
  // A closed tab's user leaves when its session's grace ends: 1 s here.
  const server = await scn.server('chat', { args: ['--session-grace', '1'] });
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);

  // Presence: both lists show both people, and alice saw bob arrive.
  await alice.waitUsers(['alice', 'bob']);
  await bob.waitUsers(['alice', 'bob']);
  await alice.waitSystem('join', 'bob joined');
  assert.ok((await alice.statusText()).includes('Online'), 'status shows Online');

  const carol = await (await scn.user('carol')).open(server.httpUrl);
  for (const u of [alice, bob, carol]) await u.waitUsers(['alice', 'bob', 'carol']);
  await bob.waitSystem('join', 'carol joined');

  const script = [
    [alice, 'Hi everyone! Anyone up for lunch?'],
    [bob, 'Sure, the usual place?'],
    [carol, 'Count me in. 12:30 works for me.'],
    [alice, 'Perfect, see you there'],
    [bob, 'I will book a table for three'],
  ];
  for (const [u, text] of script) {
    await u.say(text);
    await u.waitMessage(text);
  }
  for (const u of [alice, bob, carol]) await u.waitMessage(script.at(-1)[1]);

  // Everyone sees the same list: same ids, senders, texts, same order.
  const views = await Promise.all([alice, bob, carol].map((u) => u.messages()));
  const expected = script.map(([u, text]) => ({ from: u.name, text }));
  for (const [i, u] of [alice, bob, carol].entries()) {
    assert.deepEqual(views[i].map(({ from, text }) => ({ from, text })), expected, `${u.name} sees the conversation in order`);
    assert.deepEqual(views[i].map((m) => m.id), views[0].map((m) => m.id), `${u.name} sees the same message ids`);
    // Own messages are marked, others' are not.
    assert.deepEqual(views[i].map((m) => m.own), script.map(([s]) => s === u), `${u.name}: own messages marked`);
    for (const m of views[i]) assert.match(m.time, /\d/, 'every message shows a time');
  }
  const ids = views[0].map((m) => m.id);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], 'ids increase');

  // Messages appear once each.
  assert.equal(new Set(ids).size, ids.length);

  // Side-by-side screenshots of the conversation.
  const shots = [await alice.shot('chat-alice.png'), await bob.shot('chat-bob.png')];
  await carol.shot('chat-carol.png');
  await sideBySide(shots, path.join(SHOTS, 'chat-side-by-side.png'));

  // Rename: everybody sees the new name in the list and a system line.
  await bob.page.locator('#me').click();
  await bob.page.locator('#name').fill('robert');
  await bob.page.locator('#name').press('Enter');
  for (const u of [alice, bob, carol]) await u.waitUsers(['alice', 'robert', 'carol']);
  await alice.waitSystem('rename', 'bob is now known as robert');
  await bob.waitSystem('rename', 'You are now known as robert');
  assert.equal(await bob.page.locator('#me-name').innerText(), 'robert');
  await bob.say('New name, same bob');
  await alice.waitMessage('New name, same bob');
  assert.equal((await alice.messages()).at(-1).from, 'robert');

  // carol leaves: the others see a leave line and an updated list.
  await carol.assertHealthy();
  await carol.page.close();
  await alice.waitSystem('leave', 'carol left');
  await alice.waitUsers(['alice', 'robert']);
  await bob.waitUsers(['alice', 'robert']);
  await bob.waitSystem('leave', 'carol left');
  await alice.shot('chat-alice-after-leave.png');
  scn.users = scn.users.filter((u) => u !== carol);
  await carol.context.close();
});

scenario('a late joiner sees the history, and the name is remembered across a reload', async (scn) => {
  const server = await scn.server('history');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const texts = ['first: the build is green', 'second: deploying now', 'third: done, all good'];
  for (const t of texts) { await alice.say(t); await alice.waitMessage(t); }

  const dave = await (await scn.user('dave')).open(server.httpUrl);
  for (const t of texts) await dave.waitMessage(t);
  const seen = await dave.messages();
  assert.deepEqual(seen.map((m) => [m.from, m.text]), texts.map((t) => ['alice', t]));
  assert.ok(seen.every((m) => !m.own), 'alice\'s messages are not marked as dave\'s');
  await dave.waitSystem('welcome', 'You joined as dave');
  await alice.waitSystem('join', 'dave joined');
  await dave.shot('history-dave.png');

  // Reload: no name dialog, same name, same history, no duplicates.
  await dave.page.reload();
  await dave.waitOnline();
  assert.equal(await dave.page.locator('#name-dialog').isVisible(), false, 'name is not asked again');
  assert.equal(await dave.page.locator('#me-name').innerText(), 'dave');
  for (const t of texts) await dave.waitMessage(t);
  assert.equal((await dave.messages()).length, texts.length);
});

scenario('Enter sends, Shift+Enter makes a new line, and the keyboard alone is enough', async (scn) => {
  const server = await scn.server('keyboard');
  const erin = await scn.user('erin');
  await erin.page.goto(server.httpUrl);
  // The name dialog has focus; type a name and press Enter.
  await erin.page.locator('#name').waitFor();
  assert.equal(await erin.page.evaluate(() => document.activeElement?.id), 'name');
  await erin.page.keyboard.type('erin');
  await erin.page.keyboard.press('Enter');
  await erin.waitOnline();
  // Focus is in the composer after joining.
  assert.equal(await erin.page.evaluate(() => document.activeElement?.id), 'input');
  await erin.page.keyboard.type('line one');
  await erin.page.keyboard.press('Shift+Enter');
  await erin.page.keyboard.type('line two');
  await erin.page.keyboard.press('Enter');
  await erin.waitMessage('line one\nline two');
  assert.equal(await erin.page.locator('#input').inputValue(), '', 'composer is cleared');
  const box = await erin.page.locator('#messages > li.msg[data-id] .text').last().boundingBox();
  assert.ok(box.height > 30, 'the two lines are shown on two lines');

  // Tab reaches the send button next, and it works.
  await erin.page.keyboard.type('sent with the button');
  await erin.page.keyboard.press('Tab');
  assert.equal(await erin.page.evaluate(() => document.activeElement?.id), 'send');
  await erin.page.keyboard.press('Enter');
  await erin.waitMessage('sent with the button');

  // Empty or blank input sends nothing.
  const before = (await erin.messages()).length;
  await erin.say('   ');
  await erin.page.waitForTimeout(300);
  assert.equal((await erin.messages()).length, before);
  assert.equal(await erin.page.locator('#messages > li.pending').count(), 0);
});
