//! The development OpenID provider of `portcullis demo`. **Not for production**: its users
//! have fixed passwords, everything lives in memory, and it only listens on loopback.
//!
//! It answers under an issuer of `http://<addr>/realms/demo` on Keycloak's paths, so the
//! gateway meets it exactly as it would meet a Keycloak realm:
//!
//! | endpoint | what |
//! |---|---|
//! | `/.well-known/openid-configuration` | discovery |
//! | `/protocol/openid-connect/certs` | the JWKS: one ES256 key, generated at start |
//! | `GET /protocol/openid-connect/auth` | authorization: `code` (PKCE S256) or `id_token token` (form_post); the login form, skipped while the browser has a provider session |
//! | `POST /protocol/openid-connect/auth` | the login form's answer |
//! | `/protocol/openid-connect/token` | `authorization_code`, `refresh_token` (rotated), `client_credentials` |
//! | `/protocol/openid-connect/userinfo` | the user's claims for an access token |
//! | `/protocol/openid-connect/token/introspect` | RFC 7662 for access tokens |
//! | `/protocol/openid-connect/logout` | RP-initiated logout back to the gateway |
//!
//! Codes are single-use and live 60 s; access tokens 5 minutes (so the gateway's refresh
//! is exercised); refresh tokens 8 hours, single-use (each refresh rotates it) and ended
//! by a logout. Hostile input is a 400 with an RFC 6749 error body, never a panic.
//!
//! About 600 lines: a whole (small) provider — discovery, keys, authorization with its login
//! form, token endpoint, logout — kept in one file so that a production build leaves it out
//! with one `cfg` and nothing of it is reachable from the request path.

mod tokens;
mod wire;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use url::Url;

use super::keys::{Expiry, Signer};
use super::pages;
use super::realm::{self, User, GATEWAY_CLIENT, REALM};
use crate::secret::Secret;
use wire::{
    cookie_value, form, get, html, json_ok, params, redirect, with_cookie, Params, Refusal,
};

/// The provider's session cookie. All loopback ports share one cookie jar in a browser,
/// so it must not look like the gateway's `_portcullis*` cookies.
pub const SESSION_COOKIE: &str = "demo_op_session";

/// How long an access token (and an implicit-flow token) lives.
pub const ACCESS_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a refresh token lives, unless used or ended by a logout first.
pub const REFRESH_TTL: Duration = Duration::from_secs(8 * 3600);
/// How long an authorization code lives.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long the login form may stay open.
const LOGIN_TTL: Duration = Duration::from_secs(10 * 60);
/// How long the browser stays logged in at the provider.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

// The endpoints, under the issuer's path.
const DISCOVERY: &str = "/.well-known/openid-configuration";
const AUTH: &str = "/protocol/openid-connect/auth";
const TOKEN: &str = "/protocol/openid-connect/token";
const CERTS: &str = "/protocol/openid-connect/certs";
const USERINFO: &str = "/protocol/openid-connect/userinfo";
const INTROSPECT: &str = "/protocol/openid-connect/token/introspect";
const LOGOUT: &str = "/protocol/openid-connect/logout";

/// A person logged in at the provider: one provider session.
#[derive(Debug, Clone)]
struct Login {
    user: &'static User,
    sid: String,
    auth_time: u64,
    exp: u64,
}

/// How an authorization request wants its answer.
#[derive(Debug)]
enum Answer {
    /// An authorization code, for the token endpoint to exchange with the PKCE verifier.
    Code {
        challenge: String,
        mode: ResponseMode,
    },
    /// The implicit flow: ID token and access token posted straight to the gateway.
    IdTokenToken,
}

#[derive(Debug, Clone, Copy)]
enum ResponseMode {
    Query,
    FormPost,
}

/// A validated authorization request, waiting for its login.
#[derive(Debug)]
struct AuthRequest {
    answer: Answer,
    state: Option<String>,
    nonce: Option<String>,
    scope: String,
    exp: u64,
}

