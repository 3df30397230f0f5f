"""Log lines stamped in UTC, the zone the development ini shows on the
dashboard, so a log line and a run's times on the page read the same
wherever the machine is."""
import logging
import time


class UTCFormatter(logging.Formatter):
    converter = time.gmtime
    default_time_format = "%Y-%m-%d %H:%M:%S"
    default_msec_format = "%s,%03dZ"
