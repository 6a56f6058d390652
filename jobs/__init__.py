"""The job queue: the contract between frontends (bot/) and generators (generator/).

settings    Settings, load_settings            IMAGINE_* variables and .env, read once in main()
errors      ImagineError, Refused (+ reasons)  every error, with what happened and how to fix it
models      Job, JobOptions, EnqueueRequest…   frozen domain objects
schema      the tables; migrations/ must match it
db          connect, migrate, check_schema     engines and the schema version
queue       Queue                              enqueue, claim, heartbeat, finish, fail, cancel, reap, …
queries     every SQL statement, named and explained
usage       usage, recent_prompts              the history's numbers
"""
