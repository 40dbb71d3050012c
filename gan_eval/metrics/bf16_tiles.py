"""bfloat16 tile products with a proven error bound, for the first pass of a blocked comparison.

On CPUs with native bfloat16 dot products (AVX512-BF16, AMX) a bfloat16 matmul runs at ~2.3×
the float32 rate (measured on this project's 2-core AVX512-BF16 box: 388 vs 160 GFLOP/s).
Precision/recall uses it for its first passes (the k-NN radius searches, through
:class:`Bf16SelfProducts`, and the generated × real pass): they decide most pairs and send the
rest (those within the bound of a decision) to the exact path, so the answers stay those of
exact arithmetic.

Augmented rows (``d`` feature columns plus four)::

    query i:     [ â_i,   α_hi, α_lo, 1,    1    ]
    reference j: [ −2b̂_j, 1,    1,    β_hi, β_lo ]

give ``α_i + β_j − 2 â_i·b̂_j``; ``â = bf16(a)`` where ``a`` are the float32 centred rows, and
``α``, ``β`` (float64) are split into two bfloat16 parts so that only ``2⁻¹⁶`` of them is lost.

Error model (:func:`pair_bound`), per pair, against the same expression in exact arithmetic
on the exactly centred rows:

* input rounding: ``|a·b − â·b̂| ≤ ‖a − â‖·‖b‖ + ‖â‖·‖b − b̂‖`` (Cauchy–Schwarz, with the measured
  residual norms of each row, plus the float32 centring error ``2⁻²⁴‖a‖``);
* products of two bfloat16 numbers are exact in float32; the sum of ``d + 4`` of them is
  accumulated in float32: ``γ_{d+4}·Σ|terms|`` with ``Σ|terms| ≤ 2‖â‖‖b̂‖ + |α| + |β|``;
* the float32 accumulator is rounded once to bfloat16 at the end: ``|out − acc| ≤ 2⁻⁸|acc|``.
  This is the caller's part (it depends on the value compared), see :data:`OUTPUT_UNIT`;
* the split of ``α``, ``β`` (``2⁻¹⁵``), float32 roundings of the thresholds the caller adds
  (``2⁻²⁰``), and flushed denormals (an absolute ``2⁻¹²⁰`` per term).

The float32 accumulation and single final rounding are how oneDNN (torch's CPU bfloat16
matmul) computes; :func:`bf16_products_sound` checks it on the running build with a product
whose partial sums are not representable in bfloat16, and the bfloat16 pass is used only when
that probe passes (tests/test_metrics_bf16_tiles.py checks the bound on random products).
"""

from __future__ import annotations

import functools
from typing import Literal

import torch

from gan_eval.errors import InputError
from gan_eval.metrics.neighbors import Centred, block_ranges, smallest_per_row

__all__ = [
    "OUTPUT_UNIT",
    "Bf16Error",
    "Bf16Rows",
    "Bf16SelfProducts",
    "Products",
    "bf16_products_sound",
    "pair_bound",
    "use_bf16",
]

Products = Literal["auto", "float32", "bfloat16"]
"""How the first pass multiplies: ``auto`` picks bfloat16 where the CPU has it natively."""

OUTPUT_UNIT = 2.0**-8 / (1.0 - 2.0**-8)
"""``|out − acc| ≤ OUTPUT_UNIT·|out|`` for the final rounding of a product to bfloat16."""

_CHUNK = 256  # rows converted at a time (stays in cache)
_AUTO_MIN_DIM = 1024
"""``auto`` uses bfloat16 from this many feature dimensions. Below, the matmul is too small a
share of the work for its 2.3× to pay for the wider bound (more candidates, more exact
re-decisions). Measured on 2 threads, float32 ÷ bfloat16 time of precision/recall and prdc on
pool3-like features: 0.7–0.9 at D = 128 (dlib-face), 0.8–1.5 at D = 256–512, 1.2–1.3 at
1,000 × 2,048, 1.5–1.7 at 10,000 × 2,048."""


