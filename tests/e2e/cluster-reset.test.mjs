// A node on a Redis that restarts empty (no persistence) under two pages: the room's
// history starts over in Redis, and the pages say so, instead of counting the jump of
// the ids as missed messages (see README, "Several nodes through Redis").
import { scenario, assert, sleep } from './lib.mjs';
import { Redis, ClusterNode } from './redis.mjs';

scenario('Redis restarted empty under the page: the room says its history starts over, and no message is counted as missed', async (scn) => {
  const redis = new Redis('reset');
  const node = new ClusterNode('reset-n1', redis, 'n1');
  try {
    await redis.start();
    await node.start();
    const alice = await scn.user('alice');
    await alice.open(node.httpUrl);
    const bob = await scn.user('bob');
    await bob.open(node.httpUrl);
    await alice.say('before the restart');
    await bob.waitMessage('before the restart');
    const [before] = await bob.messages();

    await redis.restart();
    // The node may learn of the restart from a refused write: bob says it again until
    // one is stored (a refused one shows as not sent, with Retry).
    let said = null;
    for (let i = 1; i <= 20 && !said; i++) {
      const text = `after the restart ${i}`;
      await bob.say(text);
      try { await bob.waitMessage(text, 1500); said = text; } catch { await sleep(200); }
    }
    assert.ok(said, 'nothing was stored after Redis came back');
    await alice.waitMessage(said);
    for (const u of [alice, bob]) {
      await u.waitSystem('gap', 'lost the history of #lobby');
      const lines = await u.systemLines();
      assert.ok(!lines.some((l) => /no longer kept/.test(l.text)), `${u.name}: the id jump counted as missed messages: ${JSON.stringify(lines)}`);
      const shown = await u.messages();
      const after = shown.find((m) => m.text === said);
      assert.ok(after.id > before.id, `${u.name}: ids go on above the old ones (${before.id} then ${after.id})`);
    }
    await alice.assertHealthy();
  } finally {
    await node.stop();
    await redis.stop();
  }
});
