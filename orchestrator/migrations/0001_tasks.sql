-- Tasks: the system of record for every acknowledged task.
CREATE TABLE tasks (
    id                 uuid PRIMARY KEY,
    status             text NOT NULL CHECK (status IN
                         ('queued', 'running', 'succeeded', 'failed', 'timeout', 'cancelled', 'rejected')),
    task_type          text NOT NULL,
    priority           smallint NOT NULL CHECK (priority BETWEEN 0 AND 3),
    goal               text NOT NULL,
    context            text,
    constraints        jsonb NOT NULL DEFAULT '[]',
    acceptance_criteria jsonb NOT NULL DEFAULT '[]',
    max_tokens         integer NOT NULL,
    max_time_seconds   integer NOT NULL,
    max_cost_usd       double precision NOT NULL,
    result             jsonb,
    error_kind         text,
    error              text,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd           double precision NOT NULL DEFAULT 0,
    attempts           integer NOT NULL DEFAULT 0,
    cancel_requested   boolean NOT NULL DEFAULT false,
    lease_owner        text,
    lease_expires_at   timestamptz,
    deadline_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Claiming: highest priority first, then oldest.
CREATE INDEX tasks_queued_idx ON tasks (priority DESC, created_at) WHERE status = 'queued';
-- Lease expiry sweeps.
CREATE INDEX tasks_running_lease_idx ON tasks (lease_expires_at) WHERE status = 'running';
-- Listing, newest first, with keyset pagination.
CREATE INDEX tasks_created_idx ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_status_created_idx ON tasks (status, created_at DESC, id DESC);

-- Steps: persisted as each finishes, so a resumed task skips finished steps.
CREATE TABLE task_steps (
    task_id           uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    step_index        integer NOT NULL,
    name              text NOT NULL,
    capability        text NOT NULL,
    status            text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    output            jsonb,
    error             text,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost_usd          double precision NOT NULL DEFAULT 0,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, step_index)
);

-- Events: an audit trail of every transition.
CREATE TABLE task_events (
    id       bigserial PRIMARY KEY,
    task_id  uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    at       timestamptz NOT NULL DEFAULT now(),
    kind     text NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX task_events_task_idx ON task_events (task_id, id);
