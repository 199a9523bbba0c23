//! Envoy's property byte encodings (`serializeValue` in Envoy's wasm `context.cc`):
//! strings and bytes raw; int64/uint64/double 8 bytes little-endian; bool 1 byte; timestamps and
//! durations int64 nanoseconds; maps as Proxy-Wasm pairs (values serialised recursively); lists as
//! pairs with empty values. A fixed-size read fails unless the size is exact, as the C++ SDK's
//! `getValue<T>` does.

/// An int64 (or uint64, duration, timestamp) attribute: exactly 8 bytes LE.
pub fn as_i64(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(bytes.try_into().ok()?))
}

/// A uint64 attribute: exactly 8 bytes LE.
pub fn as_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// A double attribute: exactly 8 bytes LE IEEE-754.
pub fn as_f64(bytes: &[u8]) -> Option<f64> {
    Some(f64::from_le_bytes(bytes.try_into().ok()?))
}

/// A bool attribute: exactly 1 byte.
pub fn as_bool(bytes: &[u8]) -> Option<bool> {
    match bytes {
        [b] => Some(*b != 0),
        _ => None,
    }
}

/// Decodes the Proxy-Wasm pairs format:
/// `u32 N | N x (u32 key_len, u32 value_len) | N x (key, 0x00, value, 0x00)`, all LE.
/// Returns `None` for any truncated or inconsistent buffer instead of panicking. An empty buffer is
/// the empty map (Envoy returns a zero-length result for it).
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let read_u32 = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
    };
    let n = read_u32(0)?;
    // Each pair needs at least 8 bytes of sizes and 2 NULs; refuse absurd counts up front.
    if n > bytes.len() / 10 + 1 {
        return None;
    }
    let mut sizes = Vec::with_capacity(n);
    for i in 0..n {
        let at = 4 + i * 8;
        sizes.push((read_u32(at)?, read_u32(at + 4)?));
    }
    let mut pos = 4 + n * 8;
    let mut out = Vec::with_capacity(n);
    for (kl, vl) in sizes {
        let key = bytes.get(pos..pos.checked_add(kl)?)?;
        pos += kl;
        if bytes.get(pos) != Some(&0) {
            return None;
        }
        pos += 1;
        let value = bytes.get(pos..pos.checked_add(vl)?)?;
        pos += vl;
        if bytes.get(pos) != Some(&0) {
            return None;
        }
        pos += 1;
        out.push((key, value));
    }
    Some(out)
}

/// Encodes pairs in the same format (used by the fake host and the harness).
pub fn encode_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_match_the_rust_sdk_byte_vector() {
        // proxy-wasm-rust-sdk hostcalls.rs SERIALIZED_MAP for
        // [(":method","GET"),(":path","/bytes/1"),(":authority","httpbin.org"),("Powered-By","proxy-wasm"),("Content-Type","text/plain; charset=utf-8")]
        // starts with the count 5 and the size pairs (7,3),(5,8),(10,11),(10,10),(12,24).
        let pairs = [
            (":method", "GET"),
            (":path", "/bytes/1"),
            (":authority", "httpbin.org"),
            ("Powered-By", "proxy-wasm"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ];
        let bytes = encode_pairs(&pairs);
        assert_eq!(&bytes[0..4], &[5, 0, 0, 0]);
        assert_eq!(&bytes[4..12], &[7, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(
            &bytes[44..52],
            &[b':', b'm', b'e', b't', b'h', b'o', b'd', 0]
        );
        let back = decode_pairs(&bytes).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(
            back[4],
            (&b"Content-Type"[..], &b"text/plain; charset=utf-8"[..])
        );
    }

    #[test]
    fn truncated_pairs_are_rejected_not_panicking() {
        let bytes = encode_pairs(&[("a", "b")]);
        for cut in 0..bytes.len() {
            let _ = decode_pairs(&bytes[..cut]);
        }
        assert!(decode_pairs(&bytes[..bytes.len() - 1]).is_none());
        assert!(decode_pairs(&[255, 255, 255, 255]).is_none());
    }

    #[test]
    fn fixed_size_reads_require_exact_sizes() {
        assert_eq!(as_i64(&200i64.to_le_bytes()), Some(200));
        assert_eq!(as_i64(&[1, 2, 3]), None);
        assert_eq!(as_bool(&[1]), Some(true));
        assert_eq!(as_bool(&[1, 0]), None);
    }
}
