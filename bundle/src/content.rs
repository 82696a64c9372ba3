//! Encoding of bundle resource contents (Fleet's `internal/content`).

use std::io::{Read as _, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
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

thread_local! {
    /// One inflate state per thread, reset for every member: making one allocates and clears
    /// tens of KiB (its window and tables), more than inflating a small manifest costs.
    static INFLATE: std::cell::RefCell<Option<flate2::Decompress>> =
        const { std::cell::RefCell::new(None) };
}

/// Gunzips `data` (one or more gzip members, as `flate2::read::MultiGzDecoder` reads them),
/// reusing this thread's inflate state for a file of one member.
pub fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    if let Some(out) = gunzip_single_member(data) {
        return Ok(out);
    }
    // Anything the fast path does not take (several members, a damaged stream) is read by
    // flate2's decoder, which says what is wrong with it.
    let mut out = Vec::new();
    MultiGzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// The content of a gzip file holding exactly one well-formed member (RFC 1952), checked
/// against its CRC-32 and length; `None` for anything else.
fn gunzip_single_member(data: &[u8]) -> Option<Vec<u8>> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let (header, mut rest) = data.split_at_checked(10)?;
    if header[..3] != [0x1f, 0x8b, 8] || header[3] & 0xe0 != 0 {
        return None;
    }
    let flags = header[3];
    if flags & FEXTRA != 0 {
        let (len, after) = rest.split_at_checked(2)?;
        rest = after.get(usize::from(u16::from_le_bytes([len[0], len[1]]))..)?;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = rest.iter().position(|b| *b == 0)?;
            rest = &rest[end + 1..];
        }
    }
    if flags & FHCRC != 0 {
        rest = rest.get(2..)?;
    }
    let (body, trailer) = rest.split_at_checked(rest.len().checked_sub(8)?)?;
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    // The stored length is only a hint (it is the length modulo 2^32, and may lie).
    let mut out = Vec::with_capacity(usize::try_from(size).ok()?.min(16 << 20));
    INFLATE.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let inflate = slot.get_or_insert_with(|| flate2::Decompress::new(false));
        inflate.reset(false);
        let mut input = body;
        loop {
            if out.capacity() - out.len() < 4096 {
                out.reserve(out.capacity().max(4096));
            }
            let (read, written) = (inflate.total_in(), out.len());
            let status = inflate
                .decompress_vec(input, &mut out, flate2::FlushDecompress::None)
                .ok()?;
            let consumed = usize::try_from(inflate.total_in() - read).ok()?;
            input = input.get(consumed..)?;
            match status {
                // The deflate stream must end exactly where the trailer starts: anything
                // between is another member.
                flate2::Status::StreamEnd => return input.is_empty().then_some(()),
                _ if consumed > 0 || out.len() > written => {}
                _ => return None,
            }
        }
    })?;
    let mut check = flate2::Crc::new();
    check.update(&out);
    (check.sum() == crc && check.amount() == size).then_some(out)
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
        return gunzip(&data).map_err(|e| format!("invalid gzip content: {e}"));
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
    fn gzip_with(header_flags: u8, extra: &[u8], members: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for data in members {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
            let _ = encoder.write_all(data);
            let member = encoder.finish().unwrap();
            out.extend_from_slice(&member[..3]);
            out.push(header_flags);
            out.extend_from_slice(&member[4..10]);
            out.extend_from_slice(extra);
            out.extend_from_slice(&member[10..]);
        }
        out
    }

    #[test]
    fn gunzip_reads_what_flate2_reads() {
        let data = b"apiVersion: v1\nkind: ConfigMap\n".repeat(500);
        let plain = gzip_with(0, &[], &[&data]);
        assert_eq!(gunzip(&plain).unwrap(), data);
        // A name, a comment and extra fields in the header are skipped.
        let named = gzip_with(4 | 8 | 16, b"\x02\x00abname\x00comment\x00", &[&data]);
        assert_eq!(gunzip(&named).unwrap(), data);
        // Several members are read one after the other.
        let two = gzip_with(0, &[], &[b"first ", b"second"]);
        assert_eq!(gunzip(&two).unwrap(), b"first second");
        // The thread's state is reused and reset: a second file reads the same.
        assert_eq!(gunzip(&plain).unwrap(), data);
        assert_eq!(gunzip(&gzip_with(0, &[], &[b""])).unwrap(), b"");
    }

    #[test]
    fn gunzip_refuses_damaged_files() {
        let data = b"some manifest".repeat(10);
        let good = gzip_with(0, &[], &[&data]);
        let mut bad_crc = good.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 0xff;
        assert!(gunzip(&bad_crc).is_err());
        assert!(gunzip(&good[..good.len() - 3]).is_err());
        assert!(gunzip(&good[..12]).is_err());
        assert!(gunzip(b"not gzip at all").is_err());
    }
}
