//! Client authentication (SPEC §2.1): `Authorization: Bearer <key>`, compared in
//! constant time against every client's key hash.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::HttpRequest;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::ClientConfig;

/// Finds the client whose key the request presents.
///
/// The presented key is hashed and compared with *every* client's hash, without
/// an early exit, so timing reveals neither which client matched nor how much of
/// a key was right.
pub fn authenticate(
    req: &HttpRequest,
    clients: &[Arc<ClientConfig>],
) -> Result<Arc<ClientConfig>, ApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized)?;
    let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut found = None;
    for client in clients {
        if bool::from(client.key_sha256.ct_eq(&presented)) {
            found = Some(client);
        }
    }
    found.cloned().ok_or(ApiError::Unauthorized)
}

/// The token of a `Bearer` credential (scheme case-insensitive, RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_token_required() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
