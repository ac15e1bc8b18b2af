"""The signal catalogue and the batch and online builders that read it."""
