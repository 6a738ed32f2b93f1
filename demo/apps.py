from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo around the product: the simulated city's command, the demo accounts (public passwords) and the
    closed loop on the simulated city. Installed in development mode (DEBUG=1) only; no product app imports it."""

    name = "demo"
    verbose_name = "Demo"
