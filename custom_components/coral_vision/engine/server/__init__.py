"""Coral Vision's server: the engine over HTTP, at the edge like cli (nothing in the engine imports it).

Needs only the engine's dependencies plus aiohttp, prometheus-client (for /metrics) and
python-zeroconf (to announce itself).
Run `python -m engine.server` or `scripts/coral-vision serve`; `--help` lists the options.

- `options`: flags, environment variables and the JSON config file (the app's options.json).
- `host`: the models it runs, one Dispatcher per loaded model over every configured device.
- `app`: the web application; `guard` (key, fairness, body size), `errors` (failures as HTTP).
- `native`: the /v1/ API, /health and /metrics (results in the engine's `wire` form).
- `deepstack`: the DeepStack / CodeProject.AI compatible endpoints.
- `metrics`: Prometheus text; `identity`: server id and version; `discovery`: mDNS, Supervisor.
- `run`: listen until SIGTERM/SIGINT, then shut down gracefully.
"""
