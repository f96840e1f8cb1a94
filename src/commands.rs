//! The commands that talk to the provider: `check --online`, `token`, `explain --bearer`.
//! Each prints what it found and returns whether everything was right.
//!
//! `check --online` asks the provider what the gateway will ask it, with dummy values, so
//! that what it would refuse is told before any user meets it: discovery, keys, the
//! authorization request a login sends, the client's credentials at the token endpoint,
//! the post-logout redirect URI, introspection. Each probe is a function returning what
//! the provider answered as a typed outcome; [`print_login_probes`] and
//! [`print_introspection`] turn outcomes into lines, one FAIL line per mistake. No probe
//! follows a redirect, and no answer is read past [`MAX_BODY`].

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use reqwest::header::{ACCEPT, ACCEPT_LANGUAGE, LOCATION};
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::auth::error::TokenError;
use crate::auth::issuer::{error_chain, Credentials, Issuer};
use crate::auth::verifier::{http_client, system_clock, Failure, Verifier};
use crate::config::{Config, LoginFlow};
use crate::policy::route::Allow;
use crate::policy::rules::{self, Denial};
use crate::policy::AuthMode;
use crate::secret::Secret;

/// The most of a provider's answer any probe reads.
const MAX_BODY: usize = 64 * 1024;
/// The longest provider text (an error description) a line quotes.
const MAX_QUOTED: usize = 200;
/// The dummy authorization code of the client-secret probe: never a real one.
const DUMMY_CODE: &str = "portcullis-check-online";
/// The PKCE verifier of the probes (43 characters, as RFC 7636 asks at least).
const DUMMY_VERIFIER: &str = "portcullis-check-online-0123456789abcdefghi";

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
struct Report {
    text: String,
    failed: bool,
}

impl Report {
    fn heading(&mut self, line: impl std::fmt::Display) {
        let _ = writeln!(self.text, "{line}");
    }
    fn ok(&mut self, line: impl std::fmt::Display) {
        let _ = writeln!(self.text, "  {line}");
    }
    fn warn(&mut self, line: impl std::fmt::Display) {
        let _ = writeln!(self.text, "  warning: {line}");
    }
    fn fail(&mut self, line: impl std::fmt::Display) {
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

/// What a login sends the provider, as the gateway would send it (`session::login`).
struct LoginClient<'a> {
    client_id: &'a str,
    client_secret: Option<&'a Secret>,
    flow: LoginFlow,
    scopes: String,
    /// `public_url` without its trailing slash.
    origin: String,
}

impl<'a> LoginClient<'a> {
    /// The login client of a configuration, when some route logs people in.
    fn of(config: &'a Config) -> Option<LoginClient<'a>> {
        let provider = config.provider.as_ref()?;
        config.session.as_ref()?;
        let logs_in = config
            .routes
            .iter()
            .any(|r| matches!(r.auth, AuthMode::Login | AuthMode::Any));
        logs_in.then(|| LoginClient {
            client_id: &provider.client_id,
            client_secret: provider.client_secret.as_ref(),
            flow: provider.login_flow,
            scopes: provider.scopes.join(" "),
            origin: config
                .server
                .public_url
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
        })
    }

    fn callback(&self) -> String {
        format!("{}/_portcullis/callback", self.origin)
    }

    fn post_logout(&self) -> String {
        format!("{}/", self.origin)
    }

    /// The authorization request of a login, with dummy state, nonce and PKCE challenge.
    fn authorization_url(&self, endpoint: &Url) -> Url {
        let mut url = endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", self.client_id)
                .append_pair("redirect_uri", &self.callback())
                .append_pair("scope", &self.scopes)
                .append_pair("state", "x")
                .append_pair("nonce", "x");
            match self.flow {
                LoginFlow::Code => {
                    q.append_pair("response_type", "code")
                        .append_pair("code_challenge", &pkce_challenge(DUMMY_VERIFIER))
                        .append_pair("code_challenge_method", "S256");
                }
                LoginFlow::Implicit => {
                    q.append_pair("response_type", "id_token token")
                        .append_pair("response_mode", "form_post");
                }
            }
        }
        url
    }

    fn flow_name(&self) -> &'static str {
        match self.flow {
            LoginFlow::Code => "code",
            LoginFlow::Implicit => "implicit",
        }
    }
}

