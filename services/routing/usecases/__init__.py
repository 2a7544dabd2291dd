"""Routing's use cases: ticket assignment, escalation, the roster."""
