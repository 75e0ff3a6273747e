// The page opened straight from disk (file://) with ?ws= pointing at the server.
import { scenario, assert, INDEX_FILE_URL } from './lib.mjs';

scenario('the page opened via file://...?ws=ws://127.0.0.1:PORT/ws chats with a page served over http', async (scn) => {
  const server = await scn.server('file-page');
  const fileUrl = `${INDEX_FILE_URL}?ws=${encodeURIComponent(server.wsUrl)}`;
  assert.match(fileUrl, /^file:\/\//);
  const frank = await (await scn.user('frank')).open(fileUrl);
  assert.ok(frank.page.url().startsWith('file://'));
  const grace = await (await scn.user('grace')).open(server.httpUrl);

  await frank.waitUsers(['frank', 'grace']);
  await frank.say('hello from a file:// page');
  await grace.waitMessage('hello from a file:// page');
  await grace.say('hello from http');
  await frank.waitMessage('hello from http');
  const seen = await frank.messages();
  assert.deepEqual(seen.map((m) => [m.from, m.text, m.own]), [
    ['frank', 'hello from a file:// page', true],
    ['grace', 'hello from http', false],
  ]);
  await frank.shot('file-frank.png');
  await grace.shot('file-grace.png');
});

scenario('served over http the page connects to its own host by itself', async (scn) => {
  const server = await scn.server('same-host');
  const hank = await (await scn.user('hank')).open(server.httpUrl);
  const ws = hank.page.waitForEvent('websocket', { timeout: 10_000 });
  await hank.page.reload();
  assert.equal((await ws).url(), `ws://127.0.0.1:${server.port}/ws`);
  await hank.waitOnline();
  await hank.shot('same-host-hank.png');
});
