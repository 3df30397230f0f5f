"""The dashboard: HTML pages for the people who own the jobs."""


def includeme(config):
    pass
