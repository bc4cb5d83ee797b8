-- POST /v1/tasks takes an Idempotency-Key: a client that retries a
-- submission (a time-out, a dropped connection) with the same key gets the
-- task its first try created, never a second one. Keys are per client; the
-- digest of the validated request tells a retry from a different request
-- that reuses the key. Rows without a key stay out of the index.
ALTER TABLE tasks ADD COLUMN idempotency_key text, ADD COLUMN request_digest bytea;
CREATE UNIQUE INDEX tasks_idempotency_idx ON tasks (coalesce(submitted_by, ''), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
