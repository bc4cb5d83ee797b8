-- One lease per orchestrator replica instead of one per running task.
-- Renewing a lease per task rewrote every running row each third of a lease:
-- with 10,000 tasks waiting on slow LLM calls, 1,000 row versions a second,
-- each with an entry in every index of tasks, and their row locks stalled the
-- group commit. Now a replica renews its own row; when that row expires, a
-- sweep deletes it and requeues the replica's tasks in one transaction.
-- tasks.lease_expires_at stays for rows claimed by replicas older than this
-- migration (a rolling upgrade), which still renew it and are swept by it.
CREATE TABLE task_owners (
    owner text PRIMARY KEY,
    lease_expires_at timestamptz NOT NULL
);

-- The sweep's lookup of a dead replica's tasks.
CREATE INDEX tasks_running_owner_idx ON tasks (lease_owner) WHERE status = 'running';

-- A replica's per-second look for cancel requests: an index of the few
-- running tasks with one, not a probe of every task it runs.
CREATE INDEX tasks_cancel_requested_idx ON tasks (lease_owner)
    WHERE status = 'running' AND cancel_requested;
