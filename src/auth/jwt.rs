//! JWT bearer tokens: the issuer's key by `kid`, the algorithm allow-list, `iss` exact,
//! `aud` from `audiences`, `exp` required, `nbf`, `iat`, all with `clock_skew`, and the
//! clock injected. Header fields that point elsewhere for a key (`jku`, `x5u`, `jwk`,
//! `x5c`) are never used: keys only ever come from the issuer's JWKS.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::claims::numeric_date;
use super::error::{TokenError, Unavailable};
use super::issuer::{Issuer, MissingKey};

/// What a token claims about itself before anything is verified; used only to pick the
/// issuer whose keys then decide.
pub struct Unverified {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub iss: String,
}

/// Whether a token has the shape of a JWS (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Reads the header and the `iss` claim without verifying anything.
pub fn peek(token: &str) -> Result<Unverified, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
        | jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => TokenError::AlgorithmNotAllowed,
        _ => TokenError::Malformed,
    })?;
    let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(TokenError::UnknownIssuer)?
        .to_owned();
    Ok(Unverified {
        alg: header.alg,
        kid: header.kid,
        iss,
    })
}

/// Verifies a bearer JWT against `issuer` at time `now` (seconds since the epoch),
/// `aud` included. Returns the verified claims.
pub async fn verify(
    token: &str,
    head: &Unverified,
    issuer: &Issuer,
    now: u64,
) -> Result<Value, Result<TokenError, Unavailable>> {
    let claims = verify_inner(token, head, issuer, now).await?;
    if !audience_accepted(claims.get("aud"), &issuer.settings.audiences) {
        return Err(Ok(TokenError::AudienceMismatch));
    }
    Ok(claims)
}

/// Signature, `iss` and time claims.
async fn verify_inner(
    token: &str,
    head: &Unverified,
    issuer: &Issuer,
    now: u64,
) -> Result<Value, Result<TokenError, Unavailable>> {
    verify_with(token, head, issuer, now, true).await
}

async fn verify_with(
    token: &str,
    head: &Unverified,
    issuer: &Issuer,
    now: u64,
    require_exp: bool,
) -> Result<Value, Result<TokenError, Unavailable>> {
    let s = &issuer.settings;
    if !s.algorithms.contains(&head.alg) {
        return Err(Ok(TokenError::AlgorithmNotAllowed));
    }
    let key = match issuer.key_for(head.kid.as_deref(), head.alg, now).await {
        Ok(key) => key,
        Err(MissingKey::Unknown) => return Err(Ok(TokenError::UnknownKeyId)),
        Err(MissingKey::Unreachable) if issuer.keys().keys.is_empty() => {
            return Err(Err(Unavailable::KeysNotLoaded))
        }
        // Perhaps a key rotated in during an outage: not the caller's fault.
        Err(MissingKey::Unreachable) => return Err(Err(Unavailable::KeyUnreachable)),
    };
    // The signature (and that the key fits the algorithm) is checked by jsonwebtoken; the
    // time claims and the audience below, against the injected clock.
    let mut v = Validation::new(head.alg);
    v.algorithms = vec![head.alg];
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Value>(token, &key.key, &v).map_err(|e| {
        Ok(match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::AlgorithmNotAllowed,
            _ => TokenError::Malformed,
        })
    })?;
    check_time_claims(&data.claims, issuer, now, require_exp).map_err(Ok)?;
    Ok(data.claims)
}

/// Verifies a token signed by `issuer`: signature, `iss`, time claims — no audience (for
/// ID tokens and the access tokens of a login, whose audiences differ).
pub async fn verify_signed_by(token: &str, issuer: &Issuer, now: u64) -> Result<Value, TokenError> {
    signed_by(token, issuer, now, true).await
}

/// [`verify_signed_by`] for the few tokens whose `exp` is optional (logout tokens of the
/// earlier back-channel drafts); the caller bounds their age by `iat`.
pub async fn verify_signed_by_without_expiry(
    token: &str,
    issuer: &Issuer,
    now: u64,
) -> Result<Value, TokenError> {
    signed_by(token, issuer, now, false).await
}

async fn signed_by(
    token: &str,
    issuer: &Issuer,
    now: u64,
    require_exp: bool,
) -> Result<Value, TokenError> {
    let head = peek(token)?;
    if head.iss.trim_end_matches('/') != issuer.settings.issuer {
        return Err(TokenError::UnknownIssuer);
    }
    match verify_with(token, &head, issuer, now, require_exp).await {
        Ok(claims) => Ok(claims),
        Err(Ok(e)) => Err(e),
        Err(Err(_)) => Err(TokenError::UnknownKeyId),
    }
}

/// Verifies an OpenID Connect ID token (Core §3.1.3.7): signed by the provider, `aud`
/// naming our client (and `azp` ours when there are several audiences), `nonce` the one
/// this login sent.
pub async fn verify_id_token(
    token: &str,
    issuer: &Issuer,
    client_id: &str,
    nonce: &str,
    now: u64,
) -> Result<Value, TokenError> {
    let claims = verify_signed_by(token, issuer, now).await?;
    let ours = [client_id.to_owned()];
    if !audience_accepted(claims.get("aud"), &ours) {
        return Err(TokenError::AudienceMismatch);
    }
    if let Some(Value::Array(list)) = claims.get("aud") {
        if list.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(client_id) {
            return Err(TokenError::AudienceMismatch);
        }
    }
    let sent = claims
        .get("nonce")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        sent.as_bytes(),
        nonce.as_bytes(),
    )) || nonce.is_empty()
    {
        return Err(TokenError::NonceMismatch);
    }
    Ok(claims)
}

/// `iss` exact, `exp` (required unless `require_exp` is false) not past, `nbf` and `iat`
/// not in the future, each time with `clock_skew`.
fn check_time_claims(
    claims: &Value,
    issuer: &Issuer,
    now: u64,
    require_exp: bool,
) -> Result<(), TokenError> {
    let s = &issuer.settings;
    let skew = s.clock_skew.as_secs();
    if claims.get("iss").and_then(Value::as_str) != Some(issuer.expected_iss().as_str()) {
        return Err(TokenError::UnknownIssuer);
    }
    let time = |name: &str| -> Result<Option<u64>, TokenError> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Number(_)) => numeric_date(v).map(Some).ok_or(TokenError::Malformed),
            Some(_) => Err(TokenError::Malformed),
        }
    };
    match time("exp")? {
        Some(exp) if now >= exp.saturating_add(skew) => return Err(TokenError::Expired),
        Some(_) => {}
        None if require_exp => return Err(TokenError::MissingExpiry),
        None => {}
    }
    if time("nbf")?.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(TokenError::NotYetValid);
    }
    if time("iat")?.is_some_and(|iat| iat > now.saturating_add(skew)) {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(())
}

/// Whether `aud` (a string or a list) names one of the accepted audiences. A token without
/// `aud` is refused: a token minted for any client of the provider must not pass.
pub fn audience_accepted(aud: Option<&Value>, accepted: &[String]) -> bool {
    match aud {
        Some(Value::String(a)) => accepted.iter().any(|x| x == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| accepted.iter().any(|x| x == a)),
        _ => false,
    }
}
