//! The core's errors: what can go wrong between a validated request and its
//! answer (vendor calls, the merge, the cache), with no notion of HTTP. The
//! server maps them to status, code and body in one place
//! (`server/error.rs`); `chatgate export` prints them.

use std::time::Duration;

use chatgate_providers::{ProviderError, ProviderKind};

use crate::upstream::TransportError;

/// A failure of the gateway's core.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// A vendor call failed.
    #[error("{provider}: {failure}")]
    Upstream {
        /// Which vendor.
        provider: ProviderKind,
        /// How.
        failure: UpstreamFailure,
    },
    /// The request asks for something no vendor page can give (a page number
    /// past what the backends can be read to): the caller's request, not a fault.
    #[error("{0}")]
    OutOfReach(String),
    /// A bug; details go to the log, never to the caller.
    #[error("internal error")]
    Internal,
}

/// How a vendor call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamFailure {
    /// The vendor answered, and the adapter classified the answer.
    #[error(transparent)]
    Vendor(#[from] ProviderError),
    /// The call itself failed (connect, timeout, body).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The whole request ran out of time across several vendor calls.
    #[error("the request did not complete within {0:?}")]
    Deadline(Duration),
    /// The vendor said 429 and its window has not passed; no call was made.
    #[error("the vendor asked the gateway to slow down; retry in {} s", whole_seconds(*.0))]
    Paused(Duration),
    /// The circuit breaker is open after repeated vendor failures.
    #[error("the vendor has been failing; calls resume in {} s", whole_seconds(*.0))]
    CircuitOpen(Duration),
    /// The request needed more vendor calls than `server.max_vendor_calls_per_request`.
    #[error(
        "this request needed more than {0} vendor calls (a deep page of a dual-read \
         bot, or a vendor failing repeatedly); ask for a shallower page, page in \
         order so cached chunks are reused, use `chatgate export` for full walks, or \
         raise server.max_vendor_calls_per_request"
    )]
    CallBudget(u32),
    /// The gateway's own guard of the vendor's quota had no slot in time.
    #[error("the gateway is holding calls to this vendor to its quota; retry in {} s", whole_seconds(*.0))]
    Throttled(Duration),
}

impl GatewayError {
    /// A vendor failure for `provider`.
    pub fn upstream(provider: ProviderKind, failure: impl Into<UpstreamFailure>) -> Self {
        Self::Upstream {
            provider,
            failure: failure.into(),
        }
    }

    /// Whether a stale cached answer may stand in for this failure (SPEC §5): the
    /// vendor failing or refusing load, not the vendor answering "no".
    pub fn may_serve_stale(&self) -> bool {
        use ProviderError as P;
        match self {
            Self::Upstream { failure, .. } => match failure {
                UpstreamFailure::Vendor(e) => matches!(
                    e,
                    P::Upstream { .. } | P::RateLimited { .. } | P::InvalidBody { .. }
                ),
                UpstreamFailure::Transport(_)
                | UpstreamFailure::Deadline(_)
                | UpstreamFailure::Throttled(_)
                | UpstreamFailure::Paused(_)
                | UpstreamFailure::CircuitOpen(_) => true,
                UpstreamFailure::CallBudget(_) => false,
            },
            Self::OutOfReach(_) | Self::Internal => false,
        }
    }

    /// Whether the vendor said the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::Upstream {
                failure: UpstreamFailure::Vendor(ProviderError::NotFound { .. }),
                ..
            }
        )
    }

    /// How long the caller should wait before trying again, when the failure
    /// says (a vendor's or the gateway's rate limit, an open circuit).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Upstream {
                failure:
                    UpstreamFailure::Throttled(wait)
                    | UpstreamFailure::Paused(wait)
                    | UpstreamFailure::CircuitOpen(wait),
                ..
            } => Some(*wait),
            Self::Upstream {
                failure: UpstreamFailure::Vendor(ProviderError::RateLimited { retry_after }),
                ..
            } => Some(retry_after.unwrap_or(Duration::from_secs(1))),
            _ => None,
        }
    }

    /// The vendor's HTTP status, when the failure came from its answer.
    pub fn upstream_status(&self) -> Option<u16> {
        match self {
            Self::Upstream {
                failure: UpstreamFailure::Vendor(e),
                ..
            } => e.upstream_status(),
            _ => None,
        }
    }

    /// The vendor involved, if any.
    pub fn provider(&self) -> Option<ProviderKind> {
        match self {
            Self::Upstream { provider, .. } => Some(*provider),
            _ => None,
        }
    }
}

/// Rounds up to whole seconds, at least 1: a `Retry-After: 0` invites a hot loop.
pub fn whole_seconds(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}
