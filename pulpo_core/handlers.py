"""Handlers: how a request type finds its code, and how that code is called.

A handler is a callable ``handler(message)`` or an object with ``handle(message)``. When its
first parameter is annotated with an attrs class, the body is structured into that class first
(a *typed body*); a second parameter, if any, receives the message.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable
from typing import Any

import attrs
import cattrs

from pulpo_core.converter import converter, describe_error
from pulpo_core.errors import PluginError
from pulpo_core.message import Message
from pulpo_core.pool.limits import await_limited
from pulpo_core.result import FatalError, Result, TransientError


@attrs.frozen
class LazyHandler:
    """A ``"module:object"`` reference imported only when a worker starts."""

    path: str
    origin: str

    def load(self) -> object:
        module_name, _, attribute = self.path.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                target = getattr(target, part)
        except Exception as error:
            raise PluginError(
                f"handler {self.path!r} ({self.origin}) cannot be imported: "
                f"{type(error).__name__}: {error}"
            ) from None
        if isinstance(target, type):
            target = target()  # a handler class is instantiated once per worker
        return target


def _short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Handler:
    """A loaded handler, ready to run messages."""

    def __init__(self, target: object, request_type: str, name: str | None = None) -> None:
        function = getattr(target, "handle", None) if not inspect.isfunction(target) else None
        call = function if callable(function) else target
        if not callable(call):
            what = repr(name) if name else _short_repr(target)
            raise PluginError(
                f"handler {what} for {request_type!r} is not callable and has no "
                f"handle(message) method (it is of type {type(target).__name__})"
            )
        self.target = target
        self.request_type = request_type
        self._call: Callable[..., Any] = call
        self.body_type, self._wants_message = _body_type(call)
        self.is_async = inspect.iscoroutinefunction(call)

    def __call__(self, message: Message, time_limit: float = 0.0) -> Result:
        """Run the handler and turn whatever it does into a :class:`Result`.

        An ``async def`` handler runs on the process's event loop; its task is cancelled at
        ``time_limit`` seconds (0: none) and the job fails with the time limit reason.
        """
        try:
            if self.body_type is None:
                returned = self._call(message)
            else:
                try:
                    body: Any = converter.structure(message.body, self.body_type)
                except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as error:
                    return Result.fatal(
                        f"body does not fit {self.body_type.__name__}: {describe_error(error)}"
                    )
                args = (body, message) if self._wants_message else (body,)
                returned = self._call(*args)
            if inspect.iscoroutine(returned):
                returned = await_limited(returned, time_limit)
        except TransientError as error:
            return Result.transient(error)
        except FatalError as error:
            return Result.fatal(error)
        except Exception as error:  # any other exception is retried like a transient failure
            return Result.transient(error)
        if returned is None:
            return _SUCCESS  # immutable: one for every job, instead of one per job
        if isinstance(returned, Result):
            return returned
        return Result.fatal(
            f"handler for {self.request_type!r} returned {type(returned).__name__}, "
            f"expected None or a Result"
        )


_SUCCESS = Result.success()


def _body_type(call: Callable[..., Any]) -> tuple[type | None, bool]:
    try:
        signature = inspect.signature(call)
    except (TypeError, ValueError):
        return None, False
    params = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not params:
        return None, False
    try:
        hints = typing.get_type_hints(call)
    except Exception:
        return None, False
    first = hints.get(params[0].name)
    if isinstance(first, type) and attrs.has(first) and first is not Message:
        return first, len(params) > 1
    return None, False


@attrs.frozen
class HandlerSpec:
    """A registered handler: the object or ``"module:object"`` path, and where it came from."""

    target: object
    origin: str

    def describe(self) -> str:
        if isinstance(self.target, LazyHandler):
            return self.target.path
        if isinstance(self.target, str):
            return self.target
        name = getattr(self.target, "__qualname__", None) or type(self.target).__qualname__
        module = getattr(self.target, "__module__", None) or type(self.target).__module__
        return f"{module}:{name}"


class HandlerRegistry:
    """Request type → handler; later registrations win (entry points < plugins < config < code)."""

    def __init__(self) -> None:
        self.specs: dict[str, HandlerSpec] = {}
        self._loaded: dict[str, Handler] = {}

    def add(self, request_type: str, target: object, origin: str) -> None:
        if not isinstance(request_type, str) or not request_type:
            raise ValueError(f"request_type must be a non-empty string, not {request_type!r}")
        if isinstance(target, str):
            target = LazyHandler(target, origin)
        self.specs[request_type] = HandlerSpec(target, origin)
        self._loaded.pop(request_type, None)

    def load_all(self) -> None:
        """Import every handler; raise :class:`PluginError` for the first that does not."""
        for request_type in self.specs:
            self.get(request_type)

    def get(self, request_type: str | None) -> Handler | None:
        if request_type is None:
            return None
        handler = self._loaded.get(request_type)
        if handler is None:
            spec = self.specs.get(request_type)
            if spec is None:
                return None
            if isinstance(spec.target, LazyHandler):
                target, name = spec.target.load(), spec.target.path
            else:
                target, name = spec.target, None
            handler = self._loaded[request_type] = Handler(target, request_type, name)
        return handler
