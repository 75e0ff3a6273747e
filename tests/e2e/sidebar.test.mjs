// The side panel: mentions of your name counted apart and marked in the text, and the
// panel as a drawer at phone width.
import { scenario, assert, WAIT } from './lib.mjs';

scenario('a mention of your name is counted apart and highlighted, as text', async (scn) => {
  const server = await scn.server('mentions');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  await alice.waitUsers(['alice', 'bob']);
  // alice looks at another room; she is still in the lobby.
  await alice.page.evaluate(() => { location.hash = '#rust'; });
  await alice.waitSystem('welcome', 'You are in #rust');

  const said = ['hey @alice, look at this', 'malice aforethought is not a mention', 'ALICE: ping', 'just chatting'];
  for (const t of said) await bob.say(t);
  await bob.waitMessage('just chatting');
  const lobby = alice.page.locator('#rooms li[data-room="lobby"]');
  await alice.page.waitForFunction(() => document.querySelector('#rooms li[data-room="lobby"] .badge')?.textContent === '4', null, { timeout: WAIT });
  assert.equal(await lobby.locator('.mention-badge').innerText(), '@2', 'two of the four mention alice');
  assert.equal(await alice.page.title(), '(4) wschat');
  assert.equal(await alice.page.locator('#rooms li[data-room="rust"] .mention-badge').count(), 0);

  // In the lobby: the mentions are marked in the text, the rest is not.
  await lobby.locator('button').click();
  await alice.waitMessage('just chatting');
  assert.equal(await lobby.locator('.mention-badge').count(), 0, 'the badge goes with the visit');
  const shown = () => alice.page.$$eval('#messages > li.msg[data-id]', (els) => els.map((e) => ({
    text: e.querySelector('.text').textContent,
    marks: [...e.querySelectorAll('.text mark')].map((m) => m.textContent),
    mentioned: e.classList.contains('mentioned'),
  })));
  assert.deepEqual(await shown(), [
    { text: 'hey @alice, look at this', marks: ['@alice'], mentioned: true },
    { text: 'malice aforethought is not a mention', marks: [], mentioned: false },
    { text: 'ALICE: ping', marks: ['ALICE'], mentioned: true },
    { text: 'just chatting', marks: [], mentioned: false },
  ]);

  // Text stays text: markup around a mention is shown as typed, never parsed.
  const markup = '<img src=x onerror="window.__pwned=1"> <b>alice</b>';
  await bob.say(markup);
  await alice.waitMessage(markup);
  assert.deepEqual((await shown()).at(-1), { text: markup, marks: ['alice'], mentioned: true });
  assert.equal(await alice.page.locator('#messages img, #messages b').count(), 0);
  assert.equal(await alice.page.evaluate(() => window.__pwned), undefined);
  // Your own message naming yourself is no mention.
  await alice.say('alice was here');
  await alice.waitMessage('alice was here');
  assert.deepEqual((await shown()).at(-1), { text: 'alice was here', marks: [], mentioned: false });
});

scenario('at phone width the side panel is a drawer: a button opens it, choosing a room or a person closes it and switches', async (scn) => {
  const server = await scn.server('drawer');
  const W = 390, H = 844;
  const phone = await (await scn.user('alice', { viewport: { width: W, height: H } })).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  await bob.waitUsers(['alice', 'bob']);
  const drawer = phone.page.locator('#people');
  const toggle = phone.page.locator('#drawer-toggle');

  // Closed: no rooms on screen, a button for them.
  assert.equal(await phone.page.locator('#rooms').isVisible(), false, 'the rooms are hidden at phone width');
  assert.equal(await toggle.isVisible(), true);
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');

  // Opened: the drawer covers the left of the screen, full height; the join field makes a
  // room, which closes it.
  await toggle.click();
  await phone.page.locator('#rooms').waitFor({ state: 'visible' });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  const box = await drawer.boundingBox();
  assert.ok(box.x === 0 && box.y === 0 && Math.round(box.height) === H && box.width <= W - 40, `drawer box ${JSON.stringify(box)}`);
  await phone.shot('drawer-alice.png');
  await phone.page.locator('#join-room').fill('rust');
  await phone.page.locator('#join-room').press('Enter');
  await drawer.waitFor({ state: 'hidden' });
  await phone.waitSystem('welcome', 'You are in #rust');
  assert.equal(await phone.page.locator('#view-title').innerText(), '#rust');

  // The lobby goes on meanwhile: the drawer's button shows the unread count.
  await bob.say('lobby news');
  await bob.waitMessage('lobby news');
  await phone.page.waitForFunction(() => document.querySelector('#drawer-badge')?.textContent === '1' &&
    !document.querySelector('#drawer-badge').hidden, null, { timeout: WAIT });

  // Choosing a room in the drawer switches to it and closes the drawer.
  await toggle.click();
  await drawer.waitFor({ state: 'visible' });
  await phone.page.locator('#rooms li[data-room="lobby"] button').click();
  await drawer.waitFor({ state: 'hidden' });
  await phone.waitMessage('lobby news');
  assert.equal(new URL(phone.page.url()).hash, '#lobby');
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
  assert.equal(await phone.page.locator('#drawer-badge').isVisible(), false);

  // A tap beside it closes it; so does Escape.
  await toggle.click();
  await drawer.waitFor({ state: 'visible' });
  await phone.page.mouse.click(W - 10, H / 2);
  await drawer.waitFor({ state: 'hidden' });
  await toggle.click();
  await drawer.waitFor({ state: 'visible' });
  await phone.page.keyboard.press('Escape');
  await drawer.waitFor({ state: 'hidden' });

  // Choosing a person opens the conversation with them, and closes the drawer.
  await toggle.click();
  await phone.page.locator('#users li .person').filter({ hasText: 'bob' }).click();
  await drawer.waitFor({ state: 'hidden' });
  assert.equal(await phone.page.locator('#view-title').innerText(), 'bob');
  await phone.say('hi from my phone');
  await bob.page.locator('#dms li[data-dm="alice"] .badge').waitFor();

  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= W, `no horizontal overflow: ${overflow}`);
  await phone.shot('drawer-alice-dm.png');
});
