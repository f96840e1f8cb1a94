// Forward-auth behind nginx `auth_request` (Debian nginx 1.22 with its njs module): deploy/forward-auth/nginx/
//
//   tests/e2e/forward-auth/install.sh && cd tests/e2e && node --test forward-auth/nginx.test.mjs
import { forwardAuthSuite } from './suite.mjs';

forwardAuthSuite('nginx');
