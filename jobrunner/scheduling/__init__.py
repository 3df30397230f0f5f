"""Scheduling: claiming, returning, rescheduling, chains and the scheduler loop."""


def includeme(config):
    config.include("pyramid_mailer")
