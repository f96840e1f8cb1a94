// Case 5: slow clients — Debian's slowhttptest in slowloris (-H) and slow-body (-B) mode, and
// a few hand-made slow sockets — while ordinary clients keep being served. See README.md.
//
//   cd tests/e2e && node --test faults/slow-clients.test.mjs
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { spawnKept } from '../browser/harness.mjs';
import {
  openFds, request, rssKb, startEcho, startGateway, stopChild, waitFor,
} from './stack.mjs';

const SLOWHTTPTEST = '/usr/bin/slowhttptest';
const CONNECTIONS = 500; // per slowhttptest mode
// README [server]: `header_timeout` bounds the whole request head, `body_timeout` each pause
// in a body (nginx's client_header_timeout and client_body_timeout, 60 s by default); set
// short here so the attack can outlast them.
const HEADER_TIMEOUT_MS = 15000;
const BODY_TIMEOUT_MS = 15000;
const ATTACK_S = 20; // past both timeouts
const KEEPALIVE_S = 5;
// README Operations: about 27 KB per idle client connection; a slow-body client also holds
// an upstream connection. Allow 64 KiB per slow client.
const PER_CONNECTION_KB = 64;
// ... and gives it back within seconds once they are gone (jemalloc's background thread):
// measured about 5 MB above where it started.
const SETTLED_KB = 10 * 1024;
const PROBE_EVERY_MS = 200;
const PROBE_MAX_MS = 1000;

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');

/** slowhttptest's last status block: { connected, closed, error, available, exit }. */
function lastStatus(output) {
  const text = stripAnsi(output);
  const last = (re) => [...text.matchAll(re)].at(-1)?.[1];
  return {
    connected: Number(last(/connected:\s+(\d+)/g)),
    closed: Number(last(/closed:\s+(\d+)/g)),
    error: Number(last(/error:\s+(\d+)/g)),
    available: last(/service available:\s+(\w+)/g),
    exit: last(/Exit status:\s+(.*)/g)?.trim(),
  };
}

/**
 * A raw connection to `port` that runs `script(socket)` once connected and records when the
 * gateway answers (`firstData`, its first bytes) and when the connection ends (`closedAt`),
 * in ms since `t0`.
 */
function rawClient(port, t0, script) {
  const probe = { data: '', closedAt: undefined, firstData: undefined };
  const socket = net.connect({ host: '127.0.0.1', port }, () => script(socket, probe));
  socket.on('data', (d) => {
    probe.firstData ??= performance.now() - t0;
    probe.data += d;
  });
  socket.on('error', () => {});
  socket.on('close', () => { probe.closedAt = performance.now() - t0; });
  probe.closed = new Promise((resolve) => socket.once('close', resolve));
  probe.socket = socket;
  return probe;
}

