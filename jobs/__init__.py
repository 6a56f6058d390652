"""The job queue: the contract between frontends (bot/) and generators (generator/).

settings       Settings, load_settings            IMAGINE_* variables and .env, read once in main()
errors         ImagineError, Refused (+ reasons)  every error, with what happened and how to fix it
models         Job, JobOptions, EnqueueRequest…   frozen domain objects; ACTIVE and FINAL statuses
schema         the tables; migrations/ must match it
db             connect, migrate, ensure_migrated  engines and the schema version
faults         is_transient, database_fault       what a database fault means, in one line naming the setting
queue          Queue, Rendered, Heartbeat         enqueue, position, claim, heartbeat, finish, fail, reap
base           QueueBase, Limits                  open/close, limits, the read transaction, the clock
delivery       (part of Queue)                    due_deliveries, mark_delivered, delivery_failed
spaces         (part of Queue)                    guild/workspace settings, bans, fairness weights
workers        (part of Queue)                    worker_heartbeat, workers_alive, listen (LISTEN/NOTIFY)
reports        (part of Queue)                    usage, history search, queue depth, /metrics counters
retention      (part of Queue)                    apply_retention: forget old pictures and prompts
sessions       (part of Queue)                    start_session, find_session, end_session (dashboard)
slack_installs SlackInstallations                 slack_sdk's installation/state stores on our tables
queries        every statement of the queue's operations, named and explained
report_queries every read statement of the reports
validation     clean_prompt, find_blocked_word    prompt checks that need no database
metrics        queue_families, render             the queue's Prometheus metrics (prometheus_client)
health         healthz, metrics_page, serving     /healthz and /metrics for the dashboard and generators
logs           configure_from_settings            one line per event, secrets masked
healthcheck    python -m jobs.healthcheck         the container HEALTHCHECK
"""