/// What a code or a refresh token stands for.
#[derive(Debug, Clone)]
struct Grant {
    user: &'static User,
    sid: String,
    auth_time: u64,
    scope: String,
    nonce: Option<String>,
}

#[derive(Debug)]
struct Code {
    grant: Grant,
    challenge: String,
    exp: u64,
}

#[derive(Debug)]
struct Refresh {
    grant: Grant,
    exp: u64,
}

/// Everything the provider remembers, by the random value the browser or client holds.
#[derive(Debug, Default)]
struct Store {
    requests: HashMap<String, AuthRequest>,
    codes: HashMap<String, Code>,
    refresh: HashMap<String, Refresh>,
    sessions: HashMap<String, Login>,
}

impl Store {
    /// Forgets what has expired (called whenever something is added).
    fn purge(&mut self, now: u64) {
        self.requests.retain(|_, r| r.exp > now);
        self.codes.retain(|_, c| c.exp > now);
        self.refresh.retain(|_, r| r.exp > now);
        self.sessions.retain(|_, s| s.exp > now);
    }
}

/// The development provider.
pub struct Provider {
    issuer: String,
    /// The issuer's path, `/realms/demo`: every endpoint is under it.
    base: String,
    /// The only redirect URI accepted: the gateway's callback.
    callback: String,
    /// Where logout may return to: the gateway's origin.
    gateway: url::Origin,
    gateway_secret: Secret,
    signer: Signer,
    store: Mutex<Store>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Starts the provider on `addr` (loopback only) for the gateway at `public_url`, whose
/// client `portcullis` authenticates with `gateway_secret`. Serves until the task ends.
pub async fn start(
    addr: SocketAddr,
    public_url: &Url,
    gateway_secret: Secret,
) -> std::io::Result<(Arc<Provider>, tokio::task::JoinHandle<()>)> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the development provider only listens on loopback addresses",
        ));
    }
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let provider =
        Arc::new(Provider::new(local, public_url, gateway_secret).map_err(std::io::Error::other)?);
    tracing::warn!(
        issuer = %provider.issuer,
        "development OpenID provider listening: NOT FOR PRODUCTION (fixed passwords)"
    );
    let serving = provider.clone();
    Ok((provider, tokio::spawn(serve(listener, serving))))
}

