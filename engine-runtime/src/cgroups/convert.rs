//! Conversions between cgroup v1 values (what the OCI spec speaks) and v2 ones.
//! The formulas are runc's, so a container gets the same limits whichever
//! runtime built it.

use engine_core::{Error, Result};

/// `cpu.shares` (v1, 2..262144) to `cpu.weight` (v2, 1..10000); 0 means unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// `blkio.weight` (v1, 10..1000) to `io.weight` (v2, 1..10000); 0 means unset.
pub fn blkio_weight_to_io_weight(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    let weight = weight.clamp(10, 1000);
    1 + (weight - 10) * 9999 / 990
}

/// The v2 `memory.swap.max` for the OCI `swap` (memory+swap, as v1's
/// `memory.memsw.limit_in_bytes`) and `limit`. `-1` is unlimited; `0` unset.
pub fn memory_swap_to_v2(swap: i64, limit: i64) -> Result<i64> {
    // Unlimited memory with swap unset: unlimited swap too (v1 compatibility).
    if limit == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if limit == 0 || limit == -1 {
        return Err(Error::invalid("linux.resources.memory.swap", format!("swap limit {swap} needs a memory limit")));
    }
    if swap < limit {
        return Err(Error::invalid(
            "linux.resources.memory.swap",
            format!("memory+swap limit {swap} is below the memory limit {limit}"),
        ));
    }
    Ok(swap - limit)
}

/// `cpu.max` for a quota and period (µs); `None` when neither is set.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota = quota.unwrap_or(0);
    let period = period.unwrap_or(0);
    if quota == 0 && period == 0 {
        return None;
    }
    let mut s = if quota > 0 { quota.to_string() } else { "max".to_string() };
    if period != 0 {
        s.push(' ');
        s.push_str(&period.to_string());
    }
    Some(s)
}

/// A v2 limit value: negative is `max`.
pub fn v2_limit(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// The kernel's hugepage size names (`2MB`, `1GB`) on this host, from
/// `/sys/kernel/mm/hugepages/hugepages-<N>kB`.
pub fn host_hugepage_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else { return Vec::new() };
    let mut out: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = name.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()?;
            Some(hugepage_name(kb))
        })
        .collect();
    out.sort();
    out
}

/// `2048` kB → `2MB`, `1048576` → `1GB`, `64` → `64KB` (the cgroup file names).
pub fn hugepage_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb.is_multiple_of(1 << 20) {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb.is_multiple_of(1 << 10) {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_weight_matches_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(512), 20);
    }

    #[test]
    fn blkio_weight_matches_runc() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(0), 0);
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(memory_swap_to_v2(0, -1).unwrap(), -1);
        assert_eq!(memory_swap_to_v2(-1, 100).unwrap(), -1);
        assert_eq!(memory_swap_to_v2(0, 100).unwrap(), 0);
        assert_eq!(memory_swap_to_v2(300, 100).unwrap(), 200);
        assert!(memory_swap_to_v2(50, 100).unwrap_err().to_string().contains("below"));
        assert!(memory_swap_to_v2(50, 0).is_err());
    }

    #[test]
    fn cpu_max_formats() {
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(cpu_max(Some(50_000), Some(100_000)).as_deref(), Some("50000 100000"));
        assert_eq!(cpu_max(Some(-1), Some(100_000)).as_deref(), Some("max 100000"));
        assert_eq!(cpu_max(Some(20_000), None).as_deref(), Some("20000"));
    }

    #[test]
    fn hugepage_names() {
        assert_eq!(hugepage_name(2048), "2MB");
        assert_eq!(hugepage_name(1_048_576), "1GB");
        assert_eq!(hugepage_name(64), "64KB");
    }
}