fn pkce_challenge(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// What the login probes found; `None`: not asked (no endpoint, or no point).
#[derive(Default)]
struct LoginProbes {
    authorization: Option<Authorization>,
    secret: Option<ClientSecret>,
    logout: Option<PostLogout>,
}

/// An OAuth error the provider sent back (`error`, `error_description`), sanitized.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProviderError {
    error: String,
    description: Option<String>,
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)?;
        match &self.description {
            Some(d) => write!(f, ": \"{d}\""),
            None => Ok(()),
        }
    }
}

/// How the provider answered the authorization request of a login.
#[derive(Debug, PartialEq, Eq)]
enum Authorization {
    /// A login page (or a redirect elsewhere without an error): people can log in.
    LoginPage,
    /// Keycloak's 400 "Invalid parameter: redirect_uri": the callback is not registered.
    RedirectUriRefused,
    /// Keycloak's 400 "Client not found.".
    UnknownClient,
    /// `unauthorized_client` (RFC 6749 §4.1.2.1): the client may not use this flow.
    FlowDisabled(ProviderError),
    /// Another error sent back to the callback.
    Refused(ProviderError),
    /// Any other answer: the status and what the page says, if it can be told.
    Unexpected {
        status: StatusCode,
        message: Option<String>,
    },
    Unreachable(String),
}

async fn probe_authorization(
    http: &reqwest::Client,
    endpoint: &Url,
    login: &LoginClient<'_>,
) -> Authorization {
    let resp = match send(page_request(http, login.authorization_url(endpoint))).await {
        Ok(r) => r,
        Err(e) => return Authorization::Unreachable(e),
    };
    let status = resp.status();
    let callback = login.callback();
    if status.is_redirection() {
        let to_callback = resp
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| endpoint.join(l).ok())
            .filter(|l| l.as_str().split(['?', '#']).next() == Some(callback.as_str()));
        return match to_callback.and_then(|l| error_in_redirect(&l)) {
            Some(e) => Authorization::from_error(e),
            None => Authorization::LoginPage,
        };
    }
    let body = read_body(resp).await;
    if status.is_success() {
        // form_post (implicit) sends an error to the callback as a self-submitting form.
        return match form_post_error(&body, &callback) {
            Some(e) => Authorization::from_error(e),
            None => Authorization::LoginPage,
        };
    }
    if body.contains("Invalid parameter: redirect_uri") {
        Authorization::RedirectUriRefused
    } else if body.contains("Client not found.") {
        Authorization::UnknownClient
    } else {
        Authorization::Unexpected {
            status,
            message: page_message(&body),
        }
    }
}

impl Authorization {
    fn from_error(e: ProviderError) -> Self {
        if e.error == "unauthorized_client" {
            Authorization::FlowDisabled(e)
        } else {
            Authorization::Refused(e)
        }
    }
}

/// How the token endpoint answered a code exchange with a dummy code and the client's
/// credentials: a provider checks the credentials before the code.
#[derive(Debug, PartialEq, Eq)]
enum ClientSecret {
    /// 400 (`invalid_grant` for the dummy code): the credentials passed.
    Accepted,
    /// 401, or `invalid_client`: the secret (or the client) is wrong.
    Refused {
        status: StatusCode,
        error: Option<String>,
    },
    Unexpected {
        status: StatusCode,
        error: Option<String>,
    },
    Unreachable(String),
}

async fn probe_client_secret(
    http: &reqwest::Client,
    endpoint: &Url,
    login: &LoginClient<'_>,
    secret: &Secret,
) -> ClientSecret {
    let request = http
        .post(endpoint.clone())
        .basic_auth(login.client_id, Some(secret.expose()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", DUMMY_CODE),
            ("redirect_uri", &login.callback()),
            ("code_verifier", DUMMY_VERIFIER),
        ]);
    let resp = match send(request).await {
        Ok(r) => r,
        Err(e) => return ClientSecret::Unreachable(e),
    };
    let status = resp.status();
    let error = json_error(&read_body(resp).await).map(|e| e.error);
    if status == StatusCode::UNAUTHORIZED || error.as_deref() == Some("invalid_client") {
        ClientSecret::Refused { status, error }
    } else if status == StatusCode::BAD_REQUEST {
        ClientSecret::Accepted
    } else {
        ClientSecret::Unexpected { status, error }
    }
}

