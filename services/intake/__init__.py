"""Intake: the system of record for tickets — numbering, lifecycle, timeline."""
