"""Job-Runner: a crontab with a web front end.

Imports stay inside main(): `jobrunner.worker` is a client that must load
nothing of the server, and importing it runs this module first.
"""


def main(global_config, **settings):
    """The WSGI application: each part of the app configures itself."""
    from pyramid.config import Configurator

    from .settings import resolve_settings

    with Configurator(settings=resolve_settings(settings)) as config:
        config.include(".settings")
        config.include(".root")
        config.include(".models")
        config.include(".security")
        config.include(".errors")
        config.include(".api")
        config.include(".scheduling")
        config.include(".dashboard")
        # /admin/audit and /admin/webhooks before the admin pages' /admin/*traverse.
        config.include(".observability")
        config.include(".admin_pages")
    return config.make_wsgi_app()
