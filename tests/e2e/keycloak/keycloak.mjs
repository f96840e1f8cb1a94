// A real Keycloak for end-to-end tests: `kc.sh start-dev` from the pinned distribution
// that install.sh unpacked in .cache/, on a free 127.0.0.1 port (http only), with an
// in-memory database (`--db=dev-mem`) and its own temporary directory, so concurrent runs
// share nothing; the realm `internal` of realm-internal.json is created through the admin
// REST API at start, with the gateway URLs given substituted in. Always stopped: by stop(),
// and killed (its whole process group) when the test process exits.
//
//   tests/e2e/keycloak/install.sh             # once: download, verify, unpack, first build
//   import { startKeycloak } from '../keycloak/keycloak.mjs';
//   const kc = await startKeycloak({ gatewayUrls: ['http://127.0.0.1:18080'] });
//
// API (kept stable; other suites build on it):
//
//   startKeycloak({ gatewayUrls = [], realm = REALM_FILE, timeoutMs = 240000 })
//     gatewayUrls   public URLs (origins) of the gateways the realm must know: for clients
//                   `portcullis` and `minio-console`, each URL's exact `/_portcullis/callback`
//                   is a redirect URI and `URL/*` a post-logout redirect URI; the first URL's
//                   `/_portcullis/backchannel-logout` is portcullis' back-channel logout URL.
//                   Empty: the export's own `http://127.0.0.1:8080`. More gateways can be
//                   added later with useGateway().
//     realm         a realm export (path, or an object) to import instead of realm-internal.json
//     timeoutMs     bound on the start (process start to realm imported); the start fails at
//                   once, with Keycloak's output, when the process exits before
//   resolves to {
//     origin        'http://127.0.0.1:PORT'
//     port
//     realm         'internal'
//     issuer        'http://127.0.0.1:PORT/realms/internal' (what `[provider] issuer` takes)
//     version       the Keycloak version ('26.7.3')
//     startedMs     how long the start took (process start to realm imported)
//     adminToken()  a master-realm admin access token (cached, renewed before it ends)
//     admin(method, path, body?)
//                   an admin REST API call; `path` is relative to /admin/realms/<realm>
//                   unless it starts with '/admin/'; resolves to the parsed JSON (or the
//                   text, or null); throws with the status and body on a non-2xx answer
//     adminRaw(method, path, body?)   the same, resolving to { status, headers, body } always
//     client(clientId)                the client's representation (with its `id`)
//     updateClient(clientId, change)  change(rep) edits the representation, then PUT
//     userId(username)                a user's id
//     useGateway(url, { backchannel = true })
//                   adds the gateway `url` to both clients' redirect and post-logout URIs,
//                   and (backchannel) makes it portcullis' back-channel logout URL
//     token(clientId, secret, { scope })   the client-credentials grant: the token answer
//     output()      Keycloak's console output so far
//     stop()        stops it (SIGTERM, then SIGKILL after 10 s) and removes its directory
//   }
//
//   SECRETS        the clients' secrets in the export ({ portcullis: '…', … })
//   USERS          alice and bob ({ username, password })
//   KEYCLOAK_VERSION, KEYCLOAK_HOME, JAVA_HOME, REALM_FILE
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../browser/harness.mjs';

const HERE = path.dirname(new URL(import.meta.url).pathname);
export const KEYCLOAK_VERSION = process.env.KEYCLOAK_VERSION ?? '26.7.3';
export const KEYCLOAK_HOME = process.env.KEYCLOAK_HOME
  ?? path.join(HERE, '.cache', `keycloak-${KEYCLOAK_VERSION}`);
export const JAVA_HOME = process.env.KEYCLOAK_JAVA_HOME ?? '/usr/lib/jvm/temurin-25-jdk-amd64';
export const REALM_FILE = path.join(HERE, 'realm-internal.json');

export const SECRETS = {
  portcullis: 'portcullis-secret-0123456789abcdef',
  'billing-service': 'billing-secret-0123456789abcdef',
  'shipping-service': 'shipping-secret-0123456789abcdef',
  'reporting-service': 'reporting-secret-0123456789abcdef',
  'no-audience-service': 'no-audience-secret-0123456789abcdef',
};
export const USERS = {
  alice: { username: 'alice', password: 'alice-password' },
  bob: { username: 'bob', password: 'bob-password' },
};

