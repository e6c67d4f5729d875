"""`videomamba search`: exact top-k ordering (NumPy and FAISS) and the command's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from search_fixtures import make_tiny_model, make_videos
from videomamba.apps.search_index import (
    LoadedIndex, VectorSearch, VideoTextEmbedder, build_index, faiss_available,
)

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ["numpy", pytest.param("faiss", marks=pytest.mark.skipif(
    not faiss_available(), reason="faiss-cpu not installed"))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_top_k_is_exact_and_ordered(backend: str) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 24)).astype(np.float32)
    queries = rng.normal(size=(3, 24)).astype(np.float32)
    scores, ids = VectorSearch(vectors, backend).search(queries, 7)
    brute = queries @ vectors.T
    for q in range(3):
        np.testing.assert_array_equal(ids[q], np.argsort(-brute[q], kind="stable")[:7])
        np.testing.assert_allclose(scores[q], brute[q, ids[q]], rtol=1e-5)
        assert np.all(np.diff(scores[q]) <= 0)


def test_k_larger_than_the_index_and_ties() -> None:
    vectors = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    scores, ids = VectorSearch(vectors).search(np.array([1, 0], np.float32), 10)
    assert ids[0].tolist() == [0, 1, 2]  # equal scores: earlier entry first
    assert scores.shape == (1, 3)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("search")
    model_dir = make_tiny_model(root / "model")
    make_videos(root / "videos", 3, seconds=3.0)
    build_index(root / "videos", root / "index", VideoTextEmbedder(model_dir))
    return model_dir, root / "index"


def test_search_command_json_matches_brute_force(built: tuple[Path, Path]) -> None:
    model_dir, index_dir = built
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    runner = ("import argparse, sys; from videomamba.apps import search as m; "
              "p = argparse.ArgumentParser(); m.add_arguments(p); "
              "sys.exit(m.run(p.parse_args(sys.argv[1:])))")
    query = "a red square moves to the left"
    out = subprocess.run([sys.executable, "-c", runner, str(index_dir), query, "-k", "4", "--json"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)["hits"]
    index = LoadedIndex(index_dir)
    text = VideoTextEmbedder(model_dir).embed_texts([query])[0]
    expected = np.argsort(-(index.vectors @ text), kind="stable")[:4]
    assert [(h["file"], h["start"]) for h in hits] == \
        [(index.files[i], index.starts[i]) for i in expected]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4]
    assert all(a["score"] >= b["score"] for a, b in zip(hits, hits[1:]))
    assert all(h["end"] - h["start"] == pytest.approx(2.0) for h in hits)

    human = subprocess.run([sys.executable, "-c", runner, str(index_dir), query, "-k", "2"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert human.returncode == 0, human.stderr
    lines = human.stdout.strip().splitlines()
    assert len(lines) == 2 and hits[0]["file"] in lines[0] and "0:0" in lines[0]


def test_search_refuses_another_model(built: tuple[Path, Path], tmp_path: Path) -> None:
    from videomamba.apps.search_index import SearchIndexError, embedder_for_index

    _, index_dir = built
    other = make_tiny_model(tmp_path / "other", seed=1)
    with pytest.raises(SearchIndexError, match="not the one the index was built with"):
        embedder_for_index(LoadedIndex(index_dir).manifest, str(other))
