"""The ``YYYYMMDD_HHMMSS`` stamp every job name ends with."""

import datetime


def job_timestamp(unix_seconds: int) -> str:
    """`unix_seconds` (UTC) as ``YYYYMMDD_HHMMSS``."""
    moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=unix_seconds)
    return moment.strftime("%Y%m%d_%H%M%S")
