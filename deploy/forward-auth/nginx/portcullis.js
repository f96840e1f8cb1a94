// njs helpers for nginx.conf (Debian: apt-get install libnginx-mod-http-js).
//
// nginx's core has no way to percent-encode a variable or to drop one cookie from the
// Cookie header; these two functions do just that, and nothing else.

/** The original request URI (path and query, as the client sent it), percent-encoded for
 * `rd=`: `/app/x?y=1&z=2` must come back as `/app/x?y=1&z=2`, not as `/app/x?y=1`. */
function rd(r) {
  return encodeURIComponent(r.variables.request_uri);
}

/** The client's Cookie header without the gateway's own cookies (`_portcullis`,
 * `_portcullis_*`): the backend never sees the sealed session. Empty when nothing is left,
 * and nginx then sends no Cookie header at all. */
function cookie(r) {
  const header = r.headersIn.Cookie;
  if (!header) return '';
  return header
    .split(';')
    .map((c) => c.trim())
    .filter((c) => c !== '' && !/^_portcullis(_[^=]*)?=/.test(c))
    .join('; ');
}

export default { rd, cookie };
