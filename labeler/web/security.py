"""Security headers on every reply: a Content-Security-Policy that allows only the app's own files (the pages
carry no inline script, style or handler: htmx's own inline indicator style is turned off by the htmx-config
meta tag in base.html), no framing, no content sniffing, no referrer to other sites.

The session cookie's Secure flag is the SESSION_COOKIE_SECURE setting (LABELER_SECURE_COOKIES, labeler.config).
"""

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def init_security(app):
    """Register the after_request hook that sets the headers (a view that set one itself keeps its own)."""

    @app.after_request
    def _security_headers(response):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app
