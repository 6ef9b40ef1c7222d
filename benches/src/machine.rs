//! Facts about the machine a run was measured on.

use std::fmt;

/// What the figures were measured on.
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu: String,
    /// Online logical CPUs.
    pub cores: usize,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// `kernel.io_uring_disabled` (0 = allowed), if readable.
    pub io_uring_disabled: Option<String>,
    /// `net.core.rmem_max`, if readable.
    pub rmem_max: Option<String>,
    /// UTC time of the run (`YYYY-MM-DD HH:MM`).
    pub when: String,
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

impl Machine {
    /// Reads the facts of this machine.
    pub fn probe() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into());
        Self {
            cpu,
            cores,
            kernel,
            io_uring_disabled: read_trim("/proc/sys/kernel/io_uring_disabled"),
            rmem_max: read_trim("/proc/sys/net/core/rmem_max"),
            when: utc_now(),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} UTC; CPU {} ({} logical cores, shared); Linux {}; io_uring_disabled={}; rmem_max={}",
            self.when,
            self.cpu,
            self.cores,
            self.kernel,
            self.io_uring_disabled.as_deref().unwrap_or("?"),
            self.rmem_max.as_deref().unwrap_or("?"),
        )
    }
}

/// Current UTC time as `YYYY-MM-DD HH:MM` (civil-from-days, no deps).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}
