// The composer: the length limit, a growing draft, and a phone's keyboard.
import { scenario, assert, sleep } from './lib.mjs';

const saysOut = (u) => u.wsFramesOut.map((f) => { try { return JSON.parse(f); } catch { return null; } }).filter((m) => m && m.type === 'say');

scenario('over the limit (counted as the server counts) Send is disabled and Enter sends nothing', async (scn) => {
  const server = await scn.server('over-limit');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  const input = alice.page.locator('#input');
  const send = alice.page.locator('#send');
  const counter = alice.page.locator('#counter');

  // 4100 characters: the counter explains, Send is disabled, and Enter sends nothing.
  await input.fill('y'.repeat(4100));
  assert.match(await counter.innerText(), /4100 \/ 4000/);
  assert.match(await counter.innerText(), /too long/);
  assert.match((await counter.innerText()).split('—')[1] || '', /\b100\b/, 'the counter says how much to remove');
  assert.equal(await send.isDisabled(), true, 'Send is disabled over the limit');
  await alice.shot('over-limit-counter-alice.png');
  await input.press('Enter');
  await send.click({ force: true }); // a click on the disabled button does nothing either
  await sleep(500);
  assert.equal(await input.inputValue(), 'y'.repeat(4100), 'the draft stays in the composer');
  assert.equal(await alice.page.locator('#messages > li.msg').count(), 0, 'no message bubble, no failed bubble');
  assert.deepEqual(saysOut(alice), [], 'nothing was sent to the server');

  // Back under the limit: enabled again, and Enter sends.
  await input.fill('y'.repeat(3999));
  assert.equal(await send.isDisabled(), false, 'Send is enabled again under the limit');
  assert.doesNotMatch(await counter.innerText(), /too long/);
  await input.press('Enter');
  await bob.waitMessage('y'.repeat(3999));

  // Characters are Unicode scalar values (an emoji is one, not two UTF-16 units), and only
  // what the server trims is trimmed: U+3000 and newlines are whitespace to it, U+FEFF is not.
  const exact = '\u{1F600}'.repeat(3999) + '\uFEFF';
  await input.fill(' \u3000' + exact + '\n ');
  assert.equal(await counter.innerText(), '4000 / 4000');
  assert.equal(await send.isDisabled(), false, '4000 characters are allowed');
  await input.press('Enter');
  await bob.waitMessage(exact);

  await input.fill('\u{1F600}'.repeat(4000) + '\uFEFF');
  assert.match(await counter.innerText(), /4001 \/ 4000/);
  assert.equal(await send.isDisabled(), true, 'the server would count 4001 characters');
  await input.press('Enter');
  await sleep(400);
  assert.equal(saysOut(alice).length, 2, 'only the two allowed messages were sent');

  // Offline the same: over the limit nothing is queued.
  await input.fill('z'.repeat(4001));
  await server.kill('SIGKILL');
  await alice.waitState('offline');
  await input.press('Enter');
  await sleep(300);
  assert.equal(await alice.page.locator('#messages > li.msg.pending').count(), 0, 'nothing queued over the limit');
  await input.press('Backspace');
  await input.press('Enter');
  await alice.page.locator('#messages > li.msg.pending').first().waitFor({ state: 'visible' });
  await alice.shot('over-limit-alice.png');

  // Nothing over the limit ever reached bob.
  assert.deepEqual((await bob.messages()).map((m) => Array.from(m.text).length), [3999, 4000]);
});

