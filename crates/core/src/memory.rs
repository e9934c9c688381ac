//! Sizes in checked arithmetic, and the host memory they are checked against before anything
//! is allocated: a size that does not fit is refused with the figure, the limit and the fix
//! instead of aborting in the allocator (or, in a release build, wrapping around).

/// `a * b * ...` in u64, None on overflow.
pub fn product(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f))
}

/// A byte count for people: "512 B", "3.0 KiB", "12.0 GiB", ... "4.0 EiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Host memory available to this process: MemAvailable of /proc/meminfo on Linux (memory
/// that can be allocated without swapping). None where that is not known; then only the
/// address-space bound of [`check_host`] applies.
pub fn available_host_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Refuses to allocate `bytes` (None: the size overflowed 64 bits) of host memory for
/// `what` when it exceeds what the machine has available, or what one allocation can hold
/// (isize::MAX). `fix` says what to change.
pub fn check_host(what: &str, bytes: Option<u64>, fix: &str) -> Result<(), String> {
    let Some(bytes) = bytes else {
        return Err(format!(
            "{what} needs more than 2^64 bytes of host memory: {fix}"
        ));
    };
    if bytes > isize::MAX as u64 {
        return Err(format!(
            "{what} needs {} of host memory, more than one allocation can hold ({}): {fix}",
            human_bytes(bytes),
            human_bytes(isize::MAX as u64)
        ));
    }
    if let Some(avail) = available_host_bytes() {
        if bytes > avail {
            return Err(format!(
                "{what} needs {} of host memory; this machine has {} available: {fix}",
                human_bytes(bytes),
                human_bytes(avail)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_overflow_to_none_and_read_well() {
        assert_eq!(product(&[3, 4, 5]), Some(60));
        assert_eq!(product(&[1 << 40, 1 << 30]), None);
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12 << 30), "12.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn petabytes_are_refused_before_allocating() {
        let err = check_host("the test", Some(1 << 50), "use less").unwrap_err();
        assert!(err.contains("1.0 PiB") && err.contains("use less"), "{err}");
        let err = check_host("the test", None, "use less").unwrap_err();
        assert!(err.contains("2^64"), "{err}");
        assert!(check_host("the test", Some(1 << 10), "use less").is_ok());
    }
}
