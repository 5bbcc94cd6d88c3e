"""Hasher tests run torch on one intra-op thread: on 2-core machines shared with services, two threads spin
against each other and run up to ~20x slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
