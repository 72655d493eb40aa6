"""What a journal stores of a task: its callable by importable name, its arguments as
JSON (or, when the caller opts in, as a pickle) and its result.

A journaled call must be found again by a new process: ``fn`` is kept as
``module:qualified.name`` and must resolve to the same object by import (a lambda, a
closure, a local class's method or a bound method of an object cannot). A function of
the running script is kept as ``__main__:name``: the same script, restarted, finds it;
another program opening the journal fails that task with the reason. Arguments are
JSON by default, checked strictly so that what is read back is what was given: ``None``,
``bool``, ``int``, finite ``float``, ``str``, lists and dicts with ``str`` keys (a tuple
inside the arguments would come back a list, so it is refused). A journal of pickles
runs code when it is loaded: opt in only for a journal no one else can write.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import pickle
from collections.abc import Callable
from typing import Any

#: How a journal stores arguments and results.
ENCODINGS = ("json", "pickle")


def check_options(encoding: str, keep_results: bool) -> None:
    """Raise ValueError naming ``journal_encoding`` or ``journal_results`` if bad."""
    if encoding not in ENCODINGS:
        raise ValueError(f"journal_encoding must be one of {ENCODINGS}, got {encoding!r}")
    if not isinstance(keep_results, bool):
        raise ValueError(f"journal_results must be True or False, got {keep_results!r}")


class NotJournalableError(ValueError):
    """A task the journal cannot keep (the message says why)."""


def callable_name(fn: Callable[..., Any]) -> str:
    """``fn`` as ``module:qualname``, checked to import back to ``fn`` itself (the answer
    is kept for the functions most recently named)."""
    try:
        return _named(fn)
    except TypeError:  # an unhashable callable: named each time
        return _name_of(fn)


@functools.lru_cache(maxsize=256)
def _named(fn: Callable[..., Any]) -> str:
    return _name_of(fn)


def _name_of(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise NotJournalableError(f"fn {fn!r} has no importable name (no __module__/__qualname__)")
    if "<" in qualname:  # <lambda>, <locals>
        raise NotJournalableError(
            f"fn {module}.{qualname} cannot be imported by a new process (a lambda or a "
            "function defined inside another): journal a module-level function"
        )
    name = f"{module}:{qualname}"
    try:
        found = resolve_callable(name)
    except NotJournalableError:
        found = None
    if found is not fn and found != fn:  # a bound method of a module-level object is ==
        raise NotJournalableError(
            f"fn {fn!r} does not import back as {name} (a bound method of an object, or a "
            "name rebound since): journal a module-level function"
        )
    return name


def resolve_callable(name: str) -> Callable[..., Any]:
    """The callable a journal names ``module:qualname``."""
    module_name, _, qualname = name.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise NotJournalableError(f"fn {name} cannot be imported: {error}") from None
    if not callable(found):
        raise NotJournalableError(f"fn {name} is not callable")
    return found  # type: ignore[no-any-return]


def encode_call(args: tuple[Any, ...], kwargs: dict[str, Any], encoding: str) -> bytes:
    """The call's arguments as the journal stores them."""
    if encoding == "pickle":
        try:
            return pickle.dumps((args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            raise NotJournalableError(f"the arguments cannot be pickled: {error}") from None
    _check_json(list(args), "args")
    _check_json(kwargs, "kwargs")
    return json.dumps([list(args), kwargs], allow_nan=False).encode()


def decode_call(stored: bytes, encoding: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The inverse of :func:`encode_call`."""
    if encoding == "pickle":
        args, kwargs = pickle.loads(stored)  # the caller opted into pickles
        return tuple(args), dict(kwargs)
    args, kwargs = json.loads(stored)
    return tuple(args), kwargs


def encode_result(value: Any, encoding: str) -> tuple[bytes | None, str]:
    """``value`` for the journal, or (None, why it was not kept)."""
    try:
        if encoding == "pickle":
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), ""
        _check_json(value, "result")
        return json.dumps(value, allow_nan=False).encode(), ""
    except (NotJournalableError, Exception) as error:
        return None, f"result not kept: {error}"


def decode_result(stored: bytes | None, encoding: str) -> Any:
    """The inverse of :func:`encode_result` (None when nothing was kept)."""
    if stored is None:
        return None
    if encoding == "pickle":
        return pickle.loads(stored)  # the caller opted into pickles
    return json.loads(stored)


def _check_json(value: Any, where: str) -> None:
    """Raise NotJournalableError unless ``value`` is JSON that reads back as itself."""
    kind = type(value)
    if value is None or kind in (bool, int, str):  # not a subclass: an IntEnum reads back an int
        return
    if kind is float:
        if not math.isfinite(value):
            raise NotJournalableError(f"{where} holds {value!r}, which JSON cannot hold")
        return
    if kind is list:
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
        return
    if kind is dict:
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotJournalableError(f"{where} has the key {key!r}: JSON keys are strings")
            _check_json(item, f"{where}[{key!r}]")
        return
    hint = " (it would come back a list: pass a list)" if isinstance(value, tuple) else ""
    raise NotJournalableError(
        f"{where} holds a {kind.__name__}, which JSON cannot hold as it is{hint}; "
        "journal_encoding='pickle' keeps any picklable value"
    )
