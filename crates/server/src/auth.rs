//! Bearer-token auth policy: which routes need a token, which token, and the check itself,
//! free of any protocol's types so every front end asks the same question and maps the refusal
//! to its own answer (`api::auth` for HTTP, `grpc::require_token` for gRPC).
//!
//! Tokens are held only as SHA-256 digests and a presented token is compared against every one
//! of them in constant time (`subtle`), with no early exit, so neither timing nor length tells
//! a caller how close a guess was. Tokens are never logged. Health routes stay open for probes;
//! `/metrics` is open only when configured; the repository API needs an admin token when admin
//! tokens are configured. The page (`/`, `/ui/...`) takes the token as a bearer header or as the
//! password of HTTP Basic credentials (any user name), because a browser can send those: it
//! asks for them itself when the page answers 401 with a Basic challenge.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// The tokens, as configured (`--token`, `WARDEN_TOKENS`, ...). Never logged: `Debug` counts them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    pub tokens: Vec<String>,
    /// When non-empty, only these tokens may call `/v2/repository/...`.
    pub admin_tokens: Vec<String>,
    /// `/metrics` answers without a token.
    pub public_metrics: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("tokens", &self.tokens.len())
            .field("admin_tokens", &self.admin_tokens.len())
            .field("public_metrics", &self.public_metrics)
            .finish()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this route needs a bearer token: send `Authorization: Bearer <token>`")]
    MissingToken,
    #[error("the bearer token is not valid")]
    InvalidToken,
    #[error("the repository API needs an admin token")]
    NotAdmin,
}

/// The token check, built from the configuration.
pub struct Auth {
    tokens: Vec<[u8; 32]>,
    admin_tokens: Vec<[u8; 32]>,
    public_metrics: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .field("admin_tokens", &self.admin_tokens.len())
            .field("public_metrics", &self.public_metrics)
            .finish()
    }
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health probes: never a token.
    Open,
    /// `/metrics`: a token unless configured public.
    Metrics,
    /// The repository API: an admin token when there are any, else any token.
    Admin,
    /// The page: any token, as a bearer header or a Basic password.
    Page,
    /// Everything else: any token.
    Token,
}

impl Access {
    /// The access rule of a request path: a REST route or a gRPC method's full name. The one
    /// list of what is open, for every protocol.
    pub fn of(path: &str) -> Access {
        match path {
            "/v2/health/live"
            | "/v2/health/ready"
            | "/inference.GRPCInferenceService/ServerLive"
            | "/inference.GRPCInferenceService/ServerReady"
            | "/grpc.health.v1.Health/Check"
            | "/grpc.health.v1.Health/Watch" => Access::Open,
            "/metrics" => Access::Metrics,
            _ if path.starts_with("/v2/repository/") || path == "/v2/repository" => Access::Admin,
            "/" => Access::Page,
            _ if path.starts_with("/ui/") => Access::Page,
            _ => Access::Token,
        }
    }
}

