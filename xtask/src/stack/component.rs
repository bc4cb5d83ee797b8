//! `Component`: every process of the local stack, with everything that
//! differs between them in exhaustive matches. Adding a component is a new
//! variant; the compiler then names each place that must say how it
//! starts, where it listens, how it is probed and which package brings it.

use std::time::Duration;

/// One process of the local stack. Declared in start order (dependencies
/// first); [`Component::ALL`] keeps that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
#[value(rename_all = "kebab-case")]
pub enum Component {
    Postgres,
    /// `pg_receivewal`: streams WAL into the backup store as it is written,
    /// so a restore loses at most the last milliseconds (archiving alone: a
    /// segment).
    WalStream,
    Redis,
    LlmSim,
    ReflexLayer,
    PlannerArm,
    RetrieverArm,
    CoderArm,
    JudgeArm,
    GuardianArm,
    ExecutorArm,
    Orchestrator,
    AlertSink,
    Pushgateway,
    /// `cargo xtask backup --schedule`: daily full, hourly differential and
    /// Redis copy.
    BackupScheduler,
    NodeExporter,
    PostgresExporter,
    RedisExporter,
    Alertmanager,
    Prometheus,
}

/// How a component's readiness is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `pg_isready`.
    Postgres,
    /// The replication slot is active.
    WalStream,
    /// `redis-cli ping` with the stack's password.
    Redis,
    /// Alive is ready: it serves nothing.
    Pid,
    /// An HTTP GET on this path answers 2xx.
    Http(&'static str),
}

