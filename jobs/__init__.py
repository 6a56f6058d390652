"""The job queue: the contract between frontends (bot/) and generators (generator/).

settings    Settings, load_settings            IMAGINE_* variables and .env, read once in main()
errors      ImagineError, Refused (+ reasons)  every error, with what happened and how to fix it
models      Job, JobOptions, EnqueueRequest…   frozen domain objects
schema      the tables; migrations/ must match it
db          connect, migrate, check_schema     engines and the schema version
queue       Queue, Limits, Rendered, Heartbeat enqueue, position, claim, heartbeat, finish, fail, cancel, reap
delivery    (part of Queue)                    due_deliveries, mark_delivered, delivery_failed, message refs
spaces      (part of Queue)                    guild/workspace settings, bans, fairness weights
workers     (part of Queue)                    worker_heartbeat, workers_online, listen (LISTEN/NOTIFY)
base        QueueBase, Limits                  engine, limits, transactions, the clock
validation  clean_prompt, find_blocked_word    prompt checks that need no database
queries     every SQL statement, named and explained
usage       usage, recent_prompts              the history's numbers
"""
