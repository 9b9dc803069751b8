//! gRPC over unix sockets: client channels, and the identity of a socket file (to notice that
//! it was deleted or re-created).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::{Error, Result};

/// Connects a gRPC channel to the unix socket `path`. The URI is a placeholder required by
/// tonic; every connection goes to `path`.
pub async fn channel(path: &Path) -> Result<Channel> {
    let target: PathBuf = path.to_path_buf();
    let endpoint = Endpoint::from_static("http://localhost");
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let target = target.clone();
            async move { UnixStream::connect(target).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| Error::Connect { path: path.to_path_buf(), source })
}

/// What distinguishes one socket file from a later one at the same path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    ctime: i64,
    ctime_nsec: i64,
}

/// The identity of the file at `path`, or `None` when there is none.
pub fn file_id(path: &Path) -> Option<FileId> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some(FileId { dev: m.dev(), ino: m.ino(), ctime: m.ctime(), ctime_nsec: m.ctime_nsec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_identity_changes_when_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.sock");
        assert_eq!(file_id(&p), None);
        let l1 = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let a = file_id(&p).unwrap();
        assert_eq!(file_id(&p), Some(a));
        drop(l1);
        std::fs::remove_file(&p).unwrap();
        let _l2 = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let b = file_id(&p).unwrap();
        assert_ne!(a, b);
    }
}
