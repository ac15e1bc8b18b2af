"""Serving the app: a supervisor that listens once and hands the socket to worker processes."""
