//! The process's resident memory and CPU time, from `/proc/self` (Linux; elsewhere the
//! metrics are left out).

/// One reading.
pub(super) struct ProcStats {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User plus system CPU time in seconds.
    pub cpu_seconds: f64,
}

/// Reads `/proc/self/stat` and `/proc/self/statm`; None where they are missing or odd.
pub(super) fn read() -> Option<ProcStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    parse(&stat, &statm, page_size()?, clock_ticks()?)
}

/// This process's CPU time so far, user plus system, in ns (`CLOCK_PROCESS_CPUTIME_ID`:
/// finer than `stat`'s clock ticks); 0 if the clock is unavailable.
pub fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// This process's resident memory in bytes, from `/proc/self/statm`.
pub fn process_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident * page_size()?)
}

fn page_size() -> Option<u64> {
    // SAFETY: sysconf reads a constant of the system and has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (v > 0).then_some(v as u64)
}

fn clock_ticks() -> Option<u64> {
    // SAFETY: as above.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (v > 0).then_some(v as u64)
}

/// `stat`'s utime and stime are its fields 14 and 15 (proc(5)); counting starts after the
/// command name's closing parenthesis, since the name itself may hold spaces.
fn parse(stat: &str, statm: &str, page: u64, ticks: u64) -> Option<ProcStats> {
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state).
    let utime: u64 = f.get(14 - 3)?.parse().ok()?;
    let stime: u64 = f.get(15 - 3)?.parse().ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(ProcStats {
        rss_bytes: resident * page,
        cpu_seconds: (utime + stime) as f64 / ticks as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (raft (bench) x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9 0";
        let p = parse(stat, "1000 300 20 1 0 50 0", 4096, 100).unwrap();
        assert_eq!(p.rss_bytes, 300 * 4096);
        assert!((p.cpu_seconds - 3.0).abs() < 1e-9);
        assert!(parse("garbage", "1 2", 4096, 100).is_none());
    }

    #[test]
    fn reads_this_process() {
        let p = read().expect("/proc/self on Linux");
        assert!(p.rss_bytes > 0);
        assert!(process_rss_bytes().unwrap() > 0);
        assert!(process_cpu_ns() > 0);
    }
}
