// Case 4: one of a route's two upstreams dies under traffic; a route whose only upstream is
// down. See README.md.
//
//   cd tests/e2e && node --test faults/upstream-down.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  accepting, freePort, request, startEcho, startGateway, startLoad, tally, waitFor,
} from './stack.mjs';

// README Operations: a refused connection moves on to the next upstream and keeps the
// failed one out of the rotation for 10 s (src/policy/route.rs DOWN_FOR), then it is tried
// again: traffic runs past that so the second round of tries is covered too.
const DOWN_FOR_MS = 10000;

describe('upstream down', () => {
  let a;
  let b;
  let gw;
  let nothing; // a port where nothing listens
  const stops = [];

  before(async () => {
    a = await startEcho();
    stops.push(() => a.stop());
    b = await startEcho();
    stops.push(() => b.stop());
    nothing = await freePort();
    gw = await startGateway({
      routes: `
[[routes]]
name = "pair"
path = "/pair/"
upstreams = ["${a.url}", "${b.url}"]
auth = "public"

[[routes]]
name = "solo"
path = "/solo/"
upstream = "http://127.0.0.1:${nothing}"
auth = "public"
`,
    });
    stops.push(() => gw.stop());
  });

  after(async () => {
    while (stops.length) await stops.pop()().catch(() => {});
  });

  test('a_dead_upstream_fails_no_request_the_other_one_takes_them', async (t) => {
    const RATE = 10;
    const CLIENTS = 5;
    const load = startLoad({
      url: gw.url('/pair/x'),
      clients: Array.from({ length: CLIENTS }, (_, i) => ({ name: `${i % 2 ? 'fresh' : 'keepalive'}-${i}`, keepAlive: i % 2 === 0 })),
      rate: RATE,
      pick: () => ({}),
      read: (r) => `http://${r.json().server}`,
    });
    await waitFor(() => load.results.length >= 60, { what: '60 answers with both upstreams up' });

    await a.stop(); // SIGTERM; resolves once the process is gone
    const killedAt = load.elapsed();
    assert.equal(await accepting(Number(new URL(a.url).port)), false, 'the killed upstream refuses connections');
    // Traffic past the 10 s the dead upstream is left out, and 3 s more: so many answers.
    const enough = Math.ceil(((DOWN_FOR_MS + 3000) / 1000) * RATE * CLIENTS);
    await waitFor(() => tally(load.results, { from: killedAt }).sent >= enough, {
      what: `${enough} answers after the kill`, timeoutMs: DOWN_FOR_MS + 10000, intervalMs: 250,
    });
    const results = await load.stop();

    const by = (list) => list.reduce((m, r) => ({ ...m, [r.seen]: (m[r.seen] ?? 0) + 1 }), {});
    const before_ = tally(results, { to: killedAt });
    const afterwards = tally(results, { from: killedAt });
    t.diagnostic(`both up: ${JSON.stringify(before_)}, served by ${JSON.stringify(by(results.filter((r) => r.end < killedAt && r.status === 200)))}`);
    t.diagnostic(`after ${a.url} was killed (${((results.at(-1).start - killedAt) / 1000).toFixed(1)} s): ${JSON.stringify(afterwards)}, `
      + `served by ${JSON.stringify(by(results.filter((r) => r.start >= killedAt && r.status === 200)))}`);
    assert.equal(before_.failed, 0);
    assert.equal(afterwards.failed, 0, JSON.stringify(results.filter((r) => r.start >= killedAt && r.status !== 200).slice(0, 5)));
    assert.ok(new Set(results.filter((r) => r.end < killedAt).map((r) => r.seen)).size === 2, 'both upstreams served before');
    assert.deepEqual(new Set(results.filter((r) => r.start >= killedAt).map((r) => r.seen)), new Set([b.url]));

    // pingora logs each refused connection (then retried on the other upstream): the dead one
    // is tried at the kill, left alone for 10 s, then tried once more.
    const dead = new URL(a.url).host;
    const tries = [...gw.log().matchAll(new RegExp(`^(\\S+Z)\\s+WARN .*ConnectRefused.*addr: ${dead.replace(/\./g, '\\.')},.*retry: true`, 'gm'))]
      .map((m) => Date.parse(m[1]));
    const offsets = tries.map((at) => ((at - tries[0]) / 1000).toFixed(2));
    t.diagnostic(`connections tried to the dead upstream, s after the first: ${offsets.join(', ')}`);
    assert.ok(tries.length >= 2, 'the dead upstream was tried again after its 10 s out');
    // The gateway counts the 10 s in whole seconds of its clock: 9 to 10 s in fact.
    const early = tries.filter((at) => at - tries[0] > 1000 && at - tries[0] < DOWN_FOR_MS - 1500);
    assert.deepEqual(early, [], 'no try within the 10 s it is left out');
    assert.ok(tries.length <= 2 * Math.ceil((results.at(-1).start - killedAt) / DOWN_FOR_MS) + CLIENTS, `${tries.length} tries`);
  });

  test('a_route_whose_only_upstream_is_down_answers_502_json', async () => {
    const r = await request(gw.url('/solo/x'));
    assert.equal(r.status, 502, r.body);
    assert.match(r.headers['content-type'], /application\/json/);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(r.json().error, 'bad_gateway');
    assert.ok(r.ms < 2000, `answered in ${r.ms} ms`);
    const page = await request(gw.url('/solo/x'), { headers: { accept: 'text/html', 'sec-fetch-mode': 'navigate' } });
    assert.equal(page.status, 502);
  });
});
