"""Values as people and programs write them, read one way everywhere: the
REST API, the set-up files and the admin pages share these parsers.

Each parser raises ValueError with a short reason; the caller says where the
value came from.
"""
from datetime import date, datetime, time, timezone


def parse_datetime(value, zone):
    """An aware UTC datetime from ISO 8601 text (`T` or a space between date
    and time, `Z` or an offset allowed), a datetime or a date (midnight).
    Without an offset the value is local time in `zone`."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 datetime: {value!r}") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if not isinstance(value, datetime):
        raise ValueError(f"not a datetime: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"out of range: {value!r}") from None


def format_datetime(value):
    return value.astimezone(timezone.utc).isoformat() if value is not None else None


def parse_time_of_day(value):
    """A local time of day such as 22:00 or 01:30:15: an offset has no
    meaning here and is refused."""
    if isinstance(value, str):
        try:
            value = time.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not a time of day: {value!r}") from None
    if not isinstance(value, time):
        raise ValueError(f"not a time of day: {value!r}")
    if value.tzinfo is not None:
        raise ValueError("a time of day has no offset")
    return value


def parse_addresses(items):
    """E-mail addresses from a list of strings: blank items are dropped, an
    address given twice counts once, each must look like an address (an
    `@`, no spaces)."""
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError("expected a list of e-mail addresses")
    addresses = []
    for item in items:
        address = item.strip()
        if not address:
            continue
        if "@" not in address or any(c.isspace() or c == "\x00" for c in address):
            raise ValueError(f"not an e-mail address: {address!r}")
        if address not in addresses:
            addresses.append(address)
    return addresses


def addresses_text(addresses):
    """How a list of addresses is stored: one per line."""
    return "\n".join(addresses)


def address_list(text):
    """The stored addresses as a list."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]
