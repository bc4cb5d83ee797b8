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
//!
//! The same guarantee spares the first read of the usual client, which
//! submits and then long-polls: a task this replica accepted while
//! subscribed, with no announcement since, has not finished, so its
//! submitter's waiter skips the read at its start. Losing the subscription
//! forgets all such tasks.

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
    state: Arc<Mutex<FeedState>>,
}

/// Most accepted tasks remembered as unfinished; past it, new ones are read.
const MAX_UNFINISHED: usize = 262_144;

#[derive(Default)]
struct FeedState {
    waiters: HashMap<Uuid, Arc<Notify>>,
    /// Whether LISTEN is in effect on a live connection.
    subscribed: bool,
    /// Tasks accepted here while subscribed and not announced since, with
    /// their submitter (see the module's doc).
    unfinished: HashMap<Uuid, Option<String>>,
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

    /// Whether the task is known not to have finished, and `viewer` (a
    /// caller id; `None` for an admin) submitted it: then a read now would
    /// only say so. Call after `enable` on [`Self::notified`].
    pub fn known_unfinished(&self, viewer: Option<&str>) -> bool {
        let state = self.feed.lock();
        state
            .unfinished
            .get(&self.id)
            .is_some_and(|submitter| viewer.is_none() || viewer == submitter.as_deref())
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut state = self.feed.lock();
        // One count is the map's, one is this waiter's.
        if Arc::strong_count(&self.notify) <= 2 {
            state.waiters.remove(&self.id);
        }
    }
}

impl CompletionFeed {
    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a waiter for task `id`.
    pub fn watch(&self, id: Uuid) -> Waiter {
        let notify = self.lock().waiters.entry(id).or_default().clone();
        Waiter {
            feed: self.clone(),
            id,
            notify,
        }
    }

    /// Remembers task `id`, about to be committed as queued by `submitter`,
    /// as unfinished, if the feed is subscribed. Call it before the insert
    /// commits, so the task's announcement cannot come first.
    pub fn accepted(&self, id: Uuid, submitter: Option<&str>) {
        let mut state = self.lock();
        if state.subscribed && state.unfinished.len() < MAX_UNFINISHED {
            state.unfinished.insert(id, submitter.map(str::to_owned));
        }
    }

    /// Forgets task `id` (its insert failed, or was not needed).
    pub fn forget(&self, id: Uuid) {
        self.lock().unfinished.remove(&id);
    }

    /// Tasks with at least one waiter.
    #[cfg(test)]
    fn watched(&self) -> usize {
        self.lock().waiters.len()
    }

    fn announce(&self, id: Uuid) {
        let mut state = self.lock();
        state.unfinished.remove(&id);
        if let Some(notify) = state.waiters.get(&id) {
            notify.notify_waiters();
        }
    }

    /// Marks the feed subscribed or not. Either way, whatever it remembered
    /// as unfinished may have finished unannounced: forget it, and wake
    /// every waiter to re-read its task once.
    fn resubscribed(&self, subscribed: bool) {
        let mut state = self.lock();
        state.subscribed = subscribed;
        state.unfinished.clear();
        for notify in state.waiters.values() {
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
                        self.resubscribed(true);
                        std::future::pending::<Result<(), String>>().await
                    };
                    tokio::select! {
                        reason = drive => tracing::warn!(%reason, "completion feed lost its connection"),
                        Err(reason) = subscribe => tracing::warn!(%reason, "LISTEN failed"),
                        () = shutdown.cancelled() => return,
                    }
                    self.resubscribed(false);
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
        feed.resubscribed(true);
        assert!(tokio::time::timeout(timeout, wake_a).await.is_ok());
        assert!(tokio::time::timeout(timeout, wake_b).await.is_ok());
    }

    #[test]
    fn an_accepted_task_is_unfinished_to_its_submitter_until_announced_or_unsubscribed() {
        let feed = CompletionFeed::default();
        let id = Uuid::new_v4();
        let waiter = feed.watch(id);
        // Not subscribed: an announcement could be missed, so nothing is known.
        feed.accepted(id, Some("alice"));
        assert!(!waiter.known_unfinished(Some("alice")));

        feed.resubscribed(true);
        feed.accepted(id, Some("alice"));
        assert!(waiter.known_unfinished(Some("alice")));
        assert!(waiter.known_unfinished(None), "an admin sees every task");
        assert!(!waiter.known_unfinished(Some("mallory")), "others read");
        feed.announce(id);
        assert!(!waiter.known_unfinished(Some("alice")));

        feed.accepted(id, Some("alice"));
        feed.resubscribed(false);
        assert!(!waiter.known_unfinished(Some("alice")));
    }
}
