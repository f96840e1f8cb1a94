#!/usr/bin/env node
// A real OpenID provider for Portcullis' end-to-end tests: npm `oidc-provider`, set up to look
// like one Keycloak realm (paths, claims, clients and users from ./realm.js).
//
//   node provider/server.js [--port N] [--realm NAME] [--access-ttl S] [--id-ttl S]
//                           [--refresh-ttl S] [--keys FILE] [--backchannel-logout-uri URL]
//                           [--rotate-refresh-tokens]
//
//   flag                      env                        default
//   --port N                  OP_PORT                    0 (pick a free port)
//   --realm NAME              OP_REALM                   internal
//   --access-ttl S            OP_ACCESS_TTL              300   access token lifetime (seconds)
//   --id-ttl S                OP_ID_TTL                  = access ttl
//   --refresh-ttl S           OP_REFRESH_TTL             1800
//   --keys FILE               OP_KEYS                    none: the key pool's first keys (below). With
//                                                        a FILE, its private JWKS is loaded, or made
//                                                        from the pool and saved ({"keys": [private
//                                                        JWKs]}, newest first); rewritten on rotation.
//   --backchannel-logout-uri  OP_BACKCHANNEL_LOGOUT_URI  none: the `portcullis` client's back-channel
//                                                        logout URI (sid required)
//   --rotate-refresh-tokens   OP_ROTATE_REFRESH_TOKENS=1 off: every refresh returns the same refresh
//                                                        token. On: a new one each time, and reusing
//                                                        a spent one revokes the whole grant.
//   Flags win over the environment. It listens on 127.0.0.1 only.
//
// Issuer: http://127.0.0.1:<port>/realms/<realm>, endpoints at Keycloak's paths under it
// (<issuer>/protocol/openid-connect/{auth,token,certs,userinfo,logout,token/introspect,revoke}),
// discovery at <issuer>/.well-known/openid-configuration, the login form at
// <issuer>/login-actions/<uid>.
//
// When listening it prints one line to stdout:  READY {"issuer": "...", "port": N}
// Everything else (oidc-provider's notices, errors) goes to stderr. SIGTERM/SIGINT exit 0.
//
// Test-only endpoints (at the root, outside the issuer):
//   GET  /__test/keys            the published kids and the kid new RS256 tokens are signed with
//   POST /__test/rotate          add a new RS256 key (new kid) and sign with it from now on
//   POST /__test/drop-old-keys   publish only the newest key of each algorithm
//   POST /__test/backchannel-logout-uri  body {"uri": "..."} (or {"uri": null} to remove)
//   GET  /__test/calls           {"calls": {"<path>": n}}: requests received per path under the
//                                issuer, `protocol/openid-connect/` left out ("token/introspect",
//                                "certs", ".well-known/openid-configuration", "login-actions")
//   POST /__test/delay           body {"path": "token/introspect", "ms": N}: requests to that path
//                                are held N ms before they are answered (0 ends the delay)
//   POST /__test/outage          body {"ms": N}: after answering, stops listening and drops every
//                                connection, so that for N ms every connection is refused (the test
//                                endpoints too), then listens again on the same port. Logs
//                                `outage: ...` and `outage over: ...` on stderr.
// oidc-provider fixes its keys and clients at construction, so these build a new Provider
// and swap it in behind the same HTTP server; the storage (sessions, grants, codes, refresh
// tokens) and the cookie keys are shared, so logins and tokens survive a swap.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as querystring from 'node:querystring';
import { parseArgs } from 'node:util';

import Provider, { interactionPolicy } from 'oidc-provider';

import realm from './realm.js';

// oidc-provider prints notices with console.info: keep stdout for the READY line alone.
console.info = console.error;
console.log = console.error;

// ---------------------------------------------------------------- options

function usage(message) {
  console.error(`${message}\nusage: node provider/server.js [--port N] [--realm NAME] [--access-ttl S] `
    + '[--id-ttl S] [--refresh-ttl S] [--keys FILE] [--backchannel-logout-uri URL] [--rotate-refresh-tokens]');
  process.exit(2);
}

