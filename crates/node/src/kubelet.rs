//! Registration of a plugin with kubelet (`Registration.Register` on `kubelet.sock`).

use std::path::Path;
use std::time::Duration;

use tracing::info;

use crate::error::{Error, Result};
use crate::proto::registration_client::RegistrationClient;
use crate::proto::RegisterRequest;
use crate::{names, plugin, uds};

/// The device plugin API version kubetron speaks.
pub const API_VERSION: &str = "v1beta1";

/// The registration request of the plugin for `physnet`.
pub fn register_request(physnet: &str) -> RegisterRequest {
    RegisterRequest {
        version: API_VERSION.to_string(),
        endpoint: names::socket_name(physnet),
        resource_name: names::resource_name(physnet),
        options: Some(plugin::options()),
    }
}

/// Registers the plugin of `physnet` (already serving on its socket) with the kubelet listening
/// on `kubelet_socket`, within `timeout`.
pub async fn register(kubelet_socket: &Path, physnet: &str, timeout: Duration) -> Result<()> {
    let req = register_request(physnet);
    let resource = req.resource_name.clone();
    let call = async {
        let mut client = RegistrationClient::new(uds::channel(kubelet_socket).await?);
        client.register(req).await.map_err(|s| Error::Register {
            resource: resource.clone(),
            code: s.code(),
            message: s.message().to_string(),
        })
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(_)) => {
            info!(%resource, kubelet = %kubelet_socket.display(), "registered with kubelet");
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Timeout(format!("registering {resource} with {}", kubelet_socket.display()))),
    }
}
