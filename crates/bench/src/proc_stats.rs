//! CPU time and peak memory of processes, and the whole machine's busy time (other work on a
//! shared machine skews the figures), read from Linux's `/proc`.

use std::fmt::Display;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::Context;

/// Clock ticks a second (`getconf CLK_TCK`, asked once): the unit of the CPU times in
/// `/proc/PID/stat`.
pub(crate) fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        let output = Command::new("getconf").arg("CLK_TCK").output().ok();
        let text = output.and_then(|out| String::from_utf8(out.stdout).ok());
        let ticks = text.and_then(|text| text.trim().parse().ok());
        // Linux has used 100 on every architecture for decades.
        ticks.filter(|ticks| *ticks > 0).unwrap_or(100)
    })
}

/// The CPU fields of `/proc/PID/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    pub(crate) parent_pid: u32,
    /// User plus system time of the process itself (all its threads).
    pub(crate) own: u64,
    /// User plus system time of its children that it has waited for.
    pub(crate) reaped_children: u64,
}

/// Parses the text of `/proc/PID/stat`.
pub(crate) fn parse_stat(text: &str) -> anyhow::Result<CpuTimes> {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself:
    // the fields that follow start after the last ')'.
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .context("no ')' in /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..=17.
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {} of /proc/PID/stat", i + 3))
    };
    Ok(CpuTimes {
        parent_pid: u32::try_from(field(1)?)?,
        own: field(11)? + field(12)?,
        reaped_children: field(13)? + field(14)?,
    })
}

/// CPU times of process `pid` (`"self"`: this one, the load generator).
pub(crate) fn cpu_times(pid: impl Display) -> anyhow::Result<CpuTimes> {
    parse_stat(&read(format!("/proc/{pid}/stat"))?)
}

/// Peak resident memory (`VmHWM`) of `pid` since it started or since [`reset_peak_rss`], in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    parse_vm_hwm(&read(format!("/proc/{pid}/status"))?).context("no VmHWM")
}

fn read(path: impl AsRef<Path>) -> anyhow::Result<String> {
    let path = path.as_ref();
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets the peak resident memory of `pid` to its current size, so each workload gets a peak
/// of its own; false when the kernel refused (then the peak covers the process's whole life).
pub(crate) fn reset_peak_rss(pid: u32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Clock ticks all CPUs have been busy since boot: `/proc/stat`'s `cpu` line less idle and
/// iowait (guest time is already inside user time).
pub(crate) fn machine_busy_ticks() -> anyhow::Result<u64> {
    parse_machine_busy(&read("/proc/stat")?).context("no cpu line in /proc/stat")
}

fn parse_machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    (fields.len() >= 4).then_some(busy)
}

/// Total CPU ticks of a process tree rooted at `root` (PostgreSQL's postmaster and its
/// backends): each live child's own time, then the root's own and reaped children's. Exact while
/// no child exits during the reading: read after a workload's clients have gone (see
/// [`children`]).
pub(crate) fn tree_cpu_ticks(root: u32) -> anyhow::Result<u64> {
    let live: u64 = children(root)?.iter().map(|c| c.own).sum();
    let root_times = cpu_times(root)?;
    Ok(live + root_times.own + root_times.reaped_children)
}

/// The live children of `root`.
pub(crate) fn children(root: u32) -> anyhow::Result<Vec<CpuTimes>> {
    let mut children = Vec::new();
    for entry in fs::read_dir("/proc").context("reading /proc")?.flatten() {
        let pid = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok());
        // A process may end between listing and reading: it is no longer a live child.
        if let Some(times) = pid.and_then(|pid| cpu_times(pid).ok())
            && times.parent_pid == root
        {
            children.push(times);
        }
    }
    Ok(children)
}

/// The postmaster's pid, from the first line of `DATA/postmaster.pid`.
pub(crate) fn postmaster_pid(data_dir: &Path) -> anyhow::Result<u32> {
    let path = data_dir.join("postmaster.pid");
    let pid = read(&path)?
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok());
    pid.with_context(|| format!("{} does not start with a pid", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_fields_after_an_awkward_command_name() {
        let stat = "4242 (tokio (w) 1) S 17 4242 4242 0 -1 4194560 3011 0 0 0 \
                    250 40 7 3 20 0 9 0 12345 1000000 5000 18446744073709551615";
        assert_eq!(
            parse_stat(stat).unwrap(),
            CpuTimes {
                parent_pid: 17,
                own: 290,
                reaped_children: 10
            }
        );
    }

    #[test]
    fn reads_vm_hwm() {
        let status =
            "Name:\tgroups-server\nVmPeak:\t  900000 kB\nVmHWM:\t   21504 kB\nVmRSS:\t 20000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(21504));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn reads_the_machine_busy_time() {
        let stat = "cpu  100 5 50 9000 40 3 2 1 0 0\ncpu0 50 2 25 4500 20 1 1 0 0 0\n";
        assert_eq!(parse_machine_busy(stat), Some(161));
        assert_eq!(parse_machine_busy("intr 1 2 3\n"), None);
    }

    #[test]
    fn this_process_has_readable_figures() {
        assert!(machine_busy_ticks().is_ok());
        assert!(cpu_times("self").is_ok());
        assert!(peak_rss_kib(std::process::id()).unwrap() > 0);
    }
}
