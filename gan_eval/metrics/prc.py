"""Precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020).

Conventions (torch-fidelity ``metric_prc.py`` for precision/recall; the ``prdc`` reference code
for density/coverage):

* ``generated`` is torch-fidelity's ``features_1`` (input1), ``real`` its ``features_2``.
* The radius of a sample is the distance to its k-th nearest *other* sample of its own set.
  torch-fidelity writes this as ``kthvalue(k + 1)`` over a full distance row that includes the
  sample's zero distance to itself (prdc does the same with ``k + 1``); an exact duplicate
  therefore counts as a neighbour at distance 0.
* Ball membership follows the implementation that defines each metric, which differ on exact
  ties (a point at exactly the radius):

  - precision/recall: closed balls, ``D ≤ r`` (torch-fidelity ``metric_prc.py``:
    ``dist <= kthvalue``). The ``prdc`` package's own precision/recall use ``<``; we follow
    torch-fidelity, the implementation gan-eval reports precision/recall against.
  - density/coverage: open balls, ``D < r`` (clovaai ``prdc.compute_prdc``: ``distance <
    radius`` for density, ``min distance < radius`` for coverage). This matters on memorized
    copies: on two identical sets each real sample's k-th neighbour lies exactly on its radius,
    so closed balls give density ``(k + 1)/k`` (1.2 at k = 5) where ``compute_prdc`` gives 1.0;
    a real sample with ``k`` exact duplicates has radius 0 and covers nothing.
* precision = fraction of generated samples inside at least one real ball (real radii, k=3);
  recall = fraction of real samples inside at least one generated ball (generated radii, k=3);
  ``f_score = 2PR / max(1e-5, P + R)``.
* density = (1/k) · mean over generated samples of the number of real balls (k=5) strictly
  containing it (can exceed 1); coverage = fraction of real samples whose ball (k=5) strictly
  contains a generated one. Equal to ``prdc.compute_prdc`` with ``nearest_k = k`` wherever its
  float arithmetic decides as exact arithmetic does (tests/test_metrics_prdc_reference.py).

Computation: the radii come from the symmetric blocked k-NN search of
:mod:`gan_eval.metrics.neighbors`, with exact float64 distances. One blocked pass over
generated × real follows, one matmul per tile with the radii folded into it:

* precision/recall alone: both radii are folded (``D² − r_j² − g_i²``), so row minima decide
  precision and column minima decide recall with no elementwise pass; samples whose minimum is
  within the error bound of its threshold are recomputed against the whole other set
  (:func:`_resolve`), their near pairs in float64;
* with density/coverage: the larger real radius is folded, and each tile lists the few pairs
  within the bound of that ball (:class:`_Balls`); density, coverage and precision are counted
  from those pairs (float64 for the ones within the bound), recall from column minima.

Every decision is therefore that of exact arithmetic on the given features (torch-fidelity
decides in float32, so a pair within ~1e-6 relative of a radius may go the other way there).
The first passes (k-NN candidates and the cross pass) run in bfloat16 for ``D ≥ 1024`` on
CPUs that have it natively (:mod:`gan_eval.metrics.bf16_tiles`: ~2.3× the float32 matmul rate
there, with a proven bound of ~1 % of ``D²`` that sends more samples to the exact stage), else
in float32 (``products`` forces either; the answers are the same). Data where most pairs sit
within that bound of a radius (e.g. every generated sample inside hundreds of balls) can make
the bfloat16 pass slower than float32 (measured: 2× slower on such a 1,000 × 2,048 set).

Measured on 2 CPU threads (AVX512-BF16), 10,000 × 10,000 × 2,048, side by side with
torch-fidelity's ``prc_features_to_metric`` (``benchmarks/metrics_math.py --only prc``):
3.2 s vs 13.0 s (4.0×); the float32 first pass 5.8 s (2.25×). Memory is constant in ``N``:
tiles sized from ``memory_budget`` (50,000 × 2,048 float32 per set: 0.77 GiB of inputs +
0.46 GiB of working memory = 1.22 GiB, under 2 GB).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from gan_eval.errors import InputError
from gan_eval.metrics.bf16_tiles import (
    OUTPUT_UNIT,
    Bf16Rows,
    Bf16SelfProducts,
    Products,
    pair_bound,
    use_bf16,
)
from gan_eval.metrics.neighbors import (
    DEFAULT_MEMORY_BUDGET,
    Centred,
    RefTiles,
    block_ranges,
    blocked_mean,
    check_features,
    check_same_dim,
    exact_sqdist_pairs,
    plan_tiles,
    score_buffer,
    self_search_squared,
    squared_distance_tolerance,
    tile_product,
)

__all__ = [
    "PRDC",
    "DensityCoverage",
    "PrecisionRecall",
    "density_coverage",
    "prdc",
    "precision_recall",
]


@dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision and recall (fractions in [0, 1], higher is better) and their F1."""

    precision: float
    recall: float
    f_score: float
    k: int


