from tests.jobs.fixtures import *  # noqa: F403  (the database fixtures, shared with other suites)
