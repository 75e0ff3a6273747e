// Over-long messages: the composer warns, the server judges, and the user sees its error.
import { scenario, assert } from './lib.mjs';

scenario('a message over 4000 characters shows the server\'s error to the user', async (scn) => {
  const server = await scn.server('too-long');
  const alice = await (await scn.user('alice')).open(server.httpUrl);
  const bob = await (await scn.user('bob')).open(server.httpUrl);
  const input = alice.page.locator('#input');
  const counter = alice.page.locator('#counter');

  // Short text: no counter.
  await input.fill('short');
  assert.equal(await counter.isVisible(), false, 'no counter for short text');
  // Near the limit: a counter appears.
  await input.fill('n'.repeat(3950));
  await counter.waitFor({ state: 'visible' });
  assert.equal(await counter.innerText(), '3950 / 4000');

  // Exactly at the limit is fine.
  const max = 'm'.repeat(4000);
  await input.fill(max);
  await input.press('Enter');
  await bob.waitMessage(max);

  // One over: the counter says so, and the page does not send what would only bounce.
  const tooLong = 'x'.repeat(4001);
  await input.fill(tooLong);
  assert.match(await counter.innerText(), /4001 \/ 4000/);
  assert.match(await counter.getAttribute('class'), /over/);
  assert.equal(await alice.page.locator('#send').isDisabled(), true, 'Send is disabled over the limit');
  await input.press('Enter');
  await alice.page.waitForTimeout(300);
  assert.equal(await alice.page.locator('#messages > li.msg.pending').count(), 0, 'Enter sent nothing over the limit');

  // The server still judges what it gets, and the user sees its error: here a message
  // queued while offline under a higher limit (a server run with --max-text 8000) is
  // sent once the server is back with 4000.
  server.args = ['--max-text', '8000'];
  await server.kill('SIGKILL');
  await alice.waitState('offline');
  await server.start({ tries: 20 });
  await alice.waitOnline(20_000);
  await alice.page.waitForFunction(() => !document.querySelector('#send').disabled, null, { timeout: 5000 });
  await server.kill('SIGKILL');
  await alice.waitState('offline');
  await input.press('Enter'); // queued: the page knows 8000 as the limit
  await alice.page.locator('#messages > li.msg.pending').first().waitFor({ state: 'visible' });
  server.args = [];
  await server.start({ tries: 20 });
  await alice.waitOnline(20_000);

  const failed = alice.page.locator('#messages > li.msg.failed');
  await failed.waitFor({ state: 'visible' });
  assert.equal(await failed.getAttribute('data-error-code'), 'text_too_long');
  const shown = await failed.locator('.state').innerText();
  // The error frame really came from the server, and its message is what the user sees.
  const errFrame = alice.wsFramesIn.map((f) => { try { return JSON.parse(f); } catch { return null; } })
    .find((m) => m && m.type === 'error' && m.code === 'text_too_long');
  assert.ok(errFrame, 'the server sent a text_too_long error');
  assert.ok(shown.includes(errFrame.message), `the user sees the server's message ${JSON.stringify(errFrame.message)} (shown: ${JSON.stringify(shown)})`);
  assert.match(shown, /Not sent/);
  assert.equal(await failed.locator('.text').innerText(), tooLong, 'the failed text is kept next to the error');
  // It was never delivered, to anyone.
  assert.equal((await alice.messages()).filter((m) => m.text === tooLong).length, 0);
  assert.equal((await bob.messages()).filter((m) => m.text === tooLong).length, 0);
  await alice.page.locator('#messages').evaluate((e) => { e.scrollTop = e.scrollHeight; });
  await alice.shot('too-long-alice.png');

  // "Edit" puts the text back into the composer to shorten it.
  await failed.getByRole('button', { name: 'Edit' }).click();
  assert.equal(await failed.count(), 0);
  assert.equal((await input.inputValue()).length, 4001);
  await input.press('Control+End');
  await input.press('Backspace');
  await input.press('Enter');
  await bob.waitMessage('x'.repeat(4000));
  await alice.waitMessage('x'.repeat(4000));
  // The connection stayed open after the refusal.
  assert.equal(await alice.page.locator('#status').getAttribute('data-state'), 'online');
});
