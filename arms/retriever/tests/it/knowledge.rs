use serde_json::{Value, json};

use crate::{doc, postgres, retriever};

fn corpus() -> Value {
    json!({"documents": [
        doc("Write-ahead logging", "PostgreSQL writes every change to the write-ahead log (WAL) before it changes data files, so a crash can be recovered by replaying the log.", "runbooks/database.md"),
        doc("Streaming replication", "A standby server replays the WAL it receives from the primary; replication lag is the distance between them.", "https://www.postgresql.org/docs/15/warm-standby.html"),
        doc("Redis persistence", "Redis keeps data on disk with RDB snapshots and an append-only file (AOF) fsynced every second.", "runbooks/cache.md"),
        doc("Backups with pgBackRest", "pgBackRest takes full, differential and incremental backups and archives WAL continuously for point-in-time recovery.", "runbooks/backup-dr.md"),
    ]})
}

#[tokio::test]
async fn documents_are_found_ranked_with_sources_and_scores() {
    let pg = postgres().await;
    let arm = retriever(&pg.url()).await;
    let added = arm.post("/v1/documents", &corpus(), &[]).await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert_eq!(added.body["ids"].as_array().unwrap().len(), 4);

    let answer = arm
        .execute(
            "retrieve",
            json!({"query": "how is the WAL replayed after a crash", "limit": 3}),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let results = answer.body["output"]["results"].as_array().unwrap();
    assert!(!results.is_empty() && results.len() <= 3, "{results:?}");
    assert_eq!(results[0]["title"], "Write-ahead logging");
    assert_eq!(results[0]["source"], "runbooks/database.md");
    let scores: Vec<f64> = results
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(scores[0] > 0.0);
    let snippet = results[0]["snippet"].as_str().unwrap();
    assert!(
        snippet.contains("crash") && !snippet.contains("<b>"),
        "{snippet}"
    );
    assert_eq!(answer.body["confidence"], 0.8);

    // A misspelt title still finds its document (pg_trgm similarity).
    let fuzzy = arm
        .execute("retrieve", json!({"query": "Streaming replicaton"}))
        .await;
    assert_eq!(
        fuzzy.body["output"]["results"][0]["title"],
        "Streaming replication"
    );

    // Web-search syntax: exclusions.
    let redis_only = arm.execute("retrieve", json!({"query": "disk -wal"})).await;
    let titles: Vec<&str> = redis_only.body["output"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Redis persistence"]);

    let nothing = arm
        .execute("retrieve", json!({"query": "kubernetes helm chart"}))
        .await;
    assert_eq!(nothing.status, 200);
    assert_eq!(nothing.body["output"]["results"], json!([]));

    let metrics = arm.metrics().await;
    for series in [
        "octollm_memory_operations_total{op=\"insert\",store=\"postgres\"} 1",
        "octollm_memory_operations_total{op=\"search\",store=\"postgres\"} 4",
        "octollm_memory_query_duration_seconds_count{op=\"search\"} 4",
        "octollm_arm_executions_total{arm=\"retriever\",capability=\"retrieve\",status=\"ok\"} 4",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    assert!(metrics.contains("octollm_db_pool_connections{state=\"max\"}"));
}

#[tokio::test]
async fn bad_documents_and_queries_are_422() {
    let pg = postgres().await;
    let arm = retriever(&pg.url()).await;
    for (body, field) in [
        (json!({"documents": []}), "documents"),
        (
            json!({"documents": vec![doc("t", "b", "s"); 101]}),
            "documents",
        ),
        (
            json!({"documents": [doc(" ", "b", "s")]}),
            "documents[0].title",
        ),
        (
            json!({"documents": [doc("t", "b", "s"), doc("t", &"x".repeat(100_001), "s")]}),
            "documents[1].body",
        ),
        (
            json!({"documents": [doc("t", "b", "")]}),
            "documents[0].source",
        ),
    ] {
        let answer = arm.post("/v1/documents", &body, &[]).await;
        assert_eq!(answer.status, 422, "{field}");
        assert_eq!(answer.body["errors"][0]["field"], field);
    }
    let extra = arm
        .post(
            "/v1/documents",
            &json!({"documents": [{"title": "t", "body": "b", "source": "s", "x": 1}]}),
            &[],
        )
        .await;
    assert_eq!(extra.status, 422);
    for input in [
        json!({"query": "  "}),
        json!({"query": "wal", "limit": 0}),
        json!({"query": "wal", "limit": 51}),
        json!({"query": "x".repeat(1001)}),
        json!({"text": "wal"}),
    ] {
        assert_eq!(
            arm.execute("retrieve", input.clone()).await.status,
            422,
            "{input}"
        );
    }
    let unauthenticated = arm
        .http
        .post(arm.url("/v1/documents"))
        .json(&corpus())
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn the_database_owner_can_apply_the_migrations() {
    // As deployed: a non-superuser role that owns its database (pg_trgm is
    // a trusted extension, so the owner may create it).
    let pg = postgres().await;
    let admin = pg.connect().await.unwrap();
    admin
        .batch_execute("CREATE ROLE knowledge LOGIN PASSWORD 'knowledge-pw'")
        .await
        .unwrap();
    admin
        .batch_execute("CREATE DATABASE knowledge OWNER knowledge")
        .await
        .unwrap();
    let url = format!(
        "postgres://knowledge:knowledge-pw@127.0.0.1:{}/knowledge",
        pg.host_port()
    );
    let arm = retriever(&url).await;
    let added = arm
        .post("/v1/documents", &json!({"documents": [doc("Alerting", "Alertmanager routes by severity.", "runbooks/monitoring.md")]}), &[])
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    let found = arm
        .execute("retrieve", json!({"query": "alertmanager"}))
        .await;
    assert_eq!(found.body["output"]["results"][0]["title"], "Alerting");
}
