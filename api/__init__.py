"""The FastAPI service and pages (the "Service API" issue fills this package)."""
