//! Byte-string equality for wasm32, where `[u8] == [u8]` lowers to `memcmp` and compiler-builtins'
//! `memcmp` is a byte-at-a-time loop behind a call (~130 instructions for a 6-byte compare in
//! wasmtime). Used for metric-cache keys (stats) and CEL string comparisons (both plugins).
//! Also the one bytes→text conversion for host values, with an ASCII fast path.

/// `N` bytes of `s` from `at` as a word (zeros if out of range, which callers never ask for).
#[inline(always)]
fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
    let mut w = [0u8; N];
    if let Some(src) = s.get(at..at + N) {
        w.copy_from_slice(src);
    }
    w
}

/// Byte-string equality eight bytes at a time. The bytes after the last whole word are compared
/// as one word ending at the end (overlapping the previous one), and a string shorter than a
/// word as two overlapping halves (4 or 2 bytes): a byte loop over a tail cost ~8 wasm
/// instructions a byte, and most compared strings (methods, paths, label values) are short.
#[inline]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8.. => {
            for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
                if word::<8>(x, 0) != word::<8>(y, 0) {
                    return false;
                }
            }
            n.is_multiple_of(8) || word::<8>(a, n - 8) == word::<8>(b, n - 8)
        }
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        2..=3 => word::<2>(a, 0) == word::<2>(b, 0) && word::<2>(a, n - 2) == word::<2>(b, n - 2),
        1 => a.first() == b.first(),
        0 => true,
    }
}

/// A 64-bit hash of `bytes` for the plugins' byte-keyed tables (metric-cache and peer-cache
/// keys): FxHash's word step (rotate, xor, multiply by an odd 64-bit constant) over 8-byte words,
/// the tail read as in [`bytes_eq`], the length mixed in first. rustc-hash 2's `write` multiplies
/// into 128 bits, which wasm has no instruction for: ~2.5 wasm instructions a byte against ~0.8.
/// Not DoS-resistant (neither is the unkeyed hash of Istio's own cache); equal hashes are
/// always confirmed by comparing the keys.
#[inline]
pub fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let n = bytes.len();
    let mut h = step(0, n as u64);
    let tail = match n {
        8.. => {
            for c in bytes.chunks_exact(8) {
                h = step(h, u64::from_le_bytes(word::<8>(c, 0)));
            }
            if n.is_multiple_of(8) {
                return h;
            }
            u64::from_le_bytes(word::<8>(bytes, n - 8))
        }
        4..=7 => {
            u64::from(u32::from_le_bytes(word::<4>(bytes, 0)))
                | u64::from(u32::from_le_bytes(word::<4>(bytes, n - 4))) << 32
        }
        2..=3 => {
            u64::from(u16::from_le_bytes(word::<2>(bytes, 0)))
                | u64::from(u16::from_le_bytes(word::<2>(bytes, n - 2))) << 16
        }
        1 => u64::from(bytes.first().copied().unwrap_or(0)),
        0 => return h,
    };
    step(h, tail)
}

/// Whether every byte is ASCII, eight bytes at a time (on wasm32 `<[u8]>::is_ascii` works in
/// 4-byte words and cost nearly as much as `from_utf8`); the tail as in [`bytes_eq`].
#[inline]
pub fn is_ascii(bytes: &[u8]) -> bool {
    let n = bytes.len();
    let high = match n {
        8.. => {
            let mut high = 0u64;
            for c in bytes.chunks_exact(8) {
                high |= u64::from_ne_bytes(word::<8>(c, 0));
            }
            high | u64::from_ne_bytes(word::<8>(bytes, n - 8))
        }
        4..=7 => u64::from(
            u32::from_ne_bytes(word::<4>(bytes, 0)) | u32::from_ne_bytes(word::<4>(bytes, n - 4)),
        ),
        2..=3 => u64::from(
            u16::from_ne_bytes(word::<2>(bytes, 0)) | u16::from_ne_bytes(word::<2>(bytes, n - 2)),
        ),
        1 => u64::from(bytes.first().copied().unwrap_or(0)),
        0 => 0,
    };
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
    fn the_hash_sees_every_byte_and_the_length() {
        // Not a quality test: a change at any position, and a zero appended, change the hash
        // (for these inputs), so no byte is skipped by the word and tail reads (lengths past
        // several loop steps, every tail length).
        for len in 0..100usize {
            let a: Vec<u8> = (0..len as u8)
                .map(|b| b.wrapping_mul(29).wrapping_add(1))
                .collect();
            assert_eq!(hash(&a), hash(&a.clone()));
            for i in 0..len {
                let mut b = a.clone();
                b[i] ^= 0x01;
                assert_ne!(hash(&a), hash(&b), "len {len}, byte {i}");
            }
            let mut longer = a.clone();
            longer.push(0);
            assert_ne!(hash(&a), hash(&longer), "len {len}");
        }
    }

    #[test]
    fn equality_at_every_length_and_offset() {
        // Lengths past several loop steps, every tail length; a difference at each position
        // must be seen.
        for len in 0..100usize {
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
