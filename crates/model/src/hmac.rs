//! HMAC-SHA256 (RFC 2104 over [`crate::sha256`]) and the hand-off signature a node agent checks
//! before it plugs a logical port whose name does not derive from the pod (a backend's own port
//! IDs, e.g. Neutron's): only a holder of the cluster's hand-off key (the controller) can make one.

use crate::sha256::sha256;

const BLOCK: usize = 64;

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Vec::with_capacity(BLOCK + data.len());
    inner.extend(k.iter().map(|b| b ^ 0x36));
    inner.extend_from_slice(data);
    let mut outer = Vec::with_capacity(BLOCK + 32);
    outer.extend(k.iter().map(|b| b ^ 0x5c));
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The least length of a hand-off key, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// The hand-off key in `path` can not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("hand-off key {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("hand-off key {path} has {len} bytes; at least {MIN_KEY_LEN} are needed (e.g. head -c 32 /dev/urandom)")]
    Short { path: String, len: usize },
}

/// The hand-off key in file `path` (a mounted Secret, read by the controller that signs and the
/// node agents that check): `None` when the file does not exist (the Secret is optional).
pub fn read_key_file(path: &std::path::Path) -> Result<Option<Vec<u8>>, KeyFileError> {
    let shown = || path.display().to_string();
    match std::fs::read(path) {
        Ok(k) if k.len() >= MIN_KEY_LEN => Ok(Some(k)),
        Ok(k) => Err(KeyFileError::Short { path: shown(), len: k.len() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyFileError::Read { path: shown(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 4231 test cases 1, 2, 3, 6 and 7 (7: a key and data longer than a block).
    #[test]
    fn rfc4231_vectors() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 5] = [
            (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, want) in cases {
            assert_eq!(hex(&hmac_sha256(&key, &data)), want);
            assert_eq!(hmac_sha256(&key, &data).to_vec(), unhex(want));
        }
    }

    #[test]
    fn equality_without_early_exit() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab"));
    }
}
