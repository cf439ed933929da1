//! What can go wrong when talking to a vendor, typed so the server maps each case
//! to one HTTP answer in one place and the retry layer knows what may be retried.

use std::time::Duration;

use thiserror::Error;

use crate::sanitize;

/// A vendor call's failure, as an adapter classifies it.
///
/// Messages and reasons quote the vendor's own text, raw but for a generous cap
/// ([`MAX_VENDOR_TEXT_CHARS`](crate::sanitize::MAX_VENDOR_TEXT_CHARS)). Adapters
/// never see the provider's key, so they cannot redact it: whoever holds the key
/// calls [`sanitize`](Self::sanitize) before the error is logged or answered.
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

    /// Makes every vendor-supplied text in the error safe to log and to answer
    /// with, given the provider's key (`secret`): the key and any fragment of it
    /// of [`REDACT_MIN_CHARS`](crate::sanitize::REDACT_MIN_CHARS) or more
    /// characters redacted, control characters escaped, then the text shortened
    /// — see [`sanitize::vendor_text`] for the rules and why the order matters.
    ///
    /// A vendor that echoes the key it rejected must not put it in logs or
    /// answers, and a vendor's newline must not forge a log line. Adapters leave
    /// vendor text whole (merely capped) precisely so this runs once, here, on
    /// the whole text: the caller that knows the key calls it on every error an
    /// operation returns.
    pub fn sanitize(self, secret: &str) -> Self {
        let clean = |text: String| sanitize::vendor_text(&text, secret);
        // No wildcard arm: a new variant carrying vendor text must be decided here.
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
            // Numbers and the gateway's own static text: nothing from the vendor.
            Self::RateLimited { retry_after } => Self::RateLimited { retry_after },
            Self::ScanLimit { pages } => Self::ScanLimit { pages },
            Self::NotSupported(text) => Self::NotSupported(text),
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
    use std::time::Duration;

    use super::ProviderError;

    const KEY: &str = "sk-live-0123456789abcdef";

    #[test]
    fn a_vendor_echoing_the_key_is_redacted() {
        let e = ProviderError::Unauthorized {
            status: 401,
            message: format!("invalid key {KEY} ({KEY})"),
        };
        assert_eq!(
            e.sanitize(KEY).to_string(),
            "the vendor rejected the gateway's API key (HTTP 401): invalid key [redacted] ([redacted])"
        );
        let short = ProviderError::NotFound {
            message: "abc".into(),
        };
        assert_eq!(short.clone().sanitize("ab"), short);
    }

    #[test]
    fn every_text_field_is_sanitized() {
        let dirty = format!("{}\n{KEY}", "x".repeat(298));
        let clean = format!("{}\\n…", "x".repeat(298));
        let cases = [
            ProviderError::Unauthorized {
                status: 403,
                message: dirty.clone(),
            },
            ProviderError::NotFound {
                message: dirty.clone(),
            },
            ProviderError::Rejected {
                status: 422,
                message: dirty.clone(),
            },
            ProviderError::Upstream {
                status: 500,
                message: dirty.clone(),
            },
            ProviderError::InvalidBody {
                status: 200,
                reason: dirty.clone(),
            },
        ];
        for e in cases {
            let text = match e.sanitize(KEY) {
                ProviderError::Unauthorized { message, .. }
                | ProviderError::NotFound { message }
                | ProviderError::Rejected { message, .. }
                | ProviderError::Upstream { message, .. } => message,
                ProviderError::InvalidBody { reason, .. } => reason,
                other => panic!("variant changed: {other:?}"),
            };
            assert_eq!(text, clean);
        }
    }

    #[test]
    fn errors_without_vendor_text_are_unchanged() {
        for e in [
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(u64::MAX)),
            },
            ProviderError::RateLimited { retry_after: None },
            ProviderError::ScanLimit { pages: 50 },
            ProviderError::NotSupported("no such endpoint"),
        ] {
            assert_eq!(e.clone().sanitize(KEY), e);
        }
    }
}
