// Case 3: the provider's introspection endpoint turns slow, while many requests carry the
// same opaque token the gateway has not seen yet. See README.md.
//
//   cd tests/e2e && node --test faults/slow-introspection.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  bearer, burst, metric, opCalls, opControl, request, startStack, token,
} from './stack.mjs';

const CONCURRENT = 50;
const INTROSPECT = 'token/introspect';
// The gateway's HTTP client gives up after 5 s (src/auth/verifier.rs http_client; README:
// introspection endpoint unreachable → 503).
const HTTP_TIMEOUT_MS = 5000;
const SLOW_MS = 2000; // slow, within the timeout
const TOO_SLOW_MS = 8000; // beyond it
const SLACK_MS = 2000;



/** `CONCURRENT` requests at once with `tok`; resolves { answers, wallMs, calls } */
async function sameTokenBurst(op, gw, tok) {
  const calls0 = await opCalls(op, INTROSPECT);
  const start = performance.now();
  const answers = await burst(CONCURRENT, gw.url('/api/orders'), () => ({ headers: bearer(tok), timeoutMs: 30000 }));
  const wallMs = performance.now() - start;
  return { answers, wallMs, calls: (await opCalls(op, INTROSPECT)) - calls0 };
}

const statuses = (answers) => answers.reduce((m, a) => ({ ...m, [a.status]: (m[a.status] ?? 0) + 1 }), {});

describe('slow introspection', () => {
  let op;
  let gw;
  let stack;

  before(async () => {
    stack = await startStack({ names: ['api'] });
    ({ op, gw } = stack);
  });

  after(async () => {
    if (op) await opControl(op, 'delay', { path: INTROSPECT, ms: 0 }).catch(() => {});
    await stack?.stop();
  });

  test('a_slow_introspection_is_asked_once_for_many_requests_with_the_same_token', async (t) => {
    const tok = await token(op, 'opaque-service');
    assert.equal(tok.split('.').length, 1, 'opaque-service issues opaque tokens');
    await opControl(op, 'delay', { path: INTROSPECT, ms: SLOW_MS });
    const { answers, wallMs, calls } = await sameTokenBurst(op, gw, tok);
    t.diagnostic(`${CONCURRENT} requests, one new opaque token, introspection ${SLOW_MS} ms: `
      + `statuses ${JSON.stringify(statuses(answers))}, ${calls} introspection call(s) at the provider, wall ${wallMs.toFixed(0)} ms`);
    assert.deepEqual(statuses(answers), { 200: CONCURRENT }, JSON.stringify(answers.find((a) => a.status !== 200)));
    assert.equal(calls, 1, `${calls} introspection calls for one token (single-flight)`);
    assert.ok(wallMs < SLOW_MS + SLACK_MS, `all answered in ${wallMs} ms`);

    // Within introspection_cache (60 s) the answer is reused: no new call.
    const again = await sameTokenBurst(op, gw, tok);
    assert.deepEqual(statuses(again.answers), { 200: CONCURRENT });
    assert.equal(again.calls, 0, 'a cached answer costs no call');
    assert.ok(again.wallMs < 1000, `cached answers in ${again.wallMs} ms`);
  });

  test('an_introspection_beyond_the_timeout_is_a_503_for_all_within_one_timeout_not_a_pile_up', async (t) => {
    const tok = await token(op, 'opaque-service');
    await opControl(op, 'delay', { path: INTROSPECT, ms: TOO_SLOW_MS });
    const cached0 = await metric(gw, 'portcullis_introspections_total', { cached: 'false' });
    const { answers, wallMs, calls } = await sameTokenBurst(op, gw, tok);
    const asked = await metric(gw, 'portcullis_introspections_total', { cached: 'false' }) - cached0;
    const slowest = Math.max(...answers.map((a) => a.ms));
    t.diagnostic(`${CONCURRENT} requests, introspection ${TOO_SLOW_MS} ms: statuses ${JSON.stringify(statuses(answers))}, `
      + `${calls} call(s) at the provider (${asked} by the gateway's metric), wall ${wallMs.toFixed(0)} ms, slowest ${slowest.toFixed(0)} ms`);
    assert.deepEqual(statuses(answers), { 503: CONCURRENT }, JSON.stringify(answers.find((a) => a.status !== 503)));
    for (const a of answers) {
      assert.equal(a.json().error, 'temporarily_unavailable');
    }
    assert.ok(wallMs >= HTTP_TIMEOUT_MS - 500, `the gateway waited for its timeout (${wallMs} ms)`);
    assert.ok(wallMs < HTTP_TIMEOUT_MS + SLACK_MS, `all answered within one timeout: ${wallMs} ms`);
    assert.equal(calls, 1, `${calls} introspection calls for one token (single-flight)`);

    // A 503 is not remembered as a verdict: once the endpoint is quick again the token passes.
    await opControl(op, 'delay', { path: INTROSPECT, ms: 0 });
    const r = await request(gw.url('/api/orders'), { headers: bearer(tok) });
    assert.equal(r.status, 200, r.body);
  });
});
