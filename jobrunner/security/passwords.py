"""Password hashing (argon2), with a bound on the hashes computed at once.

A hash takes tens of milliseconds of CPU and memory on purpose; a flood of
logins must not hold every server thread, which the workers' API requests
need. At most `max_concurrent` hashes run at a time; a login that finds no
free slot within WAIT_SECONDS is answered "busy" at once.
"""
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
DEFAULT_MAX_CONCURRENT_HASHES = 2
WAIT_SECONDS = 0.5
_slots = None


class HashingBusy(Exception):
    """Every hashing slot is taken: the login should be tried again soon."""


def limit_concurrent_hashes(max_concurrent):
    """0 or less: no limit (as before the bound existed; for benchmarks)."""
    global _slots
    _slots = threading.BoundedSemaphore(max_concurrent) if max_concurrent > 0 else None


limit_concurrent_hashes(DEFAULT_MAX_CONCURRENT_HASHES)


def hash_password(password):
    return _hasher.hash(password)


def check_password(password_hash, password):
    slots = _slots
    if slots is not None and not slots.acquire(timeout=WAIT_SECONDS):
        raise HashingBusy()
    try:
        return _verify(password_hash, password)
    finally:
        if slots is not None:
            slots.release()


def _verify(password_hash, password):
    if not password_hash:
        # Still spend the time of a verification.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