// The master realm's administrator, created at start (KC_BOOTSTRAP_ADMIN_*): loopback only.
const ADMIN = { username: 'admin', password: 'admin-password' };
// The export's own gateway URL, replaced by the ones given.
const EXPORT_GATEWAY = 'http://127.0.0.1:8080';
const GATEWAY_CLIENTS = ['portcullis', 'minio-console'];

// ------------------------------------------------------------ processes

const running = new Set();
// Whatever way the test process ends, no Keycloak outlives it (its process group: kc.sh
// and the JVM it starts).
function killAll() {
  for (const child of running) {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killAll);
// A signal ends Node without 'exit': kill first, then die of the same signal.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => { killAll(); process.kill(process.pid, sig); });
}

function gone(child) {
  return child.exitCode !== null || child.signalCode !== null;
}

function stopChild(child, graceMs = 10000) {
  if (gone(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    }, graceMs);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    try { process.kill(-child.pid, 'SIGTERM'); } catch { clearTimeout(timer); resolve(); }
  });
}

// ------------------------------------------------------------ the realm

/** The realm export with the gateway URLs in place of the export's own. */
export function renderRealm(realm, gatewayUrls) {
  const rep = structuredClone(realm);
  if (!gatewayUrls.length) return rep;
  const urls = gatewayUrls.map((u) => new URL(u).origin);
  for (const client of rep.clients ?? []) {
    if (!GATEWAY_CLIENTS.includes(client.clientId)) continue;
    setGatewayUrls(client, urls, { backchannel: urls[0] });
  }
  return rep;
}

/** Puts `urls` in a client representation's redirect and post-logout URIs. */
function setGatewayUrls(client, urls, { backchannel, keep = false }) {
  const cb = urls.map((u) => `${u}/_portcullis/callback`);
  const post = urls.map((u) => `${u}/*`);
  const isExport = (u) => u.startsWith(`${EXPORT_GATEWAY}/`);
  const before = (client.redirectUris ?? []).filter((u) => keep && !isExport(u));
  client.redirectUris = [...new Set([...before, ...cb])];
  client.attributes ??= {};
  const oldPost = (client.attributes['post.logout.redirect.uris'] ?? '').split('##')
    .filter((u) => u && keep && !isExport(u));
  client.attributes['post.logout.redirect.uris'] = [...new Set([...oldPost, ...post])].join('##');
  if (client.baseUrl) client.baseUrl = `${urls[urls.length - 1]}/`;
  if (backchannel && client.attributes['backchannel.logout.url'] !== undefined) {
    client.attributes['backchannel.logout.url'] = `${backchannel}/_portcullis/backchannel-logout`;
  }
}

// ------------------------------------------------------------ start

