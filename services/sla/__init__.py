"""SLA: every promise timed on a business calendar; warnings, breaches and kept promises announced."""