/// How the end-session endpoint answered a logout without `id_token_hint`.
#[derive(Debug, PartialEq, Eq)]
enum PostLogout {
    /// A redirect (to the URI) or a page (a confirmation).
    Accepted,
    /// Keycloak's 400 "Invalid redirect uri".
    RedirectUriRefused,
    /// Something else; the gateway's logout also sends `id_token_hint`, so it may be fine.
    Unexpected {
        status: StatusCode,
        message: Option<String>,
    },
    Unreachable(String),
}

async fn probe_post_logout(
    http: &reqwest::Client,
    endpoint: &Url,
    login: &LoginClient<'_>,
) -> PostLogout {
    let mut url = endpoint.clone();
    url.query_pairs_mut()
        .append_pair("client_id", login.client_id)
        .append_pair("post_logout_redirect_uri", &login.post_logout());
    let resp = match send(page_request(http, url)).await {
        Ok(r) => r,
        Err(e) => return PostLogout::Unreachable(e),
    };
    let status = resp.status();
    if status.is_redirection() || status.is_success() {
        return PostLogout::Accepted;
    }
    let body = read_body(resp).await;
    if body.contains("Invalid redirect uri") {
        PostLogout::RedirectUriRefused
    } else {
        PostLogout::Unexpected {
            status,
            message: page_message(&body),
        }
    }
}

/// The lines of the login probes, one FAIL line per mistake: a public URL the provider
/// does not know makes both redirect URIs fail, and is told once.
fn print_login_probes(
    probes: &LoginProbes,
    d: &crate::auth::issuer::Discovery,
    login: &LoginClient<'_>,
    report: &mut Report,
) {
    let id = login.client_id;
    let (callback, post_logout) = (login.callback(), login.post_logout());
    let both_uris_refused = probes.authorization == Some(Authorization::RedirectUriRefused)
        && probes.logout == Some(PostLogout::RedirectUriRefused);
    let endpoint = |e: &Option<Url>| e.as_ref().map_or(String::new(), Url::to_string);
    match &probes.authorization {
        None => report.ok(
            "authorization request: not checked: the discovery document names no authorization_endpoint",
        ),
        Some(Authorization::LoginPage) => report.ok(format_args!(
            "authorization request: ok (client {id:?}, {} flow, redirect URI {callback})",
            login.flow_name()
        )),
        Some(Authorization::RedirectUriRefused) if both_uris_refused => report.fail(format_args!(
            "redirect URI: the provider does not accept `{callback}`, nor `{post_logout}` after logout: \
             register exactly these (Keycloak: Clients → {id} → Settings → Valid redirect URIs, and \
             Valid post logout redirect URIs), or correct server.public_url"
        )),
        Some(Authorization::RedirectUriRefused) => report.fail(format_args!(
            "redirect URI: the provider does not accept `{callback}`: register exactly that URI \
             (Keycloak: Clients → {id} → Settings → Valid redirect URIs)"
        )),
        Some(Authorization::UnknownClient) => report.fail(format_args!(
            "client_id: the provider knows no client {id:?}: correct provider.client_id, or create \
             the client (Keycloak: Clients → Create client)"
        )),
        Some(Authorization::FlowDisabled(e)) => {
            let (flow, switch) = match login.flow {
                LoginFlow::Code => ("the authorization code flow", "Standard flow"),
                LoginFlow::Implicit => ("the implicit flow", "Implicit flow"),
            };
            report.fail(format_args!(
                "login flow: client {id:?} may not use {flow} (login_flow = \"{}\"): the provider \
                 says {e} (Keycloak: Clients → {id} → Settings → Capability config → {switch})",
                login.flow_name()
            ))
        }
        Some(Authorization::Refused(e)) => report.fail(format_args!(
            "authorization request: the provider refuses the gateway's login request: {e}"
        )),
        Some(Authorization::Unexpected { status, message }) => report.fail(format_args!(
            "authorization request: GET {} answered HTTP {status}{}",
            endpoint(&d.authorization_endpoint),
            quoted(message)
        )),
        Some(Authorization::Unreachable(e)) => report.fail(format_args!(
            "authorization request: GET {}: {e}",
            endpoint(&d.authorization_endpoint)
        )),
    }
    match (&probes.secret, login.client_secret) {
        (_, None) => report.ok("client_secret: none (a public client)"),
        (None, Some(_)) if d.token_endpoint.is_none() => {
            report.ok("client_secret: not checked: the discovery document names no token_endpoint")
        }
        (None, Some(_)) => report.ok("client_secret: not checked (the client is unknown)"),
        (Some(ClientSecret::Accepted), _) => report.ok(format_args!(
            "client_secret: ok (the token endpoint accepts client {id:?}'s credentials)"
        )),
        (Some(ClientSecret::Refused { status, error }), _) => report.fail(format_args!(
            "client_secret: the provider refused client {id:?}'s credentials (HTTP {status}{}): \
             set provider.client_secret to the client's secret (Keycloak: Clients → {id} → \
             Credentials → Client Secret)",
            error.as_ref().map_or(String::new(), |e| format!(" {e}"))
        )),
        (Some(ClientSecret::Unexpected { status, error }), _) => report.fail(format_args!(
            "client_secret: POST {} answered HTTP {status}{} to a code exchange with a dummy code, \
             not the refusal of the code expected",
            endpoint(&d.token_endpoint),
            error.as_ref().map_or(String::new(), |e| format!(" {e}"))
        )),
        (Some(ClientSecret::Unreachable(e)), _) => report.fail(format_args!(
            "client_secret: POST {}: {e}",
            endpoint(&d.token_endpoint)
        )),
    }
    match &probes.logout {
        None if d.end_session_endpoint.is_none() => report.ok(
            "post-logout redirect URI: not checked: no end_session_endpoint (logout ends the gateway's session only)",
        ),
        None => report.ok("post-logout redirect URI: not checked (the client is unknown)"),
        Some(PostLogout::Accepted) => {
            report.ok(format_args!("post-logout redirect URI: ok ({post_logout})"))
        }
        Some(PostLogout::RedirectUriRefused) if both_uris_refused => {
            report.ok("post-logout redirect URI: refused too (see redirect URI above)")
        }
        Some(PostLogout::RedirectUriRefused) => report.fail(format_args!(
            "post-logout redirect URI: the provider does not accept `{post_logout}`: register it \
             (Keycloak: Clients → {id} → Settings → Valid post logout redirect URIs, e.g. `{}/*` \
             for every return path)",
            login.origin
        )),
        Some(PostLogout::Unexpected { status, message }) => report.warn(format_args!(
            "post-logout redirect URI: GET {} answered HTTP {status}{} to a logout without \
             id_token_hint (the gateway's logout sends one)",
            endpoint(&d.end_session_endpoint),
            quoted(message)
        )),
        Some(PostLogout::Unreachable(e)) => report.fail(format_args!(
            "post-logout redirect URI: GET {}: {e}",
            endpoint(&d.end_session_endpoint)
        )),
    }
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
async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
    request.send().await.map_err(|e| error_chain(&e))
}

