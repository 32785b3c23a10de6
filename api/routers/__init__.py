"""One router per resource, each on ``ApiRoute`` (unit of work, auth, idempotency)."""
