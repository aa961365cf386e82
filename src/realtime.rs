//! [`Settings::realtime`](crate::Settings::realtime): whether this process may use it (checked
//! before fork), and applying it in a Block's own process (after fork).

use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};

/// The lowest and highest `SCHED_FIFO` priorities on Linux.
pub(crate) const PRIORITIES: std::ops::RangeInclusive<u8> = 1..=99;

/// What decides whether real-time scheduling is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Privileges {
    /// `CAP_SYS_NICE` in the effective set: any `SCHED_FIFO` priority.
    pub cap_sys_nice: bool,
    /// `CAP_IPC_LOCK` in the effective set: `mlockall` without limit.
    pub cap_ipc_lock: bool,
    /// Soft `RLIMIT_RTPRIO` (`None`: unlimited): the highest priority allowed without
    /// `CAP_SYS_NICE`.
    pub rtprio: Option<u64>,
    /// Soft `RLIMIT_MEMLOCK` in bytes (`None`: unlimited).
    pub memlock: Option<u64>,
}

const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_NICE: u32 = 23;

impl Privileges {
    /// This process's privileges, read from `/proc/self/status` and the resource limits. If
    /// the capabilities cannot be read, root is taken to have them all.
    pub fn current() -> Self {
        let caps = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(if nix::unistd::geteuid().is_root() {
                u64::MAX
            } else {
                0
            });
        let limit = |r| match getrlimit(r) {
            Ok((soft, _)) if soft == RLIM_INFINITY => None,
            Ok((soft, _)) => Some(soft),
            Err(_) => Some(0),
        };
        Privileges {
            cap_sys_nice: caps & (1 << CAP_SYS_NICE) != 0,
            cap_ipc_lock: caps & (1 << CAP_IPC_LOCK) != 0,
            rtprio: limit(Resource::RLIMIT_RTPRIO),
            memlock: limit(Resource::RLIMIT_MEMLOCK),
        }
    }
}

/// Why `priority` cannot be used with these privileges (the message of the configuration
/// error, to be given the Block's name), or `None` if it can.
pub(crate) fn refusal(priority: u8, p: &Privileges) -> Option<String> {
    if !PRIORITIES.contains(&priority) {
        return Some(format!(
            "setting 'realtime' is {priority}; a SCHED_FIFO priority is from 1 (lowest) to 99; use Settings::realtime with a priority in that range"
        ));
    }
    let fifo_ok = p.cap_sys_nice || p.rtprio.is_none_or(|r| u64::from(priority) <= r);
    if !fifo_ok {
        return Some(format!(
            "setting 'realtime' is {priority}, which needs CAP_SYS_NICE (root has it) or an RLIMIT_RTPRIO of at least {priority} (now {}); raise it with `ulimit -r {priority}` or `@realtime - rtprio 99` in /etc/security/limits.conf (then log in again), or remove Settings::realtime",
            p.rtprio.unwrap_or(0)
        ));
    }
    if !p.cap_ipc_lock {
        if let Some(limit) = p.memlock {
            return Some(format!(
                "setting 'realtime' locks the Block's memory (mlockall), which needs CAP_IPC_LOCK (root has it) or an unlimited RLIMIT_MEMLOCK (now {} KiB); raise it with `ulimit -l unlimited` or `@realtime - memlock unlimited` in /etc/security/limits.conf (then log in again), or remove Settings::realtime",
                limit / 1024
            ));
        }
    }
    None
}

/// In the Block's own process, before `prepare`: locks all its memory, present and future,
/// so the loop never waits for a page fault.
pub(crate) fn lock_memory() -> std::io::Result<()> {
    use nix::sys::mman::{mlockall, MlockAllFlags};
    mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE).map_err(std::io::Error::from)
}

/// In the Block's own process, after `prepare`: `SCHED_FIFO` at `priority` for its thread.
pub(crate) fn set_priority(priority: u8) -> std::io::Result<()> {
    crate::sys::set_realtime(priority)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Privileges = Privileges {
        cap_sys_nice: false,
        cap_ipc_lock: false,
        rtprio: Some(0),
        memlock: Some(8 << 20),
    };

    #[test]
    fn priorities_outside_1_to_99_are_refused_whatever_the_privileges() {
        let all = Privileges {
            cap_sys_nice: true,
            cap_ipc_lock: true,
            rtprio: None,
            memlock: None,
        };
        for p in [0, 100, 255] {
            let m = refusal(p, &all).expect("refused");
            assert!(m.contains("from 1 (lowest) to 99"), "{m}");
        }
        assert_eq!(refusal(1, &all), None);
        assert_eq!(refusal(99, &all), None);
    }

    #[test]
    fn an_unprivileged_process_is_told_which_limit_to_raise() {
        let m = refusal(50, &NONE).unwrap();
        assert!(
            m.contains("CAP_SYS_NICE") && m.contains("ulimit -r 50"),
            "{m}"
        );
        // RLIMIT_RTPRIO below the priority: still refused; at it: the memory lock is next.
        let low = Privileges {
            rtprio: Some(49),
            ..NONE
        };
        assert!(refusal(50, &low).unwrap().contains("(now 49)"));
        let rt = Privileges {
            rtprio: Some(50),
            ..NONE
        };
        let m = refusal(50, &rt).unwrap();
        assert!(m.contains("mlockall") && m.contains("8192 KiB"), "{m}");
        let ok = Privileges {
            memlock: None,
            ..rt
        };
        assert_eq!(refusal(50, &ok), None);
        let caps = Privileges {
            cap_sys_nice: true,
            cap_ipc_lock: true,
            ..NONE
        };
        assert_eq!(refusal(99, &caps), None);
    }
}
