"""CUDA-graph replay of the training step (gan_eval.gan.cuda_graph): same training as eager.

The replay itself needs a GPU; on a machine without one these tests skip (the device check of a
GPU session runs them: ``python -m pytest tests/test_gan_cuda_graphs.py``).
"""

from __future__ import annotations

import pytest
import torch

from gan_eval.gan.cuda_graph import WARMUP_STEPS, GraphedStep
from gan_eval.gan.losses import get_loss
from gan_eval.gan.models import Discriminator, Generator, ModelSpec
from gan_eval.gan.training import GanStep

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_graphed_step_refuses_the_cpu() -> None:
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        GraphedStep(lambda x: (x,), torch.device("cpu"))


@needs_cuda
def test_graphed_step_replays_with_new_inputs_and_keeps_old_outputs() -> None:
    device = torch.device("cuda")
    state = torch.zeros((), device=device)

    def fn(x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        state.add_(1.0)  # in-place state, as an optimizer step
        return (x.sum() * state, None)

    step = GraphedStep(fn, device)
    kept = []
    for i in range(WARMUP_STEPS + 4):
        x = torch.full((3,), float(i), device=device)
        out, none = step(x, None)
        assert none is None
        kept.append(out)
    assert step.graph is not None  # captured after the warm-up
    assert state.item() == WARMUP_STEPS + 4  # capture itself ran nothing; each call ran once
    expected = [3.0 * i * (i + 1) for i in range(WARMUP_STEPS + 4)]
    assert [t.item() for t in kept] == pytest.approx(expected)  # earlier outputs not overwritten


@needs_cuda
def test_a_step_that_cannot_be_captured_runs_eagerly() -> None:
    device = torch.device("cuda")
    state = torch.zeros((), device=device)

    def fn(x: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        state.add_(1.0)
        if float(state) < 0:  # reads a value back to the host: not capturable
            raise AssertionError
        return (x * state,)

    step = GraphedStep(fn, device)
    stream = torch.cuda.current_stream(device)
    outs = [step(torch.ones((), device=device))[0] for _ in range(WARMUP_STEPS)]
    with pytest.warns(UserWarning, match="capture of the training step failed"):
        outs.append(step(torch.ones((), device=device))[0])
    outs.append(step(torch.ones((), device=device))[0])
    assert step.failed and step.graph is None
    assert torch.cuda.current_stream(device) == stream  # not left on the capture stream
    assert [float(t) for t in outs] == [1.0, 2.0, 3.0, 4.0, 5.0]  # no step lost or doubled


@needs_cuda
@pytest.mark.parametrize(("loss", "bf16"), [("ns", False), ("wgan-gp", False), ("ns", True)])
def test_graphed_training_equals_eager_training(loss: str, bf16: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """From the same weights and inputs, replayed graphs train like the eager step.

    WGAN-GP (n_critic = 5) exercises both graphs (D-only and D+G; the D+G graph is captured at
    its fourth use, step 19). Deterministic cuDNN, no TF32; the tolerance covers kernel-order
    differences between the two step objects.
    """
    device = torch.device("cuda")
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    objective = get_loss(loss)
    spec = ModelSpec(resolution=32, channels=3, nz=16, ngf=16, ndf=16,
                     d_norm="layer" if objective.needs_per_sample_d else "batch")

    def stepper(cuda_graphs: bool) -> GanStep:
        torch.manual_seed(0)  # the same initial weights for both
        return GanStep(Generator(spec), Discriminator(spec), objective, device=device,
                       channels_last=True, bf16=bf16, cuda_graphs=cuda_graphs)

    eager, graphed = stepper(False), stepper(True)
    gen = torch.Generator(device=device).manual_seed(1)
    steps = 25 if objective.n_critic > 1 else 8
    for step in range(steps):
        real = torch.rand(16, 3, 32, 32, device=device, generator=gen) * 2 - 1
        z = torch.randn(16, 16, 1, 1, device=device, generator=gen)
        eps = torch.rand(16, device=device, generator=gen) if objective.gp_weight else None
        update_g = (step + 1) % objective.n_critic == 0
        want = eager(real, z, step=step, eps=eps, update_g=update_g)
        got = graphed(real, z, step=step, eps=eps, update_g=update_g)
        torch.testing.assert_close(got.d_loss, want.d_loss, rtol=1e-3, atol=1e-4)
        assert (got.g_loss is None) == (want.g_loss is None)
        if want.g_loss is not None:
            torch.testing.assert_close(got.g_loss, want.g_loss, rtol=1e-3, atol=1e-4)
    assert graphed.graphs is not None
    used = [g for g in graphed.graphs.values() if g.calls]
    assert len(used) == (2 if objective.n_critic > 1 else 1)
    assert all(g.graph is not None and g.calls > WARMUP_STEPS + 1 for g in used)  # replayed
    for name in ("g", "d", "ema"):
        want_state = getattr(eager, name).state_dict()
        got_state = getattr(graphed, name).state_dict()
        for key, value in want_state.items():
            torch.testing.assert_close(got_state[key], value, rtol=1e-3, atol=1e-4,
                                       msg=lambda m, k=f"{name}.{key}": f"{k}: {m}")
