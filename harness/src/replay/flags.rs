//! Envoy response-flag short codes → the legacy `ResponseFlag` bitmask that `response.flags`
//! carries. Bit table: Istio's copy in `extensions/common/util.cc` (1.17), which is Envoy's
//! `StreamInfo::ResponseFlag` enum order (stats-spec §3.7).

/// (short code, bit), in bit order.
pub const FLAG_BITS: [(&str, u64); 27] = [
    ("LH", 0x1),
    ("UH", 0x2),
    ("UT", 0x4),
    ("LR", 0x8),
    ("UR", 0x10),
    ("UF", 0x20),
    ("UC", 0x40),
    ("UO", 0x80),
    ("NR", 0x100),
    ("DI", 0x200),
    ("FI", 0x400),
    ("RL", 0x800),
    ("UAEX", 0x1000),
    ("RLSE", 0x2000),
    ("DC", 0x4000),
    ("URX", 0x8000),
    ("SI", 0x10000),
    ("IH", 0x20000),
    ("DPE", 0x40000),
    ("UMSDR", 0x80000),
    ("RFCF", 0x100000),
    ("NFCF", 0x200000),
    ("DT", 0x400000),
    ("UPE", 0x800000),
    ("NC", 0x1000000),
    ("OM", 0x2000000),
    ("DF", 0x4000000),
];

/// Parses `"-"`, `""`, `"UO"`, `"UF,URX"` (commas, optional spaces; order free; repeats OR'd).
/// An unknown code is an error naming it.
pub fn parse_flags(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() || s == "-" {
        return Ok(0);
    }
    s.split(',').try_fold(0u64, |acc, code| {
        let code = code.trim();
        FLAG_BITS
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, bit)| acc | bit)
            .ok_or_else(|| format!("unknown response flag {code:?} (known: {})", known_codes()))
    })
}

fn known_codes() -> String {
    FLAG_BITS
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_envoy_bits() {
        assert_eq!(parse_flags("-"), Ok(0));
        assert_eq!(parse_flags(""), Ok(0));
        assert_eq!(parse_flags("UO"), Ok(0x80));
        assert_eq!(parse_flags("UF,URX"), Ok(0x20 | 0x8000));
        assert_eq!(parse_flags("URX, UF"), Ok(0x8020));
        assert_eq!(parse_flags("NR"), Ok(0x100));
        assert_eq!(parse_flags("DF"), Ok(0x400_0000));
    }

    #[test]
    fn table_is_one_bit_each_in_order() {
        for (i, (_, bit)) in FLAG_BITS.iter().enumerate() {
            assert_eq!(*bit, 1u64 << i);
        }
    }

    #[test]
    fn unknown_code_is_an_error() {
        let err = parse_flags("UO,XX").unwrap_err();
        assert!(err.contains("\"XX\""), "{err}");
        assert!(
            parse_flags("uo").is_err(),
            "codes are case-sensitive like Envoy's"
        );
    }
}
