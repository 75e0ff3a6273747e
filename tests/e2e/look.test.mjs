// Phone width, dark mode, scrolling, and accessibility basics.
import { scenario, assert } from './lib.mjs';

const luminance = (rgb) => {
  const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
};

scenario('readable at 360px phone width, and in dark mode', async (scn) => {
  const server = await scn.server('look');
  const phone = await (await scn.user('alice', { viewport: { width: 360, height: 740 } })).open(server.httpUrl);
  const dark = await (await scn.user('bob', { colorScheme: 'dark' })).open(server.httpUrl);

  await dark.say('Evening! Dark mode here. Notes: https://example.org/notes');
  await phone.say('Morning from my phone \u2600\ufe0f');
  await dark.say('A_really_long_word_without_any_spaces_that_must_wrap_instead_of_overflowing_the_screen_' + 'x'.repeat(60));
  await phone.say('Multi-line works too:\n- eggs\n- milk');
  for (const u of [phone, dark]) await u.waitMessage('Multi-line works too:\n- eggs\n- milk');

  // Nothing is wider than the phone screen; the composer and status are on screen.
  const overflow = await phone.page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    msgs: document.querySelector('#messages').scrollWidth,
    widest: Math.max(...[...document.querySelectorAll('#messages > li, header > *')].map((e) => e.getBoundingClientRect().right)),
  }));
  assert.ok(overflow.doc <= 360 && overflow.msgs <= 360 && overflow.widest <= 360, `horizontal overflow at 360px: ${JSON.stringify(overflow)}`);
  for (const sel of ['#input', '#send', '#status', '#me']) {
    const box = await phone.page.locator(sel).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 360 && box.y >= 0 && box.y + box.height <= 740, `${sel} is on screen: ${JSON.stringify(box)}`);
  }
  // The presence list is behind a button on a phone; the button opens and Escape closes it.
  assert.equal(await phone.page.locator('#users').isVisible(), false);
  await phone.page.locator('#users-toggle').click();
  await phone.page.locator('#users').waitFor({ state: 'visible' });
  assert.equal(await phone.page.locator('#users-toggle').getAttribute('aria-expanded'), 'true');
  await phone.waitUsers(['alice', 'bob']);
  await phone.shot('mobile-alice-people.png');
  await phone.page.keyboard.press('Escape');
  await phone.page.locator('#users').waitFor({ state: 'hidden' });
  await phone.shot('mobile-alice.png');

  // Dark mode really is dark, light mode really is light, and text is readable on both.
  const colors = async (u) => u.page.evaluate(() => {
    const cs = (s) => getComputedStyle(document.querySelector(s));
    return { bg: cs('body').backgroundColor, fg: cs('#messages .text').color };
  });
  const d = await colors(dark);
  const l = await colors(phone);
  assert.ok(luminance(d.bg) < 0.2 && luminance(d.fg) > 0.7, `dark mode colours ${JSON.stringify(d)}`);
  assert.ok(luminance(l.bg) > 0.8 && luminance(l.fg) < 0.3, `light mode colours ${JSON.stringify(l)}`);
  await dark.shot('dark-bob.png');
});

scenario('reading older messages is not interrupted: a "new messages" hint appears instead', async (scn) => {
  const server = await scn.server('scroll');
  const reader = await (await scn.user('reader', { viewport: { width: 800, height: 500 } })).open(server.httpUrl);
  const talker = await (await scn.user('talker')).open(server.httpUrl);
  for (let i = 1; i <= 20; i++) await talker.say(`message number ${i}`);
  await reader.waitMessage('message number 20');
  const atBottom = () => reader.page.locator('#messages').evaluate((e) => e.scrollHeight - e.scrollTop - e.clientHeight < 60);
  assert.ok(await atBottom(), 'follows new messages while at the bottom');

  await reader.page.locator('#messages').evaluate((e) => { e.scrollTop = 0; });
  await talker.say('something new');
  await reader.waitMessage('something new');
  const hint = reader.page.locator('#new-messages');
  await hint.waitFor({ state: 'visible' });
  assert.match(await hint.innerText(), /1 new message/);
  assert.equal(await reader.page.locator('#messages').evaluate((e) => e.scrollTop), 0, 'did not jump while reading');
  await reader.shot('scroll-reader-hint.png');
  await hint.click();
  await hint.waitFor({ state: 'hidden' });
  await reader.page.waitForFunction(() => { const e = document.querySelector('#messages'); return e.scrollHeight - e.scrollTop - e.clientHeight < 60; }, null, { timeout: 5000 });
});

scenario('inputs are labelled and the message list is a polite live region', async (scn) => {
  const server = await scn.server('a11y');
  const ivy = await scn.user('ivy');
  await ivy.page.goto(server.httpUrl);
  const nameField = ivy.page.getByLabel('Your name', { exact: true });
  await nameField.waitFor();
  assert.equal(await nameField.getAttribute('id'), 'name');
  await ivy.shot('name-dialog-ivy.png');
  // An empty name is refused with a visible explanation.
  await nameField.press('Enter');
  assert.match(await ivy.page.locator('#name-error').innerText(), /enter a name/i);
  await nameField.fill('ivy');
  await nameField.press('Enter');
  await ivy.waitOnline();
  assert.equal(await ivy.page.getByLabel('Message', { exact: true }).getAttribute('id'), 'input');
  assert.equal(await ivy.page.locator('#messages').getAttribute('aria-live'), 'polite');
  assert.equal(await ivy.page.getByRole('button', { name: /send/i }).getAttribute('id'), 'send');
  assert.equal(await ivy.page.getByRole('status').getAttribute('id'), 'status');
});