async fn serve(listener: TcpListener, provider: Arc<Provider>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let provider = provider.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let provider = provider.clone();
                async move { Ok::<_, Infallible>(provider.handle(req, now()).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh random value (32 bytes, base64url): codes, tokens, session ids.
fn fresh() -> String {
    crate::secret::generate()
}

impl Provider {
    fn new(addr: SocketAddr, public_url: &Url, gateway_secret: Secret) -> Result<Provider, String> {
        let base = format!("/realms/{REALM}");
        Ok(Provider {
            issuer: format!("http://{addr}{base}"),
            base,
            callback: format!(
                "{}/_portcullis/callback",
                public_url.as_str().trim_end_matches('/')
            ),
            gateway: public_url.origin(),
            gateway_secret,
            signer: Signer::generate()?,
            store: Mutex::new(Store::default()),
        })
    }

    /// The issuer: `http://<addr>/realms/demo`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A token for the service `client_id`, as the client-credentials grant would issue it
    /// with every scope the service may have.
    pub fn service_token(&self, client_id: &str) -> Result<String, String> {
        let service =
            realm::service(client_id).ok_or_else(|| format!("no service {client_id:?}"))?;
        self.service_access_token(service, service.scopes, now())
            .map_err(|e| e.to_string())
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Answers one request at time `now` (seconds since the epoch).
    async fn handle(&self, req: Request<Incoming>, now: u64) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let Some(path) = parts.uri.path().strip_prefix(&self.base) else {
            return Refusal::NotFound.response();
        };
        let query = || params(parts.uri.query().unwrap_or_default().as_bytes());
        let answer = match (&parts.method, path) {
            (&Method::GET, DISCOVERY) => Ok(json_ok(&self.discovery())),
            (&Method::GET, CERTS) => Ok(json_ok(&json!({ "keys": [self.signer.jwk()] }))),
            (&Method::GET, AUTH) => query().and_then(|q| self.authorize(&q, &parts.headers, now)),
            (&Method::POST, AUTH) => form(body).await.and_then(|f| self.sign_in(&f, now)),
            (&Method::POST, TOKEN) => form(body)
                .await
                .and_then(|f| self.token(&parts.headers, &f, now)),
            (&Method::GET | &Method::POST, USERINFO) => self.userinfo(&parts.headers),
            (&Method::POST, INTROSPECT) => form(body)
                .await
                .and_then(|f| self.introspect(&parts.headers, &f)),
            (&Method::GET, LOGOUT) => query().and_then(|q| self.logout(&q, &parts.headers)),
            _ => Err(Refusal::NotFound),
        };
        answer.unwrap_or_else(|refusal| {
            tracing::info!(path = parts.uri.path(), reason = %refusal, "refused a request");
            refusal.response()
        })
    }

    fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": self.endpoint(AUTH),
            "token_endpoint": self.endpoint(TOKEN),
            "jwks_uri": self.endpoint(CERTS),
            "userinfo_endpoint": self.endpoint(USERINFO),
            "end_session_endpoint": self.endpoint(LOGOUT),
            "introspection_endpoint": self.endpoint(INTROSPECT),
            "response_types_supported": ["code", "id_token token"],
            "response_modes_supported": ["query", "form_post"],
            "grant_types_supported": ["authorization_code", "implicit", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "subject_types_supported": ["public"],
            "scopes_supported": realm::LOGIN_SCOPES
                .iter()
                .chain(realm::SERVICES.iter().flat_map(|s| s.scopes))
                .collect::<std::collections::BTreeSet<_>>(),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid",
                "preferred_username", "name", "given_name", "family_name", "email",
                "email_verified", "groups", "realm_access", "resource_access"],
        })
    }

    /// The login form for the pending request `id`.
    fn login_form(&self, id: &str, error: Option<&str>) -> Response<Full<Bytes>> {
        html(pages::login(&format!("{}{AUTH}", self.base), id, error))
    }

    /// A `Set-Cookie` value for the provider session (`max_age` zero deletes it).
    fn session_cookie(&self, value: &str, max_age: Duration) -> String {
        cookie::Cookie::build((SESSION_COOKIE, value))
            .path(self.base.clone())
            .http_only(true)
            .same_site(cookie::SameSite::Lax)
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
            ))
            .build()
            .to_string()
    }

    /// The provider session the browser's cookie names, if it is still open.
    fn logged_in(&self, headers: &HeaderMap, now: u64) -> Option<Login> {
        let id = cookie_value(headers, SESSION_COOKIE)?;
        self.store()
            .sessions
            .get(id)
            .filter(|l| l.exp > now)
            .cloned()
    }

    /// `GET auth`: validates the request, then answers at once for a browser already
    /// logged in here, or shows the login form.
    fn authorize(
        &self,
        q: &Params,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        if get(q, "client_id") != Some(GATEWAY_CLIENT) {
            return Err(Refusal::InvalidRequest(format!(
                "client_id must be `{GATEWAY_CLIENT}`, the only client that logs people in here"
            )));
        }
        if get(q, "redirect_uri") != Some(self.callback.as_str()) {
            return Err(Refusal::InvalidRequest(format!(
                "redirect_uri must be exactly {}",
                self.callback
            )));
        }
        let scope = get(q, "scope").unwrap_or_default();
        if !scope.split(' ').any(|s| s == "openid") {
            return Err(Refusal::InvalidScope("scope must include openid".into()));
        }
        let mode = match get(q, "response_mode") {
            None => None,
            Some("query") => Some(ResponseMode::Query),
            Some("form_post") => Some(ResponseMode::FormPost),
            Some(_) => {
                return Err(Refusal::InvalidRequest(
                    "response_mode must be query or form_post".into(),
                ))
            }
        };
        let mut response_type: Vec<&str> = get(q, "response_type")
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect();
        response_type.sort_unstable();
        let nonce = get(q, "nonce").filter(|n| !n.is_empty());
        let answer = match response_type.as_slice() {
            ["code"] => {
                let challenge = get(q, "code_challenge").filter(|c| !c.is_empty());
                match (challenge, get(q, "code_challenge_method")) {
                    (Some(c), Some("S256")) => Answer::Code {
                        challenge: c.to_owned(),
                        mode: mode.unwrap_or(ResponseMode::Query),
                    },
                    _ => return Err(Refusal::InvalidRequest(
                        "the code flow needs PKCE: code_challenge with code_challenge_method=S256"
                            .into(),
                    )),
                }
            }
            ["id_token", "token"] => {
                if nonce.is_none() {
                    return Err(Refusal::InvalidRequest(
                        "the implicit flow needs a nonce".into(),
                    ));
                }
                if !matches!(mode, Some(ResponseMode::FormPost)) {
                    return Err(Refusal::InvalidRequest(
                        "the implicit flow needs response_mode=form_post".into(),
                    ));
                }
                Answer::IdTokenToken
            }
            _ => return Err(Refusal::UnsupportedResponseType),
        };
        let request = AuthRequest {
            answer,
            state: get(q, "state").map(str::to_owned),
            nonce: nonce.map(str::to_owned),
            scope: scope.to_owned(),
            exp: now + LOGIN_TTL.as_secs(),
        };
        if let Some(login) = self.logged_in(headers, now) {
            return self.complete(request, login, now);
        }
        let id = fresh();
        let mut store = self.store();
        store.purge(now);
        store.requests.insert(id.clone(), request);
        drop(store);
        Ok(self.login_form(&id, None))
    }

    /// `POST auth`: the login form. Wrong credentials show the form again (200); right
    /// ones open a provider session and answer the pending request.
    fn sign_in(&self, form: &Params, now: u64) -> Result<Response<Full<Bytes>>, Refusal> {
        let expired = || {
            Refusal::InvalidRequest(
                "this login has expired or was already used: start again from the application"
                    .into(),
            )
        };
        let id = get(form, "request").ok_or_else(expired)?;
        let pending = self.store().requests.get(id).is_some_and(|r| r.exp > now);
        if !pending {
            return Err(expired());
        }
        let username = get(form, "username").unwrap_or_default();
        let password = Secret::new(get(form, "password").unwrap_or_default().to_owned());
        let Some(user) =
            realm::user(username).filter(|u| Secret::new(u.password.to_owned()) == password)
        else {
            tracing::info!(username, "wrong username or password");
            return Ok(self.login_form(id, Some("Invalid username or password.")));
        };
        let login = Login {
            user,
            sid: fresh(),
            auth_time: now,
            exp: now + SESSION_TTL.as_secs(),
        };
        let cookie_id = fresh();
        let request = {
            let mut store = self.store();
            let request = store.requests.remove(id).ok_or_else(expired)?;
            store.purge(now);
            store.sessions.insert(cookie_id.clone(), login.clone());
            request
        };
        tracing::info!(username, sid = %login.sid, "logged in");
        let response = self.complete(request, login, now)?;
        Ok(with_cookie(
            response,
            &self.session_cookie(&cookie_id, SESSION_TTL),
        ))
    }

    /// Answers an authorization request for a logged-in user: a code, or (implicit) the
    /// tokens themselves, sent to the gateway's callback.
    fn complete(
        &self,
        request: AuthRequest,
        login: Login,
        now: u64,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let grant = Grant {
            user: login.user,
            sid: login.sid,
            auth_time: login.auth_time,
            scope: request.scope,
            nonce: request.nonce,
        };
        let mut fields: Vec<(&str, String)> = Vec::new();
        let mode = match request.answer {
            Answer::Code { challenge, mode } => {
                let code = fresh();
                let mut store = self.store();
                store.purge(now);
                store.codes.insert(
                    code.clone(),
                    Code {
                        grant,
                        challenge,
                        exp: now + CODE_TTL.as_secs(),
                    },
                );
                fields.push(("code", code));
                mode
            }
            Answer::IdTokenToken => {
                let access = self.access_token(&grant, now)?;
                let id = self.id_token(&grant, &access, now)?;
                fields.push(("access_token", access));
                fields.push(("token_type", "Bearer".to_owned()));
                fields.push(("expires_in", ACCESS_TTL.as_secs().to_string()));
                fields.push(("id_token", id));
                ResponseMode::FormPost
            }
        };
        if let Some(state) = request.state {
            fields.push(("state", state));
        }
        Ok(match mode {
            ResponseMode::Query => {
                let mut url = Url::parse(&self.callback)
                    .map_err(|_| Refusal::InvalidRequest("the callback is not a URL".into()))?;
                url.query_pairs_mut().extend_pairs(fields.iter());
                redirect(url.as_str())
            }
            ResponseMode::FormPost => {
                let pairs: Vec<(&str, &str)> =
                    fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                html(pages::form_post(&self.callback, &pairs))
            }
        })
    }

    /// `logout` (RP-initiated logout): ends the browser's provider session and the one
    /// `id_token_hint` names, with their refresh tokens, then returns to
    /// `post_logout_redirect_uri` when it is on the gateway's origin.
    fn logout(&self, q: &Params, headers: &HeaderMap) -> Result<Response<Full<Bytes>>, Refusal> {
        let hinted_sid = match get(q, "id_token_hint") {
            None => None,
            Some(t) => {
                let claims = self
                    .signer
                    .check(t, &self.issuer, Expiry::Ignored)
                    .filter(|c| c.get("typ").and_then(Value::as_str) == Some("ID"))
                    .ok_or_else(|| {
                        Refusal::InvalidRequest(
                            "id_token_hint is not an ID token of this provider".into(),
                        )
                    })?;
                claims.get("sid").and_then(Value::as_str).map(str::to_owned)
            }
        };
        if get(q, "client_id").is_some_and(|c| c != GATEWAY_CLIENT) {
            return Err(Refusal::InvalidRequest(format!(
                "client_id must be `{GATEWAY_CLIENT}`"
            )));
        }
        let target = match get(q, "post_logout_redirect_uri") {
            None => None,
            Some(uri) => {
                let url = Url::parse(uri)
                    .ok()
                    .filter(|u| u.origin() == self.gateway)
                    .ok_or_else(|| {
                        Refusal::InvalidRequest(format!(
                            "post_logout_redirect_uri must be on the gateway's origin, {}",
                            self.gateway.ascii_serialization()
                        ))
                    })?;
                Some(url)
            }
        };
        let cookie_id = cookie_value(headers, SESSION_COOKIE);
        let mut store = self.store();
        let mut ended: Vec<String> = hinted_sid.into_iter().collect();
        if let Some(login) = cookie_id.and_then(|id| store.sessions.get(id)) {
            ended.push(login.sid.clone());
        }
        store.sessions.retain(|_, l| !ended.contains(&l.sid));
        store.refresh.retain(|_, r| !ended.contains(&r.grant.sid));
        drop(store);
        tracing::info!(sessions = ?ended, "logged out");
        let response = match target {
            Some(mut url) => {
                if let Some(state) = get(q, "state") {
                    url.query_pairs_mut().append_pair("state", state);
                }
                redirect(url.as_str())
            }
            None => html(pages::logged_out()),
        };
        Ok(with_cookie(
            response,
            &self.session_cookie("", Duration::ZERO),
        ))
    }
}
