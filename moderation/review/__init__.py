"""Human review of flagged slices: the queue and its leases, decisions and their enforcement,
statements of reasons and appeals, the append-only moderation event log and the console page."""
