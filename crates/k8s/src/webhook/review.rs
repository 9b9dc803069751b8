//! AdmissionReview v1 (`admission.k8s.io/v1`) documents: the fields the webhook reads and writes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// API version of AdmissionReview documents.
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";

/// An AdmissionReview: a request from the API server or the response to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// Always `admission.k8s.io/v1`.
    pub api_version: String,
    /// Always `AdmissionReview`.
    pub kind: String,
    /// Set in what the API server sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<AdmissionRequest>,
    /// Set in what the webhook answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<AdmissionResponse>,
}

impl AdmissionReview {
    /// Wrap a response.
    pub fn from_response(response: AdmissionResponse) -> Self {
        AdmissionReview {
            api_version: ADMISSION_API_VERSION.to_string(),
            kind: "AdmissionReview".to_string(),
            request: None,
            response: Some(response),
        }
    }
}

/// Group/version/kind as the review spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GroupVersionKind {
    /// API group, empty for core.
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// The request part of a review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Identifies this review; echoed in the response.
    pub uid: String,
    /// Kind of the object.
    #[serde(default)]
    pub kind: GroupVersionKind,
    /// Object name (may be empty on CREATE with generateName).
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace of the object.
    #[serde(default)]
    pub namespace: Option<String>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    #[serde(default)]
    pub operation: String,
    /// The object as submitted.
    #[serde(default)]
    pub object: Option<Value>,
    /// The object before the change (UPDATE).
    #[serde(default)]
    pub old_object: Option<Value>,
    /// True for dry runs.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Admit or refuse.
    pub allowed: bool,
    /// Why it was refused (shown to the user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// Base64 of a JSONPatch document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` when `patch` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Warnings shown by kubectl.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The subset of `metav1.Status` used in a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResponseStatus {
    /// HTTP-like code (400 malformed, 403 forbidden, 404 unknown network, 500 lookup failure).
    pub code: u16,
    /// Message shown to the user.
    pub message: String,
}

impl AdmissionResponse {
    /// Admit without changes.
    pub fn allow(uid: &str) -> Self {
        AdmissionResponse { uid: uid.to_string(), allowed: true, ..Default::default() }
    }

    /// Refuse with a code and a message.
    pub fn deny(uid: &str, code: u16, message: impl Into<String>) -> Self {
        AdmissionResponse {
            uid: uid.to_string(),
            allowed: false,
            status: Some(ResponseStatus { code, message: message.into() }),
            ..Default::default()
        }
    }
}
