//! Who exists in the demo realm: two people with fixed passwords, two services, and the
//! gateway's own client. The claims each token carries are built here, shaped like
//! Keycloak's, so what the backend receives in the demo is what it would receive behind a
//! real Keycloak realm.

use serde_json::{json, Map, Value};

/// The realm, as in Keycloak's `/realms/<name>` paths.
pub const REALM: &str = "demo";

/// The gateway's client id (the audience of every access token).
pub const GATEWAY_CLIENT: &str = "portcullis";

/// A person who logs in with a password.
#[derive(Debug)]
pub struct User {
    pub username: &'static str,
    /// Fixed and printed at start: this realm is for trying things out, never for use.
    pub password: &'static str,
    /// The stable `sub` (Keycloak uses a UUID).
    pub subject: &'static str,
    pub given_name: &'static str,
    pub family_name: &'static str,
    pub email: &'static str,
    pub realm_roles: &'static [&'static str],
    /// Roles of the gateway's client (`resource_access.portcullis.roles`).
    pub client_roles: &'static [&'static str],
    pub groups: &'static [&'static str],
}

/// A service that obtains tokens with the client-credentials grant.
#[derive(Debug)]
pub struct Service {
    pub client_id: &'static str,
    pub secret: &'static str,
    /// The scopes it may ask for; all of them when it asks for none.
    pub scopes: &'static [&'static str],
}

pub const USERS: [User; 2] = [
    User {
        username: "alice",
        password: "alice-password",
        subject: "4f1c2a3e-0000-4000-8000-00000000a11c",
        given_name: "Alice",
        family_name: "Admin",
        email: "alice@example.com",
        realm_roles: &["user", "admin"],
        client_roles: &["editor"],
        groups: &["/staff"],
    },
    User {
        username: "bob",
        password: "bob-password",
        subject: "4f1c2a3e-0000-4000-8000-000000000b0b",
        given_name: "Bob",
        family_name: "Guest",
        email: "bob@example.com",
        realm_roles: &["user"],
        client_roles: &[],
        groups: &["/guests"],
    },
];

pub const SERVICES: [Service; 2] = [
    Service {
        client_id: "billing-service",
        secret: "billing-secret",
        scopes: &["orders:read", "orders:write"],
    },
    Service {
        client_id: "reporting-service",
        secret: "reporting-secret",
        scopes: &["orders:read"],
    },
];

/// The scopes a login may ask for (besides the services' scopes).
pub const LOGIN_SCOPES: [&str; 3] = ["openid", "profile", "email"];

pub fn user(username: &str) -> Option<&'static User> {
    USERS.iter().find(|u| u.username == username)
}

pub fn user_by_subject(subject: &str) -> Option<&'static User> {
    USERS.iter().find(|u| u.subject == subject)
}

pub fn service(client_id: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|s| s.client_id == client_id)
}

impl User {
    pub fn name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
    }

    /// The profile claims, as userinfo answers them and tokens carry them.
    pub fn profile(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("sub".into(), self.subject.into());
        m.insert("preferred_username".into(), self.username.into());
        m.insert("name".into(), self.name().into());
        m.insert("given_name".into(), self.given_name.into());
        m.insert("family_name".into(), self.family_name.into());
        m.insert("email".into(), self.email.into());
        m.insert("email_verified".into(), true.into());
        m
    }

    /// Keycloak's authorization claims: `groups`, `realm_access.roles` and, when the user
    /// has any, `resource_access.portcullis.roles`.
    pub fn authorization(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("groups".into(), json!(self.groups));
        m.insert("realm_access".into(), json!({ "roles": self.realm_roles }));
        if !self.client_roles.is_empty() {
            m.insert(
                "resource_access".into(),
                json!({ GATEWAY_CLIENT: { "roles": self.client_roles } }),
            );
        }
        m
    }
}

impl Service {
    /// The scopes granted for a request of `requested` (space-separated, or none for all
    /// this service may have); `None` when it asks for one it may not have.
    pub fn grant(&self, requested: Option<&str>) -> Option<Vec<&'static str>> {
        match requested.map(str::trim).filter(|s| !s.is_empty()) {
            None => Some(self.scopes.to_vec()),
            Some(list) => list
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| self.scopes.iter().find(|&&mine| mine == s).copied())
                .collect(),
        }
    }

    /// The account name Keycloak gives a client's service account.
    pub fn account(&self) -> String {
        format!("service-account-{}", self.client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_granted_only_scopes_it_may_have() {
        let reporting = service("reporting-service").unwrap();
        assert_eq!(reporting.grant(None), Some(vec!["orders:read"]));
        assert_eq!(
            reporting.grant(Some("orders:read")),
            Some(vec!["orders:read"])
        );
        assert_eq!(reporting.grant(Some("orders:read orders:write")), None);
        assert_eq!(reporting.grant(Some("  ")), Some(vec!["orders:read"]));
    }

    #[test]
    fn client_roles_are_left_out_for_a_user_without_any() {
        let bob = user("bob").unwrap();
        assert!(!bob.authorization().contains_key("resource_access"));
        let alice = user("alice").unwrap();
        assert_eq!(
            alice.authorization()["resource_access"][GATEWAY_CLIENT]["roles"],
            json!(["editor"])
        );
    }
}