let flags;
try {
  ({ values: flags } = parseArgs({
    options: {
      port: { type: 'string' },
      realm: { type: 'string' },
      'access-ttl': { type: 'string' },
      'id-ttl': { type: 'string' },
      'refresh-ttl': { type: 'string' },
      keys: { type: 'string' },
      'backchannel-logout-uri': { type: 'string' },
      'rotate-refresh-tokens': { type: 'boolean' },
    },
  }));
} catch (err) {
  usage(err.message);
}
const env = process.env;

function wholeNumber(name, value, fallback, min = 0) {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) usage(`${name} must be a whole number >= ${min}, not ${JSON.stringify(value)}`);
  return n;
}

const options = {
  port: wholeNumber('--port', flags.port ?? env.OP_PORT, 0),
  realm: flags.realm ?? env.OP_REALM ?? 'internal',
  accessTtl: wholeNumber('--access-ttl', flags['access-ttl'] ?? env.OP_ACCESS_TTL, 300, 1),
  refreshTtl: wholeNumber('--refresh-ttl', flags['refresh-ttl'] ?? env.OP_REFRESH_TTL, 1800, 1),
  keysFile: flags.keys ?? env.OP_KEYS,
  backchannelLogoutUri: flags['backchannel-logout-uri'] ?? env.OP_BACKCHANNEL_LOGOUT_URI,
  rotateRefreshTokens: flags['rotate-refresh-tokens']
    ?? ['1', 'true', 'yes'].includes(env.OP_ROTATE_REFRESH_TOKENS ?? ''),
};
options.idTtl = wholeNumber('--id-ttl', flags['id-ttl'] ?? env.OP_ID_TTL, options.accessTtl, 1);

// ---------------------------------------------------------------- realm lookups

const clientsById = new Map(realm.clients.map((c) => [c.client_id, c]));
const usersById = new Map(realm.users.map((u) => [u.id, u]));
const usersByName = new Map(realm.users.map((u) => [u.username, u]));

// oidc-provider metadata = the snake_case keys of a realm client
const clientMetadata = (c) => Object.fromEntries(Object.entries(c).filter(([k]) => !/[A-Z]/.test(k)));

const resourceAccess = (clientRoles = {}) => Object.fromEntries(
  Object.entries(clientRoles).map(([client, roles]) => [client, { roles }]),
);

// The claims a Keycloak realm puts in ID tokens, userinfo and access tokens for a user.
function userClaims(user) {
  return {
    sub: user.id,
    preferred_username: user.username,
    name: `${user.givenName} ${user.familyName}`,
    given_name: user.givenName,
    family_name: user.familyName,
    email: user.email,
    email_verified: user.emailVerified,
    groups: user.groups,
    realm_access: { roles: user.realmRoles },
    resource_access: resourceAccess(user.clientRoles),
  };
}

// ---------------------------------------------------------------- keys

// Keys come from a committed pool (keys/pool.json, test-only keys that protect nothing), never
// made at start: Node 20 can deadlock when a key made by generateKeyPairSync is exported as a
// JWK (the garbage collector destroys the KeyGenJob while ExportJWKRsaKey holds its mutex).
// A start without --keys signs with the pool's first RS256 and ES256 keys; each rotation takes
// the next RS256 key of the pool not published yet.
const POOL = JSON.parse(fs.readFileSync(new URL('./keys/pool.json', import.meta.url), 'utf8')).keys;

function poolKey(alg, exceptKids = new Set()) {
  const key = POOL.find((k) => k.alg === alg && !exceptKids.has(k.kid));
  if (!key) throw new Error(`the ${alg} key pool (keys/pool.json) is used up: add keys to it`);
  return { ...key };
}

// Newest first: oidc-provider signs with the first key of the wanted algorithm.
let jwks;
if (options.keysFile && fs.existsSync(options.keysFile)) {
  jwks = JSON.parse(fs.readFileSync(options.keysFile, 'utf8'));
} else {
  jwks = { keys: [poolKey('RS256'), poolKey('ES256')] };
  saveKeys();
}
// Every kid published since start, so a rotation never brings back a dropped key.
const usedKids = new Set(jwks.keys.map((k) => k.kid));

