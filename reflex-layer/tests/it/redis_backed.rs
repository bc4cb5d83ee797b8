//! With real Redis: L2 holds no raw text, buckets are shared, and losing
//! Redis degrades without breaking.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Reflex, assert_no_raw_pii, sensitive_text};

async fn redis_dump(url: &str) -> String {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut dump = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        let value: String = if kind == "string" {
            redis::cmd("GET")
                .arg(&key)
                .query_async(&mut c)
                .await
                .unwrap()
        } else {
            let fields: Vec<String> = redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut c)
                .await
                .unwrap();
            fields.join(" ")
        };
        dump.push_str(&format!("{key} => {value}\n"));
    }
    dump
}

#[tokio::test]
async fn l2_and_buckets_live_in_redis_without_raw_values() {
    let redis = test_support::redis()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = redis.url();
    let key_file = std::env::temp_dir().join(format!("reflex-key-{}", std::process::id()));
    std::fs::write(&key_file, "a-shared-test-key-of-32-bytes!!!").unwrap();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("REFLEX_KEY_FILE", key_file.to_str().unwrap()),
        ("REFLEX_L1_MIN_BYTES", "0"),
        ("REFLEX_L2_MIN_BYTES", "0"),
    ];
    let first = Reflex::start(&env).await;
    let second = Reflex::start(&env).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // let both connect

    let text = sensitive_text();
    let body: Value = first
        .check(&json!({"text": text, "user_id": "jane@example.org"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["cache"], "miss");
    tokio::time::sleep(Duration::from_millis(200)).await; // the L2 write is in the background
    // The second replica finds the first one's decision in L2.
    let body: Value = second
        .check(&json!({"text": text}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["cache"], "hit", "{body}");
    assert!(
        second
            .metrics()
            .await
            .contains("octollm_cache_hits_total{cache=\"l2\"} 1")
    );

    let dump = redis_dump(&url).await;
    assert!(dump.contains("reflex:scan:v1:"), "{dump}");
    assert!(dump.contains("reflex:rl:ip:"), "{dump}");
    assert_no_raw_pii(&dump, "Redis");
    assert!(
        !dump.contains("jane"),
        "user ids are stored keyed-hashed: {dump}"
    );
    assert!(
        !dump.contains("Ignore all previous"),
        "no text in Redis: {dump}"
    );
    assert!(!dump.contains("127.0.0.1"), "no raw IPs in Redis: {dump}");
    let _ = std::fs::remove_file(key_file);
}

#[tokio::test]
async fn losing_redis_degrades_but_keeps_serving() {
    let redis = test_support::redis()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = redis.url();
    let reflex = Reflex::start(&[("REDIS_URL", url.as_str()), ("REFLEX_IP_LIMIT", "1/s:5")]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deep: Value = reflex.deep_health().await;
    assert_eq!(deep["dependencies"]["redis"]["status"], "up", "{deep}");

    redis.stop().await.unwrap();
    assert_eq!(
        reflex
            .http
            .get(reflex.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let deep: Value = reflex.deep_health().await;
    assert_eq!(
        deep["dependencies"]["redis"]["status"], "degraded",
        "{deep}"
    );
    // Requests are still screened (L1 only), and limited by local buckets.
    let mut statuses = Vec::new();
    for n in 0..8 {
        let response = reflex.check(&json!({"text": format!("message {n}")})).await;
        statuses.push(response.status().as_u16());
    }
    assert!(statuses.iter().take(5).all(|s| *s == 200), "{statuses:?}");
    assert!(
        statuses.contains(&429),
        "local buckets still limit: {statuses:?}"
    );

    redis.start().await.unwrap();
    let mut up = false;
    for _ in 0..50 {
        let deep: Value = reflex.deep_health().await;
        if deep["dependencies"]["redis"]["status"] == "up" {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(up, "reflex layer did not reconnect to Redis");
}