/// Where a component's program comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A binary of this workspace (`cargo build --release -p <package>`).
    Workspace(&'static str),
    /// A Debian package (apt-get).
    Debian(&'static str),
    /// This xtask binary.
    Xtask,
}

impl Component {
    /// Every component, in start order.
    pub const ALL: [Component; 20] = [
        Self::Postgres,
        Self::WalStream,
        Self::Redis,
        Self::LlmSim,
        Self::ReflexLayer,
        Self::PlannerArm,
        Self::RetrieverArm,
        Self::CoderArm,
        Self::JudgeArm,
        Self::GuardianArm,
        Self::ExecutorArm,
        Self::Orchestrator,
        Self::AlertSink,
        Self::Pushgateway,
        Self::BackupScheduler,
        Self::NodeExporter,
        Self::PostgresExporter,
        Self::RedisExporter,
        Self::Alertmanager,
        Self::Prometheus,
    ];

    /// The six arms; the orchestrator dispatches steps to them.
    pub const ARMS: [Component; 6] = [
        Self::PlannerArm,
        Self::RetrieverArm,
        Self::CoderArm,
        Self::JudgeArm,
        Self::GuardianArm,
        Self::ExecutorArm,
    ];

    /// The name used for logs, pids, Prometheus jobs and the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::WalStream => "wal-stream",
            Self::Redis => "redis",
            Self::LlmSim => "llm-sim",
            Self::ReflexLayer => "reflex-layer",
            Self::PlannerArm => "planner-arm",
            Self::RetrieverArm => "retriever-arm",
            Self::CoderArm => "coder-arm",
            Self::JudgeArm => "judge-arm",
            Self::GuardianArm => "guardian-arm",
            Self::ExecutorArm => "executor-arm",
            Self::Orchestrator => "orchestrator",
            Self::AlertSink => "alert-sink",
            Self::Pushgateway => "pushgateway",
            Self::BackupScheduler => "backup-scheduler",
            Self::NodeExporter => "node-exporter",
            Self::PostgresExporter => "postgres-exporter",
            Self::RedisExporter => "redis-exporter",
            Self::Alertmanager => "alertmanager",
            Self::Prometheus => "prometheus",
        }
    }

    /// Port before `--port-base` is added (docs/contracts.md, "Ports");
    /// `None` for a component that listens on no port. The arms' ports are
    /// `ArmKind::default_port` (a test keeps them equal).
    pub const fn default_port(self) -> Option<u16> {
        Some(match self {
            Self::WalStream | Self::BackupScheduler => return None,
            Self::Postgres => 5432,
            Self::Redis => 6379,
            Self::LlmSim => 8090,
            Self::ReflexLayer => 8080,
            Self::PlannerArm => 8001,
            Self::RetrieverArm => 8002,
            Self::CoderArm => 8003,
            Self::JudgeArm => 8004,
            Self::GuardianArm => 8005,
            Self::ExecutorArm => 8006,
            Self::Orchestrator => 8000,
            Self::AlertSink => 9095,
            Self::Pushgateway => 9091,
            Self::NodeExporter => 9100,
            Self::PostgresExporter => 9187,
            Self::RedisExporter => 9121,
            Self::Alertmanager => 9093,
            Self::Prometheus => 9090,
        })
    }

    pub const fn listens(self) -> bool {
        self.default_port().is_some()
    }

    pub const fn probe(self) -> Probe {
        match self {
            Self::Postgres => Probe::Postgres,
            Self::WalStream => Probe::WalStream,
            Self::Redis => Probe::Redis,
            Self::BackupScheduler => Probe::Pid,
            Self::LlmSim
            | Self::ReflexLayer
            | Self::Orchestrator
            | Self::AlertSink
            | Self::PlannerArm
            | Self::RetrieverArm
            | Self::CoderArm
            | Self::JudgeArm
            | Self::GuardianArm
            | Self::ExecutorArm => Probe::Http("/ready"),
            Self::Pushgateway | Self::Alertmanager | Self::Prometheus => Probe::Http("/-/ready"),
            Self::NodeExporter | Self::PostgresExporter | Self::RedisExporter => {
                Probe::Http("/metrics")
            }
        }
    }

    /// How long a start may take before it counts as failed.
    pub const fn ready_within(self) -> Duration {
        match self {
            Self::Postgres | Self::Orchestrator | Self::Prometheus => Duration::from_secs(90),
            _ => Duration::from_secs(30),
        }
    }

    pub const fn source(self) -> Source {
        match self {
            Self::Postgres => Source::Debian("postgresql-15"),
            Self::WalStream => Source::Debian("postgresql-client-15"),
            Self::Redis => Source::Debian("redis-server"),
            Self::LlmSim => Source::Workspace("llm-sim"),
            Self::ReflexLayer => Source::Workspace("reflex-layer"),
            Self::PlannerArm => Source::Workspace("planner-arm"),
            Self::RetrieverArm => Source::Workspace("retriever-arm"),
            Self::CoderArm => Source::Workspace("coder-arm"),
            Self::JudgeArm => Source::Workspace("judge-arm"),
            Self::GuardianArm => Source::Workspace("guardian-arm"),
            Self::ExecutorArm => Source::Workspace("executor-arm"),
            Self::Orchestrator => Source::Workspace("orchestrator"),
            Self::AlertSink => Source::Workspace("alert-sink"),
            Self::Pushgateway => Source::Debian("prometheus-pushgateway"),
            Self::BackupScheduler => Source::Xtask,
            Self::NodeExporter => Source::Debian("prometheus-node-exporter"),
            Self::PostgresExporter => Source::Debian("prometheus-postgres-exporter"),
            Self::RedisExporter => Source::Debian("prometheus-redis-exporter"),
            Self::Alertmanager => Source::Debian("prometheus-alertmanager"),
            Self::Prometheus => Source::Debian("prometheus"),
        }
    }

    /// The workspace packages the stack runs, for `cargo build`.
    pub fn workspace_packages() -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter_map(|c| match c.source() {
                Source::Workspace(package) => Some(package),
                _ => None,
            })
            .collect()
    }

    /// The Debian packages the stack runs.
    pub fn debian_packages() -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter_map(|c| match c.source() {
                Source::Debian(package) => Some(package),
                _ => None,
            })
            .collect()
    }

    /// The arm's short name (`planner`), as the orchestrator and the arm
    /// protocol call it; `None` for a component that is not an arm.
    pub fn arm_name(self) -> Option<&'static str> {
        Self::ARMS
            .contains(&self)
            .then(|| self.name().trim_end_matches("-arm"))
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use arm_protocol::ArmKind;
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn arm_components_match_the_protocol() {
        for (component, kind) in Component::ARMS.iter().zip([
            ArmKind::Planner,
            ArmKind::Retriever,
            ArmKind::Coder,
            ArmKind::Judge,
            ArmKind::Guardian,
            ArmKind::Executor,
        ]) {
            assert_eq!(component.arm_name(), Some(kind.name()));
            assert_eq!(component.default_port(), Some(kind.default_port()));
        }
        let position = |c: Component| Component::ALL.iter().position(|x| *x == c);
        for arm in Component::ARMS {
            assert!(position(arm) > position(Component::LlmSim));
            assert!(position(arm) > position(Component::Postgres));
            assert!(position(arm) < position(Component::Orchestrator));
        }
    }

    #[test]
    fn all_lists_every_variant_once_in_declaration_order() {
        // clap's derived list is in declaration order and complete.
        assert_eq!(Component::value_variants(), Component::ALL.as_slice());
        for c in Component::ALL {
            assert_eq!(
                c.to_possible_value()
                    .map(|v| v.get_name().to_owned())
                    .as_deref(),
                Some(c.name())
            );
        }
    }

    #[test]
    fn ports_are_distinct() {
        let mut ports: Vec<u16> = Component::ALL
            .iter()
            .filter_map(|c| c.default_port())
            .collect();
        let count = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), count);
    }
}
