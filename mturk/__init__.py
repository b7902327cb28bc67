"""Amazon Mechanical Turk: HIT publishing, assignment sync, payments, repeat-worker blocking."""
