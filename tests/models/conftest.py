"""Fixtures: tiny perturbed models (see models_testlib)."""

from __future__ import annotations

import pytest
import torch
from models_testlib import perturb, tiny_image, tiny_video


@pytest.fixture
def video_model():
    torch.manual_seed(0)
    return perturb(tiny_video()).eval()


@pytest.fixture
def image_model():
    torch.manual_seed(0)
    return perturb(tiny_image()).eval()