/// A GET of `url` as a browser's page load asks it: HTML, in English (the error pages the
/// probes read the message of).
fn page_request(http: &reqwest::Client, url: Url) -> reqwest::RequestBuilder {
    http.get(url)
        .header(ACCEPT, "text/html")
        .header(ACCEPT_LANGUAGE, "en")
}

/// At most [`MAX_BODY`] bytes of an answer, as text; a broken body ends the reading.
async fn read_body(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Provider text made fit for one line: no control or bidi characters, at most
/// [`MAX_QUOTED`] characters.
fn sanitize(text: &str) -> String {
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    };
    let clean: String = text
        .chars()
        .map(|c| if invisible(c) { ' ' } else { c })
        .collect();
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    match clean.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

fn quoted(message: &Option<String>) -> String {
    message
        .as_ref()
        .map_or(String::new(), |m| format!(": \"{m}\""))
}

fn provider_error(error: &str, description: Option<&str>) -> Option<ProviderError> {
    let error = sanitize(error);
    (!error.is_empty()).then(|| ProviderError {
        error,
        description: description.map(sanitize).filter(|d| !d.is_empty()),
    })
}

/// `error` and `error_description` of a redirect to the callback.
fn error_in_redirect(location: &Url) -> Option<ProviderError> {
    let get = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    provider_error(&get("error")?, get("error_description").as_deref())
}

/// `error` and `error_description` of a form_post page that submits itself to the callback.
fn form_post_error(html: &str, callback: &str) -> Option<ProviderError> {
    if !html.contains(callback) {
        return None;
    }
    let inputs = hidden_inputs(html);
    let get = |name: &str| {
        inputs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    provider_error(get("error")?, get("error_description"))
}

/// The `name` and `value` of every `<input>` of a page (in any case, as Keycloak writes
/// them in capitals), entities decoded.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<input") {
        let start = from + at;
        let end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
        let tag = &html[start..end];
        if let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value")) {
            found.push((name, value));
        }
        from = end;
    }
    found
}

