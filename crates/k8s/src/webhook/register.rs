//! Publishing a generated CA into the MutatingWebhookConfiguration's `caBundle`.

use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};

use super::WebhookError;

/// Strategic merge patch setting `caBundle` (base64 of the PEM) on every named webhook.
pub fn ca_bundle_patch(webhook_names: &[String], ca_pem: &str) -> Value {
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    let hooks: Vec<Value> = webhook_names.iter().map(|n| json!({"name": n, "clientConfig": {"caBundle": bundle}})).collect();
    json!({ "webhooks": hooks })
}

/// Set `caBundle` on every webhook of the MutatingWebhookConfiguration `config_name`.
/// Retries every 2 s for up to `wait` while it does not exist yet (it may be applied after the
/// webhook Deployment). Needs `get` and `patch` on that object.
pub async fn register_ca_bundle(client: kube::Client, config_name: &str, ca_pem: &str, wait: Duration) -> Result<(), WebhookError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let deadline = tokio::time::Instant::now() + wait;
    let err = |e: kube::Error| WebhookError::Register { name: config_name.to_string(), message: e.to_string() };
    let current = loop {
        match api.get_opt(config_name).await.map_err(err)? {
            Some(c) => break c,
            None if tokio::time::Instant::now() < deadline => {
                tracing::info!(name = config_name, "MutatingWebhookConfiguration not there yet; waiting");
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(left.min(Duration::from_secs(2))).await;
            }
            None => {
                return Err(WebhookError::Register {
                    name: config_name.to_string(),
                    message: "MutatingWebhookConfiguration does not exist".into(),
                })
            }
        }
    };
    let names: Vec<String> = current.webhooks.unwrap_or_default().into_iter().map(|w| w.name).collect();
    if names.is_empty() {
        return Err(WebhookError::Register { name: config_name.to_string(), message: "it has no webhooks".into() });
    }
    api.patch(config_name, &PatchParams::default(), &Patch::Strategic(ca_bundle_patch(&names, ca_pem))).await.map_err(err)?;
    tracing::info!(name = config_name, webhooks = names.len(), "published webhook CA bundle");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_shape() {
        let p = ca_bundle_patch(&["pods.kubetron.io".into()], "PEM");
        assert_eq!(p, json!({"webhooks": [{"name": "pods.kubetron.io", "clientConfig": {"caBundle": "UEVN"}}]}));
        // It is a valid MutatingWebhookConfiguration fragment.
        let typed: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "webhooks": [{"name": "pods.kubetron.io", "clientConfig": {"caBundle": "UEVN"}, "sideEffects": "None", "admissionReviewVersions": ["v1"]}]
        })).unwrap();
        assert_eq!(typed.webhooks.unwrap()[0].client_config.ca_bundle.as_ref().unwrap().0, b"PEM");
    }
}
