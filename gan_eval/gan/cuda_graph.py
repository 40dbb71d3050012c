"""Replaying a training step as one CUDA graph instead of hundreds of kernel launches.

At the DCGAN example's shapes (64 px, batch 128) one step launches several hundred small kernels
(two D passes and their backward, G's forward and backward, BatchNorm, fused Adam, the EMA); on a
large GPU the host cannot issue them as fast as the GPU runs them, so the step is bound by launch
overhead (PERF.md: measured 1.94× the plain loop on an H200 without graphs, while batch 1024 ran
4.96×). A captured graph replays the whole step with one launch.

What replay needs, and how :class:`GraphedStep` provides it:

- fixed addresses: inputs are copied into static tensors before each replay, outputs are read
  from static tensors (and copied out, since the next replay overwrites them);
- no host synchronisation and no host-side values that change between steps inside the step:
  Adam is built with ``capturable=True`` (its step counters live on the device) and the EMA
  weight is a device tensor filled before each replay (:func:`gan_eval.gan.training.update_ema`);
- lazy state created before capture: the first :data:`WARMUP_STEPS` calls run eagerly on a
  side stream (these are real training steps, not discarded ones: they create Adam's moments
  and let cuDNN pick its algorithms), the next call captures and then replays.

A capture that fails (an operation that cannot be captured) has run nothing: that step and the
later ones run eagerly, with one warning.

A captured graph does exactly the kernels of the eager step, so training is the same algorithm;
:class:`gan_eval.gan.training.GanStep` keeps one graph per step kind (with and without the G
update).
Not used under DistributedDataParallel (its gradient buckets are filled by hooks that a capture
would freeze) nor on CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch

Outputs = tuple[torch.Tensor | None, ...]

WARMUP_STEPS = 3  # eager steps before capture (PyTorch's whole-network capture example uses 3)


class GraphedStep:
    """``fn(*inputs) -> outputs`` run eagerly for the first calls, then captured and replayed.

    ``inputs`` must keep their shapes, dtypes and memory formats from call to call (None stays
    None); ``outputs`` are 0-dim tensors (losses) or None. Outputs returned by a replay are
    float32 copies, so a caller may keep them across later calls.
    """

    def __init__(self, fn: Callable[..., Outputs], device: torch.device,
                 warmup: int = WARMUP_STEPS) -> None:
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {device}")
        self.fn = fn
        self.device = device
        self.warmup = warmup
        self.calls = 0
        self.failed = False  # capture failed: every call runs eagerly
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_inputs: list[torch.Tensor | None] = []
        self.static_outputs: Outputs = ()
        self.side_stream = torch.cuda.Stream(device)

    def __call__(self, *inputs: torch.Tensor | None) -> Outputs:
        self.calls += 1
        if self.graph is None and (self.calls <= self.warmup or self.failed):
            return self._eager(inputs)
        if self.graph is None:
            stream = torch.cuda.current_stream(self.device)
            try:
                self._capture(inputs)
            except RuntimeError as exc:  # e.g. an op that synchronises with the host
                # a failed capture ran nothing: this step and the later ones run eagerly.
                # torch.cuda.graph leaves its capture stream current when capture_end raises.
                torch.cuda.set_stream(stream)
                torch.cuda.synchronize(self.device)
                self.failed = True
                warnings.warn(f"CUDA graph capture of the training step failed, running it "
                              f"eagerly instead: {str(exc).splitlines()[0]}", stacklevel=2)
                return self._eager(inputs)
        for static, given in zip(self.static_inputs, inputs, strict=True):
            if static is not None and given is not None:
                static.copy_(given)
        assert self.graph is not None
        self.graph.replay()
        return self._copy_outputs()

    def _eager(self, inputs: Sequence[torch.Tensor | None]) -> Outputs:
        current = torch.cuda.current_stream(self.device)
        self.side_stream.wait_stream(current)
        with torch.cuda.stream(self.side_stream), warnings.catch_warnings():
            # Adam(capturable=True) warns when it steps outside a capture; these steps are
            # the warm-up that the capture needs
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            outputs = self.fn(*inputs)
        current.wait_stream(self.side_stream)
        return outputs

    def _capture(self, inputs: Sequence[torch.Tensor | None]) -> None:
        # filled before each replay (capture reads addresses, not values)
        self.static_inputs = [
            None if t is None else torch.empty_like(t, memory_format=torch.preserve_format)
            for t in inputs
        ]
        graph = torch.cuda.CUDAGraph()
        # capture records kernels without running them: the step is not taken twice
        with torch.cuda.graph(graph):
            self.static_outputs = self.fn(*self.static_inputs)
        self.graph = graph

    def _copy_outputs(self) -> Outputs:
        present = [t for t in self.static_outputs if t is not None]
        if not present:
            return tuple(None for _ in self.static_outputs)
        copies = iter(torch.stack([t.float() for t in present]).unbind(0))  # one copy kernel
        return tuple(None if t is None else next(copies) for t in self.static_outputs)
