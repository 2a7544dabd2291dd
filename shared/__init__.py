"""The helpdesk's common package: settings, envelope, topology, database, outbox/inbox, HTTP."""
