//! The port plan: every stack this tool deploys on its own takes its port
//! base from here, so no two of them can collide, and all of them stay
//! below the kernel's ephemeral range, where a load generator's outgoing
//! sockets would otherwise take their ports (docs/contracts.md, "Port plan").
//!
//! A stack on base `B` listens on `B + default_port` for each component,
//! that is within `B + 5432 ..= B + 9187`; bases 3800 apart keep those
//! windows disjoint, and seven of them fit below 32768.

use std::net::TcpListener;

use anyhow::{Result, bail};

use super::Component;

/// The first port of the kernel's ephemeral range on a default Linux
/// (`/proc/sys/net/ipv4/ip_local_port_range`); [`PlannedStack::allocate`]
/// reads the real one.
pub const EPHEMERAL_START_DEFAULT: u16 = 32768;

/// A stack this tool deploys for itself, with its fixed port base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedStack {
    /// `cargo xtask deploy` without `--port-base`: the operator's stack.
    Default,
    /// CI's system test.
    SystemTest,
    /// `cargo xtask dr-test`'s throwaway stacks.
    DrTest,
    /// `cargo xtask alert-sim`'s throwaway stack.
    AlertSim,
    /// `cargo xtask monitoring check --live`'s throwaway stack.
    MonitoringLive,
    /// `cargo xtask load-test`'s (and `bench`'s) throwaway stack.
    LoadTest,
    /// Kept free for a second stack deployed by hand
    /// (`cargo xtask deploy --state-dir DIR --port-base 22800`).
    Spare,
}

impl PlannedStack {
    pub const ALL: [PlannedStack; 7] = [
        Self::Default,
        Self::SystemTest,
        Self::DrTest,
        Self::AlertSim,
        Self::MonitoringLive,
        Self::LoadTest,
        Self::Spare,
    ];

    pub const fn port_base(self) -> u16 {
        match self {
            Self::Default => 0,
            Self::SystemTest => 3800,
            Self::DrTest => 7600,
            Self::AlertSim => 11400,
            Self::MonitoringLive => 15200,
            Self::LoadTest => 19000,
            Self::Spare => 22800,
        }
    }

    /// The name used in the throwaway stack's state directory.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::SystemTest => "ci",
            Self::DrTest => "dr-test",
            Self::AlertSim => "alert-sim",
            Self::MonitoringLive => "monitoring",
            Self::LoadTest => "load-test",
            Self::Spare => "spare",
        }
    }

    /// This stack's base, after checking every port it will listen on is
    /// free and below the ephemeral range.
    pub fn allocate(self) -> Result<u16> {
        check_base(self.port_base(), ephemeral_start())?;
        Ok(self.port_base())
    }
}

/// The throwaway stack of the plan whose ports a stack deployed by hand on
/// `base` would share (the default and the spare base are for such stacks).
pub fn overlapping(base: u16) -> Option<PlannedStack> {
    let (low, high) = window(base);
    PlannedStack::ALL.into_iter().find(|planned| {
        let (p_low, p_high) = window(planned.port_base());
        !matches!(planned, PlannedStack::Default | PlannedStack::Spare)
            && low <= p_high
            && p_low <= high
    })
}

/// The lowest and highest port a stack on `base` listens on.
pub fn window(base: u16) -> (u32, u32) {
    let ports = Component::ALL
        .iter()
        .filter_map(|c| c.default_port())
        .map(|p| u32::from(p) + u32::from(base));
    let low = ports.clone().min().unwrap_or(0);
    (low, ports.max().unwrap_or(0))
}

/// The ports a stack on `base` listens on.
pub fn ports(base: u16) -> impl Iterator<Item = (Component, u16)> {
    Component::ALL
        .into_iter()
        .filter_map(move |c| c.default_port().map(|p| (c, p.saturating_add(base))))
}

/// Fails, naming the port and its component, when a stack on `base` would
/// reach into the ephemeral range or finds a port taken.
pub fn check_base(base: u16, ephemeral_start: u16) -> Result<()> {
    let mut taken = Vec::new();
    for (component, port) in ports(base) {
        if u32::from(component.default_port().unwrap_or(0)) + u32::from(base)
            >= u32::from(ephemeral_start)
        {
            bail!(
                "port base {base} puts {component} on {port}, inside the kernel's ephemeral range (from {ephemeral_start}); pick a smaller base"
            );
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            taken.push(format!("{port} ({component})"));
        }
    }
    if !taken.is_empty() {
        bail!(
            "ports in use for a stack on port base {base}: {}; is another stack running there? `cargo xtask status --state-dir DIR` shows it, `cargo xtask down --state-dir DIR` stops it",
            taken.join(", ")
        );
    }
    Ok(())
}

/// `cargo xtask ci`'s podman `kube play` smoke (no port base: its
/// components take consecutive ports from the first of this window, below
/// every planned stack's window; docs/contracts.md, "Port plan").
pub const KUBE_PLAY_WINDOW: (u16, u16) = (5300, 5319);

/// The first ephemeral port of this kernel.
pub fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(EPHEMERAL_START_DEFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_planned_stacks_overlap() {
        for (i, a) in PlannedStack::ALL.iter().enumerate() {
            for b in &PlannedStack::ALL[i + 1..] {
                let (a_low, a_high) = window(a.port_base());
                let (b_low, b_high) = window(b.port_base());
                assert!(
                    a_high < b_low || b_high < a_low,
                    "{a:?} ({a_low}-{a_high}) overlaps {b:?} ({b_low}-{b_high})"
                );
            }
        }
    }

    #[test]
    fn every_planned_port_is_below_the_ephemeral_range() {
        for stack in PlannedStack::ALL {
            let (_, high) = window(stack.port_base());
            assert!(
                high < u32::from(EPHEMERAL_START_DEFAULT),
                "{stack:?} reaches {high}"
            );
            assert!(
                high < u32::from(ephemeral_start()),
                "{stack:?} reaches {high}"
            );
        }
    }

    #[test]
    fn the_kube_play_window_is_apart_from_every_planned_stack() {
        let (low, high) = KUBE_PLAY_WINDOW;
        assert!(low <= high && high < EPHEMERAL_START_DEFAULT);
        for stack in PlannedStack::ALL {
            let (s_low, s_high) = window(stack.port_base());
            assert!(
                u32::from(high) < s_low || s_high < u32::from(low),
                "{stack:?} ({s_low}-{s_high}) overlaps the kube play window"
            );
        }
    }

    #[test]
    fn a_hand_picked_base_is_told_whose_ports_it_shares() {
        assert_eq!(overlapping(2000), Some(PlannedStack::SystemTest));
        assert_eq!(overlapping(21000), Some(PlannedStack::LoadTest));
        assert_eq!(overlapping(PlannedStack::Spare.port_base()), None);
        assert_eq!(overlapping(0), None);
    }

    #[test]
    fn a_base_into_the_ephemeral_range_is_refused() {
        let error = check_base(30_000, EPHEMERAL_START_DEFAULT)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("ephemeral range"), "{error}");
    }

    #[test]
    fn a_taken_port_is_named() {
        // Hold the orchestrator's port of a stack on an unplanned base.
        let base = 1000;
        // Taken either by this listener or by someone else: named either way.
        let _held = TcpListener::bind(("127.0.0.1", 8000 + base));
        let error = check_base(base, EPHEMERAL_START_DEFAULT)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("9000 (orchestrator)"), "{error}");
    }
}
