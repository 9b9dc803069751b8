//! What can go wrong talking to Neutron, and which of it is worth another try.

/// A failed Neutron call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neutron answered with an error status. `kind` is `NeutronError.type` (e.g.
    /// `IpAddressAlreadyAllocated`, `MacAddressInUse`, `OverQuota`), `message` its message.
    #[error("Neutron answered {method} {path} with {status} {kind}: {message}")]
    Api { method: String, path: String, status: u16, kind: String, message: String },
    /// No answer: the connection failed or broke, or the call's timeout passed. Whether a write
    /// took effect is unknown.
    #[error("no answer from Neutron at {url} for {method} {path}: {what}")]
    Transport { url: String, method: String, path: String, what: String },
    /// An answer that is not what the API documents.
    #[error("unexpected answer from Neutron to {method} {path}: {what}")]
    Decode { method: String, path: String, what: String },
    /// Keystone refused to issue a token (or answered without one).
    #[error("Keystone at {url} refused a token ({status}): {message}")]
    Auth { url: String, status: u16, message: String },
    /// The retries ran out; the last failure.
    #[error("{tries} tries failed; the last: {last}")]
    Exhausted { tries: u32, last: Box<Error> },
}

/// `NeutronError.type`s of a 409 that no retry will change.
const PERMANENT_CONFLICTS: [&str; 5] =
    ["IpAddressAlreadyAllocated", "MacAddressInUse", "IpAddressGenerationFailure", "OverQuota", "InvalidIpForSubnet"];

impl Error {
    /// Whether trying again may succeed: no answer, 5xx, and conflicts that come from Neutron's
    /// own races (a retried database transaction, a concurrent allocation); not 4xx about the
    /// request itself, nor the conflicts that stay (an address in use, a quota).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Api { status, kind, .. } => match *status {
                409 => !PERMANENT_CONFLICTS.contains(&kind.as_str()),
                500 | 502 | 503 | 504 => true,
                _ => false,
            },
            Error::Auth { status, .. } => *status >= 500,
            Error::Decode { .. } | Error::Exhausted { .. } => false,
        }
    }

    /// Whether a write's outcome is unknown (it may have taken effect).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Error::Transport { .. }) || matches!(self, Error::Api { status, .. } if *status >= 500)
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::Exhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// `NeutronError.type` of an API error.
    pub fn kind(&self) -> Option<&str> {
        match self {
            Error::Api { kind, .. } => Some(kind),
            Error::Exhausted { last, .. } => last.kind(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, kind: &str) -> Error {
        Error::Api { method: "POST".into(), path: "/v2.0/ports".into(), status, kind: kind.into(), message: String::new() }
    }

    #[test]
    fn which_failures_are_retried() {
        let transport = Error::Transport { url: "u".into(), method: "POST".into(), path: "p".into(), what: "reset".into() };
        assert!(transport.is_transient() && transport.outcome_unknown());
        for (status, kind, transient, unknown) in [
            (500, "MechanismDriverError", true, true),
            (503, "", true, true),
            (409, "IpAddressAlreadyAllocated", false, false),
            (409, "MacAddressInUse", false, false),
            (409, "OverQuota", false, false),
            (409, "DBDeadlock", true, false),
            (400, "BadRequest", false, false),
            (404, "PortNotFound", false, false),
            (403, "PolicyNotAuthorized", false, false),
        ] {
            let e = api(status, kind);
            assert_eq!((e.is_transient(), e.outcome_unknown()), (transient, unknown), "{status} {kind}");
        }
        let ex = Error::Exhausted { tries: 3, last: Box::new(api(409, "MacAddressInUse")) };
        assert_eq!((ex.status(), ex.kind(), ex.is_transient()), (Some(409), Some("MacAddressInUse"), false));
    }
}
