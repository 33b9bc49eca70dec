//! Who is calling: a bearer token maps to a tenant, or to the adapters.
//!
//! Tokens come from configuration ([`StaticTokens`]). [`Authenticator`] is the
//! seam for JWT validation: implement it and hand it to the gateway.

use crate::error::ApiError;
use gsl_domain::{Carrier, ErrorCode};
use gsl_secret::Secret;
use std::collections::HashMap;
use tonic::metadata::MetadataMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A tenant's client: sees and changes only its own cards and orders.
    Tenant(String),
    /// An adapter: may report results, nothing else; of its own carrier
    /// only (`None`: any carrier, a test convenience of [`StaticTokens::new`]).
    Adapter(Option<Carrier>),
    /// An operator of the back-office queue (`GSL_OPERATOR_TOKEN`): works
    /// back-office requests, never a tenant's orders.
    Operator,
}

/// Maps a bearer token to a principal.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate(&self, token: &str) -> Option<Principal>;
}

/// Tokens from configuration. Every token is a [`Secret`]: `Debug` prints
/// none of them, and a presented token is compared with each in constant
/// time.
#[derive(Debug, Clone, Default)]
pub struct StaticTokens {
    tenants: Vec<(Secret, String)>,
    /// One credential per carrier adapter (`GSL_ADAPTER_TOKENS`).
    adapters: Vec<(Secret, Carrier)>,
    /// A credential for every carrier: tests only (the environment cannot set it).
    any_adapter: Option<Secret>,
    operator: Option<Secret>,
}

impl StaticTokens {
    pub fn new(tenants: HashMap<String, String>, adapter: Option<String>) -> StaticTokens {
        StaticTokens {
            tenants: tenants
                .into_iter()
                .map(|(tok, t)| (Secret::from(tok), t))
                .collect(),
            adapters: Vec::new(),
            any_adapter: adapter.map(Secret::from),
            operator: None,
        }
    }

    /// Per-carrier adapter credentials.
    pub fn with_adapters(mut self, adapters: HashMap<String, Carrier>) -> StaticTokens {
        self.adapters = adapters
            .into_iter()
            .map(|(tok, c)| (Secret::from(tok), c))
            .collect();
        self
    }

    /// Parse `cmcc=token,ct=token,...` (newlines also separate).
    pub fn parse_adapters(s: &str) -> Result<HashMap<String, Carrier>, String> {
        let mut m = HashMap::new();
        for part in s
            .split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty() && !p.starts_with('#'))
        {
            let (carrier, tok) = part
                .split_once('=')
                .ok_or_else(|| "expected carrier=token".to_string())?;
            let carrier: Carrier = carrier
                .trim()
                .parse()
                .map_err(|e| format!("{carrier:?}: {e}"))?;
            let tok = tok.trim();
            if tok.len() < 16 {
                return Err(format!(
                    "the {carrier} adapter token must have at least 16 characters"
                ));
            }
            if m.insert(tok.to_owned(), carrier).is_some() {
                return Err("each carrier adapter needs its own token".into());
            }
        }
        Ok(m)
    }

    /// The operator credential (back-office work).
    pub fn with_operator(mut self, token: Option<String>) -> StaticTokens {
        self.operator = token.filter(|t| !t.is_empty()).map(Secret::from);
        self
    }

    /// Parse `token=tenant,token2=tenant2` (newlines also separate).
    pub fn parse_tenants(s: &str) -> Result<HashMap<String, String>, String> {
        let mut m = HashMap::new();
        for part in s
            .split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty() && !p.starts_with('#'))
        {
            let (tok, tenant) = part
                .split_once('=')
                .ok_or_else(|| "expected token=tenant".to_string())?;
            let (tok, tenant) = (tok.trim(), tenant.trim());
            if tok.len() < 8 {
                return Err("tokens must have at least 8 characters".into());
            }
            if !gsl_bus::names::valid_tenant(tenant) {
                return Err(format!(
                    "tenant {tenant:?} must be lower-case letters, digits, '-' or '_'"
                ));
            }
            m.insert(tok.to_owned(), tenant.to_owned());
        }
        Ok(m)
    }

    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.tenants.iter().map(|(_, t)| t.as_str())
    }
}

impl Authenticator for StaticTokens {
    /// Every configured token is compared (in constant time) whatever
    /// matches first, so the time taken says nothing about which matched.
    fn authenticate(&self, token: &str) -> Option<Principal> {
        let mut found = None;
        let mut offer = |s: &Secret, p: Principal| {
            if s.matches(token) && found.is_none() {
                found = Some(p);
            }
        };
        for (s, c) in &self.adapters {
            offer(s, Principal::Adapter(Some(*c)));
        }
        if let Some(s) = &self.any_adapter {
            offer(s, Principal::Adapter(None));
        }
        if let Some(s) = &self.operator {
            offer(s, Principal::Operator);
        }
        for (s, t) in &self.tenants {
            offer(s, Principal::Tenant(t.clone()));
        }
        found
    }
}

