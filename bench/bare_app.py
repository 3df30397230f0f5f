"""The yardstick of the API-cost figure: a bare Pyramid view that returns a
small JSON object, under waitress with the server's thread count.

    python bench/bare_app.py PORT THREADS
"""
import sys

import waitress
from pyramid.config import Configurator


def bare_view(request):
    return {"id": 1, "ok": True}


def make_app():
    with Configurator() as config:
        config.add_route("bare", "/bare")
        config.add_view(bare_view, route_name="bare", renderer="json")
        return config.make_wsgi_app()


if __name__ == "__main__":
    port, threads = int(sys.argv[1]), int(sys.argv[2])
    waitress.serve(make_app(), listen=f"127.0.0.1:{port}", threads=threads, _quiet=True)
