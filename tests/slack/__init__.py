"""Tests of the Slack frontend, run against tests.fakes.slack."""
