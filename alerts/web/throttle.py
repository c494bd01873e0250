"""Sign-in throttling: failed password checks counted per account, per client address and
per trusted device, in a sliding window over the `login_attempts` table.

Buckets (failures in the last `window_s` seconds; ARTWATCH_WEB_LOGIN_* settings):

- **account**: failures against one e-mail from browsers *without* a device cookie for it
  (`max_failures_account`);
- **address**: failures from one client address (an IPv6 client's /64) from browsers
  without a device cookie (`max_failures_address`), whatever e-mail they tried;
- **device**: failures from one browser that holds a valid device cookie for the e-mail
  (`max_failures_account`).

A device cookie is signed by the web secret and given to a browser at its first successful
sign-in to an account (OWASP's "device cookie" defence). A browser that has one is judged by
its own bucket only, so an attacker who fills the account and address buckets from
anywhere else does not lock the reviewer out of their usual browser: there is no account
lock-out an attacker can use against a reviewer. New browsers wait until the window moves on.

A throttled attempt is answered 429 with Retry-After, and its password is not checked at
all (nothing learnt, no Argon2 work). The attempt row is written *before* the password
check and counted by the concurrent ones, so parallel guesses cannot slip past the limit.
The moment a bucket fills is logged once (logger `alerts.web.throttle`, WARNING).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from itsdangerous import BadSignature, URLSafeTimedSerializer

log = logging.getLogger(__name__)

DEVICE_COOKIE = "artwatch_device"
DEVICE_SALT = "artwatch.device-cookie.v1"
DEVICE_MAX_AGE_S = 180 * 24 * 3600

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Failures allowed per bucket within `window_s` seconds."""

    window_s: int
    max_failures_account: int
    max_failures_address: int


@dataclass(frozen=True)
class Throttled:
    """Why a sign-in attempt was refused without checking its password."""

    bucket: str  # account | address | device
    retry_after_s: int


def client_bucket(host: str | None) -> str:
    """The address key of a client: the IPv4 address, or an IPv6 client's /64 network."""
    try:
        ip = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


class DeviceCookies:
    """Signed device cookies: `{e: e-mail, n: nonce}` under a purpose-specific salt."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=DEVICE_SALT)

    def issue(self, email: str) -> str:
        return self._serializer.dumps({"e": email, "n": secrets.token_urlsafe(16)})

    def nonce(self, cookie: str | None, email: str) -> str | None:
        """The cookie's nonce when it is genuine, unexpired and for this e-mail."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=DEVICE_MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("e") != email:
            return None
        nonce = data.get("n")
        return nonce if isinstance(nonce, str) and nonce else None


_COUNTS = """
SELECT count(*) FILTER (WHERE email = %(email)s AND device IS NULL) AS account,
       count(*) FILTER (WHERE address = %(address)s AND device IS NULL) AS address,
       count(*) FILTER (WHERE device = %(device)s) AS device
  FROM login_attempts
 WHERE at > now() - make_interval(secs => %(window)s) AND outcome <> 'ok'
   AND id <> %(id)s
   AND (email = %(email)s OR address = %(address)s OR device = %(device)s)
"""

_BUCKET_WHERE = {
    "account": "email = %(email)s AND device IS NULL",
    "address": "address = %(address)s AND device IS NULL",
    "device": "device = %(device)s",
}


def _retry_after(conn: psycopg.Connection, bucket: str, params: dict, limit: int) -> int:
    """Seconds until the bucket holds fewer than `limit` failures again."""
    row = conn.execute(
        f"""
        SELECT ceil(extract(epoch FROM at + make_interval(secs => %(window)s) - now()))::int
               AS wait
          FROM login_attempts
         WHERE {_BUCKET_WHERE[bucket]} AND outcome <> 'ok' AND id <> %(id)s
           AND at > now() - make_interval(secs => %(window)s)
         ORDER BY at DESC OFFSET %(offset)s LIMIT 1
        """,
        {**params, "offset": limit - 1},
    ).fetchone()
    return max(1, int(row["wait"])) if row else 1


def _full_buckets(params: dict, limits: Limits, counts: dict) -> list[tuple[str, int]]:
    if params["device"] is not None:
        wanted = [("device", limits.max_failures_account)]
    else:
        wanted = [("account", limits.max_failures_account),
                  ("address", limits.max_failures_address)]
    return [(name, limit) for name, limit in wanted if counts[name] >= limit]


def attempt_sign_in(
    conn: psycopg.Connection,
    email: str,
    address: str,
    device: str | None,
    limits: Limits,
    check: Callable[[], T | None],
) -> T | Throttled | None:
    """Run `check()` (the password check) unless a bucket is full; record the outcome.

    Returns what `check` returned (None: wrong credentials) or `Throttled`. The attempt's
    row is committed before anything is counted, so concurrent attempts see each other
    (`conn` must not be inside a `transaction()` block).
    """
    email = email.strip().lower()[:320]
    row = conn.execute(
        "INSERT INTO login_attempts (email, address, device) VALUES (%s, %s, %s) RETURNING id",
        (email, address, device),
    ).fetchone()
    conn.commit()
    params = {"email": email, "address": address, "device": device, "id": row["id"],
              "window": limits.window_s}
    counts = conn.execute(_COUNTS, params).fetchone()
    full = _full_buckets(params, limits, counts)
    if full:
        # Not a password check: the row goes, so refusals never extend the pause.
        conn.execute("DELETE FROM login_attempts WHERE id = %s", (row["id"],))
        wait = max(_retry_after(conn, bucket, params, limit) for bucket, limit in full)
        return Throttled(full[0][0], wait)
    result = None
    try:
        result = check()
    finally:
        conn.execute(
            "UPDATE login_attempts SET outcome = %s WHERE id = %s",
            ("ok" if result is not None else "failed", row["id"]),
        )
    if result is None:
        mine = ("device",) if device is not None else ("account", "address")
        counts = {k: v + (k in mine) for k, v in counts.items()}
        keys = {"account": email, "address": address, "device": f"device cookie for {email}"}
        for bucket, limit in _full_buckets(params, limits, counts):
            if counts[bucket] == limit:  # this failure filled the bucket: say so once
                log.warning(
                    "sign-in throttled: %s %s reached %d failed sign-ins in %d s "
                    "(this attempt: account %s, client %s); further attempts get 429",
                    bucket, keys[bucket], limit, limits.window_s, email, address,
                )
    return result


def prune_attempts(conn: psycopg.Connection, keep_days: int = 30) -> int:
    """Forget attempts older than `keep_days` (they are long outside any window)."""
    cur = conn.execute(
        "DELETE FROM login_attempts WHERE at < now() - make_interval(days => %s)", (keep_days,)
    )
    return cur.rowcount
