// Case 6: the Redis session store crashes and comes back on the same port. See README.md.
//
//   cd tests/e2e && node --test faults/redis-down.test.mjs
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  USERS, echoed, freePort, login, readyz, request, startRedis, startStack, waitFor,
} from './stack.mjs';

// README: a connection to Redis may take 1 s to open and a command 1 s to answer; /readyz
// asks Redis at each call. Give each change of state a few of those.
const NOTICE_MS = 5000;


describe('/readyz while Redis is unreachable', () => {
  let gw;
  let redis;
  let port;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-faults-redis-'));
  let stack;

  before(async () => {
    port = await freePort();
    redis = await startRedis({ port, dir });
    stack = await startStack({
      names: ['app', 'pub'],
      session: `store = "redis"\nredis_url = "redis://127.0.0.1:${port}"`,
    });
    ({ gw } = stack);
  });

  after(async () => {
    await stack?.stop();
    await redis?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('readyz_follows_redis_down_and_back_and_sessions_resume_after_it', async (t) => {
    assert.equal(await readyz(gw), 200);
    const jar = await login(gw, USERS.alice, '/app/before');
    const r0 = await jar.send(gw.url('/app/before'));
    assert.equal(r0.status, 200, r0.body);
    assert.deepEqual(echoed(r0.json(), 'x-auth-request-user'), ['alice']);

    await redis.kill(); // SIGKILL: a crash, the port refuses connections
    const killed = performance.now();
    await waitFor(async () => (await readyz(gw)) === 503, { what: '/readyz 503 with Redis down', timeoutMs: NOTICE_MS });
    t.diagnostic(`/readyz 503 ${(performance.now() - killed).toFixed(0)} ms after Redis was killed`);

    const down = await jar.send(gw.url('/app/during'));
    t.diagnostic(`a session request with Redis down: ${down.status} in ${down.ms.toFixed(0)} ms`);
    assert.equal(down.status, 503, down.body);
    assert.equal(down.json().error, 'temporarily_unavailable');
    assert.ok(down.ms < 2500, `answered in ${down.ms} ms (1 s to connect, 1 s per command)`);
    assert.equal((await request(gw.url('/pub/during'))).status, 200, 'public routes do not touch Redis');

    redis = await startRedis({ port, dir });
    const back = performance.now();
    await waitFor(async () => (await readyz(gw)) === 200, { what: '/readyz 200 with Redis back', timeoutMs: NOTICE_MS });
    t.diagnostic(`/readyz 200 ${(performance.now() - back).toFixed(0)} ms after Redis was back`);

    // Redis wrote every session to its append-only file: the same cookie works again.
    const again = await jar.send(gw.url('/app/after'));
    assert.equal(again.status, 200, again.body);
    assert.deepEqual(echoed(again.json(), 'x-auth-request-user'), ['alice']);
    const bob = await login(gw, USERS.bob, '/app/new');
    const r = await bob.send(gw.url('/app/new'));
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(echoed(r.json(), 'x-auth-request-user'), ['bob']);
  });

  test('a_frozen_redis_is_a_503_within_its_timeouts_not_a_hang', async (t) => {
    const jar = await login(gw, USERS.alice, '/app/before');
    process.kill(redis.pid, 'SIGSTOP'); // connections are accepted by the kernel, never answered
    try {
      const started = performance.now();
      const ready = await request(`${gw.admin}/readyz`, { timeoutMs: 10000 });
      const readyMs = performance.now() - started;
      const page = await jar.send(gw.url('/app/frozen'), { timeoutMs: 10000 });
      t.diagnostic(`Redis frozen: /readyz ${ready.status} in ${readyMs.toFixed(0)} ms, a session request ${page.status} in ${page.ms.toFixed(0)} ms`);
      assert.equal(ready.status, 503);
      assert.ok(readyMs < 2500, `/readyz answered in ${readyMs} ms`);
      assert.equal(page.status, 503, page.body);
      assert.ok(page.ms < 2500, `answered in ${page.ms} ms`);
    } finally {
      process.kill(redis.pid, 'SIGCONT');
    }
    await waitFor(async () => (await readyz(gw)) === 200, { what: '/readyz 200 with Redis thawed', timeoutMs: NOTICE_MS });
    const r = await jar.send(gw.url('/app/thawed'));
    assert.equal(r.status, 200, r.body);
  });
});
