"""Five-field cron expressions as Celery beat reads them.

Settings check `ARTWATCH_DIGEST_CRON` with the same parser beat uses, so a value beat
would die on is refused when the settings load, naming the setting and the field.
"""

from __future__ import annotations

from typing import Any

FIELDS = (
    # (crontab keyword, name in messages, crontab_parser arguments)
    ("minute", "minute", (60,)),
    ("hour", "hour", (24,)),
    ("day_of_month", "day of month", (31, 1)),
    ("month_of_year", "month", (12, 1)),
    ("day_of_week", "day of week", (7,)),
)


def crontab_of(expression: str) -> Any:
    """Celery's `crontab` for "minute hour day-of-month month day-of-week" (UTC).

    Raises ValueError naming the field at fault, e.g. "hour '25': Invalid end range: 25 > 23."
    """
    from celery.schedules import crontab, crontab_parser  # only when a schedule is read

    parts = str(expression).split()
    if len(parts) != len(FIELDS):
        raise ValueError(
            f"{expression!r} is not a cron expression: it needs five fields "
            "(minute hour day-of-month month day-of-week), it has "
            f"{len(parts)}"
        )
    for part, (_, name, bounds) in zip(parts, FIELDS, strict=True):
        try:
            crontab_parser(*bounds).parse(part)
        except ValueError as exc:
            raise ValueError(f"{name} {part!r}: {exc}") from None
    return crontab(**{key: part for part, (key, _, _) in zip(parts, FIELDS, strict=True)})