/// The value of attribute `name` in one tag (double or single quotes), entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(name) {
        let start = from + at;
        from = start + name.len();
        let before_ok = start == 0 || lower.as_bytes()[start - 1].is_ascii_whitespace();
        let rest = tag[from..].trim_start();
        let Some(rest) = rest.strip_prefix('=').filter(|_| before_ok) else {
            continue;
        };
        let rest = rest.trim_start();
        let quote = rest.chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let value = &rest[1..];
        let value = &value[..value.find(quote)?];
        return Some(html_text(value));
    }
    None
}

/// The text of Keycloak's error page (`<div id="kc-error-message"><p …>text</p>`), or of
/// a JSON error answer.
fn page_message(body: &str) -> Option<String> {
    if let Some(e) = json_error(body) {
        return Some(e.to_string());
    }
    let div = body.find("kc-error-message")?;
    let after = &body[div..];
    let p = after.find("<p")?;
    let text_start = p + after[p..].find('>')? + 1;
    let text = &after[text_start..];
    let text = &text[..text.find('<').unwrap_or(text.len())];
    let text = sanitize(&html_text(text));
    (!text.is_empty()).then_some(text)
}

/// `error` and `error_description` of a JSON answer.
fn json_error(body: &str) -> Option<ProviderError> {
    let v: Value = serde_json::from_str(body).ok()?;
    provider_error(
        v.get("error")?.as_str()?,
        v.get("error_description").and_then(Value::as_str),
    )
}

/// HTML text with the common entities decoded (what Keycloak's templates escape).
fn html_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let entity = rest.find(';').filter(|&e| e <= 10).map(|e| &rest[1..e]);
        let decoded = entity.and_then(|e| match e {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => match e.strip_prefix("#x").or_else(|| e.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok().and_then(char::from_u32),
                None => e.strip_prefix('#')?.parse().ok().and_then(char::from_u32),
            },
        });
        match (entity, decoded) {
            (Some(e), Some(c)) => {
                out.push(c);
                rest = &rest[e.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The client-credentials grant at `issuer`'s token endpoint; returns the access token.
pub async fn client_credentials(
    issuer: &str,
    client_id: &str,
    client_secret: &str,
    scope: Option<&str>,
) -> Result<String, String> {
    let http = http_client();
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    let doc: Value = serde_json::from_str(&read_body(resp).await)
        .map_err(|e| format!("GET {url}: not a discovery document: {e}"))?;
    let endpoint = doc
        .get("token_endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{url} names no token_endpoint"))?;
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let resp = http
        .post(endpoint)
        .basic_auth(client_id, Some(client_secret))
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("POST {endpoint}: {}", error_chain(&e)))?;
    let status = resp.status();
    let body: Value = serde_json::from_str(&read_body(resp).await).unwrap_or(Value::Null);
    if !status.is_success() {
        let err = body
            .get("error")
            .and_then(Value::as_str)
            .map_or("no error code".to_owned(), sanitize);
        let desc = body
            .get("error_description")
            .and_then(Value::as_str)
            .map_or(String::new(), sanitize);
        return Err(format!(
            "the token endpoint answered HTTP {status}: {err} {desc}"
        ));
    }
    body.get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the answer holds no access_token".to_owned())
}

/// `allow` as `gateway.toml` writes it: `{ clients = ["a", "b"] }`, only the kinds listed.
pub fn allow_toml(allow: &Allow) -> String {
    let kinds = [
        ("roles", &allow.roles),
        ("groups", &allow.groups),
        ("clients", &allow.clients),
        ("users", &allow.users),
        ("email_domains", &allow.email_domains),
    ];
    let listed: Vec<String> = kinds
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(kind, values)| format!("{kind} = {}", string_list(values)))
        .collect();
    format!("{{ {} }}", listed.join(", "))
}

