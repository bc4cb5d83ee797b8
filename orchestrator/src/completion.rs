//! `CompletionFeed`: wakes long-polling clients when their task finishes.
//!
//! The worker that finishes a task announces it with `pg_notify` in the same
//! statement as the transition, so any replica's waiters wake, whichever
//! replica ran the task. A waiter reads the database when it starts, when its
//! task's notification arrives and at its deadline, never on a timer: ten
//! thousand waiters cost no reads and hold no pool connection while they
//! wait.
//!
//! PostgreSQL delivers every notification committed while a session
//! LISTENs, so notifications are lost only while the feed's own connection
//! is down. Each time the feed (re)subscribes, it therefore wakes every
//! waiter to re-read once: whatever finished during the gap is seen then.
//! TCP keepalives bound how long a silently dead connection goes unnoticed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::TASK_DONE_CHANNEL;

#[derive(Clone, Default)]
pub struct CompletionFeed {
    waiters: Arc<Mutex<HashMap<Uuid, Arc<Notify>>>>,
}

/// One waiter's registration; dropping it (even when the client goes away
/// mid-wait and its request future is dropped) releases the entry.
pub struct Waiter {
    feed: CompletionFeed,
    id: Uuid,
    notify: Arc<Notify>,
}

impl Waiter {
    /// Completes at the next announcement for this task (or the next
    /// resubscription of the feed). Call `enable` on it before reading the
    /// task, so an announcement between the read and the wait is not missed.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut waiters = self
            .feed
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // One count is the map's, one is this waiter's.
        if Arc::strong_count(&self.notify) <= 2 {
            waiters.remove(&self.id);
        }
    }
}

impl CompletionFeed {
    /// Registers a waiter for task `id`.
    pub fn watch(&self, id: Uuid) -> Waiter {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        let notify = waiters.entry(id).or_default().clone();
        Waiter {
            feed: self.clone(),
            id,
            notify,
        }
    }

    /// Tasks with at least one waiter.
    #[cfg(test)]
    fn watched(&self) -> usize {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn announce(&self, id: Uuid) {
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = waiters.get(&id) {
            notify.notify_waiters();
        }
    }

    /// Wakes every waiter to re-read its task once.
    fn announce_all(&self) {
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        for notify in waiters.values() {
            notify.notify_waiters();
        }
    }

    /// LISTENs for task completions until shutdown, reconnecting with backoff.
    pub async fn listen(self, mut config: tokio_postgres::Config, shutdown: CancellationToken) {
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        let mut delay = Duration::from_millis(200);
        loop {
            match config.connect(NoTls).await {
                Ok((client, mut connection)) => {
                    let feed = self.clone();
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    let drive = async move {
                        while let Some(message) = messages.next().await {
                            match message {
                                Ok(AsyncMessage::Notification(n)) => {
                                    if let Ok(id) = Uuid::try_parse(n.payload()) {
                                        feed.announce(id);
                                    }
                                }
                                Ok(_) => {}
                                Err(error) => return error.to_string(),
                            }
                        }
                        "connection closed".to_owned()
                    };
                    let subscribe = async {
                        client
                            .batch_execute(&format!("LISTEN {TASK_DONE_CHANNEL}"))
                            .await
                            .map_err(|e| e.to_string())?;
                        tracing::debug!("listening for task completions");
                        // Completions during the gap were not announced.
                        self.announce_all();
                        std::future::pending::<Result<(), String>>().await
                    };
                    tokio::select! {
                        reason = drive => tracing::warn!(%reason, "completion feed lost its connection"),
                        Err(reason) = subscribe => tracing::warn!(%reason, "LISTEN failed"),
                        () = shutdown.cancelled() => return,
                    }
                    delay = Duration::from_millis(200);
                }
                Err(error) => {
                    tracing::debug!(%error, "completion feed cannot connect yet");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_waiter_leaves_no_entry_behind() {
        let feed = CompletionFeed::default();
        let id = Uuid::new_v4();
        let first = feed.watch(id);
        let second = feed.watch(id);
        assert_eq!(feed.watched(), 1);
        drop(first);
        assert_eq!(feed.watched(), 1, "the second waiter still needs it");
        drop(second);
        assert_eq!(feed.watched(), 0);
    }

    #[tokio::test]
    async fn an_announcement_wakes_only_its_task_and_resubscribing_wakes_all() {
        let feed = CompletionFeed::default();
        let (a, b) = (feed.watch(Uuid::new_v4()), feed.watch(Uuid::new_v4()));
        let (mut wake_a, mut wake_b) = (Box::pin(a.notified()), Box::pin(b.notified()));
        wake_a.as_mut().enable();
        wake_b.as_mut().enable();
        feed.announce(a.id);
        let timeout = Duration::from_millis(50);
        assert!(tokio::time::timeout(timeout, wake_a).await.is_ok());
        assert!(tokio::time::timeout(timeout, wake_b).await.is_err());
        let (mut wake_a, mut wake_b) = (Box::pin(a.notified()), Box::pin(b.notified()));
        wake_a.as_mut().enable();
        wake_b.as_mut().enable();
        feed.announce_all();
        assert!(tokio::time::timeout(timeout, wake_a).await.is_ok());
        assert!(tokio::time::timeout(timeout, wake_b).await.is_ok());
    }
}
