//! Byte-string equality for wasm32, where `[u8] == [u8]` lowers to `memcmp` and compiler-builtins'
//! `memcmp` is a byte-at-a-time loop behind a call (~130 instructions for a 6-byte compare in
//! wasmtime). Used for metric-cache keys (stats) and CEL string comparisons (both plugins).
//! Also the one bytes→text conversion for host values, with an ASCII fast path.

/// Byte-string equality eight bytes at a time.
#[inline]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        let mut wx = [0u8; 8];
        let mut wy = [0u8; 8];
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        if u64::from_ne_bytes(wx) != u64::from_ne_bytes(wy) {
            return false;
        }
    }
    ar.iter().zip(br).all(|(x, y)| x == y)
}

/// Whether every byte is ASCII, eight bytes at a time (on wasm32 `<[u8]>::is_ascii` works in
/// 4-byte words and cost nearly as much as `from_utf8`).
#[inline]
pub fn is_ascii(bytes: &[u8]) -> bool {
    let chunks = bytes.chunks_exact(8);
    let rest = chunks.remainder();
    let mut high = 0u64;
    for c in chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        high |= u64::from_ne_bytes(w);
    }
    for &b in rest {
        high |= u64::from(b);
    }
    high & 0x8080_8080_8080_8080 == 0
}

/// Host bytes as text. Nearly every value Envoy returns is ASCII, and `core::str::from_utf8`
/// costs ~85–140 wasm instructions even for a short value (its alignment set-up dominates);
/// the word-wise ASCII check is a fraction of that. Anything else is validated in full.
#[inline]
pub fn as_str(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if is_ascii(bytes) {
        // SAFETY: ASCII is valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes)
    }
}

/// [`as_str`] taking ownership: `Err` hands the bytes back when they are not UTF-8.
#[inline]
pub fn into_string(bytes: Vec<u8>) -> Result<String, std::string::FromUtf8Error> {
    if is_ascii(&bytes) {
        // SAFETY: ASCII is valid UTF-8.
        Ok(unsafe { String::from_utf8_unchecked(bytes) })
    } else {
        String::from_utf8(bytes)
    }
}

/// [`into_string`], replacing invalid sequences with U+FFFD (header values may carry obs-text).
pub fn into_string_lossy(bytes: Vec<u8>) -> String {
    match into_string(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_check_sees_a_high_bit_at_every_position() {
        for len in 0..40usize {
            let a: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(is_ascii(&a));
            for i in 0..len {
                let mut b = a.clone();
                b[i] |= 0x80;
                assert!(!is_ascii(&b), "len {len}, high byte at {i}");
            }
        }
    }

    #[test]
    fn text_conversion_matches_std_for_ascii_utf8_and_invalid_bytes() {
        let cases: [&[u8]; 6] = [
            b"",
            b"GET",
            b"/items?x=1 long enough to take the word-wise path",
            "caf\u{e9} \u{2713}".as_bytes(),
            b"bad \xff byte",
            b"\xc3",
        ];
        for c in cases {
            assert_eq!(as_str(c).ok(), std::str::from_utf8(c).ok(), "{c:?}");
            assert_eq!(
                into_string(c.to_vec()).ok(),
                String::from_utf8(c.to_vec()).ok(),
                "{c:?}"
            );
            assert_eq!(
                into_string_lossy(c.to_vec()),
                String::from_utf8_lossy(c).into_owned(),
                "{c:?}"
            );
        }
    }

    #[test]
    fn equality_at_every_length_and_offset() {
        // Lengths around the 8-byte chunking; a difference at each position must be seen.
        for len in 0..40usize {
            let a: Vec<u8> = (0..len as u8).collect();
            assert!(bytes_eq(&a, &a.clone()));
            for i in 0..len {
                let mut b = a.clone();
                b[i] ^= 0x80;
                assert!(!bytes_eq(&a, &b), "len {len}, differing byte {i}");
            }
            let mut longer = a.clone();
            longer.push(0);
            assert!(!bytes_eq(&a, &longer));
        }
    }
}