function saveKeys() {
  if (options.keysFile) {
    fs.writeFileSync(options.keysFile, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  }
}

function keysReport() {
  return {
    kids: jwks.keys.map((k) => k.kid),
    signing_kid: jwks.keys.find((k) => k.alg === 'RS256')?.kid,
  };
}

// ---------------------------------------------------------------- shared storage

// oidc-provider's own memory adapter keeps one store per Provider instance; this one is shared
// by every instance built here, so a key rotation keeps sessions, grants, codes and tokens.
const store = new Map();
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);

function storeGet(key) {
  const entry = store.get(key);
  if (entry && entry.expiresAt && entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry?.value;
}
function storeSet(key, value, expiresIn) {
  store.set(key, { value, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
}
setInterval(() => { for (const key of store.keys()) storeGet(key); }, 60_000).unref();

class SharedMemoryAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    storeSet(this.key(id), payload, expiresIn);
    if (this.model === 'Session') storeSet(`sessionUid:${payload.uid}`, id, expiresIn);
    if (payload.userCode) storeSet(`userCode:${payload.userCode}`, id, expiresIn);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      const members = storeGet(`grant:${payload.grantId}`) ?? new Set();
      members.add(this.key(id));
      storeSet(`grant:${payload.grantId}`, members);
    }
  }

  async find(id) { return storeGet(this.key(id)); }

  async findByUid(uid) {
    const id = storeGet(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = storeGet(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { store.delete(this.key(id)); }

  async revokeByGrantId(grantId) {
    for (const key of storeGet(`grant:${grantId}`) ?? []) store.delete(key);
    store.delete(`grant:${grantId}`);
  }
}

const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

// ---------------------------------------------------------------- provider configuration

const KC = '/protocol/openid-connect';
const DEFAULT_RESOURCE = 'urn:portcullis-e2e:default';
const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email', 'roles', 'groups'];
const USER_CLAIMS = ['preferred_username', 'name', 'given_name', 'family_name', 'email',
  'email_verified', 'groups', 'realm_access', 'resource_access'];

let issuer; // set once the port is known
let issuerPath;

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

// Keycloak-style redirect matching: exact, or a registered value ending in '*' as a prefix;
// a loopback host registered without a port matches any port.
function uriAllowed(value, registered) {
  const url = URL.parse(value);
  if (!url || url.hash) return false;
  return registered.some((pattern) => {
    const wildcard = pattern.endsWith('*');
    const p = URL.parse(wildcard ? pattern.slice(0, -1) : pattern);
    if (!p || p.protocol !== url.protocol || p.hostname !== url.hostname) return false;
    if (p.port !== url.port && !(p.port === '' && LOOPBACK.has(p.hostname))) return false;
    const rest = url.pathname + url.search;
    return wildcard ? rest.startsWith(p.pathname + p.search) : rest === p.pathname + p.search;
  });
}

function audiencesFor(clientId, resource) {
  if (resource && resource !== DEFAULT_RESOURCE) return [resource];
  return clientsById.get(clientId)?.audiences ?? realm.defaultAudiences;
}

function configuration() {
  const policy = interactionPolicy.base();
  // oidc-provider asks "native" clients for consent on every request; Keycloak's
  // "Consent required: off" never does.
  policy.get('consent').checks.remove('native_client_prompt');

  return {
    clients: realm.clients.map((c) => {
      const metadata = clientMetadata(c);
      if (c.client_id === 'portcullis' && options.backchannelLogoutUri) {
        metadata.backchannel_logout_uri = options.backchannelLogoutUri;
        metadata.backchannel_logout_session_required = true;
      }
      return metadata;
    }),
    jwks: structuredClone(jwks),
    adapter: SharedMemoryAdapter,
    cookies: {
      keys: cookieKeys,
      // Chromium shares one cookie jar for 127.0.0.1 across ports: never collide with the
      // gateway's `_portcullis*` cookies.
      names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_interaction_resume' },
    },
    routes: {
      authorization: `${KC}/auth`,
      token: `${KC}/token`,
      jwks: `${KC}/certs`,
      userinfo: `${KC}/userinfo`,
      end_session: `${KC}/logout`,
      introspection: `${KC}/token/introspect`,
      revocation: `${KC}/revoke`,
      pushed_authorization_request: `${KC}/ext/par/request`,
    },
    scopes: OIDC_SCOPES,
    // Keycloak's default client scopes always apply: every user claim comes with `openid`.
    claims: {
      openid: ['sub', ...USER_CLAIMS],
      profile: ['preferred_username', 'name', 'given_name', 'family_name'],
      email: ['email', 'email_verified'],
      roles: ['realm_access', 'resource_access'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false, // user claims in the ID token of the code flow too
    responseTypes: ['code', 'id_token token', 'id_token'],
    pkce: {
      required: (ctx, client) => client.clientAuthMethod === 'none'
        || clientsById.get(client.clientId)?.pkceRequired === true,
    },
    async findAccount(ctx, sub) {
      const user = usersById.get(sub);
      if (!user) return undefined;
      return { accountId: sub, claims: async () => userClaims(user) };
    },
    // Consent is never asked: whatever a client requests is granted.
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      const grant = (grantId && await oidc.provider.Grant.find(grantId))
        || new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      grant.addOIDCClaims([...oidc.requestParamClaims]);
      for (const [indicator, server] of Object.entries(oidc.resourceServers)) {
        grant.addResourceScope(indicator, server.scope);
      }
      await grant.save();
      return grant;
    },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => options.rotateRefreshTokens,
    interactions: {
      policy,
      url: (ctx, interaction) => `${issuerPath}/login-actions/${interaction.uid}`,
    },
    ttl: {
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || options.accessTtl,
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || options.accessTtl,
      IdToken: () => options.idTtl,
      RefreshToken: () => options.refreshTtl,
      AuthorizationCode: () => 60,
      Interaction: () => 3600,
      Session: () => 10 * 3600,
      Grant: () => 10 * 3600,
    },
    clientBasedCORS: () => true,
    // oidc-provider refuses to call loopback addresses (SSRF guard); back-channel logout
    // tokens must reach the gateway on 127.0.0.1.
    fetch: (url, init) => globalThis.fetch(url, { ...init, dispatcher: undefined }),
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<h1 id="error">${esc(out.error)}</h1>
        <p id="error_description">${esc(out.error_description ?? '')}</p>`);
    },
    // Keycloak-shaped access token claims (JWT access tokens, and introspection answers).
    async extraTokenClaims(ctx, token) {
      const client = clientsById.get(token.clientId);
      const claims = { typ: 'Bearer', azp: token.clientId };
      if (token.accountId) {
        const { sub, ...rest } = userClaims(usersById.get(token.accountId));
        Object.assign(claims, rest, token.sid ? { sid: token.sid } : {});
      } else {
        const sa = client?.serviceAccount ?? {};
        Object.assign(claims, {
          preferred_username: `service-account-${token.clientId}`,
          realm_access: { roles: sa.realmRoles ?? [] },
          resource_access: resourceAccess(sa.clientRoles),
        });
      }
      return claims;
    },
    formats: {
      customizers: {
        jwt(ctx, token, jwt) {
          const aud = audiencesFor(token.clientId, token.resourceServer?.identifier());
          jwt.payload.aud = aud.length === 1 ? aud[0] : aud;
          jwt.header = { typ: 'JWT' };
        },
      },
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // like Keycloak: any confidential client may introspect any token
        allowedPolicy: async (ctx, client) => client.clientAuthMethod !== 'none',
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
      },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        // The confirmation form submits itself (logout=yes: end the whole provider session,
        // like Keycloak with id_token_hint). Without JavaScript, click #logout.
        async logoutSource(ctx, form) {
          ctx.body = page('Logging out', `
            <h1>Logging out</h1>
            ${form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>')}
            <button id="logout" type="submit" form="op.logoutForm">Log out</button>
            <script>document.getElementById('op.logoutForm').submit()</script>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = page('Logged out', '<h1 id="logged-out">You are logged out</h1>');
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => oneOf ?? DEFAULT_RESOURCE,
        useGrantedResource: async () => true, // code and refresh grants: JWT access tokens
        async getResourceServerInfo(ctx, resource, client) {
          const c = clientsById.get(client.clientId) ?? {};
          return {
            scope: [...OIDC_SCOPES, ...(c.resourceScopes ?? [])].join(' '),
            audience: audiencesFor(client.clientId, resource)[0],
            accessTokenTTL: c.accessTokenTTL ?? options.accessTtl,
            accessTokenFormat: c.accessTokenFormat ?? 'jwt',
            ...(c.accessTokenFormat === 'opaque' ? {} : { jwt: { sign: { alg: c.accessTokenAlg ?? 'RS256' } } }),
          };
        },
      },
    },
  };
}

function buildProvider() {
  const provider = new Provider(issuer, configuration());
  provider.Client.prototype.postLogoutRedirectUriAllowed = function allowed(value) {
    return uriAllowed(value, this.postLogoutRedirectUris ?? []);
  };
  for (const event of ['server_error', 'backchannel.error']) {
    provider.on(event, (ctx, err) => console.error(`provider ${event}:`, err));
  }
  return { provider, callback: provider.callback() };
}

// ---------------------------------------------------------------- HTML

function esc(s) {
  return String(s).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body>${body}</body></html>`;
}

function loginPage(action, { username = '', error } = {}) {
  return page('Sign in to the test realm', `
    <h1>Sign in</h1>
    ${error ? `<p id="error">${esc(error)}</p>` : ''}
    <form method="post" action="${esc(action)}">
      <label>Username <input id="username" name="username" value="${esc(username)}" autofocus></label>
      <label>Password <input id="password" name="password" type="password"></label>
      <button id="login" type="submit">Sign in</button>
    </form>`);
}

// ---------------------------------------------------------------- HTTP

let current; // { provider, callback }, swapped on rotation

function send(res, status, body, type = 'application/json') {
  const text = type === 'application/json' ? `${JSON.stringify(body)}\n` : body;
  res.writeHead(status, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'no-store' });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function interaction(req, res, url) {
  const { provider } = current;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    return send(res, 400, page('Error', `<h1 id="error">${esc(err.message)}</h1>`), 'text/html');
  }
  if (details.prompt.name !== 'login') {
    // consent (e.g. prompt=consent): granted without asking, see loadExistingGrant
    return provider.interactionFinished(req, res, { consent: {} }, { mergeWithLastSubmission: true });
  }
  if (req.method === 'GET') return send(res, 200, loginPage(url.pathname), 'text/html');
  if (req.method !== 'POST') return send(res, 405, { error: 'method not allowed' });

  const form = querystring.parse(await readBody(req));
  const user = usersByName.get(String(form.username ?? ''));
  if (!user || user.password !== form.password) {
    return send(res, 200, loginPage(url.pathname, {
      username: form.username ?? '', error: 'Invalid username or password.',
    }), 'text/html');
  }
  return provider.interactionFinished(req, res, { login: { accountId: user.id } }, {
    mergeWithLastSubmission: false,
  });
}

// ---------------------------------------------------------------- faults (tests/e2e/faults)

// Requests received per path under the issuer (`calls`), and the paths whose answers are held
// back (`delays`, ms): what a fault test counts and slows down. Keys are the path under the
// issuer without `protocol/openid-connect/`: "token", "token/introspect", "certs",
// ".well-known/openid-configuration"; every login form is "login-actions".
const calls = new Map();
const delays = new Map();

function callName(pathname) {
  let rest = pathname.slice(issuerPath.length).replace(/^\//, '');
  if (rest.startsWith(`${KC.slice(1)}/`)) rest = rest.slice(KC.length);
  if (rest.startsWith('login-actions/')) rest = 'login-actions';
  return rest;
}

async function readJson(req) {
  try {
    return JSON.parse((await readBody(req)) || '{}');
  } catch {
    return undefined;
  }
}

// Refuses every connection for `ms`: the listening socket is closed (a connect is refused, as
// with a provider that is down) and open connections are dropped; then it listens again.
function outage(ms) {
  const { port } = server.address();
  server.close();
  server.closeAllConnections();
  console.error(`outage: 127.0.0.1:${port} refuses connections for ${ms} ms`);
  setTimeout(() => {
    server.once('error', (err) => {
      console.error(`outage over, but 127.0.0.1:${port} cannot be listened on again: ${err.message}`);
      process.exit(1);
    });
    server.listen(port, '127.0.0.1', () => console.error(`outage over: listening on 127.0.0.1:${port} again`));
  }, ms); // not unref: it keeps the process alive while nothing listens
}

async function faultEndpoint(req, res, path) {
  if (path === '/__test/calls' && req.method === 'GET') {
    return send(res, 200, { calls: Object.fromEntries(calls) });
  }
  if (req.method !== 'POST') return send(res, 404, { error: 'not found' });
  const body = await readJson(req);
  const ms = body?.ms;
  if (!Number.isSafeInteger(ms) || ms < 0) {
    return send(res, 400, { error: 'expected a JSON body with "ms", a whole number of milliseconds' });
  }
  if (path === '/__test/delay') {
    if (typeof body.path !== 'string') return send(res, 400, { error: 'expected "path", e.g. "token/introspect"' });
    if (ms === 0) delays.delete(body.path); else delays.set(body.path, ms);
    return send(res, 200, { delays: Object.fromEntries(delays) });
  }
  // /__test/outage: answered first, then the port goes away.
  res.once('finish', () => setImmediate(() => outage(ms)));
  res.setHeader('connection', 'close');
  return send(res, 200, { down_for_ms: ms });
}

async function testEndpoint(req, res, url) {
  const path = url.pathname;
  if (req.method === 'GET' && path === '/__test/keys') return send(res, 200, keysReport());
  if (['/__test/calls', '/__test/delay', '/__test/outage'].includes(path)) return faultEndpoint(req, res, path);
  if (req.method !== 'POST') return send(res, 404, { error: 'not found' });
  if (path === '/__test/rotate') {
    let key;
    try {
      key = poolKey('RS256', usedKids);
    } catch (err) {
      return send(res, 409, { error: err.message });
    }
    usedKids.add(key.kid);
    jwks.keys.unshift(key);
  } else if (path === '/__test/drop-old-keys') {
    const newest = new Map();
    for (const key of jwks.keys) if (!newest.has(key.alg)) newest.set(key.alg, key);
    jwks.keys = [...newest.values()];
  } else if (path === '/__test/backchannel-logout-uri') {
    let uri;
    try {
      ({ uri } = JSON.parse((await readBody(req)) || '{}'));
    } catch {
      return send(res, 400, { error: 'expected a JSON body {"uri": "..."}' });
    }
    options.backchannelLogoutUri = uri ?? undefined;
  } else {
    return send(res, 404, { error: 'not found' });
  }
  current = buildProvider();
  saveKeys();
  return send(res, 200, { ...keysReport(), backchannel_logout_uri: options.backchannelLogoutUri ?? null });
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname.startsWith('/__test/')) return testEndpoint(req, res, url);
  if (!current) return send(res, 503, { error: 'starting' });
  const underIssuer = url.pathname === issuerPath || url.pathname.startsWith(`${issuerPath}/`);
  if (underIssuer) {
    const name = callName(url.pathname);
    calls.set(name, (calls.get(name) ?? 0) + 1);
    const delay = delays.get(name);
    if (delay) {
      await new Promise((resolve) => { setTimeout(resolve, delay); });
      // The client gave up meanwhile (the gateway's timeout): nothing left to answer.
      if (req.socket.destroyed) return undefined;
    }
  }
  if (url.pathname.startsWith(`${issuerPath}/login-actions/`)) return interaction(req, res, url);
  if (underIssuer) {
    // mount the provider at the issuer's path
    req.originalUrl = req.url;
    req.url = req.url.slice(issuerPath.length) || '/';
    return current.callback(req, res);
  }
  return send(res, 404, { error: 'not found', issuer });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error('request failed:', err);
    if (!res.headersSent) send(res, 500, { error: 'server_error' });
    else res.destroy();
  });
});

server.listen(options.port, '127.0.0.1', () => {
  const { port } = server.address();
  issuerPath = `/realms/${encodeURIComponent(options.realm)}`;
  issuer = `http://127.0.0.1:${port}${issuerPath}`;
  current = buildProvider();
  process.stdout.write(`READY {"issuer": ${JSON.stringify(issuer)}, "port": ${port}}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
