//! The executor over real HTTP, in-process, with hostile inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hostile;
mod running;
mod tokens;

use std::time::Duration;

use arm_kit::testing::{Answer, TestArm, execute_body};
use arm_protocol::ArmKind;
use arm_protocol::capability_token::{self, CAPABILITY_TOKEN_HEADER, CapabilityClaims};
use executor_arm::Executor;
use executor_arm::policy::CommandPolicy;
use executor_arm::run::Limits;
use serde_json::{Value, json};
use uuid::Uuid;

pub const KEY: &[u8] = b"executor-test-key-0123456789abcdef";

pub struct Harness {
    pub arm: TestArm,
    pub dir: tempfile::TempDir,
}

/// An executor on a fresh working directory: 1 s command timeout, 4 KiB of output kept.
pub async fn executor() -> Harness {
    executor_with(
        "echo,cat,ls,wc,head,tail,date,uname,sleep",
        Duration::from_secs(1),
    )
    .await
}

pub async fn executor_with(commands: &str, timeout: Duration) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let policy = CommandPolicy::new(commands, dir.path()).unwrap();
    let arm = arm_kit::testing::serve(ArmKind::Executor, move |kit| {
        let limits = Limits {
            timeout,
            max_output_bytes: 4096,
        };
        Executor::new(policy, KEY.to_vec(), limits, kit.registry()).map(arm_kit::ArmParts::new)
    })
    .await;
    Harness { arm, dir }
}

/// A token for `body`'s task, step and arguments, granting `commands`.
pub fn token(key: &[u8], body: &Value, commands: &[&str], ttl_secs: i64) -> String {
    let args: Vec<String> =
        serde_json::from_value(body["input"]["args"].clone()).unwrap_or_default();
    capability_token::sign(
        key,
        &CapabilityClaims {
            task_id: serde_json::from_value(body["task_id"].clone()).unwrap(),
            step_id: body["step_id"].as_str().unwrap().to_owned(),
            commands: commands.iter().map(|c| (*c).to_owned()).collect(),
            args_sha256: capability_token::args_digest(&args),
            token_id: Uuid::now_v7(),
            expires_at: chrono::Utc::now().timestamp() + ttl_secs,
        },
    )
}

impl Harness {
    /// Runs `command args` with a valid token for it.
    pub async fn run(&self, command: &str, args: &[&str]) -> Answer {
        let body = execute_body("run_command", json!({"command": command, "args": args}));
        self.run_body(body, &[command]).await
    }

    /// Posts `body` with a valid token for its task granting `granted`.
    pub async fn run_body(&self, body: Value, granted: &[&str]) -> Answer {
        let token = token(KEY, &body, granted, 60);
        self.arm
            .post("/v1/execute", &body, &[(CAPABILITY_TOKEN_HEADER, &token)])
            .await
    }

    pub async fn commands(&self, command: &str, outcome: &str) -> f64 {
        self.arm
            .metric(&format!(
                "octollm_executor_commands_total{{command=\"{command}\",outcome=\"{outcome}\"}}"
            ))
            .await
    }
}

/// Whether a process with exactly this argv is alive.
pub fn process_alive(argv: &[&str]) -> bool {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|cmdline| cmdline == wanted)
}
