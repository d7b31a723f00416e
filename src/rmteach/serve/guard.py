"""What a request to `serve-rm` must pass before it is scored: the API key, the body's size, its JSON, its shape.

Each check refuses with a `Refused` (an HTTP status and a one-line reason) and never echoes the body back: a
hostile or broken client gets a reply under 1 KB whatever it sent. In order:
  1. the key (`check_key`): with an API key set, `Authorization: Bearer KEY`, compared in constant time (401);
  2. the size (`read_body`): a `Content-Length` above the limit is refused before a byte of the body is read,
     and a chunked body is counted while it streams and refused once it passes the limit (413);
  3. the JSON (`parse`): strict JSON, as RFC 8259 has it: UTF-8, no NaN or Infinity, no lone surrogate
     escapes (400);
  4. the shape (`parse`): the endpoint's pydantic model; the reply names the field and the first bad item
     (`query[3]: Input should be a valid string (got int)`); lists stop at their first bad item (422).
`parse` is CPU work on a body of up to the limit: the app runs it on a worker thread, off the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, AsyncIterable, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json


M = TypeVar("M", bound=BaseModel)
MAX_BODY_MB = 16.0  # the default body limit, MB (10**6 bytes): 20,000 queries of 400 characters and their prompts
UNION_TAGS = {"str", "list[str]"}  # pydantic's names for the branches of `str | list[str]` in an error's loc


class Refused(Exception):
    """A request refused with HTTP `status` and a one-line `detail` (plus `headers`, such as WWW-Authenticate)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def _digest(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()  # equal lengths: compare_digest then leaks not even the key's length


def check_key(authorization: str | None, key: str | None) -> None:
    """Refuse (401) a request whose `Authorization` header is not `Bearer <key>`; no key set: all pass.

    Arguments:
        authorization: the header as Starlette gives it (its bytes decoded as latin-1), or None.
        key: the server's API key, or None (no key: every request passes).

    >>> check_key("Bearer k1", "k1")
    >>> check_key("Bearer k2", "k1")
    Traceback (most recent call last):
    rmteach.serve.guard.Refused: wrong API key: send Authorization: Bearer <the server's key>
    """
    if key is None:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    scheme, _, token = (authorization or "").encode("latin-1").strip().partition(b" ")  # the header's own bytes
    if scheme.lower() != b"bearer" or not token.strip():
        raise Refused(401, "this server needs an API key: send Authorization: Bearer <key>", challenge)
    if not hmac.compare_digest(_digest(token.strip()), _digest(key.encode("utf-8"))):
        raise Refused(401, "wrong API key: send Authorization: Bearer <the server's key>", challenge)


def _too_large(limit: int) -> Refused:
    return Refused(413, f"the request body is larger than this server's limit of {limit} bytes (its "
                        "max_body_mb): send fewer texts per request (an rmteach client: a smaller http.batch_size)")


async def read_body(content_length: str | None, chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """The request body, refused (413) past `limit` bytes: at once from `Content-Length`, else while streaming.

    Arguments:
        content_length: the `Content-Length` header, or None (a chunked body).
        chunks: the body as it arrives (Starlette's `request.stream()`); not read when the header is too large.
        limit: the most bytes accepted.

    Returns:
        The body's bytes (at most `limit` of them).
    """
    if content_length is not None:
        if not content_length.strip().isdigit():
            raise Refused(400, "the Content-Length header is not a number of bytes")
        if int(content_length) > limit:
            raise _too_large(limit)  # nothing read: the client's bytes stay in its socket
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def where(loc: tuple[Any, ...]) -> str:
    """An error's location as the client wrote it, pydantic's union branch names left out.

    >>> where(("text_1", "list[str]", 3))
    'text_1[3]'
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in UNION_TAGS:
            out += f".{part}" if out else str(part)
    return out or "the body"


def _item(data: Any, loc: tuple[Any, ...]) -> Any:
    """The value at `loc` in the parsed body (union branch names skipped), or None when there is none."""
    for part in loc:
        if isinstance(part, str) and part in UNION_TAGS:
            continue
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def explain(e: ValidationError, data: Any) -> str:
    """One line for a body of the wrong shape: the deepest first error, its item's type, the other bad fields."""
    errors = e.errors(include_url=False, include_input=False, include_context=False)
    first = max(errors, key=lambda err: len(err["loc"]))  # in `str | list[str]`, the list branch's item
    got = "" if first["type"] == "missing" else f" (got {_kind(_item(data, first['loc']))})"
    others = sorted({str(err["loc"][0]) for err in errors if err["loc"]} - {str(first["loc"][0])})
    also = f"; also bad: {', '.join(others)}" if others else ""
    return f"{where(first['loc'])}: {first['msg']}{got}{also}"[:300]


def _kind(value: Any) -> str:
    """A JSON value's type in JSON's words.

    >>> _kind(None), _kind([1]), _kind({}), _kind(2.5)
    ('null', 'array', 'object', 'float')
    """
    names = {type(None): "null", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def parse(raw: bytes, model: type[M]) -> M:
    """The body as `model`: strict JSON (400 otherwise), of the model's shape (422 naming the first bad item).

    >>> class Body(BaseModel):
    ...     query: list[str]
    >>> parse(b'{"query": ["a", 7]}', Body)
    Traceback (most recent call last):
    rmteach.serve.guard.Refused: query[1]: Input should be a valid string (got int)
    """
    try:  # jiter refuses invalid UTF-8 and lone surrogates; allow_inf_nan=False refuses NaN and Infinity
        data = from_json(raw, allow_inf_nan=False)
    except ValueError as e:
        raise Refused(400, f"the body is not JSON: {str(e)[:120]} (JSON is UTF-8 text with no NaN, Infinity or "
                           "lone surrogate escapes)") from None
    if not isinstance(data, dict):
        raise Refused(422, f"the body is a JSON {_kind(data)}; expected an object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise Refused(422, explain(e, data)) from None
