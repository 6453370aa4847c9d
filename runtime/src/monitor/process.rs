//! Process resource use from `/proc/self` (Linux); `None` elsewhere.

/// Resident memory and CPU time used so far.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    /// Resident set size.
    pub rss_bytes: u64,
    /// User plus system CPU time.
    pub cpu_seconds: f64,
}

/// Reads `/proc/self/stat`: fields 14 and 15 are user and system time in
/// clock ticks, 24 the resident pages.
pub fn sample() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after its `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let ticks = field(14)? + field(15)?;
    let pages = field(24)?;
    // Linux reports in USER_HZ (100 on every architecture Linux exposes)
    // and 4 KiB pages on the platforms we build for.
    Some(Process {
        rss_bytes: pages * 4096,
        cpu_seconds: ticks as f64 / 100.0,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        if let Some(process) = super::sample() {
            assert!(process.rss_bytes > 1 << 20);
        }
    }
}
