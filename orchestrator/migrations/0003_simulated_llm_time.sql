-- LLM time the provider reported as simulated (llm-sim's x-llm-sim-delay-ms),
-- per step and summed per task; 0 against real providers. A load test
-- subtracts it from a task's end-to-end time to get the system's own share.
ALTER TABLE tasks ADD COLUMN simulated_llm_ms bigint NOT NULL DEFAULT 0;
ALTER TABLE task_steps ADD COLUMN simulated_llm_ms bigint NOT NULL DEFAULT 0;
