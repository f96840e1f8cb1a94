// Case 1: the provider is unreachable for 60 s (every connection refused: discovery, keys,
// token endpoint, login form) while services keep calling a bearer route with tokens they
// got before. See README.md.
//
//   cd tests/e2e && node --test faults/provider-outage.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  PAGE_LOAD, USERS, accepting, bearer, echoed, kidOf, login, loginUntilCallback, metric,
  opControl, readyz, request, routes, startGatewayUntil, startLoad, startStack, tally, token,
  waitFor, waitForLine,
} from './stack.mjs';

const OUTAGE_MS = 60000;
// A refused connection fails at once; the gateway's HTTP client gives up after 5 s in any
// case (src/auth/verifier.rs http_client): no answer of the gateway may take longer.
const PROVIDER_TIMEOUT_MS = 5000;
const SLACK_MS = 1500;
const CLIENTS = ['billing-service', 'shipping-service', 'reporting-service', 'es256-service'];



describe('provider down for 60 s', () => {
  let op;
  let echo;
  let gw;
  let late; // a gateway started during the outage
  let stack;

  before(async () => {
    stack = await startStack({ session: '' });
    ({ op, echo, gw } = stack);
  });

  after(async () => {
    if (late) await late.stop();
    await stack?.stop();
  });

  test('provider_outage_never_fails_bearer_traffic_or_hangs_a_login', { timeout: OUTAGE_MS + 60000 }, async (t) => {
    // Tokens got before the outage: `seen` ones the gateway verifies (and caches) before it,
    // `unseen` ones it first meets during it, so their signatures are checked against the
    // keys it cached.
    const seen = await Promise.all(CLIENTS.map((c) => token(op, c)));
    const unseen = await Promise.all(Array.from({ length: 40 }, (_, i) => token(op, CLIENTS[i % CLIENTS.length])));
    for (const s of seen) assert.equal((await request(gw.url('/api/warm'), { headers: bearer(s) })).status, 200);
    const pending = await loginUntilCallback(gw, USERS.alice, '/app/pending');
    const fetchesBefore = await metric(gw, 'portcullis_jwks_fetches_total');

    // 6 clients, 3 on a kept-alive connection and 3 on a fresh one per request, 5 req/s each.
    let outage = false;
    let nextUnseen = 0;
    const load = startLoad({
      url: gw.url('/api/orders'),
      clients: [0, 1, 2, 3, 4, 5].map((i) => ({ name: `${i % 2 ? 'fresh' : 'keepalive'}-${i}`, keepAlive: i % 2 === 0 })),
      rate: 5,
      pick: (client, n) => {
        if (outage && n % 2 === 0 && nextUnseen < unseen.length) {
          return { headers: bearer(unseen[nextUnseen++]), tag: 'unseen' };
        }
        return { headers: bearer(seen[n % seen.length]), tag: 'seen' };
      },
    });
    await waitFor(() => load.results.length >= 30, { what: '30 answers before the outage' });

    await opControl(op, 'outage', { ms: OUTAGE_MS });
    await waitForLine(op.stderr, /^outage: /m, { what: 'the start of the outage' });
    const outageFrom = load.elapsed();
    outage = true;
    assert.equal(await accepting(op.port), false, 'the provider refuses connections');

    await t.test('a_login_callback_during_the_outage_is_a_503_page_not_a_500_or_a_hang', async () => {
      const r = await pending.jar.send(pending.callback, { headers: PAGE_LOAD });
      t.diagnostic(`callback during the outage: ${r.status} in ${r.ms.toFixed(0)} ms`);
      assert.equal(r.status, 503, r.body);
      assert.match(r.headers['content-type'], /text\/html/);
      assert.ok(r.ms < PROVIDER_TIMEOUT_MS + SLACK_MS, `answered in ${r.ms} ms`);
      assert.equal(r.headers['set-cookie']?.some((c) => /^_portcullis=[^;]/.test(c)) ?? false, false, 'no session');
    });

    await t.test('a_login_started_during_the_outage_with_discovery_cached_still_redirects', async () => {
      // SPEC §5: the 503 is for a login that starts *without* discovery, or the callback. With
      // discovery loaded, starting a login needs nothing from the provider.
      const r = await request(gw.url('/app/during'), { headers: PAGE_LOAD });
      assert.equal(r.status, 302, r.body);
      assert.ok(r.headers.location.startsWith(`${op.issuer}/`), r.headers.location);
      assert.ok(r.ms < 1000, `answered in ${r.ms} ms`);
      const api = await request(gw.url('/app/during'), { headers: { accept: 'application/json' } });
      assert.equal(api.status, 401);
      assert.equal((await request(gw.url('/pub/during'))).status, 200);
      assert.equal(await readyz(gw), 200, '/readyz stays 200 through an outage (README Operations)');
    });

    await t.test('a_gateway_started_during_the_outage_answers_503_not_500_and_lets_nothing_through', async () => {
      late = await startGatewayUntil({ issuer: op.issuer, session: '', routes: routes(echo.url) }, /issuer not reachable/);
      assert.equal(await readyz(late), 503);
      const api = await request(late.url('/api/orders'), { headers: bearer(seen[0]) });
      assert.equal(api.status, 503, api.body);
      assert.equal(api.json().error, 'temporarily_unavailable');
      const page = await request(late.url('/app/x'), { headers: PAGE_LOAD });
      t.diagnostic(`login start at a gateway without discovery: ${page.status} in ${page.ms.toFixed(0)} ms`);
      assert.equal(page.status, 503, page.body);
      assert.match(page.headers['content-type'], /text\/html/);
      assert.ok(page.ms < PROVIDER_TIMEOUT_MS + SLACK_MS, `answered in ${page.ms} ms`);
      const explicit = await request(late.url('/_portcullis/login?rd=/app/x'), { headers: { accept: 'application/json' } });
      assert.equal(explicit.status, 503, explicit.body);
      assert.equal(explicit.json().error, 'temporarily_unavailable');
      assert.equal((await request(late.url('/pub/x'))).status, 200, 'public routes are served');
    });

    await waitForLine(op.stderr, /^outage over/m, { what: 'the end of the outage', timeoutMs: OUTAGE_MS + 10000 });
    const outageTo = load.elapsed();
    outage = false;

    await t.test('logins_work_again_after_the_outage_without_a_restart', async () => {
      const jar = await login(gw, USERS.alice, '/app/after');
      const r = await jar.send(gw.url('/app/after'));
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(echoed(r.json(), 'x-auth-request-user'), ['alice']);
    });

    await t.test('a_key_rotated_after_the_outage_verifies_without_a_restart', async () => {
      const { signing_kid: kid } = await opControl(op, 'rotate');
      const fresh = await token(op, 'billing-service');
      assert.equal(kidOf(fresh), kid);
      const r = await request(gw.url('/api/orders'), { headers: bearer(fresh) });
      assert.equal(r.status, 200, r.body);
      const fetches = await metric(gw, 'portcullis_jwks_fetches_total') - fetchesBefore;
      t.diagnostic(`JWKS fetches since the outage began: ${fetches}`);
      assert.ok(fetches >= 1 && fetches <= 2, `${fetches} JWKS fetches`);
    });

    await t.test('a_gateway_started_during_the_outage_gets_ready_once_the_provider_is_back', async () => {
      const back = performance.now();
      await waitFor(async () => (await readyz(late)) === 200, { what: 'the late gateway ready', timeoutMs: 15000 });
      t.diagnostic(`late gateway ready ${(performance.now() - back).toFixed(0)} ms after the provider came back`);
      const r = await request(late.url('/api/orders'), { headers: bearer(seen[0]) });
      assert.equal(r.status, 200, r.body);
      const page = await request(late.url('/app/x'), { headers: PAGE_LOAD });
      assert.equal(page.status, 302);
    });

    const results = await load.stop();
    await t.test('bearer_requests_with_cached_keys_never_fail_during_the_outage', () => {
      const before_ = tally(results, { to: outageFrom });
      const during = tally(results, { from: outageFrom, to: outageTo });
      const afterwards = tally(results, { from: outageTo });
      const unseenDuring = tally(results, { from: outageFrom, to: outageTo, filter: (r) => r.tag === 'unseen' });
      const kept = tally(results, { from: outageFrom, to: outageTo, filter: (r) => r.client.startsWith('keepalive') });
      const fresh = tally(results, { from: outageFrom, to: outageTo, filter: (r) => r.client.startsWith('fresh') });
      const seconds = (outageTo - outageFrom) / 1000;
      t.diagnostic(`before: ${JSON.stringify(before_)}`);
      t.diagnostic(`during ${seconds.toFixed(1)} s (${(during.sent / seconds).toFixed(1)} req/s): ${JSON.stringify(during)}`);
      t.diagnostic(`  of which first seen during the outage: ${JSON.stringify(unseenDuring)}; keep-alive ${kept.sent}, fresh connections ${fresh.sent}`);
      t.diagnostic(`after: ${JSON.stringify(afterwards)}`);
      assert.ok(seconds >= OUTAGE_MS / 1000 - 1, `the outage lasted ${seconds} s`);
      assert.ok(during.sent >= 20 * seconds, `${during.sent} requests in ${seconds} s`);
      assert.equal(unseenDuring.sent, unseen.length, 'every unseen token was used during the outage');
      assert.equal(during.failed, 0, JSON.stringify(results.filter((r) => r.start >= outageFrom && r.start < outageTo && r.status !== 200).slice(0, 5)));
      assert.equal(before_.failed + afterwards.failed, 0);
    });
    assert.doesNotMatch(gw.log(), /panicked/);
  });
});

