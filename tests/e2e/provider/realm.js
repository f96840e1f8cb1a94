// The test realm served by server.js: clients and users, shaped like a small Keycloak realm.
//
// Client entries:
//   snake_case keys are oidc-provider client metadata, passed through unchanged
//   (client_id, client_secret, grant_types, redirect_uris, ...);
//   camelCase keys are this realm's own additions, read by server.js:
//     audiences          `aud` of its JWT access tokens, like a Keycloak audience mapper
//                        (default: defaultAudiences below; one entry gives a string `aud`)
//     resourceScopes     non-OpenID scopes it may be granted (others asked for are dropped)
//     serviceAccount     { realmRoles, clientRoles } of its client-credentials tokens
//     accessTokenFormat  'jwt' (default) or 'opaque' (only opaque tokens can be introspected)
//     accessTokenAlg     'RS256' (default) or 'ES256'
//     accessTokenTTL     seconds (default: --access-ttl)
//     pkceRequired       true: a code request without S256 PKCE is refused
//   A loopback redirect URI registered without a port matches any port (oidc-provider's rule
//   for application_type "native"). post_logout_redirect_uris may also end in '*' to match
//   any path under them (Keycloak style).
//
// Confidential clients are registered as client_secret_post: oidc-provider then accepts
// client_secret_basic (Authorization: Basic) as well.

const LOOPBACK_CALLBACKS = [
  'http://127.0.0.1/_portcullis/callback',
  'http://localhost/_portcullis/callback',
];

function serviceClient(clientId, secret, resourceScopes, roles, extra = {}) {
  return {
    client_id: clientId,
    client_secret: secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
    resourceScopes,
    serviceAccount: { realmRoles: ['service'], clientRoles: { portcullis: roles } },
    ...extra,
  };
}

export default {
  // `aud` of every access token whose client does not set `audiences`
  defaultAudiences: ['portcullis', 'account'],

  clients: [
    {
      client_id: 'portcullis',
      client_secret: 'portcullis-secret-0123456789abcdef',
      client_name: 'Portcullis gateway',
      // "native" lets http://127.0.0.1 redirect URIs match on any port and allows the
      // implicit flow (id_token token) over http on loopback.
      application_type: 'native',
      grant_types: ['authorization_code', 'refresh_token', 'implicit'],
      response_types: ['code', 'id_token token'],
      redirect_uris: LOOPBACK_CALLBACKS,
      post_logout_redirect_uris: ['http://127.0.0.1/*', 'http://localhost/*'],
      token_endpoint_auth_method: 'client_secret_post',
      pkceRequired: true,
    },
    serviceClient('billing-service', 'billing-secret-0123456789abcdef',
      ['orders:read', 'orders:write'], ['orders-writer']),
    serviceClient('shipping-service', 'shipping-secret-0123456789abcdef',
      ['orders:read'], ['orders-reader']),
    serviceClient('reporting-service', 'reporting-secret-0123456789abcdef',
      ['orders:read', 'orders:admin'], ['orders-admin']),
    // For negative and introspection tests:
    serviceClient('opaque-service', 'opaque-secret-0123456789abcdef',
      ['orders:read', 'orders:write'], ['orders-writer'], { accessTokenFormat: 'opaque' }),
    serviceClient('es256-service', 'es256-secret-0123456789abcdef',
      ['orders:read', 'orders:write'], ['orders-writer'], { accessTokenAlg: 'ES256' }),
    serviceClient('other-audience-service', 'other-audience-secret-0123456789abcdef',
      ['orders:read', 'orders:write'], ['orders-writer'], { audiences: ['account'] }),
  ],

  users: [
    {
      id: '6a1f3c2e-0000-4000-8000-00000000a11c', // `sub`, a UUID as in Keycloak
      username: 'alice',
      password: 'alice-password',
      email: 'alice@example.com',
      emailVerified: true,
      givenName: 'Alice',
      familyName: 'Liddell',
      groups: ['/staff', '/minio-users'],
      realmRoles: ['minio-user', 'offline_access'],
      clientRoles: { portcullis: ['admin'] },
    },
    {
      id: '6a1f3c2e-0000-4000-8000-000000000b0b',
      username: 'bob',
      password: 'bob-password',
      email: 'bob@example.com',
      emailVerified: true,
      givenName: 'Bob',
      familyName: 'Builder',
      groups: ['/staff'],
      realmRoles: ['offline_access'],
      clientRoles: {},
    },
  ],
};
