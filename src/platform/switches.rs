//! A replica's misbehaviour switches (the service kit's
//! `/_stormproof/switches`) read and set over HTTP at the replica's own
//! address: how the local platform — and, from inside a cluster, the kube
//! platform — carries out the `switches` fault.

use std::time::Duration;

use super::{PlatformError, ServiceStatus};
use crate::systems::kit::SwitchState;

/// The address of `replica` in `status`, or `UnknownReplica` when it has
/// none (gone, or not started yet).
pub(super) fn address(status: &ServiceStatus, replica: &str) -> Result<String, PlatformError> {
    status
        .replicas
        .iter()
        .find(|r| r.id == replica)
        .and_then(|r| r.address.clone())
        .ok_or_else(|| PlatformError::UnknownReplica(replica.to_string()))
}

/// Reads the switches of the replica at `address`.
pub(super) async fn read(address: &str, replica: &str) -> Result<SwitchState, PlatformError> {
    let response = client()?.get(url(address)).send().await.map_err(|err| gone(err, replica))?;
    checked(response).await?.json().await.map_err(|err| PlatformError::Unreachable(format!("{replica}: switches are not JSON: {err}")))
}

/// Sets the switches of the replica at `address`.
pub(super) async fn write(address: &str, replica: &str, state: &SwitchState) -> Result<(), PlatformError> {
    let response = client()?.put(url(address)).json(state).send().await.map_err(|err| gone(err, replica))?;
    checked(response).await.map(|_| ())
}

fn url(address: &str) -> String {
    format!("http://{address}/_stormproof/switches")
}

fn client() -> Result<reqwest::Client, PlatformError> {
    crate::http_client().timeout(Duration::from_secs(10)).build().map_err(|err| PlatformError::Unreachable(err.to_string()))
}

/// A replica that refuses the connection has ended (a restarted one starts
/// with its switches off).
fn gone(err: reqwest::Error, replica: &str) -> PlatformError {
    if err.is_connect() { PlatformError::UnknownReplica(replica.to_string()) } else { PlatformError::Unreachable(format!("{replica}: {err}")) }
}

async fn checked(response: reqwest::Response) -> Result<reqwest::Response, PlatformError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(PlatformError::Refused(format!("switches answered {status}: {}", body.chars().take(200).collect::<String>())))
}
