"""pulpo-prometheus: job metrics, queue depth and a health check, served by ``pulpo worker``.

The plugin module pluggy loads is :mod:`pulpo_prometheus.plugin`; it imports
``prometheus_client`` only once a worker or supervisor serves metrics.
"""

__version__ = "0.1.0"
