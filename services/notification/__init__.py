"""Notification: customers and staff told, reliably, in their language."""
