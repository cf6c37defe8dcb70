"""The exceptions of Memento: one tree rooted at :class:`MementoError`.

Both engines raise these very classes: the native module (``memento._native``) imports this
module when it initialises and maps each ``memento::Error`` variant to its class, and the
pure-Python engine raises them itself. Some classes also derive from the built-in exception a
Python programmer would expect (``ValueError``, ``KeyError``, ``OSError``), so that generic
handlers keep working::

    MementoError
    ├── DimensionMismatchError      a vector's length is not the store's dimension
    ├── InvalidVectorError          NaN, an infinity, or a zero vector under cosine
    ├── InvalidArgumentError        (also ValueError) any other unacceptable argument
    ├── InvalidFilterError          (also ValueError) a ``where`` filter that is not well formed
    ├── NotFoundError               (also KeyError) no record has this id
    ├── DuplicateIdError            ``add`` of an id that is already stored
    ├── CorruptedError              a file of the store is damaged
    ├── IncompatibleError           another format version, or options that contradict the store
    ├── LockedError                 another process (or engine) has the store open
    ├── MementoIOError              (also OSError) an operating-system I/O error, or SQLite's
    ├── PoisonedError               an earlier write failed; reopen the store to recover
    ├── ReadOnlyError               a write on an engine opened with read_only=True
    ├── ClosedError                 the engine was closed
    ├── ModelError                  the embedding model or its runtime is missing or failed
    ├── ModelMismatchError          the store was written with another embedding model
    ├── NoModelError                a text operation on an engine without a model
    ├── ForkedProcessError          the engine was opened by another process (this is a fork of it)
    ├── CollectionNotFoundError     (also KeyError) no collection of this name (memento.Client)
    ├── CollectionExistsError       a collection of this name exists already
    └── CollectionInUseError        the collection is open for writing, so it cannot be deleted or renamed

Every class is built as ``cls(message, **details)``. The details become attributes (``pid`` of
a :class:`LockedError`, ``expected`` and ``got`` of a :class:`DimensionMismatchError`, ...).
Both engines give them: the native module builds each exception with the fields of the Rust
error, the pure-Python engine with its own. An attribute a class documents that was not given
is None.

This module imports nothing but the standard library, so the exceptions are available even
when the native module is not.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "MementoError",
    "DimensionMismatchError",
    "InvalidVectorError",
    "InvalidArgumentError",
    "InvalidFilterError",
    "NotFoundError",
    "DuplicateIdError",
    "CorruptedError",
    "IncompatibleError",
    "LockedError",
    "MementoIOError",
    "PoisonedError",
    "ReadOnlyError",
    "ClosedError",
    "ModelError",
    "ModelMismatchError",
    "NoModelError",
    "ForkedProcessError",
    "CollectionNotFoundError",
    "CollectionExistsError",
    "CollectionInUseError",
]


class MementoError(Exception):
    """The root of every error Memento raises.

    ``message`` is a whole sentence saying what went wrong (and, where it can, how to fix it).
    Keyword ``details`` are set as attributes of the exception.
    """

    #: Attributes every instance of the class has (None when not given).
    _detail_names: ClassVar[tuple[str, ...]] = ()

    message: str

    def __init__(self, message: str = "", /, **details: Any) -> None:
        message = str(message)
        super().__init__(message)
        self.message = message
        for name in self._detail_names:
            setattr(self, name, None)
        for name, value in details.items():
            setattr(self, name, value)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        details = {k: v for k, v in self.__dict__.items() if k != "message"}
        return (_rebuild, (type(self), self.message, details))


def _rebuild(cls: type[MementoError], message: str, details: dict[str, Any]) -> MementoError:
    """Unpickles an exception (keyword details do not survive the default protocol)."""
    return cls(message, **details)


class DimensionMismatchError(MementoError):
    """A vector's length is not the store's dimension. ``expected``: the store's dimension;
    ``got``: the length given."""

    expected: int | None
    got: int | None
    _detail_names = ("expected", "got")


class InvalidVectorError(MementoError):
    """A vector holds NaN or an infinity, or is all zeros under the cosine metric."""


class InvalidArgumentError(MementoError, ValueError):
    """An argument other than a vector's values is not acceptable: an empty id, metadata that
    is not a JSON object, an array of strings, a ragged list, k < 1, ... Also a ValueError."""


class InvalidFilterError(MementoError, ValueError):
    """A ``where`` filter is not well formed (unknown operator, empty ``$in`` list, ...).
    Also a ValueError."""


class NotFoundError(MementoError, KeyError):
    """No record has this id (``id``). Also a KeyError."""

    id: str | None
    _detail_names = ("id",)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class DuplicateIdError(MementoError):
    """``add`` was given an id that is already stored, or that an earlier record of the same
    batch has (``id``; ``in_batch``: True in the second case); use ``upsert`` to replace."""

    id: str | None
    in_batch: bool | None
    _detail_names = ("id", "in_batch")


class CorruptedError(MementoError):
    """A file of the store is damaged or is not what the store expects. ``file``: the file;
    ``offset``: the byte offset of the damage in it; ``reason``: what is wrong. Damage to the
    native engine's SQLite mirror (one that persists after the engine rebuilt the mirror) has a
    ``reason`` but no ``file`` or ``offset`` (None): SQLite does not say where."""

    file: str | None
    offset: int | None
    reason: str | None
    _detail_names = ("file", "offset", "reason")


class IncompatibleError(MementoError):
    """The store (or the native engine's SQLite mirror) was written by an incompatible version,
    or the options given at open (dimension, metric, engine kind) contradict the store."""


class LockedError(MementoError):
    """Another process, or another open engine in this process, holds the store. ``pid``: the
    holder's process id (0 if unknown); ``path``: the store."""

    pid: int | None
    path: str | None
    _detail_names = ("pid", "path")


class MementoIOError(MementoError, OSError):
    """An operating-system I/O error (``errno`` when the system gave one), or a failure of SQLite
    that is not damage (a full disk, a busy or read-only database). Also an OSError."""

    def __str__(self) -> str:
        return self.message


class PoisonedError(MementoError):
    """An earlier write or fsync failed, so the store refuses writes until it is closed and
    reopened (which recovers to the last durable commit)."""


class ReadOnlyError(MementoError):
    """A write (or a checkpoint) on an engine opened with ``read_only=True``: only the process
    that opens the store for writing writes it. ``path``: the store directory."""

    path: str | None
    _detail_names = ("path",)


class ClosedError(MementoError):
    """The engine was closed."""


class ModelError(MementoError):
    """The embedding model or the ONNX Runtime is missing, unusable or failed; the message says
    how to fix it (usually: run ``make setup`` or ``memento model provision``)."""


class ModelMismatchError(MementoError):
    """The store was written with another embedding model than the one given (``store``,
    ``given``)."""

    store: str | None
    given: str | None
    _detail_names = ("store", "given")


class NoModelError(MementoError):
    """A text operation (``remember``, ``recall``, ``add`` without vectors, ...) on an engine
    opened without an embedding model."""


#: :class:`NoModelError`'s message, the same in both engines (the native module's is this text).
_NO_MODEL_MESSAGE = (
    "This engine was opened without an embedding model; reopen the store with one "
    '(model="default" for the default model, or model="<a model directory>") to store or search text.'
)


class ForkedProcessError(MementoError):
    """The engine was opened by another process, and this one is a ``fork()`` of it (an
    ``os.fork`` child, a ``multiprocessing`` worker of the "fork" start method). Nothing works
    through an inherited engine: open the store in the process that uses it (after the parent
    closes it), or use the "spawn" start method. ``opener_pid``: the process that opened the
    engine; ``current_pid``: this one."""

    opener_pid: int | None
    current_pid: int | None
    _detail_names = ("opener_pid", "current_pid")


def _forked_message(opener_pid: int, current_pid: int) -> str:
    """:class:`ForkedProcessError`'s message (the Rust engine's ``Error::ForkedProcess``)."""
    return (
        f"This engine was opened by process {opener_pid}; process {current_pid} (a fork of it) cannot use it: "
        "open the store in the process that uses it (a forked child should open it itself, after the parent closes it, "
        'or use multiprocessing\'s "spawn" start method).'
    )


class CollectionNotFoundError(MementoError, KeyError):
    """No collection of this name (``name``) in the collections directory
    (:class:`memento.Client`). Also a KeyError."""

    name: str | None
    _detail_names = ("name",)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class CollectionExistsError(MementoError):
    """A collection of this name (``name``) exists already."""

    name: str | None
    _detail_names = ("name",)


class CollectionInUseError(MementoError):
    """The collection ``name`` is open for writing by a process (``pid``, 0 if unknown; this one
    or another), so it cannot be deleted or renamed."""

    name: str | None
    pid: int | None
    _detail_names = ("name", "pid")
