//! A replica holds its tasks through one lease (a `task_owners` row): a
//! lapsed lease is swept together with its tasks, the replica learns at its
//! next renewal which tasks it lost, and a task whose owner has no lease
//! row at all is requeued by the orphan sweep.

use orchestrator::db::{MIGRATIONS, pool};
use orchestrator::metrics::TaskMetrics;
use orchestrator::store::TaskStore;
use orchestrator::task::{SubmitTask, TaskStatus};
use std::time::Duration;
use uuid::Uuid;

use crate::harness::postgres;

const LEASE: Duration = Duration::from_secs(30);

async fn submit(store: &TaskStore) -> Uuid {
    let task = serde_json::from_value::<SubmitTask>(serde_json::json!({"goal": "lease test"}))
        .unwrap()
        .validate()
        .unwrap();
    store
        .insert(Uuid::now_v7(), &task, None, None, None)
        .await
        .unwrap()
        .unwrap()
        .0
}

async fn status(store: &TaskStore, id: Uuid) -> TaskStatus {
    store.get(id, None).await.unwrap().unwrap().0.status
}

#[tokio::test]
async fn a_lapsed_lease_is_swept_with_its_tasks_and_its_replica_learns_what_it_lost() {
    let pg = postgres().await;
    let pool = pool(&pg.url(), 4).unwrap();
    MIGRATIONS.apply(&pool).await.unwrap();
    let store = TaskStore::new(
        pool.clone(),
        TaskMetrics::register(&prometheus::Registry::new()).unwrap(),
    );
    let db = pool.get().await.unwrap();

    // No lease, no claims.
    let first = submit(&store).await;
    assert!(store.claim("a", 8).await.unwrap().is_empty());
    assert!(
        !store.renew_owner("a", LEASE).await.unwrap(),
        "a new lease has a gap before it"
    );
    assert!(
        store.renew_owner("a", LEASE).await.unwrap(),
        "renewed in time: no gap"
    );
    let claimed = store.claim("a", 8).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].0.id, first);

    // A current lease keeps its tasks through any number of sweeps.
    assert_eq!(store.requeue_expired(true).await.unwrap(), 0);
    assert_eq!(status(&store, first).await, TaskStatus::Running);

    // "a" stops renewing (it hung, or lost the database): its lease lapses,
    // and one sweep deletes the lease and requeues its task.
    db.execute(
        "UPDATE task_owners SET lease_expires_at = now() - interval '1 second' WHERE owner = 'a'",
        &[],
    )
    .await
    .unwrap();
    assert!(
        store.claim("a", 8).await.unwrap().is_empty(),
        "a lapsed lease claims nothing"
    );
    assert_eq!(store.requeue_expired(false).await.unwrap(), 1);
    assert_eq!(status(&store, first).await, TaskStatus::Queued);
    let owners: i64 = db
        .query_one("SELECT count(*) FROM task_owners", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owners, 0);

    // "a" comes back: its renewal reports the gap, and the task is no longer its.
    assert!(!store.renew_owner("a", LEASE).await.unwrap());
    assert!(store.held_leases("a", &[first]).await.unwrap().is_empty());

    // Another replica takes it over, as a second attempt.
    assert!(!store.renew_owner("b", LEASE).await.unwrap());
    let claimed = store.claim("b", 8).await.unwrap();
    assert_eq!(claimed[0].0.id, first);
    assert_eq!(store.held_leases("b", &[first]).await.unwrap(), vec![first]);
    assert_eq!(claimed[0].0.attempts, 2);

    // An orphan: a task whose owner has no lease row (claimed in the instant
    // a sweep deleted the lease, then the owner died). Only the orphan sweep
    // finds it.
    let second = submit(&store).await;
    assert_eq!(store.claim("b", 8).await.unwrap().len(), 1);
    db.execute("DELETE FROM task_owners WHERE owner = 'b'", &[])
        .await
        .unwrap();
    assert_eq!(store.requeue_expired(false).await.unwrap(), 0);
    assert_eq!(store.requeue_expired(true).await.unwrap(), 2);
    assert_eq!(status(&store, second).await, TaskStatus::Queued);
    assert_eq!(status(&store, first).await, TaskStatus::Queued);

    // A cancel request reaches the owner through its own index.
    assert!(!store.renew_owner("c", LEASE).await.unwrap());
    assert_eq!(store.claim("c", 8).await.unwrap().len(), 2);
    assert!(store.cancel_requests("c").await.unwrap().is_empty());
    db.execute(
        "UPDATE tasks SET cancel_requested = true WHERE id = $1",
        &[&second],
    )
    .await
    .unwrap();
    assert_eq!(store.cancel_requests("c").await.unwrap(), vec![second]);
    store.retire_owner("c").await.unwrap();
}
