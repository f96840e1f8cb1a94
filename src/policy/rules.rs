//! Per-route rules for an authenticated caller: `allow`, then `scopes` by method.

use super::route::{Route, ScopeRules};
use crate::identity::Identity;

/// Why an authenticated caller may not use a route (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// A kind listed in `allow` is not met; names the kind, never the caller's values.
    NotAllowed(&'static str),
    /// The scopes the method needs (all of them), or `None` when no key covers the method.
    InsufficientScope(Option<Vec<String>>),
}

/// Checks `allow` (every listed kind must hold, any value within one) and the scopes the
/// method needs (all listed scopes; a method no key covers is refused).
pub fn check(route: &Route, method: &str, who: &Identity) -> Result<(), Denial> {
    let a = &route.allow;
    let any_of = |wanted: &[String], have: &[String]| {
        wanted.is_empty() || wanted.iter().any(|w| have.contains(w))
    };
    let one_of = |wanted: &[String], have: &Option<String>| {
        wanted.is_empty() || have.as_ref().is_some_and(|h| wanted.contains(h))
    };
    if !any_of(&a.roles, &who.roles) {
        return Err(Denial::NotAllowed("roles"));
    }
    if !any_of(&a.groups, &who.groups) {
        return Err(Denial::NotAllowed("groups"));
    }
    if !one_of(&a.clients, &who.client) {
        return Err(Denial::NotAllowed("clients"));
    }
    if !one_of(&a.users, &who.user) {
        return Err(Denial::NotAllowed("users"));
    }
    if !a.email_domains.is_empty() {
        let domain = who
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        let ok = who.email_verified && domain.is_some_and(|d| a.email_domains.contains(&d));
        if !ok {
            return Err(Denial::NotAllowed("email_domains"));
        }
    }
    if let Some(rules) = &route.scopes {
        let Some(needed) = scopes_needed(rules, method) else {
            return Err(Denial::InsufficientScope(None));
        };
        if !needed.iter().all(|s| who.scopes.contains(s)) {
            return Err(Denial::InsufficientScope(Some(needed)));
        }
    }
    Ok(())
}

/// The scopes `method` needs: those of the method as sent and, when it is not in upper
/// case, also those of its upper-case spelling, since Django and Werkzeug (Flask) upper-case
/// the method and act on `delete` as DELETE. `None` when no key covers either spelling.
fn scopes_needed(rules: &ScopeRules, method: &str) -> Option<Vec<String>> {
    let mut needed = rules.required(method)?.to_vec();
    let upper = method.to_ascii_uppercase();
    if upper != method {
        for s in rules.required(&upper)? {
            if !needed.contains(s) {
                needed.push(s.clone());
            }
        }
    }
    Some(needed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::route::{Allow, Upstream};
    use crate::policy::AuthMode;
    use std::collections::HashMap;

    fn route(allow: Allow, scopes: Option<ScopeRules>) -> Route {
        let url = url::Url::parse("http://127.0.0.1:1").unwrap();
        Route::new(
            "r".into(),
            None,
            "/".into(),
            vec![Upstream::new(&url, None)],
            AuthMode::Bearer,
            allow,
            scopes,
            false,
        )
    }

    fn who(client: &str, roles: &[&str], scopes: &[&str]) -> Identity {
        Identity {
            client: Some(client.into()),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            email_verified: true,
            ..Default::default()
        }
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allow_is_and_across_kinds_or_within() {
        let r = route(
            Allow {
                clients: v(&["billing", "shipping"]),
                roles: v(&["service"]),
                ..Default::default()
            },
            None,
        );
        assert_eq!(check(&r, "GET", &who("billing", &["service"], &[])), Ok(()));
        assert_eq!(
            check(&r, "GET", &who("shipping", &["x", "service"], &[])),
            Ok(())
        );
        assert_eq!(
            check(&r, "GET", &who("billing", &["x"], &[])),
            Err(Denial::NotAllowed("roles"))
        );
        assert_eq!(
            check(&r, "GET", &who("mallory", &["service"], &[])),
            Err(Denial::NotAllowed("clients"))
        );
    }

    #[test]
    fn unverified_or_foreign_email_domains_are_refused() {
        let r = route(
            Allow {
                email_domains: v(&["example.com"]),
                ..Default::default()
            },
            None,
        );
        let mut id = who("c", &[], &[]);
        id.email = Some("alice@Example.com".into());
        assert_eq!(check(&r, "GET", &id), Ok(()));
        id.email_verified = false;
        assert!(check(&r, "GET", &id).is_err());
        id.email_verified = true;
        id.email = Some("alice@example.com.evil.test".into());
        assert!(check(&r, "GET", &id).is_err());
        id.email = None;
        assert!(check(&r, "GET", &id).is_err());
    }

    #[test]
    fn every_listed_scope_is_required_and_uncovered_methods_are_refused() {
        let rules = ScopeRules {
            by_method: HashMap::from([("DELETE".into(), v(&["admin"]))]),
            read: Some(v(&["r"])),
            write: Some(v(&["w", "w2"])),
            any: None,
        };
        let r = route(Allow::default(), Some(rules));
        assert_eq!(check(&r, "GET", &who("c", &[], &["r"])), Ok(()));
        assert_eq!(
            check(&r, "POST", &who("c", &[], &["w"])),
            Err(Denial::InsufficientScope(Some(v(&["w", "w2"]))))
        );
        assert_eq!(check(&r, "POST", &who("c", &[], &["w", "w2"])), Ok(()));
        assert_eq!(
            check(&r, "DELETE", &who("c", &[], &["w", "w2", "r"])),
            Err(Denial::InsufficientScope(Some(v(&["admin"]))))
        );
        let only_read = route(
            Allow::default(),
            Some(ScopeRules {
                read: Some(v(&["r"])),
                ..Default::default()
            }),
        );
        assert_eq!(
            check(&only_read, "PUT", &who("c", &[], &["r"])),
            Err(Denial::InsufficientScope(None))
        );
    }

    #[test]
    fn a_method_in_another_case_needs_the_scopes_of_both_spellings() {
        // Django and Werkzeug act on `delete` as DELETE, and on `get` as GET.
        let rules = ScopeRules {
            by_method: HashMap::from([("DELETE".into(), v(&["admin"]))]),
            read: Some(v(&["r"])),
            write: Some(v(&["w"])),
            any: None,
        };
        let r = route(Allow::default(), Some(rules));
        assert_eq!(
            check(&r, "delete", &who("c", &[], &["w"])),
            Err(Denial::InsufficientScope(Some(v(&["w", "admin"]))))
        );
        assert_eq!(check(&r, "delete", &who("c", &[], &["w", "admin"])), Ok(()));
        assert_eq!(
            check(&r, "get", &who("c", &[], &["w"])),
            Err(Denial::InsufficientScope(Some(v(&["w", "r"]))))
        );
        assert_eq!(check(&r, "GET", &who("c", &[], &["r"])), Ok(()));
        let only_read = route(
            Allow::default(),
            Some(ScopeRules {
                read: Some(v(&["r"])),
                ..Default::default()
            }),
        );
        assert_eq!(
            check(&only_read, "get", &who("c", &[], &["r"])),
            Err(Denial::InsufficientScope(None)),
            "`get` is no read, and no key covers writes"
        );
    }
}
