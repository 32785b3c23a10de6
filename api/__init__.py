"""The HTTP front door (FastAPI): reads the ledger, starts and steers workflows."""
