"""Observability: `/healthz`, `/metrics`, and the audit log and webhook
deliveries as pages under /admin/."""
from pyramid.tweens import INGRESS

from .health import DatabaseHealth
from .metrics import build_registry

HEALTH_KEY = "jobrunner.health"


def includeme(config):
    registry = config.registry
    build_registry(registry)
    registry[HEALTH_KEY] = DatabaseHealth(registry["dbengine"])
    # Outermost, so that the time and status of every answer are measured,
    # error pages and transaction retries included.
    config.add_tween("jobrunner.observability.metrics.metrics_tween_factory", under=INGRESS)
    config.add_route("healthz", "/healthz")
    config.add_route("metrics", "/metrics")
    config.add_route("admin_audit", "/admin/audit")
    config.add_route("admin_webhooks", "/admin/webhooks")
    config.scan(".views")