/** Starts Keycloak with the realm imported; see the API at the top of this file. */
export async function startKeycloak({ gatewayUrls = [], realm = REALM_FILE, timeoutMs = 240000 } = {}) {
  const kcSh = path.join(KEYCLOAK_HOME, 'bin', 'kc.sh');
  if (!fs.existsSync(path.join(KEYCLOAK_HOME, '.portcullis-installed'))) {
    throw new Error(`Keycloak ${KEYCLOAK_VERSION} is not installed in ${KEYCLOAK_HOME}: run tests/e2e/keycloak/install.sh`);
  }
  if (!fs.existsSync(path.join(JAVA_HOME, 'bin', 'java'))) {
    throw new Error(`Keycloak needs Java 21+: ${JAVA_HOME}/bin/java is missing (set KEYCLOAK_JAVA_HOME)`);
  }
  const realmRep = renderRealm(
    typeof realm === 'string' ? JSON.parse(fs.readFileSync(realm, 'utf8')) : realm,
    gatewayUrls,
  );
  const started = Date.now();
  const deadline = started + timeoutMs;
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-keycloak-'));
  const child = spawn(kcSh, [
    'start-dev',
    '--db=dev-mem', // a build option: the same as install.sh's first build, or it rebuilds
    '--http-host=127.0.0.1',
    `--http-port=${port}`,
    `--hostname=${origin}`, // the issuer is this URL, however Keycloak is reached
    '--log-console-color=false',
    `-Dquarkus.transaction-manager.object-store.directory=${path.join(dir, 'transaction-logs')}`,
    `-Djava.io.tmpdir=${dir}`,
  ], {
    detached: true, // its own process group: stop() reaches the JVM too
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      JAVA_HOME,
      JAVA_OPTS_KC_HEAP: '-Xms64m -Xmx512m',
      KC_BOOTSTRAP_ADMIN_USERNAME: ADMIN.username,
      KC_BOOTSTRAP_ADMIN_PASSWORD: ADMIN.password,
    },
  });
  running.add(child);
  let spawnError = null;
  child.on('error', (e) => { spawnError = e; });
  child.once('exit', () => running.delete(child));
  let out = '';
  const keep = (d) => { out = (out + d).slice(-400000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const stopAll = async () => {
    await stopChild(child);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const fail = async (why) => {
    await stopAll();
    return new Error(`Keycloak ${why}:\n${out.split('\n').slice(-60).join('\n')}`);
  };

  // Bounded readiness: the master realm's discovery answers.
  for (;;) {
    if (spawnError) throw await fail(`could not start (${spawnError.message})`);
    if (gone(child)) throw await fail(`exited (${child.exitCode ?? child.signalCode}) before it was ready`);
    try {
      const r = await fetch(`${origin}/realms/master/.well-known/openid-configuration`,
        { signal: AbortSignal.timeout(5000) });
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw await fail(`not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }

  let cached = null;
  async function adminToken() {
    if (cached && cached.until > Date.now()) return cached.token;
    const r = await fetch(`${origin}/realms/master/protocol/openid-connect/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'password', client_id: 'admin-cli', username: ADMIN.username, password: ADMIN.password,
      }),
    });
    const body = await r.json();
    if (r.status !== 200) throw new Error(`admin token: ${r.status} ${JSON.stringify(body)}`);
    cached = { token: body.access_token, until: Date.now() + (body.expires_in - 15) * 1000 };
    return cached.token;
  }

  const url = (p) => (p.startsWith('/admin/') ? `${origin}${p}` : `${origin}/admin/realms/${realmRep.realm}${p}`);
  async function adminRaw(method, p, body) {
    const headers = { authorization: `Bearer ${await adminToken()}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(url(p), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let parsed = text || null;
    try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: r.status, headers: r.headers, body: parsed };
  }
  async function admin(method, p, body) {
    const r = await adminRaw(method, p, body);
    if (r.status < 200 || r.status > 299) {
      throw new Error(`${method} ${url(p)}: ${r.status} ${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}`);
    }
    return r.body;
  }
  async function client(clientId) {
    const [found] = await admin('GET', `/clients?clientId=${encodeURIComponent(clientId)}`);
    if (!found) throw new Error(`no client ${clientId} in realm ${realmRep.realm}`);
    return found;
  }
  async function updateClient(clientId, change) {
    const rep = await client(clientId);
    change(rep);
    await admin('PUT', `/clients/${rep.id}`, rep);
    return rep;
  }
  async function userId(username) {
    const [found] = await admin('GET', `/users?exact=true&username=${encodeURIComponent(username)}`);
    if (!found) throw new Error(`no user ${username} in realm ${realmRep.realm}`);
    return found.id;
  }
  async function useGateway(gatewayUrl, { backchannel = true } = {}) {
    const o = new URL(gatewayUrl).origin;
    for (const id of GATEWAY_CLIENTS) {
      await updateClient(id, (rep) => setGatewayUrls(rep, [o], { backchannel: backchannel && o, keep: true }));
    }
  }
  const issuer = `${origin}/realms/${realmRep.realm}`;
  async function token(clientId, secret = SECRETS[clientId], { scope } = {}) {
    const form = { grant_type: 'client_credentials' };
    if (scope) form.scope = scope;
    const r = await fetch(`${issuer}/protocol/openid-connect/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
      body: new URLSearchParams(form),
    });
    const body = await r.json();
    if (r.status !== 200) throw new Error(`client credentials for ${clientId}: ${r.status} ${JSON.stringify(body)}`);
    return body;
  }

  // The realm, from the export.
  try {
    const r = await adminRaw('POST', '/admin/realms', realmRep);
    if (r.status !== 201) throw new Error(`importing realm ${realmRep.realm}: ${r.status} ${JSON.stringify(r.body)}`);
  } catch (e) {
    throw await fail(e.message);
  }
  if (Date.now() > deadline) throw await fail(`not ready (realm imported) after ${timeoutMs} ms`);

  return {
    origin,
    port,
    realm: realmRep.realm,
    issuer,
    version: KEYCLOAK_VERSION,
    startedMs: Date.now() - started,
    adminToken,
    admin,
    adminRaw,
    client,
    updateClient,
    userId,
    useGateway,
    token,
    output: () => out,
    stop: stopAll,
  };
}
