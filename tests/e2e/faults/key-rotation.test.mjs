// Case 2: the provider rotates its signing key while services keep calling; a burst of
// requests with the new key id must cost about one JWKS fetch. See README.md.
//
//   cd tests/e2e && node --test faults/key-rotation.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  bearer, burst, kidOf, metric, opCalls, opControl, startLoad, startStack, tally, token, waitFor,
} from './stack.mjs';

const CLIENTS = ['billing-service', 'shipping-service', 'reporting-service'];
const BURST = 60;
// "at most one fetch at a time, at most one per 10 s" (README, Keys): one, and a margin of
// one for a background refresh falling in the same moment.
const MAX_FETCHES = 2;



describe('key rotation under load', () => {
  let op;
  let gw;
  let stack;

  before(async () => {
    stack = await startStack({ names: ['api'] });
    ({ op, gw } = stack);
  });

  after(() => stack?.stop());

  test('a_rotated_key_is_fetched_once_for_a_burst_and_no_token_with_a_published_key_fails', async (t) => {
    const old = await Promise.all(Array.from({ length: 12 }, (_, i) => token(op, CLIENTS[i % CLIENTS.length])));
    const tokens = { old, new: [] };
    const kids = new Set(old.map(kidOf));
    assert.equal(kids.size, 1);
    const [kidA] = kids;

    let dropped = false;
    const load = startLoad({
      url: gw.url('/api/orders'),
      clients: [0, 1, 2, 3].map((i) => ({ name: `c${i}`, keepAlive: i % 2 === 0 })),
      rate: 10,
      pick: (client, n) => {
        const pool = n % 2 && tokens.new.length ? tokens.new : tokens.old;
        const tok = pool[n % pool.length];
        return { headers: bearer(tok), tag: { kid: kidOf(tok), dropped } };
      },
    });
    await waitFor(() => load.results.length >= 40, { what: '40 answers before the rotation' });
    const gwFetches0 = await metric(gw, 'portcullis_jwks_fetches_total');
    const opFetches0 = await opCalls(op, 'certs');

    const { signing_kid: kidB } = await opControl(op, 'rotate');
    assert.notEqual(kidB, kidA);
    const fresh = await Promise.all(Array.from({ length: 30 }, (_, i) => token(op, CLIENTS[i % CLIENTS.length])));
    assert.ok(fresh.every((f) => kidOf(f) === kidB), 'new tokens are signed with the new key');

    // Many requests at once, each with a token the gateway has not seen, all with the new kid.
    const answers = await burst(BURST, gw.url('/api/orders'), (i) => ({ headers: bearer(fresh[i % fresh.length]) }));
    const gwFetches = await metric(gw, 'portcullis_jwks_fetches_total') - gwFetches0;
    const opFetches = await opCalls(op, 'certs') - opFetches0;
    t.diagnostic(`burst of ${BURST} requests with kid ${kidB}: statuses ${JSON.stringify(tally(answers.map((a) => ({ ...a, start: 0 }))).statuses)}; `
      + `JWKS fetches: ${gwFetches} (gateway metric), ${opFetches} (provider)`);
    assert.deepEqual(answers.filter((a) => a.status !== 200).map((a) => `${a.status} ${a.body ?? a.error}`), []);
    assert.ok(gwFetches >= 1 && gwFetches <= MAX_FETCHES, `${gwFetches} JWKS fetches for a burst of ${BURST}`);
    assert.equal(opFetches, gwFetches, 'the provider saw the fetches the metric counts');

    // Old and new tokens mixed, then the old key withdrawn.
    tokens.new = fresh;
    const mixFrom = load.elapsed();
    await waitFor(() => tally(load.results, { from: mixFrom }).sent >= 80, { what: '80 answers with old and new tokens' });
    await opControl(op, 'drop-old-keys');
    dropped = true;
    const dropAt = load.elapsed();
    await waitFor(() => tally(load.results, { from: dropAt }).sent >= 40, { what: '40 answers after the old key was dropped' });
    const results = await load.stop();

    const published = (r) => r.tag.kid === kidB || (r.tag.kid === kidA && !r.tag.dropped);
    const withPublishedKey = tally(results, { filter: published });
    const oldAfterDrop = tally(results, { filter: (r) => !published(r) });
    const newKey = tally(results, { filter: (r) => r.tag.kid === kidB });
    t.diagnostic(`load: ${results.length} requests; with a published key ${JSON.stringify(withPublishedKey)}; `
      + `of which new kid ${newKey.sent}; old kid after it was dropped ${JSON.stringify(oldAfterDrop)}`);
    assert.equal(withPublishedKey.failed, 0, JSON.stringify(results.filter((r) => published(r) && r.status !== 200).slice(0, 5)));
    assert.ok(newKey.sent >= 40, `${newKey.sent} requests with the new key`);
    const total = await metric(gw, 'portcullis_jwks_fetches_total') - gwFetches0;
    t.diagnostic(`JWKS fetches from the rotation to the end: ${total}`);
    assert.ok(total <= MAX_FETCHES, `${total} JWKS fetches in all`);
  });
});
