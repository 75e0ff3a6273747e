// User text is shown as text: markup in a message never becomes DOM, and nothing runs.
import { scenario, assert } from './lib.mjs';

const XSS = '<img src=x onerror=alert(1)>';
const EVIL_NAME = '<img src=y onerror=alert(4)>'; // 28 characters: a valid name
const MORE = [
  '<script>alert("script")</script>',
  '<svg onload=alert(2)></svg><b>bold?</b>',
  '"><iframe src=javascript:alert(3)>',
];

scenario('an HTML/script message shows literally and runs nothing', async (scn) => {
  const server = await scn.server('xss');
  const mallory = await (await scn.user('mallory')).open(server.httpUrl);
  const alice = await (await scn.user('alice')).open(server.httpUrl);

  await mallory.say(XSS);
  for (const t of MORE) await mallory.say(t);
  // A name with markup too.
  await mallory.page.locator('#me').click();
  await mallory.page.locator('#name').fill(EVIL_NAME);
  await mallory.page.locator('#name').press('Enter');
  await mallory.say('after rename');

  for (const u of [alice, mallory]) {
    const shown = await u.waitMessage(XSS);
    // The user sees exactly the typed characters, angle brackets included.
    assert.equal(await shown.locator('.text').innerText(), XSS);
    for (const t of MORE) await u.waitMessage(t);
    await u.waitMessage('after rename');
    assert.equal((await u.messages()).at(-1).from, EVIL_NAME);
    await u.waitUsers(['alice', EVIL_NAME]);
    // No element was created from the text.
    const injected = await u.page.$$eval('#messages img, #messages script, #messages svg, #messages iframe, #messages b, #users img, #users b, #me img',
      (els) => els.map((e) => e.outerHTML));
    assert.deepEqual(injected, [], `${u.name}: markup from messages became elements`);
  }
  // Give a would-be onerror/onload time to fire, then check no dialog opened and alert was never called.
  await alice.page.waitForTimeout(500);
  for (const u of [alice, mallory]) {
    assert.deepEqual(u.dialogs, []);
    assert.deepEqual(await u.page.evaluate(() => window.__dialogCalls), []);
  }
  await alice.shot('xss-alice.png');
  await mallory.shot('xss-mallory.png');
});

scenario('http(s) links are clickable and safe; other schemes stay text', async (scn) => {
  const server = await scn.server('links');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const text = 'docs at https://example.org/guide?a=1&b=2, also javascript:alert(5) and http://127.0.0.1:9/x.';
  await alice.say(text);
  const msg = await alice.waitMessage(text);
  const links = await msg.locator('a').evaluateAll((as) => as.map((a) => ({
    href: a.getAttribute('href'), text: a.textContent, rel: a.rel, target: a.target,
  })));
  assert.deepEqual(links, [
    { href: 'https://example.org/guide?a=1&b=2', text: 'https://example.org/guide?a=1&b=2', rel: 'noopener noreferrer', target: '_blank' },
    { href: 'http://127.0.0.1:9/x', text: 'http://127.0.0.1:9/x', rel: 'noopener noreferrer', target: '_blank' },
  ]);
  await alice.shot('links-alice.png');
});
