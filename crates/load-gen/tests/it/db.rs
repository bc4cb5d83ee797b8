//! The ledger's optional cross-check against PostgreSQL
//! (`--database-url-file`), with a real database from test-support.

use std::sync::Arc;
use std::time::Duration;

use crate::fake::{self, Knobs};
use crate::{octollm_load, read_json, token_file};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_cross_check_finds_missing_rows_and_stale_states() {
    let pg = test_support::postgres().await.unwrap();
    let client = pg.connect().await.unwrap();
    client
        .batch_execute("CREATE TABLE tasks (id uuid PRIMARY KEY, status text NOT NULL)")
        .await
        .unwrap();
    let fake = fake::start(Knobs {
        task_time: Duration::from_millis(50),
        db: Some(Arc::new(client)),
        forget_nth: Some(3),
        db_skip_nth: Some(5),
        db_stale_nth: Some(8),
        ..Knobs::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (token, out) = (token_file(dir.path()), dir.path().join("out"));
    let url_file = dir.path().join("database-url");
    std::fs::write(&url_file, pg.url()).unwrap();
    let o = octollm_load(&[
        "run",
        "--url",
        &fake.url,
        "--token-file",
        token.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--rate",
        "20",
        "--duration",
        "2s",
        "--database-url-file",
        url_file.to_str().unwrap(),
        "--threshold",
        "lost==0",
    ])
    .await;
    assert_eq!(o.code, 1, "{o:?}");
    let report = read_json(&out.join("report.json"));
    let ledger = &report["ledger"];
    assert_eq!(ledger["lost"], 1, "{ledger}");
    let db = &ledger["database"];
    assert_eq!(db["error"], serde_json::Value::Null, "{db}");
    assert_eq!(db["checked"], ledger["acknowledged"], "{db}");
    assert_eq!(db["missing"], 1, "task 5 never reached the table: {db}");
    assert_eq!(db["status_mismatch"], 1, "task 8's row stayed queued: {db}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("1 missing from `tasks`, 1 with a status other than the API's"),
        "{md}"
    );
    // The URL stays out of every output.
    let secret = pg.url();
    assert!(!o.stdout.contains(&secret) && !o.stderr.contains(&secret) && !md.contains(&secret));
    assert!(
        !std::fs::read_to_string(out.join("report.json"))
            .unwrap()
            .contains(&secret)
    );
}
