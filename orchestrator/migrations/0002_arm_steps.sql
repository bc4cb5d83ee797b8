-- Steps run by arms: which arm instance answered (its label, e.g. `planner-2`).
-- NULL for steps the orchestrator ran itself (the LLM path). The plan a
-- task follows is the output of its step 0, so a resumed task never re-plans.
ALTER TABLE task_steps ADD COLUMN arm text;
