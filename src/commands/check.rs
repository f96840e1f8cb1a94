//! `portcullis check`: what a configuration that loads holds ([`summary`], in the words of
//! `gateway.toml`), and with `--online` what the provider will refuse ([`check_online`]).
//!
//! `check --online` asks the provider what the gateway will ask it, with dummy values, so
//! that what it would refuse is told before any user meets it: discovery, keys, the
//! authorization request a login sends, the client's credentials at the token endpoint,
//! the post-logout redirect URI, introspection. Each probe is a function returning what
//! the provider answered as a typed outcome; `login::print_login_probes` and
//! [`print_introspection`] turn outcomes into lines, one FAIL line per mistake. No probe
//! follows a redirect, and no answer is read past `MAX_BODY`.

mod login;
mod provider_error;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use reqwest::header::{ACCEPT, ACCEPT_LANGUAGE};
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use super::answer::{read_body, sanitize};
use super::words::{quote, route_toml};
use crate::auth::issuer::{error_chain, Credentials, Issuer};
use crate::auth::verifier::{system_clock, Verifier};
use crate::config::Config;
use login::{
    print_login_probes, probe_authorization, probe_client_secret, probe_post_logout, Authorization,
    ClientSecret, LoginClient, LoginProbes,
};

/// The dummy authorization code of the client-secret probe: never a real one.
const DUMMY_CODE: &str = "portcullis-check-online";
/// The PKCE verifier of the probes (43 characters, as RFC 7636 asks at least).
const DUMMY_VERIFIER: &str = "portcullis-check-online-0123456789abcdefghi";

