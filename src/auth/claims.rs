//! Identity from token claims, by the dotted paths of `[claims]`.

use serde_json::Value;

use crate::config::Claims;
use crate::identity::Identity;

/// The value at a dotted path (`realm_access.roles`, `resource_access.portcullis.roles`).
/// Keys holding dots themselves are not reachable this way, as in oauth2-proxy.
pub fn at<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(claims, |v, key| v.get(key))
}

/// The first path holding a string (or a number, written as text).
fn first_string(claims: &Value, paths: &[String]) -> Option<String> {
    paths.iter().find_map(|p| match at(claims, p)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Every string at every path, merged: a list of strings, or one string.
fn all_strings(claims: &Value, paths: &[String], split_spaces: bool) -> Vec<String> {
    let mut out = Vec::new();
    for p in paths {
        match at(claims, p) {
            Some(Value::Array(items)) => {
                out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            Some(Value::String(s)) if split_spaces => {
                out.extend(s.split_ascii_whitespace().map(str::to_owned))
            }
            Some(Value::String(s)) => out.push(s.clone()),
            _ => {}
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A NumericDate (RFC 7519 §2, also `exp` and `nbf` in RFC 7662): seconds since the epoch,
/// a fraction allowed and dropped. JWT checks, introspection and the identity's expiry all
/// read `exp` this one way, so a token is never kept past the `exp` it was accepted with.
pub fn numeric_date(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// The identity the claims describe.
pub fn identity(claims: &Value, paths: &Claims) -> Identity {
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s != "false",
        _ => true,
    };
    Identity {
        user: first_string(claims, &paths.user),
        email: first_string(claims, &paths.email),
        email_verified,
        groups: all_strings(claims, &paths.groups, false),
        roles: all_strings(claims, &paths.roles, false),
        subject: first_string(claims, &paths.subject),
        client: first_string(claims, &paths.client),
        scopes: all_strings(claims, &paths.scopes, true),
        expires_at: claims.get("exp").and_then(numeric_date),
        access_token: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths() -> Claims {
        Claims::defaults("portcullis")
    }

    #[test]
    fn keycloak_realm_and_client_roles_are_merged() {
        let c = json!({
            "sub": "6a1f", "preferred_username": "alice", "email": "alice@example.com",
            "groups": ["/staff", "/minio-users"],
            "realm_access": {"roles": ["minio-user", "offline_access"]},
            "resource_access": {"portcullis": {"roles": ["admin"]}, "account": {"roles": ["view-profile"]}},
            "azp": "portcullis", "scope": "openid email profile", "exp": 2000000000u64
        });
        let id = identity(&c, &paths());
        assert_eq!(id.user.as_deref(), Some("alice"));
        assert_eq!(id.roles, ["admin", "minio-user", "offline_access"]);
        assert_eq!(id.groups, ["/minio-users", "/staff"]);
        assert_eq!(id.scopes, ["email", "openid", "profile"]);
        assert_eq!(id.client.as_deref(), Some("portcullis"));
        assert_eq!(id.expires_at, Some(2000000000));
        assert!(id.email_verified);
    }

    #[test]
    fn introspection_answers_without_user_fall_back() {
        let c = json!({"active": true, "scope": "inventory:read", "client_id": "inventory-service", "exp": 1});
        let id = identity(&c, &paths());
        assert_eq!(id.user, None);
        assert_eq!(id.client.as_deref(), Some("inventory-service"));
        assert_eq!(id.scopes, ["inventory:read"]);
    }

    #[test]
    fn scp_lists_and_unverified_email_are_read() {
        let c = json!({"scp": ["b", "a"], "email": "x@y", "email_verified": false});
        let id = identity(&c, &paths());
        assert_eq!(id.scopes, ["a", "b"]);
        assert!(!id.email_verified);
    }

    #[test]
    fn claims_of_the_wrong_shape_are_ignored() {
        let c = json!({"preferred_username": {"nested": 1}, "sub": "s", "realm_access": "admin", "groups": [1, "g", null]});
        let id = identity(&c, &paths());
        assert_eq!(id.user.as_deref(), Some("s"));
        assert!(id.roles.is_empty());
        assert_eq!(id.groups, ["g"]);
    }
}
