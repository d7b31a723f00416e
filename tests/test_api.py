"""The public namespace: every advertised name resolves to the object its module defines."""

from __future__ import annotations

import importlib

import pytest

import rmteach


@pytest.mark.parametrize("name", rmteach.__all__)
def test_public_names_resolve(name):
    module = importlib.import_module(f"rmteach.{rmteach._EXPORTS[name]}")
    assert getattr(rmteach, name) is getattr(module, name)


def test_unknown_name_raises():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rmteach.nope  # noqa: B018
