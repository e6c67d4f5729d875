"""Fixtures shared by the task tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models run faster on one intra-op thread, above all on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
