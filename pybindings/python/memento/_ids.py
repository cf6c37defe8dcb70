"""Content ids: the id ``remember`` gives a text when none is given."""

from __future__ import annotations

import hashlib

from .errors import InvalidArgumentError

__all__ = ["content_id"]


def content_id(text: str) -> str:
    """The id ``remember`` gives a text: ``"m-"`` and the first 32 hex digits of the SHA-256 of
    its UTF-8 bytes (``memento::Engine::content_id``), so the same text always gets the same
    id, in both engines."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"Invalid argument: a text must be a string, not {type(text).__name__}.")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError("Invalid argument: a text is not valid Unicode (it holds a lone surrogate).") from None
    return "m-" + hashlib.sha256(data).hexdigest()[:32]