/** Writes `byte` to `socket` every `everyMs` until it is closed. */
function trickle(socket, byte, everyMs) {
  const timer = setInterval(() => {
    if (socket.destroyed) clearInterval(timer); else socket.write(byte);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

describe('slow clients', () => {
  let echo;
  let gw;
  let port;
  const stops = [];

  before(async () => {
    assert.ok(fs.existsSync(SLOWHTTPTEST), `${SLOWHTTPTEST} is missing: apt-get install slowhttptest (make apt)`);
    echo = await startEcho();
    stops.push(() => echo.stop());
    gw = await startGateway({
      server: `keepalive_timeout = "${KEEPALIVE_S}s"
header_timeout = "${HEADER_TIMEOUT_MS / 1000}s"
body_timeout = "${BODY_TIMEOUT_MS / 1000}s"`,
      routes: `
[[routes]]
name = "pub"
path = "/pub/"
upstream = "${echo.url}"
auth = "public"
`,
    });
    stops.push(() => gw.stop());
    port = Number(new URL(gw.origin).port);
  });

  after(async () => {
    while (stops.length) await stops.pop()().catch(() => {});
  });

  test('slow_clients_neither_starve_other_clients_nor_hold_memory', { timeout: (ATTACK_S + 40) * 1000 }, async (t) => {
    assert.equal((await request(gw.url('/pub/warm'))).status, 200);
    const base = { rss: rssKb(gw.pid), fds: openFds(gw.pid) };
    const t0 = performance.now();

    const attack = (mode, extra) => {
      const child = spawnKept(SLOWHTTPTEST, [mode, '-c', String(CONNECTIONS), '-r', '250', '-i', '10',
        '-l', String(ATTACK_S), '-x', '24', '-p', '3', ...extra], { keep: 20000 });
      stops.push(() => stopChild(child));
      return child;
    };
    const slowloris = attack('-H', ['-u', gw.url('/pub/slowloris')]);
    const slowBody = attack('-B', ['-s', '8192', '-u', gw.url('/pub/slowbody')]);
    const exited = (c) => c.exitCode !== null || c.signalCode !== null;

    // Hand-made slow clients, on paths of their own (the access log tells them apart).
    const idle = rawClient(port, t0, (s) => s.write('GET /pub/idle HTTP/1.1\r\nHost: gw\r\n\r\n'));
    const silentHead = rawClient(port, t0, (s) => s.write('GET /pub/silent-head HTTP/1.1\r\nHost: gw\r\n'));
    const trickledHead = rawClient(port, t0, (s) => {
      s.write('GET /pub/trickled-head HTTP/1.1\r\nHost: gw\r\nX-Slow: ');
      trickle(s, 'x', 5000);
    });
    const silentBody = rawClient(port, t0, (s) => s.write(
      'POST /pub/silent-body HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nabc',
    ));
    stops.push(async () => { for (const p of [idle, silentHead, trickledHead, silentBody]) p.socket.destroy(); });

    // Ordinary requests, each on a fresh connection, until both attacks are over; memory and
    // descriptors sampled as they go.
    const probes = [];
    let peak = { ...base };
    while (!(exited(slowloris) && exited(slowBody))) {
      const r = await request(gw.url('/pub/ordinary'), { timeoutMs: 5000 }).catch((e) => ({ status: 0, ms: e.ms, error: e.code ?? e.message }));
      probes.push({ at: performance.now() - t0, status: r.status, ms: r.ms, error: r.error });
      peak = { rss: Math.max(peak.rss, rssKb(gw.pid)), fds: Math.max(peak.fds, openFds(gw.pid)) };
      assert.ok(performance.now() - t0 < (ATTACK_S + 20) * 1000, 'slowhttptest ran past its -l');
      await new Promise((r) => { setTimeout(r, PROBE_EVERY_MS); });
    }
    const attackEnded = performance.now() - t0;
    const loris = lastStatus(slowloris.output());
    const body = lastStatus(slowBody.output());
    t.diagnostic(`slowloris (-H): ${JSON.stringify(loris)}; slow body (-B): ${JSON.stringify(body)}; over after ${(attackEnded / 1000).toFixed(1)} s`);

    await t.test('ordinary_requests_are_served_quickly_while_slow_clients_hold_a_thousand_connections', () => {
      const ms = probes.map((p) => p.ms).sort((a, b) => a - b);
      const failed = probes.filter((p) => p.status !== 200);
      t.diagnostic(`${probes.length} ordinary requests: ${failed.length} failed; median ${ms[ms.length >> 1].toFixed(1)} ms, `
        + `p99 ${ms[Math.floor(ms.length * 0.99)].toFixed(1)} ms, max ${ms.at(-1).toFixed(1)} ms`);
      assert.equal(loris.connected + body.connected, 2 * CONNECTIONS, 'slowhttptest held its connections');
      assert.deepEqual(failed, []);
      assert.ok(ms.at(-1) < PROBE_MAX_MS, `slowest ordinary request ${ms.at(-1)} ms`);
      assert.ok(probes.length >= (ATTACK_S * 1000) / (PROBE_EVERY_MS + PROBE_MAX_MS), `${probes.length} probes`);
    });

    await t.test('slow_clients_hold_bounded_memory_and_give_it_back', async () => {
      const bound = base.rss + 2 * CONNECTIONS * PER_CONNECTION_KB;
      const settled = await waitFor(() => {
        const now = { rss: rssKb(gw.pid), fds: openFds(gw.pid) };
        return now.fds <= base.fds + 10 && now.rss <= base.rss + SETTLED_KB ? now : undefined;
      }, { what: 'descriptors and memory back near where they were', timeoutMs: 10000, intervalMs: 250 })
        .catch((e) => ({ error: e.message, rss: rssKb(gw.pid), fds: openFds(gw.pid) }));
      t.diagnostic(`RSS ${(base.rss / 1024).toFixed(1)} MB before, ${(peak.rss / 1024).toFixed(1)} MB at most (bound ${(bound / 1024).toFixed(0)} MB), `
        + `${(settled.rss / 1024).toFixed(1)} MB after; fds ${base.fds} before, ${peak.fds} at most, ${settled.fds} after`);
      assert.ok(peak.fds >= base.fds + 2 * CONNECTIONS, `the gateway held the slow connections (${peak.fds} fds)`);
      assert.ok(peak.rss <= bound, `peak RSS ${peak.rss} kB over ${bound} kB`);
      assert.equal(settled.error, undefined, settled.error);
    });

    await t.test('an_idle_keepalive_connection_is_closed_after_keepalive_timeout', () => {
      assert.match(idle.data, /^HTTP\/1\.1 200 /);
      const idleFor = idle.closedAt - idle.firstData;
      t.diagnostic(`idle keep-alive connection closed ${(idleFor / 1000).toFixed(2)} s after its answer`);
      assert.ok(idleFor >= KEEPALIVE_S * 1000 - 500 && idleFor <= KEEPALIVE_S * 1000 + 2500, `closed after ${idleFor} ms`);
    });

    await t.test('a_client_silent_in_the_middle_of_its_head_is_cut_off_after_header_timeout', async () => {
      await waitFor(() => silentHead.closedAt !== undefined, { what: 'the silent head closed', timeoutMs: 5000 });
      t.diagnostic(`silent head: closed at ${(silentHead.closedAt / 1000).toFixed(1)} s, answer ${JSON.stringify(silentHead.data.split('\r\n')[0])}`);
      assert.ok(silentHead.closedAt >= HEADER_TIMEOUT_MS - 1000 && silentHead.closedAt <= HEADER_TIMEOUT_MS + 3000, `closed at ${silentHead.closedAt} ms`);
      assert.match(silentHead.data, /^HTTP\/1\.1 408 /);
    });

    await t.test('a_client_trickling_its_head_is_cut_off_after_header_timeout_however_often_it_sends', async () => {
      await waitFor(() => trickledHead.closedAt !== undefined, { what: 'the trickled head closed', timeoutMs: 5000 });
      t.diagnostic(`trickled head: closed at ${(trickledHead.closedAt / 1000).toFixed(1)} s, answer ${JSON.stringify(trickledHead.data.split('\r\n')[0])}; `
        + `slowloris: ${loris.exit}`);
      assert.ok(trickledHead.closedAt >= HEADER_TIMEOUT_MS - 1000 && trickledHead.closedAt <= HEADER_TIMEOUT_MS + 3000,
        `trickled head closed at ${trickledHead.closedAt} ms`);
      assert.match(trickledHead.data, /^HTTP\/1\.1 408 /);
      // slowhttptest stops early when the server has closed every connection it held.
      assert.equal(loris.exit, 'No open connections left', `slowloris: ${JSON.stringify(loris)}`);
    });

    await t.test('a_client_silent_in_the_middle_of_its_body_gets_408_not_blamed_on_the_upstream', async () => {
      await waitFor(() => silentBody.closedAt !== undefined, { what: 'the silent body closed', timeoutMs: 5000 });
      const line = gw.log().split('\n').find((l) => l.includes('path=/pub/silent-body')) ?? '';
      t.diagnostic(`silent body: closed at ${(silentBody.closedAt / 1000).toFixed(1)} s, answer ${JSON.stringify(silentBody.data.split('\r\n')[0])}; log: ${line.replace(/^.*portcullis::access: /, '')}`);
      assert.ok(silentBody.closedAt >= BODY_TIMEOUT_MS - 1000 && silentBody.closedAt <= BODY_TIMEOUT_MS + 3000, `closed at ${silentBody.closedAt} ms`);
      assert.match(silentBody.data, /^HTTP\/1\.1 408 /, 'the client was too slow; the upstream did nothing wrong');
      assert.match(line, /status=408/);
      assert.match(line, /reason="request_timeout"/);
    });
  });
});
