// The message log: a failed message keeps its place, times on tap, avatar colours,
// and folded join/leave lines.
import { scenario, assert, sleep } from './lib.mjs';

const boxOf = (page, selector) => page.locator(selector).boundingBox();
const overlap = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
const presenceLines = async (u) => (await u.systemLines()).filter((l) => ['join', 'leave', 'presence'].includes(l.kind));

scenario('a failed message keeps its place in time order after a reconnect; newer messages show after it', async (scn) => {
  const server = await scn.server('failed-order');
  const alice = await scn.user('alice', { viewport: { width: 900, height: 640 } });
  // The server's storage_failed answer to a say whose text starts with "FAIL", as if its
  // history file could not be written; everything else goes through untouched.
  await alice.page.addInitScript(() => {
    const Real = window.WebSocket;
    window.__failSays = true;
    class Intercepted extends Real {
      send(data) {
        let m = null;
        try { m = JSON.parse(data); } catch { /* not JSON */ }
        if (window.__failSays && m && m.type === 'say' && m.text.startsWith('FAIL')) {
          const err = { type: 'error', code: 'storage_failed', message: 'could not store the message', nonce: m.nonce };
          setTimeout(() => this.dispatchEvent(new MessageEvent('message', { data: JSON.stringify(err) })), 30);
          return;
        }
        super.send(data);
      }
    }
    window.WebSocket = Intercepted;
  });
  await alice.open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  await bob.say('before the failure');
  await alice.waitMessage('before the failure');

  await alice.say('FAIL: this one is not stored');
  const failed = alice.page.locator('#messages > li.msg.failed');
  await failed.waitFor({ state: 'visible' });
  assert.match(await failed.locator('.state').innerText(), /Not sent/);

  // The server goes away and comes back; meanwhile and afterwards bob talks.
  await server.kill('SIGKILL');
  await alice.waitState('offline');
  await server.start({ tries: 20 });
  for (const u of [alice, bob]) await u.waitOnline(20_000);
  await alice.waitSystem('reconnect', 'Reconnected');
  const newer = ['newer 1', 'newer 2', 'newer 3: the latest'];
  for (const t of newer) { await bob.say(t); await alice.waitMessage(t); }
  await failed.waitFor({ state: 'visible' });
  await alice.shot('failed-order-alice.png');

  // In the DOM and on screen: the failed bubble, then the newer messages, none covering another.
  const layout = await alice.page.evaluate(() => {
    const items = [...document.querySelectorAll('#messages > li')].filter((e) => e.getClientRects().length);
    const r = (e) => { const b = e.getBoundingClientRect(); return { x: b.x, y: b.y, width: b.width, height: b.height, top: b.top, bottom: b.bottom }; };
    const log = r(document.querySelector('#messages'));
    return {
      log,
      items: items.map((e) => ({ cls: e.className, text: e.querySelector('.text')?.textContent ?? e.textContent, box: r(e) })),
    };
  });
  const idx = (t) => layout.items.findIndex((i) => i.text === t);
  const fi = layout.items.findIndex((i) => i.cls.includes('failed'));
  assert.ok(fi >= 0, 'the failed bubble is shown');
  for (const t of newer) assert.ok(idx(t) > fi, `"${t}" comes after the failed message: ${JSON.stringify(layout.items.map((i) => i.text))}`);
  assert.ok(idx('before the failure') < fi);
  for (let i = 1; i < layout.items.length; i++) {
    const a = layout.items[i - 1].box, b = layout.items[i].box;
    assert.ok(a.bottom <= b.top + 0.5, `item ${i - 1} (${layout.items[i - 1].text}) overlaps or is below item ${i} (${layout.items[i].text})`);
  }
  for (const t of newer) assert.ok(!overlap(layout.items[fi].box, layout.items[idx(t)].box), `the failed bubble covers "${t}"`);
  const latest = layout.items[idx('newer 3: the latest')].box;
  assert.ok(latest.top >= layout.log.top - 1 && latest.bottom <= layout.log.bottom + 1, `the newest message is in view: ${JSON.stringify({ latest, log: layout.log })}`);

  // Retry sends it now; it goes to the end, once, and is delivered.
  await alice.page.evaluate(() => { window.__failSays = false; });
  await failed.getByRole('button', { name: 'Retry' }).click();
  await bob.waitMessage('FAIL: this one is not stored');
  await alice.waitMessage('FAIL: this one is not stored');
  assert.equal(await failed.count(), 0);
  const texts = (await alice.messages()).map((m) => m.text);
  assert.deepEqual(texts, ['before the failure', ...newer, 'FAIL: this one is not stored']);
  assert.deepEqual((await bob.messages()).map((m) => m.text), texts);
});

