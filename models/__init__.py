"""Model training, calibration, evaluation, registry and the scorer the service loads."""
