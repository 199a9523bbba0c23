//! Byte-string equality for wasm32, where `[u8] == [u8]` lowers to `memcmp` and compiler-builtins'
//! `memcmp` is a byte-at-a-time loop behind a call (~130 instructions for a 6-byte compare in
//! wasmtime). Used for metric-cache keys (stats) and CEL string comparisons (both plugins).

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

#[cfg(test)]
mod tests {
    use super::*;

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