scenario('the time of a grouped message shows on tap with room to spare; another tap moves it, a tap elsewhere hides it', async (scn) => {
  const server = await scn.server('tap-time');
  const phone = await (await scn.user('pia', { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true })).open(server.httpUrl);
  const desk = await (await scn.user('dan')).open(server.httpUrl);
  const texts = ['first of three', 'second of three', 'third of three, a longer one so that it wraps onto a second line on a phone'];
  for (const t of texts) await desk.say(t);
  for (const u of [phone, desk]) await u.waitMessage(texts[2]);

  const msg = (u, t) => u.page.locator('#messages > li.msg[data-id]').filter({ has: u.page.locator('.text', { hasText: t }) });
  // Where the time's glyphs are, next to the text's box, and whether it is shown.
  const measure = (u, t) => msg(u, t).evaluate((li) => {
    const time = li.querySelector('.time');
    const range = document.createRange();
    range.selectNodeContents(time);
    const g = range.getBoundingClientRect();
    const tx = li.querySelector('.text').getBoundingClientRect();
    const m = li.getBoundingClientRect();
    const cs = getComputedStyle(time);
    return {
      shown: cs.opacity !== '0' && cs.visibility !== 'hidden' && g.width > 0,
      glyphs: { left: g.left, right: g.right, top: g.top, bottom: g.bottom },
      text: { left: tx.left, top: tx.top, bottom: tx.bottom },
      msg: { left: m.left, top: m.top, bottom: m.bottom },
      cont: li.classList.contains('cont'),
      label: time.textContent,
    };
  });
  const assertWellPlaced = (v, what) => {
    assert.ok(v.shown, `${what}: the time is shown`);
    assert.match(v.label, /\d/, `${what}: the time says something`);
    assert.ok(v.glyphs.right + 6 <= v.text.left, `${what}: at least 6px between the time and the text: ${JSON.stringify(v)}`);
    assert.ok(v.glyphs.left >= v.msg.left - 8 && v.glyphs.left >= 0, `${what}: the time is on screen, in its message's gutter: ${JSON.stringify(v)}`);
    assert.ok(v.glyphs.top >= v.msg.top - 1 && v.glyphs.bottom <= v.msg.bottom + 1, `${what}: the time stays inside its message vertically: ${JSON.stringify(v)}`);
  };

  for (const t of texts.slice(1)) assert.ok((await measure(phone, t)).cont, `"${t}" is grouped under the first`);
  for (const t of texts.slice(1)) assert.equal((await measure(phone, t)).shown, false, 'no time shown before a tap');

  await msg(phone, texts[1]).locator('.text').tap();
  assertWellPlaced(await measure(phone, texts[1]), 'tapped second message');
  assert.equal((await measure(phone, texts[2])).shown, false);
  await phone.shot('tap-time-pia.png');

  await msg(phone, texts[2]).locator('.text').tap();
  assertWellPlaced(await measure(phone, texts[2]), 'tapped third message');
  assert.equal((await measure(phone, texts[1])).shown, false, 'a tap on another message moves the time');

  await phone.page.locator('#messages').tap({ position: { x: 150, y: 12 } });
  for (const t of texts.slice(1)) assert.equal((await measure(phone, t)).shown, false, 'a tap elsewhere hides the time');

  // With a mouse: hovering shows it, equally well placed.
  await msg(desk, texts[1]).hover();
  assertWellPlaced(await measure(desk, texts[1]), 'hovered message (desktop)');
  await desk.page.locator('#input').hover();
  assert.equal((await measure(desk, texts[1])).shown, false);
});

