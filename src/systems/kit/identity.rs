//! Who is calling: the identity the gateway verified and forwards to the
//! services in its own headers. The gateway strips every client-supplied
//! header of that family before it forwards, so a header that reaches a
//! service through the gateway is the gateway's word. A request that comes
//! straight to a service (the course's direct flows) carries none and is
//! served as before.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::error::ApiError;

/// Prefix of the identity headers: the gateway drops every client header
/// that starts with it.
pub const IDENTITY_PREFIX: &str = "x-stormproof-";
/// The verified token subject (the customer).
pub const SUBJECT_HEADER: &str = "x-stormproof-subject";
/// The subject's roles, comma-separated.
pub const ROLES_HEADER: &str = "x-stormproof-roles";
/// Where a caller's `Authorization` travels when the request came through
/// the Kubernetes API server's service proxy, which removes
/// `Authorization` once it has authenticated the request
/// (kubernetes/kubernetes#38775); the gateway reads it only when
/// `Authorization` is absent, and verifies it the same way.
pub const FORWARDED_AUTHORIZATION: &str = "x-forwarded-authorization";
/// The role that writes the catalogue and acts for any customer (staff).
pub const ADMIN_ROLE: &str = "admin";

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Straight to the service, not through the gateway: no identity.
    Direct,
    /// Through the gateway, as a verified user.
    User {
        /// Token subject: the customer.
        subject: String,
        /// Roles the gateway's configuration gives the subject.
        roles: Vec<String>,
    },
}

impl Caller {
    /// The caller the identity headers in `headers` name.
    pub fn from_headers(headers: &HeaderMap) -> Caller {
        let Some(subject) = headers.get(SUBJECT_HEADER).and_then(|v| v.to_str().ok()) else {
            return Caller::Direct;
        };
        let roles = headers
            .get(ROLES_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|r| r.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        Caller::User { subject: subject.to_string(), roles }
    }

    /// Whether the caller has the admin role.
    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::User { roles, .. } if roles.iter().any(|r| r == ADMIN_ROLE))
    }

    /// The customer whose data alone the caller may see, or `None` when it
    /// may see everyone's (a direct call or an admin).
    pub fn only_customer(&self) -> Option<&str> {
        match self {
            Caller::User { subject, .. } if !self.is_admin() => Some(subject),
            _ => None,
        }
    }

    /// 403 unless the caller may act for `customer`.
    pub fn may_act_for(&self, customer: &str, what: &str) -> Result<(), ApiError> {
        match self.only_customer() {
            Some(subject) if subject != customer => {
                Err(ApiError::Forbidden(format!("{what} belongs to customer `{customer}`, and the token's subject is `{subject}`")))
            }
            _ => Ok(()),
        }
    }

    /// 403 unless the caller may write what only the admin role writes.
    pub fn must_be_admin(&self, what: &str) -> Result<(), ApiError> {
        match self {
            Caller::User { subject, .. } if !self.is_admin() => {
                Err(ApiError::Forbidden(format!("{what} needs the `{ADMIN_ROLE}` role, which `{subject}` does not have")))
            }
            _ => Ok(()),
        }
    }

    /// The list filter for a request that may name a customer: the caller's
    /// own when it names none, 403 when it names another.
    pub fn customer_filter(&self, asked: Option<String>) -> Result<Option<String>, ApiError> {
        match (self.only_customer(), asked) {
            (Some(subject), Some(asked)) if asked != subject => {
                Err(ApiError::Forbidden(format!("customerId `{asked}` is not the token's subject `{subject}`")))
            }
            (Some(subject), _) => Ok(Some(subject.to_string())),
            (None, asked) => Ok(asked),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller::from_headers(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(subject: &str, roles: &[&str]) -> Caller {
        Caller::User { subject: subject.into(), roles: roles.iter().map(|r| r.to_string()).collect() }
    }

    #[test]
    fn headers_name_the_caller() {
        let mut headers = HeaderMap::new();
        assert_eq!(Caller::from_headers(&headers), Caller::Direct);
        headers.insert(SUBJECT_HEADER, "user1".parse().unwrap());
        headers.insert(ROLES_HEADER, "admin, ops".parse().unwrap());
        assert_eq!(Caller::from_headers(&headers), user("user1", &["admin", "ops"]));
    }

    #[test]
    fn a_customer_sees_only_their_own() {
        let customer = user("user1", &[]);
        assert!(customer.may_act_for("user1", "order 1").is_ok());
        assert!(matches!(customer.may_act_for("user2", "order 1"), Err(ApiError::Forbidden(_))));
        assert_eq!(customer.customer_filter(None).unwrap(), Some("user1".into()));
        assert!(matches!(customer.customer_filter(Some("user2".into())), Err(ApiError::Forbidden(_))));
        assert!(matches!(customer.must_be_admin("POST /products"), Err(ApiError::Forbidden(_))));
    }

    #[test]
    fn admins_and_direct_calls_see_everyone() {
        for caller in [user("admin", &["admin"]), Caller::Direct] {
            assert!(caller.may_act_for("user2", "order 1").is_ok());
            assert_eq!(caller.customer_filter(None).unwrap(), None);
            assert_eq!(caller.customer_filter(Some("user2".into())).unwrap(), Some("user2".into()));
            assert!(caller.must_be_admin("POST /products").is_ok());
        }
    }
}
