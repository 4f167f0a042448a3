"""The pure core's tests (chalicelib/grip, and the client library's parity with
it): no moto, no stack, no `import app`, no I/O. Nothing to set up, so no fixture
here; and nothing of the adapters may be imported here or by these tests
(test_layers.py checks it), so `pytest tests/core` runs them alone in seconds."""
