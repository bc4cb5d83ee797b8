//! The retriever over real HTTP, in-process, against a real PostgreSQL
//! (testcontainers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod knowledge;
mod outage;

use std::time::{Duration, Instant};

use arm_kit::testing::TestArm;
use arm_protocol::ArmKind;
use serde_json::{Value, json};

pub async fn postgres() -> test_support::PostgresContainer {
    match test_support::postgres().await {
        Ok(pg) => pg,
        Err(error) => panic!("{error}"),
    }
}

/// A retriever on `url`, once ready (migrations applied).
pub async fn retriever(url: &str) -> TestArm {
    let pool = db_kit::pool(url, 4, "retriever-it").unwrap();
    let arm = arm_kit::testing::serve(ArmKind::Retriever, move |kit| {
        retriever_arm::start(pool, kit.registry(), kit.shutdown_token())
    })
    .await;
    wait_ready(&arm).await;
    arm
}

pub async fn wait_ready(arm: &TestArm) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if arm.get("/ready", false).await.status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "retriever not ready: {:?}",
        arm.get("/ready", false).await.body
    );
}

pub fn doc(title: &str, body: &str, source: &str) -> Value {
    json!({"title": title, "body": body, "source": source})
}
