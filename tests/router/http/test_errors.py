"""The HTTP layer's errors: one base, HttpError, that every error its modules raise derives from."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil

import pytest

import router.http
from router.http.errors import HttpError
from router.http.requests import RequestError, RequestReader


def error_classes() -> list[type[BaseException]]:
    """Every exception class defined in a module of router.http."""
    found = []
    for info in pkgutil.iter_modules(router.http.__path__, "router.http."):
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == info.name:
                found.append(value)
    return found


def test_every_error_of_the_layer_derives_from_its_base() -> None:
    classes = error_classes()
    assert RequestError in classes and HttpError in classes
    assert [c for c in classes if not issubclass(c, HttpError)] == []
    assert not issubclass(HttpError, (ValueError, OSError))  # a base of its own


def test_what_the_reader_refuses_is_caught_as_the_layers_error() -> None:
    async def read() -> bytes:
        return b"not HTTP at all\r\n\r\n"

    with pytest.raises(HttpError) as caught:
        asyncio.run(RequestReader(read, max_head=1024, max_body=1024).next(5))
    assert isinstance(caught.value, RequestError)
    assert caught.value.status == 400
