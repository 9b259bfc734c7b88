//! What the benchmark reads about the server process from `/proc`.

use std::time::Duration;

/// Resident memory now (`VmRSS`) and at its peak so far (`VmHWM`), in bytes.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) the process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_process_has_memory_and_cpu_time() {
        let pid = std::process::id();
        let (rss, peak) = memory(pid).unwrap();
        assert!(rss > 0 && peak >= rss);
        let before = cpu_time(pid).unwrap();
        let busy = std::time::Instant::now();
        while busy.elapsed() < Duration::from_millis(200) {
            std::hint::black_box(busy.elapsed());
        }
        let used = cpu_time(pid).unwrap() - before;
        // At least a good part of the busy loop, and no more than every core for as long
        // (other tests of this binary may run meanwhile): a wrong field or unit falls outside.
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as u32;
        assert!(used >= Duration::from_millis(50), "{used:?}");
        assert!(
            used <= busy.elapsed() * cores + Duration::from_millis(20),
            "{used:?}"
        );
    }
}