/// `["a", "b"]`: each string quoted and escaped as TOML (and JSON) do.
fn string_list<S: AsRef<str>>(values: &[S]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| quote(v.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".to_owned())
}

/// Verifies `token` as the gateway would for `route` and `method`, and says why it is
/// allowed or refused.
pub async fn explain_bearer(
    config: &Config,
    route: &crate::policy::route::Route,
    method: &str,
    token: &str,
) -> String {
    let mut out = String::new();
    if route.auth == AuthMode::Public {
        return "decision: allow: the route is public (the token is not looked at)\n".to_owned();
    }
    if route.auth == AuthMode::Login {
        return "decision: refuse (401): a login route takes browser sessions, not bearer tokens\n"
            .to_owned();
    }
    if token.len() > config.server.max_token_bytes {
        return format!(
            "decision: refuse (400): the token is longer than max_token_bytes ({})\n",
            config.server.max_token_bytes
        );
    }
    let verifier = Verifier::from_config(config, http_client(), system_clock());
    for issuer in verifier.issuers() {
        if let Err(e) = issuer.fetch_keys().await {
            let _ = writeln!(out, "note: issuer {}: {e}", issuer.settings.issuer);
        }
    }
    match verifier.verify(token).await {
        Err(Failure::Invalid(TokenError::AudienceMismatch)) => {
            out.push_str(&explain_audience(config, &verifier, token));
            let _ = writeln!(out, "decision: refuse (401 invalid_token)");
        }
        Err(Failure::Invalid(e)) => {
            let _ = writeln!(out, "token:    refused: {e}");
            let _ = writeln!(out, "decision: refuse (401 invalid_token)");
        }
        Err(Failure::Unavailable(u)) => {
            let _ = writeln!(out, "token:    not checked: {u}");
            let _ = writeln!(out, "decision: refuse (503)");
        }
        Ok(v) => {
            let id = &v.identity;
            let _ = writeln!(
                out,
                "token:    valid, issuer {}, expires at {}",
                v.issuer,
                id.expires_at.map_or("-".to_owned(), |e| e.to_string())
            );
            let one = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), quote);
            let _ = writeln!(
                out,
                "identity: user {}, client {}, email {}\n          roles {}\n          groups {}\n          scopes {}",
                one(&id.user),
                one(&id.client),
                one(&id.email),
                string_list(&id.roles),
                string_list(&id.groups),
                string_list(&id.scopes)
            );
            match rules::check(route, method, id) {
                Ok(()) => {
                    let _ = writeln!(out, "decision: allow");
                }
                Err(Denial::NotAllowed(kind)) => {
                    let _ = writeln!(
                        out,
                        "decision: refuse (403): the `allow` {kind} rule is not met"
                    );
                }
                Err(Denial::InsufficientScope(Some(needed))) => {
                    let _ = writeln!(
                        out,
                        "decision: refuse (403 insufficient_scope): {method} needs {}",
                        needed.join(" ")
                    );
                }
                Err(Denial::InsufficientScope(None)) => {
                    let _ = writeln!(
                        out,
                        "decision: refuse (403 insufficient_scope): no scopes key covers {method}"
                    );
                }
            }
        }
    }
    out
}

