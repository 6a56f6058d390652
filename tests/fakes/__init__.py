"""Fakes of the chat platforms, listening on 127.0.0.1, that real client libraries talk to."""