scenario('a growing multi-line draft keeps the newest message in view', async (scn) => {
  const server = await scn.server('growing-draft');
  const reader = await (await scn.user('reader', { viewport: { width: 800, height: 560 } })).open(server.httpUrl);
  const talker = await (await scn.user('talker')).open(server.httpUrl);
  for (let i = 1; i <= 25; i++) await talker.say(`filler message ${i}`);
  await reader.waitMessage('filler message 25');

  const inView = () => reader.page.evaluate(() => {
    const log = document.querySelector('#messages').getBoundingClientRect();
    const last = [...document.querySelectorAll('#messages > li.msg')].at(-1).getBoundingClientRect();
    return { log: { top: log.top, bottom: log.bottom }, last: { top: last.top, bottom: last.bottom }, ok: last.top >= log.top - 1 && last.bottom <= log.bottom + 1 };
  });
  assert.ok((await inView()).ok, 'the newest message is in view before typing');
  const input = reader.page.locator('#input');
  const h0 = (await input.boundingBox()).height;
  await input.click();
  for (let i = 1; i <= 7; i++) {
    await reader.page.keyboard.type(`draft line ${i}`);
    await reader.page.keyboard.press('Shift+Enter');
    const v = await inView();
    assert.ok(v.ok, `after draft line ${i} the newest message is out of view: ${JSON.stringify(v)}`);
  }
  const h1 = (await input.boundingBox()).height;
  assert.ok(h1 > h0 + 80, `the composer grew (${h0} -> ${h1})`);
  await reader.shot('growing-draft-reader.png');

  // A message arriving while drafting is in view too.
  await talker.say('arrives while drafting');
  await reader.waitMessage('arrives while drafting');
  assert.ok((await inView()).ok, 'a new message is in view while drafting');

  // Sending shrinks the composer back, and the newest message is still in view.
  await reader.page.keyboard.type('the end');
  await reader.page.keyboard.press('Enter');
  await reader.waitMessage('draft line 1\ndraft line 2\ndraft line 3\ndraft line 4\ndraft line 5\ndraft line 6\ndraft line 7\nthe end');
  assert.ok((await inView()).ok, 'the sent message is in view');

  // Reading older messages: growing the draft does not yank the log to the bottom.
  await reader.page.locator('#messages').evaluate((e) => { e.scrollTop = 0; });
  await sleep(100);
  await input.click();
  await reader.page.keyboard.press('Shift+Enter');
  await reader.page.keyboard.press('Shift+Enter');
  await sleep(100);
  assert.equal(await reader.page.locator('#messages').evaluate((e) => e.scrollTop), 0, 'stayed where the reader was');
});

scenario('on a phone Enter makes a new line, the Send button sends, and the hint says so', async (scn) => {
  const server = await scn.server('phone-enter');
  const phone = await (await scn.user('pia', { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true })).open(server.httpUrl);
  const desk = await (await scn.user('dan')).open(server.httpUrl);
  assert.equal(await phone.page.evaluate(() => matchMedia('(pointer: coarse)').matches), true, 'the phone context has a coarse pointer');

  // The hint does not talk about Enter sending.
  const help = phone.page.locator('#composer-help');
  if (await help.isVisible()) {
    const text = await help.innerText();
    assert.doesNotMatch(text, /Enter to send/i, `phone hint: ${JSON.stringify(text)}`);
    assert.match(text, /Send/);
  }
  assert.equal(await phone.page.locator('#input').getAttribute('enterkeyhint'), 'enter', 'the keyboard shows a return key, not "send"');
  // The desktop page keeps its hint.
  assert.equal(await desk.page.locator('#composer-help').innerText(), 'Enter to send · Shift+Enter for a new line');

  const input = phone.page.locator('#input');
  await input.tap();
  await phone.page.keyboard.type('first line');
  await phone.page.keyboard.press('Enter');
  await phone.page.keyboard.type('second line');
  await sleep(300);
  assert.equal(await input.inputValue(), 'first line\nsecond line', 'Enter made a new line');
  assert.deepEqual(saysOut(phone), [], 'Enter sent nothing');
  await phone.shot('phone-draft-pia.png');
  await phone.page.locator('#send').tap();
  await desk.waitMessage('first line\nsecond line');
  assert.equal(await input.inputValue(), '', 'the composer is cleared after sending');
  assert.deepEqual((await desk.messages()).map((m) => m.text), ['first line\nsecond line']);

  // On the desktop page Enter still sends.
  await desk.say('from the desk');
  await phone.waitMessage('from the desk');
  await phone.shot('phone-pia.png');
});
