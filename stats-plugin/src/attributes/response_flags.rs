//! `response.flags` bitmask → Istio's short string (`extensions/common/util.cc:29-217`,
//! stats-spec §3.7): `-` for none, else the known codes in bit order joined with `,`, then the
//! whole bitmask in decimal if a bit at or above `LastFlag << 1` is set.

use std::borrow::Cow;

/// Short codes in bit order (bit 0 = 0x1 …). `DF` (0x4000000) exists from Istio 1.14 on.
const CODES: [&str; 27] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF",
];

/// Which Istio flag table to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagTable {
    /// Istio 1.13: 26 flags, `LastFlag` = OverloadManager (0x2000000).
    Istio113,
    /// Istio 1.14–1.17: adds `DF` (DNS resolution failed, 0x4000000).
    Istio114Plus,
}

pub fn format(flags: u64, table: FlagTable) -> Cow<'static, str> {
    if flags == 0 {
        return Cow::Borrowed("-");
    }
    let known = match table {
        FlagTable::Istio113 => 26,
        FlagTable::Istio114Plus => 27,
    };
    let mut out = String::new();
    for (bit, code) in CODES.iter().take(known).enumerate() {
        if flags & (1u64 << bit) != 0 {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(code);
        }
    }
    // `if (response_flag >= (LastFlag << 1))` appends the whole integer.
    if flags >= (1u64 << known) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&flags.to_string());
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(format(0, FlagTable::Istio114Plus), "-");
        assert_eq!(format(0x2, FlagTable::Istio114Plus), "UH");
        assert_eq!(format(0x1 | 0x20, FlagTable::Istio114Plus), "LH,UF");
        // §3.7: 1.13 with UH|DF gives "UH,67108866"; 1.14+ knows DF.
        assert_eq!(format(0x2 | 0x4000000, FlagTable::Istio113), "UH,67108866");
        assert_eq!(format(0x2 | 0x4000000, FlagTable::Istio114Plus), "UH,DF");
        // A newer Envoy flag (e.g. DropOverload 0x8000000) is printed as the decimal bitmask.
        assert_eq!(format(0x8000000, FlagTable::Istio114Plus), "134217728");
        assert_eq!(format(0x2000000, FlagTable::Istio113), "OM");
    }
}
