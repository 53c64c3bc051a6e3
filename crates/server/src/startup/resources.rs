//! The CPU, memory and file descriptors this process may use: cgroup v2, else cgroup v1, else
//! the host's; the open-files limit from `/proc/self/limits` (it sizes the connection cap).
//!
//! In a container the host's numbers are a lie (24 GiB on the host, 512 MiB allowed), and a
//! model server that loads past its limit is OOM-killed mid-load with nothing in the log. So
//! the limits are read where the kernel enforces them, logged at start, and a set of models
//! that plainly cannot fit is refused with a message instead.

use std::path::Path;

/// The limits seen, and where each came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// CPUs this process may use (fractional under a CPU quota).
    pub cpus: f64,
    pub cpu_source: &'static str,
    /// Bytes of memory this process may use, when known.
    pub memory_bytes: Option<u64>,
    pub memory_source: &'static str,
    /// The soft limit on open files, when known.
    pub open_files: Option<u64>,
}

/// Reads the limits under `root` (`/` in production; a fake tree in tests).
pub fn detect(root: &Path) -> Limits {
    let host_cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let host_memory = host_memory_bytes(root);
    let read = |path: &str| std::fs::read_to_string(root.join(path)).ok();

    let (cpus, cpu_source) =
        if let Some(quota) = read("sys/fs/cgroup/cpu.max").and_then(|t| cgroup2_cpus(&t)) {
            (quota.min(host_cpus), "cgroup v2 cpu.max")
        } else if let Some(quota) = cgroup1_cpus(
            read("sys/fs/cgroup/cpu/cpu.cfs_quota_us").as_deref(),
            read("sys/fs/cgroup/cpu/cpu.cfs_period_us").as_deref(),
        ) {
            (quota.min(host_cpus), "cgroup v1 cpu.cfs_quota_us")
        } else {
            (host_cpus, "host")
        };

    let cgroup_memory = read("sys/fs/cgroup/memory.max")
        .and_then(|t| limit_bytes(&t).map(|b| (b, "cgroup v2 memory.max")))
        .or_else(|| {
            read("sys/fs/cgroup/memory/memory.limit_in_bytes")
                .and_then(|t| limit_bytes(&t).map(|b| (b, "cgroup v1 memory.limit_in_bytes")))
        });
    let (memory_bytes, memory_source) = match (cgroup_memory, host_memory) {
        (Some((limit, source)), Some(host)) if limit < host => (Some(limit), source),
        (Some((limit, source)), None) => (Some(limit), source),
        (_, Some(host)) => (Some(host), "host /proc/meminfo"),
        (None, None) => (None, "unknown"),
    };
    Limits {
        cpus,
        cpu_source,
        memory_bytes,
        memory_source,
        open_files: read("proc/self/limits").and_then(|t| open_files_limit(&t)),
    }
}

/// The soft "Max open files" of `/proc/self/limits`; `None` when unlimited or unreadable.
fn open_files_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `cpu.max`: "max 100000" (no quota) or "QUOTA PERIOD".
fn cgroup2_cpus(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let quota: f64 = parts.next()?.parse().ok()?;
    let period: f64 = parts.next()?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then_some(quota / period)
}

/// `cpu.cfs_quota_us` is -1 without a quota.
fn cgroup1_cpus(quota: Option<&str>, period: Option<&str>) -> Option<f64> {
    let quota: f64 = quota?.trim().parse().ok()?;
    let period: f64 = period?.trim().parse().ok()?;
    (quota > 0.0 && period > 0.0).then_some(quota / period)
}

/// A memory limit in bytes; "max" and cgroup v1's near-`i64::MAX` sentinel mean none.
fn limit_bytes(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < 1 << 60).then_some(bytes)
}

fn host_memory_bytes(root: &Path) -> Option<u64> {
    let meminfo = std::fs::read_to_string(root.join("proc/meminfo")).ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A size for people: `512 MiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Whether models of these file sizes plainly cannot fit in `limit`: an engine holds at least
/// every weight in memory, so more model bytes than the limit cannot load.
pub fn check_fit(limit: Option<u64>, model_bytes: &[(String, u64)]) -> Result<(), String> {
    let Some(limit) = limit else {
        return Ok(());
    };
    let total: u64 = model_bytes.iter().map(|(_, bytes)| bytes).sum();
    if total <= limit {
        return Ok(());
    }
    let sizes: Vec<String> = model_bytes
        .iter()
        .map(|(name, bytes)| format!("{name} {}", human_bytes(*bytes)))
        .collect();
    Err(format!(
        "the models need at least {} ({}) but the memory limit is {}",
        human_bytes(total),
        sizes.join(", "),
        human_bytes(limit)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        root
    }

    #[test]
    fn cgroup_v2_limits_win_over_the_host() {
        let root = tree(&[
            ("sys/fs/cgroup/cpu.max", "50000 100000\n"),
            ("sys/fs/cgroup/memory.max", "536870912\n"),
            ("proc/meminfo", "MemTotal:       25165824 kB\n"),
        ]);
        let limits = detect(root.path());
        assert_eq!(limits.cpus, 0.5);
        assert_eq!(limits.cpu_source, "cgroup v2 cpu.max");
        assert_eq!(limits.memory_bytes, Some(512 << 20));
        assert_eq!(limits.memory_source, "cgroup v2 memory.max");
    }

    #[test]
    fn cgroup_v1_limits_are_read_and_unlimited_means_the_host() {
        let root = tree(&[
            ("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "200000\n"),
            ("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"),
            (
                "sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("proc/meminfo", "MemTotal:       1048576 kB\n"),
        ]);
        let limits = detect(root.path());
        assert!(limits.cpus <= 2.0);
        assert_eq!(limits.memory_bytes, Some(1 << 30));
        assert_eq!(limits.memory_source, "host /proc/meminfo");
        let unlimited = tree(&[("sys/fs/cgroup/cpu.max", "max 100000\n")]);
        assert_eq!(detect(unlimited.path()).cpu_source, "host");
    }

    #[test]
    fn models_larger_than_the_limit_plainly_cannot_fit() {
        let models = [
            ("big".to_owned(), 700 << 20),
            ("small".to_owned(), 10 << 20),
        ];
        assert_eq!(check_fit(Some(1 << 30), &models), Ok(()));
        let err = check_fit(Some(512 << 20), &models).unwrap_err();
        assert_eq!(
            err,
            "the models need at least 710 MiB (big 700 MiB, small 10.0 MiB) but the memory limit is 512 MiB"
        );
    }
}