@dataclass(frozen=True)
class DensityCoverage:
    """Density (≥ 0, ≈ 1 when the distributions match) and coverage (fraction in [0, 1])."""

    density: float
    coverage: float
    k: int


@dataclass(frozen=True)
class PRDC:
    """All four metrics from one pass (``k_pr`` for precision/recall, ``k_dc`` for the rest)."""

    precision: float
    recall: float
    f_score: float
    density: float
    coverage: float
    k_pr: int
    k_dc: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict of the fields."""
        return asdict(self)


def _f_score(p: float, r: float) -> float:
    return 2.0 * p * r / max(1e-5, p + r)


def _check_k(k: int, name: str, n_gen: int, n_real: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InputError(f"{name} must be a positive integer, got {k!r}")
    if k >= min(n_gen, n_real):
        raise InputError(
            f"{name}={k} needs more than {k} samples per set, got generated: {n_gen}, "
            f"real: {n_real}"
        )


@dataclass
class _Raw:
    precision_hit: torch.Tensor | None = None  # (M,) bool
    recall_hit: torch.Tensor | None = None  # (N,) bool
    density_count: torch.Tensor | None = None  # (M,) int64
    coverage_hit: torch.Tensor | None = None  # (N,) bool


_Block = Callable[[int, int], torch.Tensor]


def _first_pass(
    q: Centred,
    rows: torch.Tensor,
    r: Centred,
    thr_max: float,
    tol: float,
    r_tiles: RefTiles,
    bf16: tuple[Bf16Rows, Bf16SelfProducts] | None,
) -> tuple[_Block, _Block, torch.Tensor]:
    """Products of query ``rows`` (by position) with all of ``r``, for :func:`_resolve`.

    Returns ``query(i0, i1)``, ``ref(j0, j1)`` (their product approximates ``D²``) and a
    float32 band per row: a product more than the band below a threshold ``≤ thr_max`` is
    inside for sure, one more than it above outside. float32: ``r_tiles`` (``β = ‖r‖²``) and
    ``tol``; bfloat16: the query set's rows and the reference set's cached self products.
    """
    if bf16 is None:
        sub = Centred(q.x[rows], q.center)
        band = torch.full((rows.numel(),), tol, dtype=torch.float32, device=rows.device)
        r_tiles.set_beta(r.sqnorm)
        return (lambda i0, i1: sub.query_block(i0, i1, sub.sqnorm[i0:i1])), r_tiles, band
    q16, r_sp = bf16
    r_sp.set_beta(r.sqnorm)
    rq = r_sp.rows
    sq = q.sqnorm[rows]
    inner = pair_bound(
        q.d, q16.norm[rows], q16.resid[rows], sq, rq.norm.max(), rq.resid.max(),
        r.sqnorm.max(), thr_max,
    )  # fmt: skip
    # |out − exact| ≤ inner + u'·|out| and |out| ≤ |out − thr| + thr_max, solved for out − thr
    band = ((inner + OUTPUT_UNIT * thr_max) * (1.0 + 2.0**-20) / (1.0 - OUTPUT_UNIT)).float()
    return (lambda i0, i1: q16.query_index(rows[i0:i1], sq[i0:i1])), r_sp.ref, band


def _resolve(
    q: Centred,
    rows: torch.Tensor,
    r: Centred,
    thr: torch.Tensor,
    first: tuple[_Block, _Block, torch.Tensor],
    memory_budget: int,
) -> torch.Tensor:
    """Exact in-ball counts for a few query rows, recomputed against every reference row.

    ``thr``: float64 squared radii of the reference rows. Returns int64 ``(len(rows),)``: the
    number of reference rows ``j`` with ``D²_ij ≤ thr_j``. Pairs more than the band
    (:func:`_first_pass`) below the threshold count directly; pairs within the band are decided
    in float64.
    """
    query, ref, band = first
    counts = torch.zeros(rows.numel(), dtype=torch.int64, device=rows.device)
    near_i, near_j = [], []
    tiles = plan_tiles(rows.numel(), r.n, r.d, memory_budget)
    thr32 = thr.float()
    for i0, i1 in block_ranges(rows.numel(), tiles.rows):
        qa = query(i0, i1)
        b = band[i0:i1, None]
        for j0, j1 in block_ranges(r.n, tiles.cols):
            w = qa @ ref(j0, j1).T - thr32[j0:j1]  # approximate D² − r²
            counts[i0:i1] += (w < -b).sum(1)
            ii, jj = (w.abs_() <= b).nonzero(as_tuple=True)
            near_i.append(ii + i0)
            near_j.append(jj + j0)
    ii, jj = torch.cat(near_i), torch.cat(near_j)
    if ii.numel():
        d2 = exact_sqdist_pairs(q.x, r.x, rows[ii], jj, memory_budget)
        counts.index_add_(0, ii, (d2 <= thr[jj]).long())
    return counts


def _prdc_core(
    gen: torch.Tensor,
    real: torch.Tensor,
    k_pr: int | None,
    k_dc: int | None,
    block_rows: int | None,
    memory_budget: int,
    products: Products = "auto",
) -> _Raw:
    """Per-sample decisions for the requested metrics (inputs already validated).

    See the module docstring. Error bounds: ``tol`` (one float32 bound for every product) or,
    with bfloat16 products, :func:`~gan_eval.metrics.bf16_tiles.pair_bound` per generated row
    (``row_tol``, against any real column) and per real column (``col_tol``), plus the output
    rounding, which depends on the value compared (``out_unit``).
    """
    m_gen, d = gen.shape
    n_real = real.shape[0]
    dev = gen.device
    k_real = max(k for k in (k_pr, k_dc) if k is not None)
    # One centre (the real mean) and one set of centred rows for all three passes; each set's
    # augmented matrix (float32 or bfloat16, whichever the first passes use) is cached if it
    # fits, for its own pass, the cross pass (real) and the exact re-decisions (both).
    tiles = plan_tiles(m_gen, n_real, d, memory_budget, block_rows)
    center = blocked_mean(real)
    gp = Centred(gen, center)
    rp = Centred(real, center)
    bf16 = use_bf16(products, dev, d)
    keep = 2 * d * (m_gen + n_real) <= memory_budget // 2  # both sets' bfloat16 rows
    gq, rq = (Bf16Rows(gp, keep), Bf16Rows(rp, keep)) if bf16 else (None, None)
    real_sp = Bf16SelfProducts(rq, k_real, memory_budget) if rq is not None else None
    # float32 tiles: the first passes (float32 mode) and the exact re-decisions (both modes)
    cache32 = not bf16 and plan_tiles(n_real, n_real, d, memory_budget).cache_ref
    real_tiles = RefTiles(rp, rp.sqnorm, cache32)
    cols = tuple(sorted({k - 1 for k in (k_pr, k_dc) if k is not None}))
    real_d2, _ = self_search_squared(
        real,
        k_real,
        block_rows,
        memory_budget,
        exact_cols=cols,
        prep=rp,
        ref_tiles=real_tiles,
        products=real_sp,
    )
    r_pr = real_d2[:, k_pr - 1].contiguous() if k_pr is not None else None
    r_dc = real_d2[:, k_dc - 1].contiguous() if k_dc is not None else None
    del real_d2
    g_pr = None
    cache32 = not bf16 and plan_tiles(m_gen, m_gen, d, memory_budget).cache_ref
    gen_tiles = RefTiles(gp, gp.sqnorm, cache32)
    gen_sp = None if gq is None or k_pr is None else Bf16SelfProducts(gq, k_pr, memory_budget)
    if k_pr is not None:
        g_d2, _ = self_search_squared(
            gen,
            k_pr,
            block_rows,
            memory_budget,
            exact_cols=(k_pr - 1,),
            prep=gp,
            ref_tiles=gen_tiles,
            products=gen_sp,
        )
        g_pr = g_d2[:, k_pr - 1].contiguous()

    # Folded into the products: the real radius² (with density, the larger of the two radii,
    # so that every pair inside either ball is within the band of the fold) and, for
    # precision/recall alone, the generated radius² too.
    if r_dc is None:
        fold = r_pr
    elif r_pr is None:
        fold = r_dc
    else:
        fold = torch.maximum(r_dc, r_pr)
    assert fold is not None
    row_fold = g_pr if r_dc is None else None
    thr_max = max(float(t.max()) for t in (r_pr, r_dc, g_pr) if t is not None)
    # Matmul error plus the float32 rounding of the folded radii and of one add per margin:
    # the terms of a product sum to at most 2(‖a‖² + ‖b‖² + thr_max) with either fold.
    tol = (
        (squared_distance_tolerance(d, dev) + 2.0**-21)
        * 2.0
        * (float(gp.sqnorm.max()) + float(rp.sqnorm.max()) + thr_max)
    )
    # With both radii folded, a constant near them keeps the bfloat16 outputs small where
    # decisions are made (their final rounding is relative to their size).
    shift = float(row_fold.median()) if bf16 and row_fold is not None else 0.0
    beta = rp.sqnorm - fold
    alpha = gp.sqnorm if row_fold is None else gp.sqnorm - row_fold + shift
    f32 = torch.float32
    p_min = torch.full((m_gen,), math.inf, dtype=f32, device=dev) if r_dc is None else None
    r_min = torch.full((n_real,), math.inf, dtype=f32, device=dev) if g_pr is not None else None
    g_pr32 = g_pr.float() if g_pr is not None and row_fold is None else None

    # Per-row (generated) and per-column (real) bounds on a product's error: the float32
    # tolerance, or the bfloat16 model (bf16_tiles) whose output rounding is added per decision.
    out_unit = 0.0
    row_tol: torch.Tensor | float = tol
    col_tol: torch.Tensor | float = tol
    if gq is not None and rq is not None and real_sp is not None:
        extra = thr_max + abs(shift)
        row_tol = pair_bound(
            d, gq.norm, gq.resid, alpha, rq.norm.max(), rq.resid.max(), beta.abs().max(), extra
        )
        col_tol = pair_bound(
            d, gq.norm.max(), gq.resid.max(), alpha.abs().max(), rq.norm, rq.resid, beta, extra
        )
        out_unit = OUTPUT_UNIT
        real_sp.set_beta(beta)  # the real set's reference blocks, folding the radii now

        def query(i0: int, i1: int) -> torch.Tensor:
            return gq.query_block(i0, i1, alpha[i0:i1])

        ref = real_sp.ref
    else:
        real_tiles.set_beta(beta)

        def query(i0: int, i1: int) -> torch.Tensor:
            return gp.query_block(i0, i1, alpha[i0:i1])

        def ref(j0: int, j1: int) -> torch.Tensor:
            return real_tiles(j0, j1)

    balls = _Balls(fold, r_dc, r_pr, row_tol, out_unit, m_gen) if r_dc is not None else None
    real_ranges = block_ranges(n_real, tiles.cols)
    h, w_ = min(tiles.rows, m_gen), min(tiles.cols, n_real)
    work = torch.empty(h, w_, dtype=f32, device=dev)
    scores = score_buffer(h, w_, dev, torch.bfloat16 if bf16 else f32)
    mask = torch.empty(work.shape, dtype=torch.bool, device=dev)
    for i0, i1 in block_ranges(m_gen, tiles.rows):
        qa = query(i0, i1)
        for j0, j1 in real_ranges:
            # D² − fold_j (− row_fold_i + shift), generated rows × real columns
            s = tile_product(qa, ref(j0, j1), scores)
            w = work[: i1 - i0, : j1 - j0]
            if p_min is not None:
                torch.minimum(p_min[i0:i1], s.amin(1), out=p_min[i0:i1])
            if r_min is not None:
                if g_pr32 is None:  # generated radius already folded in
                    m = s.amin(0)
                else:
                    m = torch.sub(s, g_pr32[i0:i1, None], out=w).amin(0)
                torch.minimum(r_min[j0:j1], m, out=r_min[j0:j1])
            if balls is not None:
                balls.add_tile(s, i0, j0, mask[: i1 - i0, : j1 - j0])
    del work, mask, scores

    # Decisions from the main pass: a minimum m (float32) plus x (float64) is decided unless it
    # lies within tol + out_unit·(|m| + extra) of 0 (extra: the largest threshold added to the
    # products elementwise before the minimum); those samples (rows of q) are redone exactly
    # against every row of r with the thresholds thr of r's rows.
    def decide(
        m: torch.Tensor,
        x: torch.Tensor | float,
        bound: torch.Tensor | float,
        extra: float,
        sides: tuple[Centred, Centred, RefTiles, tuple[Bf16Rows, Bf16SelfProducts] | None],
        thr: torch.Tensor,
    ) -> torch.Tensor:
        v = m.double() + x
        b = bound + out_unit * (m.double().abs() + extra)
        hit = v <= -b
        rows = ((v > -b) & (v <= b)).nonzero().flatten()
        if rows.numel():
            q, r, r_tiles, pair = sides
            first = _first_pass(q, rows, r, float(thr.max()), tol, r_tiles, pair)
            hit[rows] = _resolve(q, rows, r, thr, first, memory_budget) > 0
        return hit

    raw = _Raw()
    if balls is not None:
        raw.density_count, raw.coverage_hit, raw.precision_hit = balls.result(gp, rp, memory_budget)
    if p_min is not None and r_pr is not None and row_fold is not None:
        pair = (gq, real_sp) if gq is not None and real_sp is not None else None
        sides = (gp, rp, real_tiles, pair)
        raw.precision_hit = decide(p_min, row_fold - shift, row_tol, 0.0, sides, r_pr)
    if r_min is not None and g_pr is not None:
        extra = thr_max if g_pr32 is not None else 0.0
        pair = (rq, gen_sp) if rq is not None and gen_sp is not None else None
        sides = (rp, gp, gen_tiles, pair)
        raw.recall_hit = decide(r_min, fold - shift, col_tol, extra, sides, g_pr)
    return raw


class _Balls:
    """Density, coverage and (with density) precision from the pairs near the folded ball.

    Every pair inside a real ball (``k_dc``, or ``k_pr``) is inside the folded (largest) one,
    so its product ``s = D² − fold_j`` is at most the row's band. Each tile lists those few
    pairs (a sparse ``s ≤ band`` mask); a pair more than its bound inside a ball counts at once,
    one within it is decided from its float64 distance at the end, the rest are outside.
    """

    def __init__(
        self,
        fold: torch.Tensor,
        r_dc: torch.Tensor,
        r_pr: torch.Tensor | None,
        row_tol: torch.Tensor | float,
        out_unit: float,
        m_gen: int,
    ) -> None:
        dev = fold.device
        self.out_unit = out_unit
        self.row_tol = torch.as_tensor(row_tol, dtype=torch.float64, device=dev).expand(m_gen)
        # a product above this is outside every ball (|out − exact| ≤ tol + out_unit·|out|)
        self.band = (self.row_tol * (1.0 + 2.0**-20) / (1.0 - out_unit)).float()
        self.radii = [r_dc] + ([r_pr] if r_pr is not None else [])
        self.offsets = [fold - r for r in self.radii]  # D² − r² = s + offset (≥ 0)
        self.count = torch.zeros(m_gen, dtype=torch.int64, device=dev)
        self.cover = torch.zeros(fold.numel(), dtype=torch.bool, device=dev)
        self.precise = torch.zeros(m_gen, dtype=torch.bool, device=dev)
        self.near: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in self.radii]

    def add_tile(self, s: torch.Tensor, i0: int, j0: int, mask: torch.Tensor) -> None:
        """Take the pairs of tile ``s`` (rows from ``i0``, columns from ``j0``) near a ball."""
        torch.le(s, self.band[i0 : i0 + s.shape[0], None], out=mask)
        ii, jj = mask.nonzero(as_tuple=True)
        if not ii.numel():
            return
        v = s[ii, jj].double()
        ii, jj = ii + i0, jj + j0
        b = self.row_tol[ii] + self.out_unit * v.abs()
        for t, offset in enumerate(self.offsets):
            margin = v + offset[jj]
            # exact margin ≤ margin + b: strictly inside for sure when margin + b < 0 (density,
            # open balls), inside when ≤ 0 (precision, closed balls)
            sure = margin < -b if t == 0 else margin <= -b
            if t == 0:
                self.count.index_add_(0, ii, sure.long())
                self.cover[jj[sure]] = True
            else:
                self.precise[ii[sure]] = True
            near = ~sure & (margin <= b)
            self.near[t].append((ii[near], jj[near]))

    def result(
        self, gp: Centred, rp: Centred, memory_budget: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Density counts, coverage hits and precision hits (None without ``k_pr``)."""
        for t, radius in enumerate(self.radii):
            if not self.near[t]:
                continue
            ii = torch.cat([p[0] for p in self.near[t]])
            jj = torch.cat([p[1] for p in self.near[t]])
            if not ii.numel():
                continue
            d2 = exact_sqdist_pairs(gp.x, rp.x, ii, jj, memory_budget)
            inside = d2 < radius[jj] if t == 0 else d2 <= radius[jj]  # open / closed balls
            if t == 0:
                self.count.index_add_(0, ii, inside.long())
                self.cover[jj[inside]] = True
            else:
                self.precise[ii[inside]] = True
        return self.count, self.cover, self.precise if len(self.radii) > 1 else None


