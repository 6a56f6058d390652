"""Test suites. A package, so that suites import shared fakes as `tests.fakes.…`."""