/// The password of HTTP Basic credentials (`base64(user:password)`).
fn basic_password(credentials: &str) -> Option<String> {
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    Some(password.to_owned())
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Whether `presented` is one of `digests`, comparing with every one of them.
fn matches(digests: &[[u8; 32]], presented: &[u8; 32]) -> bool {
    let found = digests.iter().fold(Choice::from(0), |found, known| {
        found | known.ct_eq(presented)
    });
    found.into()
}

impl Auth {
    pub fn new(config: &AuthConfig) -> Auth {
        Auth {
            tokens: config.tokens.iter().map(|t| digest(t.as_bytes())).collect(),
            admin_tokens: config
                .admin_tokens
                .iter()
                .map(|t| digest(t.as_bytes()))
                .collect(),
            public_metrics: config.public_metrics,
        }
    }

    /// Admits a request to a route with rule `access` and the given `Authorization` value.
    pub fn check(&self, access: Access, authorization: Option<&str>) -> Result<(), Denied> {
        if access == Access::Open || (access == Access::Metrics && self.public_metrics) {
            return Ok(());
        }
        let presented = authorization
            .and_then(|value| {
                let (scheme, credentials) = value.trim().split_once(' ')?;
                if scheme.eq_ignore_ascii_case("bearer") {
                    Some(credentials.trim().to_owned())
                } else if scheme.eq_ignore_ascii_case("basic") && access == Access::Page {
                    basic_password(credentials.trim())
                } else {
                    None
                }
            })
            .filter(|token| !token.is_empty());
        let Some(presented) = presented else {
            return Err(Denied::MissingToken);
        };
        let presented = digest(presented.as_bytes());
        let admin = matches(&self.admin_tokens, &presented);
        let any = matches(&self.tokens, &presented) || admin;
        if !any {
            return Err(Denied::InvalidToken);
        }
        if access == Access::Admin && !self.admin_tokens.is_empty() && !admin {
            return Err(Denied::NotAdmin);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(admin: &[&str], public_metrics: bool) -> Auth {
        Auth::new(&AuthConfig {
            tokens: vec!["api-token-0123456789".into(), "api-token-abcdefghij".into()],
            admin_tokens: admin.iter().map(|t| (*t).to_owned()).collect(),
            public_metrics,
        })
    }

    fn header(value: &str) -> &str {
        value
    }

    fn code(result: Result<(), Denied>) -> Option<&'static str> {
        result.err().map(|denied| match denied {
            Denied::MissingToken | Denied::InvalidToken => "unauthorized",
            Denied::NotAdmin => "forbidden",
        })
    }

    #[test]
    fn every_configured_token_passes_and_nothing_else_does() {
        let auth = auth(&[], false);
        for good in [
            "Bearer api-token-0123456789",
            "bearer api-token-abcdefghij",
            "Bearer  api-token-0123456789 ",
        ] {
            assert_eq!(
                code(auth.check(Access::Token, Some(header(good)))),
                None,
                "{good}"
            );
        }
        for bad in [
            "Bearer api-token-012345678",
            "Bearer api-token-01234567890",
            "Basic api-token-0123456789",
            "api-token-0123456789",
            "Bearer ",
        ] {
            assert_eq!(
                code(auth.check(Access::Token, Some(header(bad)))),
                Some("unauthorized"),
                "{bad}"
            );
        }
        assert_eq!(code(auth.check(Access::Token, None)), Some("unauthorized"));
    }

    #[test]
    fn health_is_open_and_metrics_only_when_configured() {
        assert_eq!(code(auth(&[], false).check(Access::Open, None)), None);
        assert_eq!(
            code(auth(&[], false).check(Access::Metrics, None)),
            Some("unauthorized")
        );
        assert_eq!(code(auth(&[], true).check(Access::Metrics, None)), None);
        assert_eq!(Access::of("/v2/health/ready"), Access::Open);
        assert_eq!(Access::of("/v2/models/iris/ready"), Access::Token);
        assert_eq!(Access::of("/v2/repository/index"), Access::Admin);
        assert_eq!(Access::of("/"), Access::Page);
        assert_eq!(Access::of("/ui/models/iris"), Access::Page);
        // The page takes the token as a Basic password; the API does not.
        let basic = |user_token: &str| {
            use base64::Engine as _;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_token)
            )
        };
        let auth = auth(&[], false);
        assert_eq!(
            code(auth.check(Access::Page, Some(&basic("me:api-token-0123456789")))),
            None
        );
        assert_eq!(
            code(auth.check(Access::Page, Some(&basic("me:bad")))),
            Some("unauthorized")
        );
        assert_eq!(
            code(auth.check(Access::Token, Some(&basic("me:api-token-0123456789")))),
            Some("unauthorized")
        );
        assert_eq!(Access::of("/openapi.json"), Access::Token);
    }

    #[test]
    fn admin_tokens_alone_open_the_repository_api_when_set() {
        let api = header("Bearer api-token-0123456789");
        let admin = header("Bearer admin-token-0123456789");
        let without = auth(&[], false);
        assert_eq!(code(without.check(Access::Admin, Some(api))), None);
        let with = auth(&["admin-token-0123456789"], false);
        assert_eq!(
            code(with.check(Access::Admin, Some(api))),
            Some("forbidden")
        );
        assert_eq!(code(with.check(Access::Admin, Some(admin))), None);
        assert_eq!(code(with.check(Access::Token, Some(admin))), None);
    }
}