describe('a key the gateway has not cached, during an outage', () => {
  const SHORT_OUTAGE_MS = 5000;
  // src/auth/issuer.rs RETRY_FAILED: after a failed unknown-kid fetch, the next may run 1 s
  // later (10 s after a successful one).
  const RETRY_FAILED_MS = 1000;
  let op;
  let gw;
  let stack;
  let fresh;

  before(async () => {
    stack = await startStack({ session: '' });
    ({ op, gw } = stack);
    // Rotated after the gateway loaded the keys: it meets the new kid first during the outage.
    await opControl(op, 'rotate');
    fresh = await token(op, 'billing-service');
    await opControl(op, 'outage', { ms: SHORT_OUTAGE_MS });
    await waitForLine(op.stderr, /^outage: /m, { what: 'the start of the outage' });
  });

  after(() => stack?.stop());

  test('a_token_whose_key_cannot_be_fetched_is_a_503_not_an_invalid_token', async (t) => {
    const r = await request(gw.url('/api/orders'), { headers: bearer(fresh) });
    assert.equal(await accepting(op.port), false, 'still during the outage');
    t.diagnostic(`new kid during the outage: ${r.status} ${r.headers['www-authenticate'] ?? ''}`);
    assert.equal(r.status, 503, r.body);
    assert.equal(r.json().error, 'temporarily_unavailable');
  });

  test('a_token_whose_key_could_not_be_fetched_verifies_soon_after_the_provider_is_back', async (t) => {
    await waitForLine(op.stderr, /^outage over/m, { what: 'the end of the outage', timeoutMs: SHORT_OUTAGE_MS + 10000 });
    const back = performance.now();
    const statuses = [];
    await waitFor(async () => {
      const r = await request(gw.url('/api/orders'), { headers: bearer(fresh) });
      statuses.push(r.status);
      return r.status === 200;
    }, { what: 'the new key verified', timeoutMs: RETRY_FAILED_MS + 2000, intervalMs: 250 });
    const refusals = statuses.slice(0, -1);
    t.diagnostic(`verified ${(performance.now() - back).toFixed(0)} ms after the provider was back `
      + `(${refusals.length} refusals before: ${[...new Set(refusals)].join(', ') || 'none'})`);
    assert.deepEqual(refusals.filter((s) => s !== 503), [], 'a key not yet fetched is never called invalid');
  });
});
