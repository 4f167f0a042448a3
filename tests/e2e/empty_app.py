"""A Chalice app with nothing in it: no routes, no WebSocket handlers, no queue
handler. `slipway local --app tests.e2e.empty_app:app` must still run."""

from chalice import Chalice

app = Chalice(app_name="empty")
