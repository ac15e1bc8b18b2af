"""The ``/v1`` JSON routers: thin views that translate HTTP to the service functions."""
