"""CUDA-graph inference: the same results as eager, for every input (not the captured one)."""

from __future__ import annotations

import pytest
import torch

from videomamba import create_model
from videomamba.utils.cuda_graph import CudaGraphRunner

TINY = dict(embed_dim=32, depth=2, num_frames=2, img_size=32, patch_size=16, num_classes=5)


def test_cpu_inputs_run_eagerly_without_gradients():
    model = create_model("videomamba_tiny", **TINY).eval()
    runner = CudaGraphRunner(model)
    clip = torch.randn(2, 3, 2, 32, 32)
    out = runner(clip)
    assert not out.requires_grad
    with torch.no_grad():
        assert torch.equal(out, model(clip))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_replays_match_eager_for_new_inputs_and_shapes():
    torch.manual_seed(0)
    model = create_model("videomamba_tiny", **TINY, scan_backend="triton").cuda().eval()
    runner = CudaGraphRunner(model, autocast_dtype=torch.bfloat16, max_graphs=1)
    for batch in (2, 2, 3, 2):  # a replay, a new shape (evicting the first), a re-capture
        clip = torch.randn(batch, 3, 2, 32, 32, device="cuda")
        got = runner(clip)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            want = model(clip)
        assert torch.allclose(got.float(), want.float(), atol=1e-2, rtol=1e-2), batch
    assert len(runner._graphs) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_predictor_with_cuda_graph_matches_eager(tmp_path):
    from videomamba.apps.predict import Predictor
    from videomamba.models import save_pretrained

    torch.manual_seed(0)
    save_pretrained(create_model("videomamba_tiny", **TINY), tmp_path / "m")
    eager = Predictor(tmp_path / "m", device="cuda")
    graphed = Predictor(tmp_path / "m", device="cuda", cuda_graph=True)
    clip = torch.randn(3, 2, 32, 32)
    for _ in range(2):
        assert torch.allclose(graphed.scores(clip), eager.scores(clip), atol=1e-4)
        assert torch.allclose(graphed.embed(clip), eager.embed(clip), atol=1e-4)


def test_compile_mode_needs_inductor_and_switches_off_the_failing_analysis():
    import torch._inductor.config as inductor_config

    from videomamba.errors import ConfigError
    from videomamba.utils.compile import compile_model

    model = create_model("videomamba_tiny", **TINY)
    with pytest.raises(ConfigError, match="inductor"):
        compile_model(model, "aot_eager", "reduce-overhead")
    before = inductor_config.triton.coalesce_tiling_analysis
    try:
        compiled = compile_model(model, "inductor", "reduce-overhead")  # lazy: nothing compiles yet
        assert compiled._orig_mod is model
        assert inductor_config.triton.coalesce_tiling_analysis is False
    finally:
        inductor_config.triton.coalesce_tiling_analysis = before


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_compiled_training_with_cuda_graphs_matches_eager():
    """``train.compile_mode: reduce-overhead`` (Inductor with CUDA graphs) over the Triton mixer:
    training steps run (cudagraph trees accept the ops' allocations) and follow the eager losses.
    An x_proj cast kept on the weight made it fail in session 6 (run 32)."""
    import copy

    import torch.nn.functional as F

    from videomamba.utils.compile import compile_model

    torch.manual_seed(0)
    eager = create_model("videomamba_tiny", **TINY, scan_backend="triton").cuda()
    compiled_model = copy.deepcopy(eager)
    clip = torch.randn(2, 3, 2, 32, 32, device="cuda")
    labels = torch.tensor([1, 3], device="cuda")

    def losses(model):
        opt = torch.optim.SGD(model.parameters(), lr=1e-2)
        out = []
        for _ in range(4):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(clip).float(), labels)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            out.append(float(loss))
        return out

    want = losses(eager)
    got = losses(compile_model(compiled_model, "inductor", "reduce-overhead"))
    assert got == pytest.approx(want, rel=2e-2, abs=2e-2)
