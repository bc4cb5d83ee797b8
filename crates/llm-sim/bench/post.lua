-- wrk script: POST a small chat-completion request to llm-sim.
-- Usage: wrk -t1 -c64 -d10s -s post.lua http://127.0.0.1:8090/v1/chat/completions
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"sim-1","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the incident report in three bullet points."}],"max_tokens":64,"temperature":0.2}'
