//! Encoding of bundle resource contents (Fleet's `internal/content`).

use std::io::{Read as _, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// The `encoding` of a resource whose content is gzipped and then base64-encoded.
pub const BASE64_GZ: &str = "base64+gz";

/// Gzips and base64-encodes `data`.
pub fn base64_gz(data: &[u8]) -> String {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    let gz = encoder.finish().unwrap_or_default();
    STANDARD.encode(gz)
}

/// Decodes a resource's content given its `encoding` (`""`, `base64`, `base64+gz`, `gz`).
pub fn decode(content: &str, encoding: &str) -> Result<Vec<u8>, String> {
    let mut encoding = encoding;
    let mut data = content.as_bytes().to_vec();
    if encoding == "base64" || encoding.starts_with("base64+") {
        data = STANDARD
            .decode(content.trim())
            .map_err(|e| format!("invalid base64 content: {e}"))?;
        encoding = encoding
            .trim_start_matches("base64")
            .trim_start_matches('+');
    }
    if encoding == "gz" {
        let mut out = Vec::new();
        GzDecoder::new(data.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format!("invalid gzip content: {e}"))?;
        return Ok(out);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data = b"apiVersion: v1\nkind: ConfigMap\n";
        let enc = base64_gz(data);
        assert_eq!(decode(&enc, BASE64_GZ).unwrap(), data);
        assert_eq!(decode("plain", "").unwrap(), b"plain");
        assert!(decode("!!", BASE64_GZ).is_err());
    }
}
