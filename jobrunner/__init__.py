"""Job-Runner: a crontab with a web front end.

Imports stay inside main(): `jobrunner.worker` is a client that must load
nothing of the server, and importing it runs this module first.
"""


def main(global_config, **settings):
    """The WSGI application."""
    from pyramid.config import Configurator

    from .api.traversal import Root
    from .settings import resolve_settings

    settings = resolve_settings(settings)
    with Configurator(settings=settings, root_factory=Root) as config:
        config.include("pyramid_jinja2")
        config.add_jinja2_renderer(".jinja2")
        config.include(".models")
        config.include(".security")
        config.include(".api")
        config.include(".scheduling")
        config.include(".dashboard")
        config.include(".observability")
        config.add_static_view("static", "jobrunner:static", cache_max_age=3600)
    return config.make_wsgi_app()