/// The audience refusal in words a Keycloak user can act on: the token's `aud` (read
/// unverified from the payload, for this message only; the token is never printed), the
/// audiences accepted and the key that sets them, and the mapper that would fix it.
fn explain_audience(config: &Config, verifier: &Verifier, token: &str) -> String {
    let Some(claims) = unverified_claims(token) else {
        // An opaque token: the audience was the introspection answer's.
        return format!("token:    refused: {}\n", TokenError::AudienceMismatch);
    };
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .map(sanitize)
            .filter(|s| !s.is_empty())
    };
    let iss = text("iss");
    let offset = usize::from(config.provider.is_some());
    let found = verifier
        .issuers()
        .iter()
        .enumerate()
        .find(|(_, i)| iss.as_deref() == Some(i.expected_iss().as_str()));
    let (accepted, key) = match found {
        Some((0, i)) if config.provider.is_some() => (
            i.settings.audiences.clone(),
            "provider.audiences".to_owned(),
        ),
        Some((n, i)) => (
            i.settings.audiences.clone(),
            format!("issuers[{}].audiences", n - offset),
        ),
        None => (Vec::new(), "audiences".to_owned()),
    };
    let aud = match claims.get("aud") {
        None | Some(Value::Null) => "absent".to_owned(),
        Some(Value::String(s)) => quote(&sanitize(s)),
        Some(Value::Array(list)) => {
            let mut names: Vec<String> = list
                .iter()
                .take(10)
                .map(|a| a.as_str().map_or("?".to_owned(), |s| quote(&sanitize(s))))
                .collect();
            if list.len() > 10 {
                names.push("…".to_owned());
            }
            format!("[{}]", names.join(", "))
        }
        Some(_) => "not a string or a list".to_owned(),
    };
    let mut out = format!(
        "token:    refused: {}: aud is {aud}, the gateway accepts {} ({key})\n",
        TokenError::AudienceMismatch,
        string_list(&accepted)
    );
    let audience = accepted
        .first()
        .map_or("<the gateway's client id>".to_owned(), |a| sanitize(a));
    let (client, which) = match (text("azp"), text("client_id")) {
        (Some(c), _) => (Some(c), "azp"),
        (None, Some(c)) => (Some(c), "client_id"),
        (None, None) => (None, ""),
    };
    let _ = match client {
        Some(c) => writeln!(
            out,
            "hint:     give client {} (the token's {which}) an Audience mapper: Clients → {c} → \
             Client scopes → {c}-dedicated → Configure a new mapper (or Add mapper → By \
             configuration) → Audience, Included Client Audience {}, Add to access token on",
            quote(&c),
            quote(&audience)
        ),
        None => writeln!(
            out,
            "hint:     give the client that requested the token an Audience mapper (Keycloak: \
             Clients → the client → Client scopes → its dedicated scope → Configure a new \
             mapper → Audience, Included Client Audience {}, Add to access token on)",
            quote(&audience)
        ),
    };
    out
}

/// The payload of a JWT as JSON, unverified.
fn unverified_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keycloak_form_post_error_is_read_in_capitals() {
        let page = r#"<HTML><BODY><FORM METHOD="POST" ACTION="http://gw/_portcullis/callback">  <INPUT TYPE="HIDDEN" NAME="error_description" VALUE="Client is not allowed. Implicit flow is disabled for the client." />  <INPUT TYPE="HIDDEN" NAME="state" VALUE="x" />  <INPUT TYPE="HIDDEN" NAME="error" VALUE="unauthorized_client" /></FORM></BODY></HTML>"#;
        let e = form_post_error(page, "http://gw/_portcullis/callback").unwrap();
        assert_eq!(e.error, "unauthorized_client");
        assert!(e.description.unwrap().contains("Implicit flow is disabled"));
        assert_eq!(
            form_post_error(page, "http://other/_portcullis/callback"),
            None
        );
    }

    #[test]
    fn hostile_pages_are_no_panic_and_no_control_characters() {
        for page in [
            "<input",
            "<input name=",
            "<input name=\"error",
            "<input name='error' value='x",
            "&",
            "&#xffffffff;",
            "&#99999999999;",
            "<div id=\"kc-error-message\"><p",
            "\u{0}<input value=\"\u{1b}[31m\" name=error>",
        ] {
            let _ = form_post_error(page, "");
            let _ = page_message(page);
            let _ = html_text(page);
        }
        let e = provider_error("bad\u{1b}[2J", Some(&"\u{202e}x\n".repeat(1000))).unwrap();
        assert!(!e.error.chars().any(char::is_control));
        let d = e.description.unwrap();
        assert!(
            d.chars().count() <= MAX_QUOTED + 1 && !d.contains('\u{202e}'),
            "{d}"
        );
    }

    #[test]
    fn keycloak_error_page_message() {
        let page = "<div id=\"kc-error-message\">\n   <p class=\"instruction\">Invalid redirect uri &amp; more</p>";
        assert_eq!(
            page_message(page).as_deref(),
            Some("Invalid redirect uri & more")
        );
        assert_eq!(
            page_message(r#"{"error":"invalid_request","error_description":"bad"}"#).as_deref(),
            Some("invalid_request: \"bad\"")
        );
    }

    #[test]
    fn the_pkce_verifier_has_the_length_rfc_7636_asks() {
        assert_eq!(DUMMY_VERIFIER.len(), 43);
        assert_eq!(pkce_challenge(DUMMY_VERIFIER).len(), 43);
    }
}
