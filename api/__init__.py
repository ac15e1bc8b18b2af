"""The FastAPI service: the /v1 routes, the pages, the services behind them, the supervisor."""
