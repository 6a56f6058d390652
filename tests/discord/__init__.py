"""Discord frontend tests: a real discord.py client against tests.fakes.discord."""
