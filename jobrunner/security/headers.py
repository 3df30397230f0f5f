"""The security headers of every answer, in one place.

Every answer: `X-Content-Type-Options: nosniff` (a JSON error is never run
as a script). Every answer but static files: `Cache-Control: no-store` (API
objects, logs and admin pages are not for shared or browser caches). HTML
pages: a Content-Security-Policy that lets only this site's scripts and
styles run and no other site frame the page, and a same-origin referrer.
"""

# Scripts and styles come from this app only; API strings are put on the page
# as text, and this policy stops anything that slipped through from running.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
STATIC_PREFIX = "/static/"


def add_security_headers(event):
    request, response = event.request, event.response
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # The raw path: a path that is not UTF-8 gets its 400 with headers too.
    if not request.environ.get("PATH_INFO", "").startswith(STATIC_PREFIX):
        headers["Cache-Control"] = "no-store"
    if (response.content_type or "").startswith("text/html"):
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
