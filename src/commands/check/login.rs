//! The login probes of `check --online`: the authorization request a login sends, the
//! client's credentials at the token endpoint and the post-logout redirect URI, each asked
//! with dummy values, and the lines that tell what the provider will refuse.

use base64::Engine as _;
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use url::Url;

use super::provider_error::{
    error_in_redirect, form_post_error, json_error, page_message, ProviderError,
};
use super::{page_request, send, Report, DUMMY_CODE, DUMMY_VERIFIER};
use crate::commands::answer::read_body;
use crate::config::{Config, LoginFlow};
use crate::policy::AuthMode;
use crate::secret::Secret;

/// What a login sends the provider, as the gateway would send it (`session::login`).
pub(super) struct LoginClient<'a> {
    pub(super) client_id: &'a str,
    pub(super) client_secret: Option<&'a Secret>,
    pub(super) flow: LoginFlow,
    pub(super) scopes: String,
    /// `public_url` without its trailing slash.
    pub(super) origin: String,
}

impl<'a> LoginClient<'a> {
    /// The login client of a configuration, when some route logs people in.
    pub(super) fn of(config: &'a Config) -> Option<LoginClient<'a>> {
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
pub(super) struct LoginProbes {
    pub(super) authorization: Option<Authorization>,
    pub(super) secret: Option<ClientSecret>,
    pub(super) logout: Option<PostLogout>,
}

/// How the provider answered the authorization request of a login.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Authorization {
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

pub(super) async fn probe_authorization(
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
pub(super) enum ClientSecret {
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

pub(super) async fn probe_client_secret(
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
pub(super) enum PostLogout {
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

pub(super) async fn probe_post_logout(
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
pub(super) fn print_login_probes(
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

fn quoted(message: &Option<String>) -> String {
    message
        .as_ref()
        .map_or(String::new(), |m| format!(": \"{m}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_verifier_has_the_length_rfc_7636_asks() {
        assert_eq!(DUMMY_VERIFIER.len(), 43);
        assert_eq!(pkce_challenge(DUMMY_VERIFIER).len(), 43);
    }
}
