"""The ``triage`` command line: the top layer, above the API, explanations, models and core."""
