//! CPU time per component and peak memory of this process, read from `/proc` (Linux). The
//! controller and the agents run on runtimes whose worker threads carry a name prefix, so the
//! CPU time of each thread can be attributed to its component; on a runtime they share, its
//! threads' CPU time is split in proportion to what their tasks were charged.

use std::collections::BTreeMap;

use crate::system::ComponentAccounts;

/// Thread-name prefix of the controller's runtime.
pub const CONTROLLER_THREADS: &str = "fleet-ctrl";
/// Thread-name prefix of the agents' runtime.
pub const AGENT_THREADS: &str = "fleet-agent";
/// Thread-name prefix of the runtime the agents renew their Leases on (counted as agents).
pub const AGENT_LEASE_THREADS: &str = "fleet-agent-lease";
/// Thread-name prefix of a runtime the controller and the agents share.
pub const SHARED_THREADS: &str = "fleet-shared";

/// Linux reports thread times in USER_HZ ticks, which is 100 on every architecture Rust targets.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) per component, from every live thread of this process.
/// Threads whose name starts with no component's prefix count as `simulator` (the benchmark
/// driver, the simulated clusters' behaviour and the store). The threads of a shared runtime
/// are split between the controller, the agents and the driver's tasks there (`simulator`) as
/// `accounts` say their tasks used them (all to the agents when nothing was charged). Empty
/// where `/proc` is unavailable.
pub fn cpu_seconds_by_component(accounts: &ComponentAccounts) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    let mut shared = 0.0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((name, seconds)) = parse_thread_stat(&stat) else {
            continue;
        };
        let component = if name.starts_with(SHARED_THREADS) {
            shared += seconds;
            continue;
        } else if name.starts_with(CONTROLLER_THREADS) {
            "controller"
        } else if name.starts_with(AGENT_THREADS) {
            "agents"
        } else {
            "simulator"
        };
        *out.entry(component.to_string()).or_insert(0.0) += seconds;
    }
    let split = split_shared(shared, accounts);
    *out.entry("controller".to_string()).or_insert(0.0) += split.controller;
    *out.entry("agents".to_string()).or_insert(0.0) += split.agents;
    if split.driver > 0.0 {
        *out.entry("simulator".to_string()).or_insert(0.0) += split.driver;
    }
    out
}

/// A shared runtime's CPU seconds by whose tasks used them.
#[derive(Debug, PartialEq)]
struct SharedSplit {
    controller: f64,
    agents: f64,
    driver: f64,
}

/// `seconds` of a shared runtime's threads in proportion to what each account was charged:
/// the time of the runtime itself (scheduling, parking) goes to all alike.
fn split_shared(seconds: f64, accounts: &ComponentAccounts) -> SharedSplit {
    let controller = accounts.controller.charged().as_secs_f64();
    let agents = accounts.agents.charged().as_secs_f64();
    let driver = accounts.driver.charged().as_secs_f64();
    let charged = controller + agents + driver;
    if charged <= 0.0 {
        return SharedSplit {
            controller: 0.0,
            agents: seconds,
            driver: 0.0,
        };
    }
    let controller = seconds * controller / charged;
    let driver = seconds * driver / charged;
    SharedSplit {
        controller,
        agents: seconds - controller - driver,
        driver,
    }
}

/// `(thread name, user + system CPU seconds)` from one `/proc/<pid>/task/<tid>/stat` line.
/// The name is in parentheses and may itself contain spaces or parentheses, so the fields are
/// counted from the last `)`.
pub fn parse_thread_stat(stat: &str) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state(3) ppid(4) … utime is field 14 and stime field 15 of the line,
    // i.e. indexes 11 and 12 of what follows the name.
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / TICKS_PER_SECOND))
}

/// Peak resident set size of this process in bytes (`VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// Memory the kernel says can still be allocated without swapping (`MemAvailable`).
pub fn available_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    field_kib(&meminfo, "MemAvailable:").map(|kib| kib * 1024)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    field_kib(&status, field)
}

fn field_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_stat_with_spaces_in_the_name_is_parsed_from_the_last_parenthesis() {
        let line =
            "4242 (fleet-ctrl (1)) S 1 4242 4242 0 -1 4194368 100 0 0 0 250 50 0 0 20 0 8 0 1 1 1";
        let (name, seconds) = parse_thread_stat(line).unwrap();
        assert_eq!(name, "fleet-ctrl (1)");
        assert!((seconds - 3.0).abs() < 1e-9);
    }

    #[test]
    fn meminfo_fields_are_read_in_kib() {
        let text = "MemTotal:  1000 kB\nMemAvailable:   512 kB\n";
        assert_eq!(field_kib(text, "MemAvailable:"), Some(512));
        assert_eq!(field_kib(text, "Missing:"), None);
    }

    #[test]
    fn a_shared_runtime_is_split_as_its_tasks_were_charged() {
        let accounts = ComponentAccounts::default();
        // Nothing charged yet: the agents take it all (their registration starts first).
        assert_eq!(
            split_shared(4.0, &accounts),
            SharedSplit {
                controller: 0.0,
                agents: 4.0,
                driver: 0.0
            }
        );
        accounts
            .controller
            .charge(std::time::Duration::from_secs(1));
        accounts.agents.charge(std::time::Duration::from_secs(3));
        let split = split_shared(8.0, &accounts);
        assert!((split.controller - 2.0).abs() < 1e-9 && (split.agents - 6.0).abs() < 1e-9);
        assert_eq!(split.driver, 0.0);
        // The driver's tasks on the runtime (a recorder) are neither component's.
        accounts.driver.charge(std::time::Duration::from_secs(4));
        let split = split_shared(8.0, &accounts);
        assert!((split.controller - 1.0).abs() < 1e-9);
        assert!((split.agents - 3.0).abs() < 1e-9);
        assert!((split.driver - 4.0).abs() < 1e-9);
        // Read from `/proc`, both components are named (a shared runtime's share included).
        let by_component = cpu_seconds_by_component(&accounts);
        if !by_component.is_empty() {
            assert!(by_component.contains_key("controller") && by_component.contains_key("agents"));
        }
    }
}
