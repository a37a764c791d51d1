"""Fixtures shared by the end-to-end tests of this folder (the session's services: tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import pytest


@pytest.fixture()
def small_pages(worker: object) -> Iterator[None]:
    """The in-process worker listing Google pages of 8 events."""
    from autosync.services import context as ctxmod
    from autosync.settings import get_settings

    saved = ctxmod._ctx, ctxmod._pid
    ctxmod._ctx, ctxmod._pid = ctxmod.build(replace(get_settings(), google_page_size=8)), os.getpid()
    try:
        yield
    finally:
        ctxmod._ctx, ctxmod._pid = saved