def _validate(
    generated: torch.Tensor, real: torch.Tensor, ks: dict[str, int], memory_budget: int
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = check_features(generated, "generated", min_rows=2)
    ref = check_features(real, "real", min_rows=2)
    check_same_dim(gen, ref, "generated", "real")
    if gen.device != ref.device:
        raise InputError(f"generated is on {gen.device} but real is on {ref.device}")
    for name, k in ks.items():
        _check_k(k, name, gen.shape[0], ref.shape[0])
    if memory_budget < 2**20:
        raise InputError(f"memory_budget must be at least 1 MiB, got {memory_budget} bytes")
    return gen, ref


def precision_recall(
    generated: torch.Tensor,
    real: torch.Tensor,
    *,
    k: int = 3,
    block_rows: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    products: Products = "auto",
) -> PrecisionRecall:
    """Improved precision and recall, equal to torch-fidelity's ``prc_features_to_metric``.

    Args:
        generated: ``(M, D)`` generated features (torch-fidelity's ``features_1``).
        real: ``(N, D)`` real features (``features_2``).
        k: neighbourhood size (torch-fidelity's ``prc_neighborhood``, default 3).
        block_rows, memory_budget: see :func:`gan_eval.metrics.neighbors.nearest`.
        products: first-pass arithmetic (:data:`gan_eval.metrics.bf16_tiles.Products`); the
            result is the same with each, only the speed differs.

    Raises:
        InputError: bad features, mismatched ``D``, ``k`` not below both set sizes.
    """
    gen, ref = _validate(generated, real, {"k": k}, memory_budget)
    raw = _prdc_core(gen, ref, k, None, block_rows, memory_budget, products)
    assert raw.precision_hit is not None and raw.recall_hit is not None
    p = float(raw.precision_hit.double().mean())
    r = float(raw.recall_hit.double().mean())
    return PrecisionRecall(precision=p, recall=r, f_score=_f_score(p, r), k=k)


def density_coverage(
    generated: torch.Tensor,
    real: torch.Tensor,
    *,
    k: int = 5,
    block_rows: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    products: Products = "auto",
) -> DensityCoverage:
    """Density and coverage of Naeem et al. (2020) with real-sample radii at ``k`` (default 5).

    Equal to ``prdc.compute_prdc(real, generated, nearest_k=k)``'s density and coverage (open
    balls, ``D < r``; see the module docstring), decided in exact arithmetic.

    Raises:
        InputError: bad features, mismatched ``D``, ``k`` not below both set sizes.
    """
    gen, ref = _validate(generated, real, {"k": k}, memory_budget)
    raw = _prdc_core(gen, ref, None, k, block_rows, memory_budget, products)
    assert raw.density_count is not None and raw.coverage_hit is not None
    density = float(raw.density_count.double().mean()) / k
    coverage = float(raw.coverage_hit.double().mean())
    return DensityCoverage(density=density, coverage=coverage, k=k)


def prdc(
    generated: torch.Tensor,
    real: torch.Tensor,
    *,
    k_pr: int = 3,
    k_dc: int = 5,
    block_rows: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    products: Products = "auto",
) -> PRDC:
    """Precision, recall, F-score, density and coverage with one cross pass (shared radii pass).

    Same values as :func:`precision_recall` (``k=k_pr``) and :func:`density_coverage`
    (``k=k_dc``) called separately, for about half the work.
    """
    gen, ref = _validate(generated, real, {"k_pr": k_pr, "k_dc": k_dc}, memory_budget)
    raw = _prdc_core(gen, ref, k_pr, k_dc, block_rows, memory_budget, products)
    assert raw.precision_hit is not None and raw.recall_hit is not None
    assert raw.density_count is not None and raw.coverage_hit is not None
    p = float(raw.precision_hit.double().mean())
    r = float(raw.recall_hit.double().mean())
    return PRDC(
        precision=p,
        recall=r,
        f_score=_f_score(p, r),
        density=float(raw.density_count.double().mean()) / k_dc,
        coverage=float(raw.coverage_hit.double().mean()),
        k_pr=k_pr,
        k_dc=k_dc,
    )
