"""The error vocabulary of the API: every answer other than success is an :class:`ApiError`,
rendered as ``{"detail": ..., "code": ..., ["errors": {...}]}`` (PROTOCOL.md, "Errors").

Domain rules raise ``models.DomainError``; :func:`ApiError.from_domain` gives it its status.
"""

import tornado.web

import models

DOMAIN_STATUS = {
    models.Unauthenticated: 401,
    models.Invalid: 400,
    models.NotFound: 404,
    models.Forbidden: 403,
    models.Conflict: 409,
}

# The code of an answer that has no more specific one (Tornado's own 404/405/500 and the like).
STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    414: "uri_too_long",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    503: "server_busy",
}

# What a generic answer says when nothing more specific was raised.
STATUS_DETAILS = {
    404: "No existe.",
    500: "Error interno del servidor.",
}


class ApiError(tornado.web.HTTPError):
    """An answer other than success. Raised anywhere in a handler; rendered by write_error."""

    def __init__(self, status, code, detail, errors=None, headers=None, extra=None):
        """``extra``: more members of the answer's body (what an interrupted import wrote)."""
        super().__init__(status)
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}

    @classmethod
    def from_domain(cls, exc):
        status = next((s for kind, s in DOMAIN_STATUS.items() if isinstance(exc, kind)), 400)
        return cls(status, exc.code, exc.detail, exc.errors)

    def body(self):
        body = {"detail": self.detail, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def as_api_error(exc, status_code, reason):
    """Whatever ended a request, as the ApiError to answer: domain errors keep their code,
    anything else (a bug, Tornado's own HTTPError) becomes a generic answer with no details."""
    if isinstance(exc, models.DomainError):
        return ApiError.from_domain(exc)
    if isinstance(exc, ApiError):
        return exc
    if status_code >= 500:
        status_code = 500
    return ApiError(status_code, STATUS_CODES.get(status_code, "error"),
                    STATUS_DETAILS.get(status_code, reason))


def too_many(detail, retry_after):
    """429 with ``Retry-After`` (seconds): this client is over one of its limits."""
    return ApiError(429, "rate_limited", detail, headers={"Retry-After": str(retry_after)})


def server_busy(retry_after, detail="El servidor está ocupado; reintente en unos segundos.",
                code="server_busy"):
    """503 with ``Retry-After`` (seconds): a bounded queue of the server is full, whoever asks."""
    return ApiError(503, code, detail, headers={"Retry-After": str(retry_after)})