@functools.cache
def bf16_products_sound(k: int) -> bool:
    """Whether this build's CPU bfloat16 matmul accumulates in float32 and rounds once.

    Probe: ones times columns whose running sums (``±(1 + 2⁻⁷)`` repeated, then small values)
    are not representable in bfloat16; with float32 accumulation every partial sum is exact and
    the output is the bfloat16 rounding of the exact result. Any rounding of a partial sum to
    bfloat16, at any blocking of ``k``, changes it.
    """
    if k < 8:
        return True  # too short to matter; the bound still holds per term
    half = (k - 4) // 2
    b = torch.zeros(64, k)
    b[:, :half] = 1.0 + 2.0**-7
    b[:, half : 2 * half] = -(1.0 + 2.0**-7)
    b[:, 2 * half :] = torch.linspace(0.25, 0.75, k - 2 * half)
    b[:, 0] = torch.arange(64) * 2.0**-6  # rows differ
    a = torch.ones(64, k, dtype=torch.bfloat16)
    bb = b.to(torch.bfloat16)
    exact = (a.double() @ bb.double().T).to(torch.bfloat16)
    return bool(torch.equal(torch.mm(a, bb.T), exact))


def use_bf16(products: Products, device: torch.device, d: int) -> bool:
    """Resolve ``products`` for ``d``-dimensional rows on ``device``.

    ``auto``: bfloat16 on a CPU with native bfloat16 dot products for ``d ≥ 1024`` (where it is
    faster, see ``_AUTO_MIN_DIM``) when the probe passes; ``bfloat16`` forces it (any CPU and
    ``d``, e.g. in tests) but still requires the probe; CUDA tensors always use float32.

    Raises:
        InputError: unknown ``products``.
    """
    if products not in ("auto", "float32", "bfloat16"):
        raise InputError(f"products must be 'auto', 'float32' or 'bfloat16', got {products!r}")
    if products == "float32" or device.type != "cpu":
        return False
    if products == "auto":
        native = torch.backends.mkldnn.is_available() and bool(
            torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
        if not native or d < _AUTO_MIN_DIM:
            return False
    return bf16_products_sound(d + 4)


def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (float64) as ``hi + lo`` in bfloat16, ``|x − hi − lo| ≤ 2⁻¹⁶|x|``."""
    hi = x.to(torch.bfloat16)
    return hi, (x - hi.double()).to(torch.bfloat16)


class Bf16Rows:
    """Augmented bfloat16 blocks of a :class:`Centred` set and the norms the bound needs.

    The bfloat16 rows are kept (``2·N·D`` bytes) when ``cache`` is set, else rebuilt per block.

    Attributes:
        norm: float64 ``(N,)``, at least ``‖a‖``, ``‖a₃₂‖`` and ``‖â‖`` (``a`` exactly centred).
        resid: float64 ``(N,)``, at least ``‖a − â‖``.
    """

    def __init__(self, prep: Centred, cache: bool = True) -> None:
        self.prep = prep
        n, d = prep.n, prep.d
        dev = prep.x.device
        self.hat = torch.empty(n, d, dtype=torch.bfloat16, device=dev) if cache else None
        norm = torch.empty(n, dtype=torch.float32, device=dev)
        n32 = torch.empty(n, dtype=torch.float32, device=dev)
        resid = torch.empty(n, dtype=torch.float32, device=dev)
        step = min(_CHUNK, n)
        buf = torch.empty(step, d, dtype=torch.float32, device=dev)
        for i0, i1 in block_ranges(n, step):
            a32 = buf[: i1 - i0]
            prep._fill(a32, i0, i1)
            hat = a32.to(torch.bfloat16)
            if self.hat is not None:
                self.hat[i0:i1] = hat
            torch.linalg.vector_norm(a32, dim=1, out=n32[i0:i1])
            torch.linalg.vector_norm(hat, dim=1, dtype=torch.float32, out=norm[i0:i1])
            # a32 − â is exact in float32
            torch.linalg.vector_norm(a32.sub_(hat), dim=1, out=resid[i0:i1])
        # float32 norms are within (d + 2)·2⁻²⁴ relative, plus what squares below 2⁻¹²⁶ lose
        # (2⁻⁶³ per entry); ‖a − a32‖ ≤ 2⁻²⁴‖a‖ (one rounding per entry of the centring)
        up, floor = 1.0 + (d + 8) * 2.0**-22, d**0.5 * 2.0**-62
        n32d = n32.double() * up + floor
        self.norm = torch.maximum(n32d, norm.double() * up + floor)
        self.resid = resid.double() * up + floor + n32d * 2.0**-23

    def rows(self, i0: int, i1: int) -> torch.Tensor:
        """``â`` for rows ``i0:i1`` (bfloat16 ``(i1 − i0, D)``)."""
        if self.hat is not None:
            return self.hat[i0:i1]
        a32 = torch.empty(i1 - i0, self.prep.d, dtype=torch.float32, device=self.prep.x.device)
        self.prep._fill(a32, i0, i1)
        return a32.to(torch.bfloat16)

    def query_block(self, i0: int, i1: int, alpha: torch.Tensor) -> torch.Tensor:
        """``[â, α_hi, α_lo, 1, 1]`` for rows ``i0:i1`` (``alpha`` float64 ``(i1 − i0,)``)."""
        d = self.prep.d
        out = torch.empty(i1 - i0, d + 4, dtype=torch.bfloat16, device=self.prep.x.device)
        out[:, :d] = self.rows(i0, i1)
        out[:, d], out[:, d + 1] = _split(alpha)
        out[:, d + 2 :] = 1.0
        return out

    def query_index(self, idx: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """:meth:`query_block` for the rows ``idx`` (int64)."""
        d = self.prep.d
        out = torch.empty(idx.numel(), d + 4, dtype=torch.bfloat16, device=self.prep.x.device)
        if self.hat is not None:
            out[:, :d] = self.hat.index_select(0, idx)
        else:
            a32 = torch.empty(idx.numel(), d, dtype=torch.float32, device=out.device)
            torch.sub(self.prep.x[idx], self.prep.center, out=a32)  # as Centred._fill
            out[:, :d] = a32
        out[:, d], out[:, d + 1] = _split(alpha)
        out[:, d + 2 :] = 1.0
        return out

    def ref_block(self, j0: int, j1: int, beta: torch.Tensor) -> torch.Tensor:
        """``[−2b̂, 1, 1, β_hi, β_lo]`` for rows ``j0:j1`` (``beta`` float64 ``(j1 − j0,)``)."""
        d = self.prep.d
        out = torch.empty(j1 - j0, d + 4, dtype=torch.bfloat16, device=self.prep.x.device)
        torch.mul(self.rows(j0, j1), -2.0, out=out[:, :d])  # exact: a power of 2
        out[:, d : d + 2] = 1.0
        out[:, d + 2], out[:, d + 3] = _split(beta)
        return out


def pair_bound(
    d: int,
    q_norm: torch.Tensor,
    q_resid: torch.Tensor,
    alpha: torch.Tensor,
    r_norm: torch.Tensor,
    r_resid: torch.Tensor,
    beta: torch.Tensor,
    extra: float,
) -> torch.Tensor:
    """Bound on ``|acc − exact|`` (before the output rounding) for pairs, broadcast (float64).

    ``q_*`` / ``r_*`` are the query / reference rows' :class:`Bf16Rows` norms and the folded
    ``α`` / ``β``. Pass per-row tensors on one side and 0-d tensors (that side's maxima) on the
    other to get one bound per row that holds against every column (the bound is monotone in
    every argument). ``extra`` bounds the thresholds the caller adds in float32.
    """
    n = d + 4
    gamma = n * 2.0**-24 / (1.0 - n * 2.0**-24)
    folds = alpha.abs() + beta.abs()
    return (
        2.0 * (q_resid * r_norm + q_norm * r_resid)  # input rounding (×2: the −2b̂ column)
        + gamma * (1.0 + 2.0**-7) * (2.0 * q_norm * r_norm + folds)  # float32 accumulation
        + 2.0**-15 * folds  # hi/lo split of α and β
        + 2.0**-20 * (q_norm * q_norm + r_norm * r_norm + extra)  # centring, float32 adds
        + 2.0**-120 * n * (1.0 + q_norm + r_norm)  # flushed denormals
    )


class Bf16Error:
    """:func:`pair_bound` plus the output rounding, for products ``α_i + β_j − 2â·b̂``.

    ``vals`` passed to the methods are the products plus ``shift`` (float64).
    """

    def __init__(
        self,
        q: Bf16Rows,
        alpha: torch.Tensor,
        r: Bf16Rows,
        beta: torch.Tensor,
        shift: float,
    ) -> None:
        self.q, self.alpha, self.r, self.beta, self.shift = q, alpha, r, beta, shift
        self.d = q.prep.d
        self.r_max = (r.norm.max(), r.resid.max(), beta.abs().max())

    def _out(self, vals: torch.Tensor) -> torch.Tensor:
        return OUTPUT_UNIT * (1.0 + 2.0**-40) * (vals - self.shift).abs()

    def pair(self, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        q, r = self.q, self.r
        inner = pair_bound(
            self.d, q.norm[rows], q.resid[rows], self.alpha[rows],
            r.norm[cols], r.resid[cols], self.beta[cols], 0.0,
        )  # fmt: skip
        return inner + self._out(vals)

    def row(self, rows: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        q = self.q
        inner = pair_bound(self.d, q.norm[rows], q.resid[rows], self.alpha[rows], *self.r_max, 0.0)
        return inner + self._out(vals)


class Bf16SelfProducts:
    """bfloat16 first pass of a set against itself (a :class:`~.neighbors.SelfProducts`).

    Products are ``D² − shift`` with ``shift`` the median squared distance of 64 sample rows to
    their ``k``-th neighbour, so the outputs are small (and their rounding too) near the
    distances that decide; ``margin`` is wide because the bound is ~1 % of ``D²`` and
    neighbours within that of each other are common in high dimension.
    """

    dtype = torch.bfloat16
    margin = 10

    def __init__(self, rows: Bf16Rows, k: int, memory_budget: int) -> None:
        self.rows = rows
        prep = rows.prep
        n, d = prep.n, prep.d
        cache = n * (d + 4) * 2 <= memory_budget // 4
        self.full = rows.ref_block(0, n, prep.sqnorm) if cache else None
        self.shift = _kth_estimate(self, k)
        self.half = prep.sqnorm - self.shift / 2.0
        self.set_beta(self.half)
        self.error = Bf16Error(rows, self.half, rows, self.half, self.shift)

    def set_beta(self, beta: torch.Tensor) -> None:
        """Replace ``β`` of the reference blocks (in place in the cached matrix)."""
        self.beta = beta
        if self.full is not None:
            d = self.rows.prep.d
            self.full[:, d + 2], self.full[:, d + 3] = _split(beta)

    def ref(self, j0: int, j1: int) -> torch.Tensor:
        if self.full is not None:
            return self.full[j0:j1]
        return self.rows.ref_block(j0, j1, self.beta[j0:j1])

    def query(self, i0: int, i1: int) -> torch.Tensor:
        return self.rows.query_block(i0, i1, self.half[i0:i1])


def _kth_estimate(products: Bf16SelfProducts, k: int, sample: int = 64) -> float:
    """Median over a few rows of the (bfloat16) squared distance to their k-th other row.

    Called while the reference blocks still fold ``β = ‖b‖²`` (products are ``D²``).
    """
    rows = products.rows
    sq = rows.prep.sqnorm
    n = rows.prep.n
    idx = torch.linspace(0, n - 1, min(sample, n)).long().unique()
    q = torch.cat([rows.query_block(int(i), int(i) + 1, sq[i : i + 1]) for i in idx])
    products.beta = sq
    step = 4096  # reference rows per block (uncached blocks are built in float32 first)
    cands = []
    for j0, j1 in block_ranges(n, step):
        s = q @ products.ref(j0, j1).T
        cands.append(smallest_per_row(s.float(), min(k + 1, j1 - j0))[0])
    # the smallest value of each row is (about) its zero distance to itself
    vals = torch.cat(cands, 1).sort(1).values[:, min(k, n - 1)]
    return float(vals.clamp_min(0).median())