scenario('avatar colours: common names get well-separated colours with readable white initials', async (scn) => {
  const server = await scn.server('avatar-colours');
  const light = await (await scn.user('alice')).open(server.httpUrl);
  const dark = await (await scn.user('watcher', { colorScheme: 'dark' })).open(server.httpUrl);
  const names = ['alice', 'olga', 'pat-dark', 'bob', 'carol', 'dave', 'erin', 'frank'];
  for (const n of names) {
    if (n !== 'alice') {
      await light.page.locator('#me').click();
      await light.page.locator('#name').fill(n);
      await light.page.locator('#name').press('Enter');
      await light.page.waitForFunction((w) => document.querySelector('#me-name').textContent === w, n);
    }
    await light.say(`hi, I am ${n}`);
    await light.waitMessage(`hi, I am ${n}`);
  }
  await dark.waitMessage('hi, I am frank');

  const rgb = (s) => s.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
  const lum = (c) => { const [r, g, b] = rgb(c).map((v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const contrast = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const hue = (c) => {
    const [r, g, b] = rgb(c).map((v) => v / 255);
    const max = Math.max(r, g, b), min = Math.min(r, g, b), d = max - min;
    if (!d) return null;
    const h = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
    return (h * 60 + 360) % 360;
  };
  const colours = (u) => u.page.$$eval('#messages > li.msg[data-id]', (els) => els.map((e) => {
    const a = getComputedStyle(e.querySelector('.avatar'));
    return { name: e.querySelector('.from').textContent, bg: a.backgroundColor, fg: a.color };
  }));
  const seen = {};
  for (const u of [light, dark]) {
    const cs = await colours(u);
    assert.deepEqual(cs.map((c) => c.name), names);
    for (const c of cs) {
      assert.ok(contrast(c.bg, c.fg) >= 4.5, `${u.name}: ${c.name}'s initial ${c.fg} on ${c.bg} has contrast ${contrast(c.bg, c.fg).toFixed(2)} < 4.5`);
      assert.ok(lum(c.fg) > 0.9, `${u.name}: initials are white (${c.fg})`);
    }
    const by = Object.fromEntries(cs.map((c) => [c.name, c.bg]));
    seen[u.name] = by;
    assert.ok(new Set(Object.values(by)).size >= 6, `${u.name}: only ${new Set(Object.values(by)).size} distinct colours: ${JSON.stringify(by)}`);
    for (const [a, b] of [['alice', 'olga'], ['alice', 'pat-dark'], ['olga', 'pat-dark']]) {
      assert.notEqual(by[a], by[b], `${u.name}: ${a} and ${b} have the same colour ${by[a]}`);
      const d = Math.abs(hue(by[a]) - hue(by[b]));
      assert.ok(Math.min(d, 360 - d) >= 30, `${u.name}: ${a} (${by[a]}) and ${b} (${by[b]}) are hard to tell apart`);
    }
  }
  // A name has the same colour for everyone, in the presence list too.
  assert.deepEqual(seen.alice, seen.watcher);
  const inList = await dark.page.$$eval('#users > li', (els) => els.map((e) => [e.querySelector('.uname').textContent, getComputedStyle(e.querySelector('.avatar')).backgroundColor]));
  assert.deepEqual(Object.fromEntries(inList).frank, seen.watcher.frank);
  await light.shot('avatar-colours-light.png');
  await dark.shot('avatar-colours-dark.png');
});

scenario('a run of join/leave lines is folded into one line; a message starts a new run', async (scn) => {
  // A closed tab's user leaves when its session's grace ends: 1 s here.
  const server = await scn.server('fold-presence', { args: ['--session-grace', '1'] });
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  const carol = await (await scn.user('carol')).open(server.httpUrl);
  const dave = await (await scn.user('dave')).open(server.httpUrl);
  const erin = await (await scn.user('erin')).open(server.httpUrl);
  await alice.waitUsers(['alice', 'bob', 'carol', 'dave', 'erin']);
  await bob.waitUsers(['alice', 'bob', 'carol', 'dave', 'erin']);
  await carol.waitUsers(['alice', 'bob', 'carol', 'dave', 'erin']);

  assert.deepEqual(await presenceLines(alice), [{ kind: 'join', text: 'bob, carol, dave and erin joined' }], 'alice: one line for the four joins');
  assert.deepEqual(await presenceLines(bob), [{ kind: 'join', text: 'carol, dave and erin joined' }]);
  assert.deepEqual(await presenceLines(carol), [{ kind: 'join', text: 'dave and erin joined' }]);
  await alice.waitSystem('join', 'bob, carol, dave and erin joined');
  assert.equal(await alice.page.locator('#messages > li.sys[data-kind="join"]').count(), 1);

  // A message breaks the run: what follows gets its own line.
  await alice.say('hello everyone');
  await erin.waitMessage('hello everyone');
  for (const u of [erin, dave]) {
    await u.assertHealthy();
    await u.page.close();
    await u.context.close();
    scn.users = scn.users.filter((x) => x !== u);
    await alice.waitUsers(['alice', 'bob', 'carol', ...(u === erin ? ['dave'] : [])]);
  }
  await alice.waitSystem('leave', 'erin and dave left');
  const frank = await (await scn.user('frank')).open(server.httpUrl);
  await alice.waitUsers(['alice', 'bob', 'carol', 'frank']);
  await alice.waitSystem('presence', 'erin and dave left · frank joined');
  assert.deepEqual(await presenceLines(alice), [
    { kind: 'join', text: 'bob, carol, dave and erin joined' },
    { kind: 'presence', text: 'erin and dave left · frank joined' },
  ]);
  // In the log: the first run, the message, the second run.
  const order = await alice.page.$$eval('#messages > li.msg, #messages > li.sys', (els) => els.map((e) => e.querySelector('.text, .sys-text').textContent));
  assert.deepEqual(order.slice(-3), ['bob, carol, dave and erin joined', 'hello everyone', 'erin and dave left · frank joined']);
  await frank.waitOnline();
  await alice.shot('fold-presence-alice.png');
});
