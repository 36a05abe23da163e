"""Shared fixtures: the tiny models are built once per session (cached on disk by cookbook.kit.tiny)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny():
    """(model, processor) of the tiny Instruct checkpoint."""
    from cookbook.runtime.loading import load

    return load("tiny")


@pytest.fixture(scope="session")
def tiny_thinking():
    """(model, processor) of the tiny Thinking checkpoint."""
    from cookbook.runtime.loading import load

    return load("tiny-thinking")


@pytest.fixture
def photo():
    """A small real-looking RGB image: a gradient with a square, 200x120 pixels."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:120, 0:200]
    arr = np.stack([x * 255 // 199, y * 255 // 119, np.full_like(x, 90)], axis=-1).astype("uint8")
    arr[30:70, 50:110] = (250, 20, 20)
    return Image.fromarray(arr)
