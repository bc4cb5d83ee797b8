-- Who submitted each task: the service-kit caller id of the bearer token
-- (`bearer-` and 16 hex digits; never the token). A client whose token has
-- no `admin` scope sees, lists and cancels only its own tasks. NULL for
-- tasks submitted before this column existed: only admins see those.
ALTER TABLE tasks ADD COLUMN submitted_by text;
CREATE INDEX tasks_submitted_by_created_idx ON tasks (submitted_by, created_at DESC, id DESC);
