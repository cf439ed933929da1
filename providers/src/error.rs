//! What can go wrong when talking to a vendor, typed so the server maps each case
//! to one HTTP answer in one place and the retry layer knows what may be retried.

use std::time::Duration;

use thiserror::Error;

/// A vendor call's failure, as an adapter classifies it.
///
/// Messages quote the vendor's own `message` (shortened) but never a key: adapters
/// never see one.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ProviderError {
    /// The vendor rejected the gateway's provider key (401/403): a configuration
    /// fault, not the caller's.
    #[error("the vendor rejected the gateway's API key (HTTP {status}): {message}")]
    Unauthorized {
        /// The vendor's status.
        status: u16,
        /// The vendor's message.
        message: String,
    },
    /// The vendor says the chatbot or conversation does not exist.
    #[error("the vendor says it does not exist: {message}")]
    NotFound {
        /// The vendor's message.
        message: String,
    },
    /// The vendor said "slow down" (429).
    #[error("the vendor is rate limiting the gateway")]
    RateLimited {
        /// How long to wait: the vendor's `Retry-After`, or the vendor's documented
        /// window when it sends none (Chatling: the next full minute).
        retry_after: Option<Duration>,
    },
    /// Another 4xx: the vendor refused a request the gateway had already
    /// validated, so the gateway and vendor disagree — an upstream fault.
    #[error("the vendor rejected the request (HTTP {status}): {message}")]
    Rejected {
        /// The vendor's status.
        status: u16,
        /// The vendor's message.
        message: String,
    },
    /// A 5xx or any other unexpected status.
    #[error("the vendor failed (HTTP {status}): {message}")]
    Upstream {
        /// The vendor's status.
        status: u16,
        /// The vendor's message.
        message: String,
    },
    /// A success status whose body is not what the vendor documents (not JSON,
    /// wrong shape, an inconsistent page).
    #[error("the vendor's answer is invalid: {reason}")]
    InvalidBody {
        /// The vendor's status.
        status: u16,
        /// What was wrong, for logs and the caller's error message.
        reason: String,
    },
    /// Filtering in the gateway needed more vendor pages than the configured bound.
    #[error(
        "the vendor cannot filter this request itself, and the gateway stopped after \
         scanning {pages} vendor pages without completing the page; narrow the date \
         range or raise max_scan_pages for this provider"
    )]
    ScanLimit {
        /// The bound that was reached.
        pages: u32,
    },
    /// The vendor has no API for this operation.
    #[error("{0}")]
    NotSupported(&'static str),
}

impl ProviderError {
    /// Whether repeating the same idempotent read may succeed: 429 and the
    /// transient gateway statuses 502, 503 and 504 (SPEC §7).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } => true,
            Self::Upstream { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// Replaces every occurrence of `secret` in the vendor-supplied text with
    /// `[redacted]`: a vendor that echoes the key it rejected must not put it in
    /// logs or answers. Secrets shorter than 4 characters are left alone (they
    /// would match ordinary words).
    pub fn redact(self, secret: &str) -> Self {
        if secret.len() < 4 {
            return self;
        }
        let clean = |t: String| {
            if t.contains(secret) {
                t.replace(secret, "[redacted]")
            } else {
                t
            }
        };
        match self {
            Self::Unauthorized { status, message } => Self::Unauthorized {
                status,
                message: clean(message),
            },
            Self::NotFound { message } => Self::NotFound {
                message: clean(message),
            },
            Self::Rejected { status, message } => Self::Rejected {
                status,
                message: clean(message),
            },
            Self::Upstream { status, message } => Self::Upstream {
                status,
                message: clean(message),
            },
            Self::InvalidBody { status, reason } => Self::InvalidBody {
                status,
                reason: clean(reason),
            },
            other => other,
        }
    }

    /// The vendor's HTTP status, when the error came from an answer.
    pub fn upstream_status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { status, .. }
            | Self::Rejected { status, .. }
            | Self::Upstream { status, .. }
            | Self::InvalidBody { status, .. } => Some(*status),
            Self::NotFound { .. } => Some(404),
            Self::RateLimited { .. } => Some(429),
            Self::ScanLimit { .. } | Self::NotSupported(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProviderError;

    #[test]
    fn a_vendor_echoing_the_key_is_redacted() {
        let e = ProviderError::Unauthorized {
            status: 401,
            message: "invalid key sk-live-123456 (sk-live-123456)".into(),
        };
        assert_eq!(
            e.redact("sk-live-123456").to_string(),
            "the vendor rejected the gateway's API key (HTTP 401): invalid key [redacted] ([redacted])"
        );
        let short = ProviderError::NotFound {
            message: "abc".into(),
        };
        assert_eq!(short.clone().redact("ab"), short);
    }
}