/// The principal of a request, from `authorization: Bearer <token>`.
pub fn principal(auth: &dyn Authenticator, md: &MetadataMap) -> Result<Principal, ApiError> {
    let unauth = || {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "missing or invalid bearer token",
        )
    };
    let h = md
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauth)?;
    let token = h.strip_prefix("Bearer ").ok_or_else(unauth)?.trim();
    auth.authenticate(token).ok_or_else(unauth)
}

/// A kind of principal, for the table of who may call which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Tenant,
    Adapter,
    Operator,
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Principal::Tenant(_) => Role::Tenant,
            Principal::Adapter(_) => Role::Adapter,
            Principal::Operator => Role::Operator,
        }
    }
}

/// Who may call each service (the methods' own checks narrow it further:
/// of `Registry`, the operator may only import cards and batches).
pub const WORK_ORDERS_CALLERS: &[Role] = &[Role::Tenant];
pub const REGISTRY_CALLERS: &[Role] = &[Role::Tenant, Role::Operator];
pub const RESULTS_CALLERS: &[Role] = &[Role::Adapter];
pub const BACK_OFFICE_CALLERS: &[Role] = &[Role::Operator];
pub const PUSH_CALLERS: &[Role] = &[Role::Tenant];

/// The interceptor in front of every API: a request without a known bearer
/// token, or from a principal the service does not serve, is refused from
/// its headers, before its body is read or decoded: a valid credential on
/// the wrong service costs no more than no credential at all. (Each handler
/// still checks the principal's role for its own method.)
#[derive(Clone)]
pub struct Gate {
    pub auth: std::sync::Arc<dyn Authenticator>,
    pub callers: &'static [Role],
}

impl tonic::service::Interceptor for Gate {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let p = principal(&*self.auth, req.metadata())?;
        if !self.callers.contains(&p.role()) {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "this credential may not call this service",
            )
            .into());
        }
        Ok(req)
    }
}

/// The caller's tenant; adapters are refused.
pub fn tenant(auth: &dyn Authenticator, md: &MetadataMap) -> Result<String, ApiError> {
    match principal(auth, md)? {
        Principal::Tenant(t) => Ok(t),
        Principal::Adapter(_) => Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "adapters may only report results",
        )),
        Principal::Operator => Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "the operator credential works the back-office queue only",
        )),
    }
}

/// Only the operator credential passes.
pub fn operator(auth: &dyn Authenticator, md: &MetadataMap) -> Result<(), ApiError> {
    match principal(auth, md)? {
        Principal::Operator => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "the back-office queue takes the operator credential only",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = StaticTokens::new(
            StaticTokens::parse_tenants("tok-aaaaaa=acme, tok-bbbbbb=beta").unwrap(),
            Some("adapter-token".into()),
        );
        let md = |v: &str| {
            let mut m = MetadataMap::new();
            m.insert("authorization", v.parse().unwrap());
            m
        };
        assert_eq!(
            principal(&t, &md("Bearer tok-aaaaaa")).unwrap(),
            Principal::Tenant("acme".into())
        );
        assert_eq!(
            principal(&t, &md("Bearer adapter-token")).unwrap(),
            Principal::Adapter(None)
        );
        assert_eq!(
            principal(&t, &md("Bearer nope")).unwrap_err().code,
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            principal(&t, &md("tok-aaaaaa")).unwrap_err().code,
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            principal(&t, &MetadataMap::new()).unwrap_err().code,
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            tenant(&t, &md("Bearer adapter-token")).unwrap_err().code,
            ErrorCode::PermissionDenied
        );
        assert!(StaticTokens::parse_tenants("short=acme").is_err());
        assert!(StaticTokens::parse_tenants("longenough=Acme").is_err());
        assert!(StaticTokens::parse_tenants("noequals").is_err());
    }

    #[test]
    fn one_token_per_carrier_adapter() {
        let m =
            StaticTokens::parse_adapters("cmcc=adapter-token-cmcc-01, ct=adapter-token-ct-0001")
                .unwrap();
        let t = StaticTokens::new(HashMap::new(), None).with_adapters(m);
        assert_eq!(
            t.authenticate("adapter-token-ct-0001"),
            Some(Principal::Adapter(Some(Carrier::Ct)))
        );
        assert!(StaticTokens::parse_adapters("ct=short").is_err());
        assert!(StaticTokens::parse_adapters("mars=adapter-token-mars-1").is_err());
        assert!(
            StaticTokens::parse_adapters("ct=adapter-token-same-1,cu=adapter-token-same-1")
                .is_err(),
            "two carriers may not share a token"
        );
    }
}