/// What `check` prints for a configuration that loaded from `path`: the listeners, and
/// every route in the words of `gateway.toml` (`auth = "login"`, `allow` and `scopes` as
/// the file writes them), so the listing can be read against the file.
pub fn summary(config: &Config, path: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK", path.display());
    let listen: Vec<String> = config
        .server
        .listen
        .iter()
        .map(ToString::to_string)
        .collect();
    let _ = writeln!(
        out,
        "  listen:  {} ({})",
        listen.join(", "),
        if config.server.tls.is_some() {
            "TLS"
        } else {
            "plain HTTP"
        }
    );
    let _ = match config.admin {
        Some(a) => writeln!(out, "  admin:   {a} (/healthz, /readyz, /metrics)"),
        None => writeln!(
            out,
            "  admin:   none ([admin] is absent: no health checks or metrics)"
        ),
    };
    for r in config.routes.iter() {
        let mut lines = route_toml(r).into_iter();
        let first = lines.next().unwrap_or_default();
        let _ = writeln!(out, "  route {}: {first}", quote(&r.name));
        for line in lines {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

/// The client for the probes: never follows a redirect (where a provider sends the browser
/// is part of its answer), and allows a slow first login page.
fn probe_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!(
            "portcullis/",
            env!("CARGO_PKG_VERSION"),
            " (check --online)"
        ))
        .build()
        .expect("the HTTP client builds")
}

/// What `check --online` prints, and whether anything failed.
#[derive(Default)]
pub(super) struct Report {
    text: String,
    failed: bool,
}

impl Report {
    pub(super) fn heading(&mut self, line: impl std::fmt::Display) {
        let _ = writeln!(self.text, "{line}");
    }
    pub(super) fn ok(&mut self, line: impl std::fmt::Display) {
        let _ = writeln!(self.text, "  {line}");
    }
    pub(super) fn warn(&mut self, line: impl std::fmt::Display) {
        let _ = writeln!(self.text, "  warning: {line}");
    }
    pub(super) fn fail(&mut self, line: impl std::fmt::Display) {
        self.failed = true;
        let _ = writeln!(self.text, "  FAIL {line}");
    }
}

/// Fetches discovery, keys and introspection of every issuer and, for the provider when
/// routes need a login, tries the login's requests; reports, issuer by issuer, what works
/// and what the provider will refuse. `Ok` when all is well.
pub async fn check_online(config: &Config) -> Result<String, String> {
    let http = probe_client();
    let verifier = Verifier::from_config(config, http.clone(), system_clock());
    let login = LoginClient::of(config);
    let mut report = Report::default();
    for (i, issuer) in verifier.issuers().iter().enumerate() {
        report.heading(format_args!("issuer {}", issuer.settings.issuer));
        // `[provider]` comes first; only it logs people in.
        let login = login.as_ref().filter(|_| i == 0);
        check_issuer(&http, issuer, login, &mut report).await;
    }
    if verifier.issuers().is_empty() {
        report.heading("no [provider] or [[issuers]]: nothing to check online");
    }
    if report.failed {
        Err(report.text)
    } else {
        Ok(report.text)
    }
}

async fn check_issuer(
    http: &reqwest::Client,
    issuer: &Arc<Issuer>,
    login: Option<&LoginClient<'_>>,
    report: &mut Report,
) {
    if issuer.settings.discovery {
        match issuer.discover().await {
            Ok(d) => report.ok(format_args!("discovery: ok (issuer {:?})", d.issuer)),
            Err(e) => return report.fail(format_args!("discovery: {e}")),
        }
    }
    let d = issuer.discovery().unwrap_or_default();
    if d.jwks_uri.is_some() {
        check_keys(issuer, report).await;
    } else {
        report.ok("keys: none (no jwks_uri): JWTs of this issuer are refused");
    }
    let mut credentials_refused = false;
    if let Some(login) = login {
        let probes = LoginProbes {
            authorization: match &d.authorization_endpoint {
                Some(e) => Some(probe_authorization(http, e, login).await),
                None => None,
            },
            ..LoginProbes::default()
        };
        // An unknown client has neither credentials nor redirect URIs to check.
        let known = !matches!(probes.authorization, Some(Authorization::UnknownClient));
        let probes = LoginProbes {
            secret: match (&d.token_endpoint, login.client_secret) {
                (Some(e), Some(secret)) if known => {
                    Some(probe_client_secret(http, e, login, secret).await)
                }
                _ => None,
            },
            logout: match &d.end_session_endpoint {
                Some(e) if known => Some(probe_post_logout(http, e, login).await),
                _ => None,
            },
            ..probes
        };
        print_login_probes(&probes, &d, login, report);
        credentials_refused = !known || matches!(probes.secret, Some(ClientSecret::Refused { .. }));
    }
    match issuer.introspection() {
        None => report.ok("introspection: off"),
        Some((endpoint, creds)) => {
            let answer = probe_introspection(http, &endpoint, creds).await;
            print_introspection(&answer, &endpoint, creds, credentials_refused, report);
        }
    }
}

/// The keys, and a warning when an allowed algorithm has none — unless another allowed
/// algorithm has one: a Keycloak realm signs with RS256 only while the default
/// `algorithms` also allow ES256, which is no mistake.
async fn check_keys(issuer: &Issuer, report: &mut Report) {
    match issuer.fetch_keys().await {
        Ok(n) => {
            let keys = issuer.keys();
            let kids: Vec<&str> = keys.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
            let algorithms = &issuer.settings.algorithms;
            let covered: Vec<Algorithm> = algorithms
                .iter()
                .copied()
                .filter(|alg| keys.keys.iter().any(|k| k.fits(*alg)))
                .collect();
            report.ok(format_args!(
                "keys: {n} usable ({}) for {}",
                kids.join(", "),
                if covered.is_empty() {
                    "none of the allowed algorithms".to_owned()
                } else {
                    alg_list(&covered)
                }
            ));
            if covered.is_empty() {
                for alg in algorithms {
                    report.warn(format_args!(
                        "no key for {alg:?}: tokens signed with it will be refused (unknown key)"
                    ));
                }
            }
        }
        Err(e) => report.fail(format_args!("keys: {e}")),
    }
}

fn alg_list(algs: &[Algorithm]) -> String {
    algs.iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How an introspection endpoint answered a token it never issued.
#[derive(Debug, PartialEq, Eq)]
enum IntrospectionAnswer {
    /// `{"active": false}`, as it should.
    Inactive,
    /// 2xx, but not `active: false` (a sanitized excerpt).
    Unexpected(String),
    NotJson,
    /// Not 2xx: the credentials were refused (or the endpoint is wrong).
    Refused(StatusCode),
    Unreachable(String),
}

async fn probe_introspection(
    http: &reqwest::Client,
    endpoint: &Url,
    creds: &Credentials,
) -> IntrospectionAnswer {
    let request = http
        .post(endpoint.clone())
        .basic_auth(&creds.client_id, Some(creds.client_secret.expose()))
        .form(&[("token", DUMMY_CODE), ("token_type_hint", "access_token")]);
    let resp = match send(request).await {
        Ok(r) => r,
        Err(e) => return IntrospectionAnswer::Unreachable(e),
    };
    let status = resp.status();
    if !status.is_success() {
        return IntrospectionAnswer::Refused(status);
    }
    match serde_json::from_str::<Value>(&read_body(resp).await) {
        Ok(v) if v.get("active") == Some(&Value::Bool(false)) => IntrospectionAnswer::Inactive,
        Ok(v) => IntrospectionAnswer::Unexpected(sanitize(&v.to_string())),
        Err(_) => IntrospectionAnswer::NotJson,
    }
}

/// The introspection line; a refusal of credentials already reported refused is no second
/// FAIL line.
fn print_introspection(
    answer: &IntrospectionAnswer,
    endpoint: &Url,
    creds: &Credentials,
    credentials_refused: bool,
    report: &mut Report,
) {
    match answer {
        IntrospectionAnswer::Inactive => report.ok(format_args!("introspection: ok at {endpoint}")),
        IntrospectionAnswer::Refused(status) if credentials_refused => report.ok(format_args!(
            "introspection: refused too at {endpoint} (HTTP {status}: the same credentials, see above)"
        )),
        IntrospectionAnswer::Refused(status) => report.fail(format_args!(
            "introspection at {endpoint}: HTTP {status}: the provider refused client {:?} — check client_id and client_secret",
            creds.client_id
        )),
        IntrospectionAnswer::Unexpected(v) => report.fail(format_args!(
            "introspection at {endpoint}: unexpected answer for an unknown token: {v}"
        )),
        IntrospectionAnswer::NotJson => {
            report.fail(format_args!("introspection at {endpoint}: the answer is not JSON"))
        }
        IntrospectionAnswer::Unreachable(e) => {
            report.fail(format_args!("introspection at {endpoint}: {e}"))
        }
    }
}

/// Sends a probe's request: the answer, or why the provider could not be reached (the
/// error's whole chain, for an `Unreachable` outcome).
pub(super) async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
    request.send().await.map_err(|e| error_chain(&e))
}

/// A GET of `url` as a browser's page load asks it: HTML, in English (the error pages the
/// probes read the message of).
pub(super) fn page_request(http: &reqwest::Client, url: Url) -> reqwest::RequestBuilder {
    http.get(url)
        .header(ACCEPT, "text/html")
        .header(ACCEPT_LANGUAGE, "en")
}
