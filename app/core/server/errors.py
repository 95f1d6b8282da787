"""Errors the API returns, shaped as OpenAI's: {"error": {"message", "type", "code", "param"}}."""

from __future__ import annotations

import json

# status → OpenAI's error type for it
_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
          405: "invalid_request_error", 408: "invalid_request_error", 413: "invalid_request_error",
          415: "invalid_request_error", 421: "invalid_request_error",
          429: "rate_limit_error", 500: "server_error", 503: "server_error"}


class APIError(Exception):
    """An error answered to the client; the message says what to change."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 param: str | None = None, type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "invalid_request_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code,
                          "param": self.param}}

    def json_bytes(self) -> bytes:
        try:
            return json.dumps(self.body(), ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate quoted from somewhere: escape it
            return json.dumps(self.body()).encode()


async def send_error(send, error: APIError, extra_headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Answer with `error` from plain ASGI code (middleware, the event stream)."""
    data = error.json_bytes()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(data)).encode()), *extra_headers]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
