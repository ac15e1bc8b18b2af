"""The service layer: intake, scoring, casework and views, with no HTTP in it."""
