"""Exact k-nearest-neighbour search in Euclidean distance, blocked to constant memory.

Shared by precision / recall / density / coverage (:mod:`gan_eval.metrics.prc`), memorization
(:mod:`gan_eval.metrics.copies`) and recognition. This module also holds the input checks
that every metric module uses (:func:`check_features`, :func:`check_same_dim`).

How the search works
--------------------
1. **Candidates in float32.** Both sets are centred on one common point (distances do not change,
   norms shrink). One matmul per tile returns squared distances directly: the expansion
   ``‖a−b‖² = ‖a‖² + ‖b‖² − 2a·b`` is folded into the product by appending the norms as extra
   columns (``[a, ‖a‖², 1] · [−2b, 1, ‖b‖²]``). Tiles are wide strips (few, large operations:
   on a CPU shared with other jobs each parallel operation can cost milliseconds of thread
   wake-up). Each query row keeps its ``k + margin`` smallest values (a two-stage selection,
   :func:`smallest_per_row`). When a set is searched against itself a strip is multiplied only
   with the columns after it (one wide tile) and its diagonal block is cut into quarter-strip
   tiles; each tile updates both its rows and its columns (:func:`self_search_squared`).
2. **Exact distances in float64.** The answer's distances are recomputed from the original rows
   with direct differences, ``Σ (a_i − b_i)²`` in float64, 128 pairs at a time in a buffer that
   stays in cache. Among equal distances the lower reference index comes first, whatever the
   tiling.
3. **Certificate.** The float32 error of a squared distance is at most ``τ·(‖a‖² + ‖b‖²)``
   (``τ`` from the dot-product length and the current matmul precision, worst case, see
   :func:`squared_distance_tolerance`). A row's answer is accepted when the candidates' float32
   values are separated by more than their error bounds; otherwise all its candidates are
   reranked exactly, and if its worst candidate minus the largest possible error still does not
   clear the exact k-th distance (more than ``margin`` near-ties) the row is recomputed against
   every reference row in float64 — rare, slower, still exact. Rerank only the candidates
   whose value minus its bound can still beat the k-th's value plus its bound.
4. **Other first passes.** :func:`self_search_squared` takes a :class:`SelfProducts` instead of
   float32 tiles, with its own :class:`ErrorModel` and margin (the bfloat16 pass of
   :mod:`gan_eval.metrics.bf16_tiles`, used by precision/recall); the steps above are the same.

Memory (bytes beyond the inputs; ``h × w`` the score tile, ``c = k + margin``, the margin 2 for
float32 and 10 for bfloat16; :func:`plan_tiles`)::

    peak ≈ min(4·N_r·(D+2), budget/4)    augmented float32 reference set, cached if it fits,
                                         else one rebuilt tile ≤ budget/8
         + 12·h·w ≤ 3·budget/8           score tile and two temporaries of its size
         + 12·h·(D + 2)                  augmented query strip (+ float64 temporary)
         + 12·17·c·(h or N)              pending candidates (N: symmetric pass)
         + 16·(N_q + N_r)                norms
         + budget/8                      exact-distance chunk (a bound: 16·128·D in practice)

so it does not grow with ``N_q·N_r`` (a lower estimate: allocator caching and short-lived
temporaries add some; precision/recall at 50,000 × 50,000 × 2048-d measured 0.34 GiB of working
memory with the default budget and float32 first passes, 0.46 GiB with bfloat16 ones). With the
default ``memory_budget`` of 512 MiB, 50,000 × 200,000 × 128-d needs ≈ 0.35 GiB beyond its
128 MB of inputs (:func:`nearest_peak_bytes`), far inside 24 GiB; a larger budget only makes
tiles bigger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from gan_eval.errors import InputError

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "Neighbors",
    "check_features",
    "check_same_dim",
    "kth_neighbor_distance",
    "nearest",
    "nearest_peak_bytes",
    "self_neighbors",
    "squared_distance_tolerance",
]

DEFAULT_MEMORY_BUDGET = 512 * 2**20
"""Default working-memory budget (bytes) from which block sizes are derived."""

_MARGIN = 2  # candidates kept beyond k per row; more only helps rows with many near-ties
_MAX_BLOCK = 4096  # query rows per strip
_MAX_COLS = 32768  # reference columns per tile in cross passes
_GROUPS = 16  # lanes per row in the two-stage selection (smallest_per_row)
_MIN_BLOCK = 64
_PAIR_CHUNK = 128  # pairs per float64 chunk in exact_sqdist_pairs (≈ 2 MiB at D = 2048)


# ----------------------------------------------------------------------------------------------
# Input checks shared by the metric modules
# ----------------------------------------------------------------------------------------------


def check_features(x: object, name: str, *, min_rows: int = 2) -> torch.Tensor:
    """Validate a feature matrix and return it as a float32 or float64 tensor.

    Args:
        x: candidate features, a ``torch.Tensor`` of shape ``(N, D)`` with a floating dtype
            (float16/bfloat16 are widened to float32; float32/float64 are returned as given).
        name: how the argument is called in error messages (e.g. ``"generated"``).
        min_rows: the fewest rows the caller's statistic needs.

    Raises:
        InputError: not a 2-D floating tensor, fewer than ``min_rows`` rows, no columns, or any
            NaN/inf value (the message says how many rows and the first one).
    """
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor of shape (N, D), got {type(x).__name__}")
    if x.dim() != 2:
        raise InputError(
            f"{name}: expected a 2-D feature matrix (N, D), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise InputError(f"{name}: expected floating-point features, got dtype {x.dtype}")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if x.shape[1] < 1:
        raise InputError(f"{name}: features have no columns (shape {tuple(x.shape)})")
    if x.shape[0] < min_rows:
        raise InputError(
            f"{name}: needs at least {min_rows} samples, got {x.shape[0]} (shape {tuple(x.shape)})"
        )
    # a finite sum proves every entry finite (NaN and ±inf propagate); only a failed (or
    # overflowed) sum pays for the per-row check
    if bool(torch.isfinite(x.sum())):
        return x
    finite_rows = torch.isfinite(x).all(dim=1)
    if not bool(finite_rows.all()):
        bad = (~finite_rows).nonzero().flatten()
        raise InputError(
            f"{name}: {bad.numel()} of {x.shape[0]} rows contain NaN or inf "
            f"(first at row {int(bad[0])}); features must be finite"
        )
    return x


def check_same_dim(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise :class:`InputError` unless ``a`` and ``b`` have the same feature dimension."""
    if a.shape[1] != b.shape[1]:
        raise InputError(
            f"{name_a} has {a.shape[1]} feature dimensions but {name_b} has {b.shape[1]}; "
            "both must come from the same extractor layer"
        )


def _check_k(k: int, available: int, what: str) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if k > available:
        raise InputError(f"k={k} neighbours requested but {what} has only {available} candidates")


def _check_budget(memory_budget: int) -> None:
    if memory_budget < 2**20:
        raise InputError(f"memory_budget must be at least 1 MiB, got {memory_budget} bytes")


# ----------------------------------------------------------------------------------------------
# Error bound of the float32 expansion
# ----------------------------------------------------------------------------------------------


def _product_roundoff(device: torch.device) -> float:
    """Unit roundoff of the products inside a float32 matmul under the current torch settings."""
    if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return 2.0**-11
    precision = torch.get_float32_matmul_precision()
    if precision == "medium":
        return 2.0**-8  # bfloat16 products allowed
    if precision == "high":
        return 2.0**-11  # TF32 products allowed
    return 2.0**-24


def squared_distance_tolerance(d: int, device: torch.device | str = "cpu") -> float:
    """Return ``τ`` such that the float32 blocked squared distance is within ``τ(‖a‖²+‖b‖²)``.

    Worst-case (not statistical) bound for a dot product of length ``d + 2`` accumulated in
    float32 (``|err| ≤ γ_n Σ|terms|``, ``Σ|terms| ≤ 2(‖a‖²+‖b‖²)``), plus rounding of the inputs to
    float32 and of the products to the matmul's precision (TF32 / bfloat16 when torch is set to
    allow them). ``a`` and ``b`` are the *centred* rows.
    """
    u_acc = 2.0**-24
    u_prod = _product_roundoff(torch.device(device))
    n = d + 2
    gamma = n * u_acc / (1.0 - n * u_acc)
    return 2.0 * gamma + 4.0 * u_prod + 8.0 * u_acc


# ----------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------
# Tiles
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tiling:
    """How a query × reference product is cut: ``rows`` query rows per strip, ``cols`` reference
    columns per tile; ``cache_ref`` keeps the whole augmented float32 reference matrix."""

    rows: int
    cols: int
    cache_ref: bool


def _round_down(x: int, m: int) -> int:
    return max(m, x // m * m)


def plan_tiles(
    n_query: int,
    n_ref: int,
    d: int,
    memory_budget: int,
    block_rows: int | None = None,
    symmetric: bool = False,
    allow_cache: bool = True,
) -> Tiling:
    """Tile sizes within ``memory_budget`` bytes (see the module docstring for the formula).

    * a float32 score tile holds at most ``memory_budget / 32`` elements (three such buffers —
      scores and reduction temporaries — use ``3/8`` of the budget);
    * the augmented reference set is cached whole when it takes at most ``1/4`` of the budget,
      otherwise each reference tile is rebuilt, at most ``1/8`` of the budget with its float64
      temporary;
    * the symmetric pass uses ~8 strips (of at least 1,024 rows, a multiple of 256); their
      diagonal blocks are cut into quarter-strip tiles (:func:`self_search_squared`), so the
      lower-left corners computed twice stay near ``1/64`` of the full ``N²`` (``1/32`` of the
      symmetric pass); cross passes use wide tiles (≤ 32,768 columns) so that few large
      operations are issued.

    ``block_rows`` (tests, tuning) fixes both sizes.
    """
    if block_rows is not None:
        if block_rows < 1:
            raise InputError(f"block_rows must be positive, got {block_rows}")
        return Tiling(int(block_rows), int(block_rows), False)
    area = max(_MIN_BLOCK * _MIN_BLOCK, memory_budget // 32)
    cache_ref = allow_cache and n_ref * (d + 2) * 4 <= memory_budget // 4
    max_cols = n_ref if cache_ref else max(_MIN_BLOCK, memory_budget // 8 // (12 * (d + 2)))
    if symmetric:
        rows = min(_MAX_BLOCK, max(1024, -(-n_query // 8 // 256) * 256))
        cols = min(max_cols, max(rows, area // rows))
    else:
        cols = min(max_cols, _MAX_COLS)
        rows = min(_MAX_BLOCK, max(_MIN_BLOCK, area // max(cols, 1)))
    cols = n_ref if cols >= n_ref else _round_down(cols, _MIN_BLOCK)
    rows = n_query if rows >= n_query else _round_down(rows, _MIN_BLOCK)
    return Tiling(rows, cols, cache_ref)


class Centred:
    """Float32 rows of ``x − center`` with their squared norms, augmented for the expansion.

    ``x`` keeps its dtype (the exact stage reads it); ``center`` is ``(D,)``. For float32 input
    the centre is rounded to float32 first, so each entry is the exact difference rounded once:
    the float32 rows are the original rows shifted, up to one rounding.
    """

    def __init__(
        self, x: torch.Tensor, center: torch.Tensor, chunk_rows: int = _PAIR_CHUNK
    ) -> None:
        self.x = x
        self.n, self.d = x.shape
        self.center = center.to(x.dtype) if x.dtype == torch.float32 else center.to(torch.float64)
        sq = torch.empty(self.n, dtype=torch.float64, device=x.device)
        # small chunks: the float32 rows and their float64 squares stay in cache
        step = max(1, min(chunk_rows, self.n))
        buf = torch.empty(step, self.d, dtype=torch.float32, device=x.device)
        buf64 = torch.empty(step, self.d, dtype=torch.float64, device=x.device)
        for i0, i1 in block_ranges(self.n, step):
            rows, rows64 = buf[: i1 - i0], buf64[: i1 - i0]
            self._fill(rows, i0, i1)
            rows64.copy_(rows)
            rows64.mul_(rows64)  # exact: a float32 square fits in float64
            torch.sum(rows64, 1, out=sq[i0:i1])
        self.sqnorm = sq  # (N,) float64 squared norms of the float32 centred rows

    def _fill(self, out: torch.Tensor, i0: int, i1: int) -> None:
        # one rounding to float32 of the difference (computed in the input's dtype)
        torch.sub(self.x[i0:i1], self.center, out=out)

    def query_block(self, i0: int, i1: int, alpha: torch.Tensor | None) -> torch.Tensor:
        """``[a, alpha, 1]`` as float32 ``(b, D+2)``; ``alpha`` float64 ``(b,)`` or None (zeros)."""
        out = torch.empty(i1 - i0, self.d + 2, dtype=torch.float32, device=self.x.device)
        self._fill(out[:, : self.d], i0, i1)
        if alpha is None:
            out[:, self.d] = 0.0
        else:
            out[:, self.d] = alpha
        out[:, self.d + 1] = 1.0
        return out

    def ref_block(self, j0: int, j1: int, beta: torch.Tensor) -> torch.Tensor:
        """``[−2b, 1, beta]`` as float32 ``(b, D+2)``; ``beta`` float64 ``(b,)``."""
        out = torch.empty(j1 - j0, self.d + 2, dtype=torch.float32, device=self.x.device)
        rows = out[:, : self.d]
        self._fill(rows, j0, j1)
        rows.mul_(-2.0)  # exact
        out[:, self.d] = 1.0
        out[:, self.d + 1] = beta
        return out


class RefTiles:
    """Reference tiles ``[−2b, 1, beta]`` for columns ``j0:j1``, from a cache or rebuilt."""

    def __init__(self, prep: Centred, beta: torch.Tensor, cache: bool) -> None:
        self.prep = prep
        self.beta = beta
        self.full = prep.ref_block(0, prep.n, beta) if cache else None

    def set_beta(self, beta: torch.Tensor) -> None:
        """Replace the last column (in place in the cache) for a pass with other thresholds."""
        self.beta = beta
        if self.full is not None:
            self.full[:, self.prep.d + 1] = beta

    def __call__(self, j0: int, j1: int) -> torch.Tensor:
        if self.full is not None:
            return self.full[j0:j1]
        return self.prep.ref_block(j0, j1, self.beta[j0:j1])


def score_buffer(
    rows: int, cols: int, device: torch.device | str, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A flat buffer for :func:`tile_product` tiles of up to ``rows × cols`` (float32 default)."""
    return torch.empty(rows * cols, dtype=dtype, device=device)


def tile_product(a: torch.Tensor, b: torch.Tensor, buffer: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` written into the front of ``buffer`` (from :func:`score_buffer`).

    The tiles of a blocked search are reused buffers, not fresh tensors: allocating a tile of
    tens of MB per product costs page faults on every call (measured on 2 cores: the products of
    a 50,000 × 200,000 × 128 search ran at ~105 instead of ~150 GFLOP/s). The result is only
    valid until the next product into the same buffer.
    """
    out = buffer[: a.shape[0] * b.shape[0]].view(a.shape[0], b.shape[0])
    return torch.mm(a, b.T, out=out)


def block_ranges(n: int, b: int, start: int = 0) -> list[tuple[int, int]]:
    """``[(start, start+b), …, (…, n)]``."""
    return [(i, min(i + b, n)) for i in range(start, n, b)]


def blocked_mean(x: torch.Tensor, b: int = 4096) -> torch.Tensor:
    """Column mean of ``x`` as float64: sums of ``b`` rows in ``x``'s dtype, added in float64.

    Only a centre near the data is needed (distances do not depend on it; the error bounds use
    the norms of the rows actually centred), so float32 partial sums are enough, ~10× faster
    than widening every block to float64.
    """
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for i0, i1 in block_ranges(x.shape[0], b):
        total += x[i0:i1].sum(0)
    return total / x.shape[0]


def smallest_per_row(
    s: torch.Tensor, c: int, grouped: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``c`` smallest values of each row of ``s`` and their column positions (unsorted).

    Two-stage selection, same values as ``topk`` (ties may pick different positions): columns
    are split into ``_GROUPS`` interleaved lanes ``j ≡ w (mod W)``; a vectorised ``amin`` over the
    lanes of ``s.view(b, _GROUPS, W)`` gives each lane's minimum, ``topk`` picks the ``c`` lanes
    with the smallest minima, and the final ``topk`` runs over those ``c·_GROUPS`` entries. The
    ``c`` smallest entries always lie in those lanes (a lane left out has ``c`` chosen lanes whose
    minima are no larger than any of its entries), so nothing outside the chosen lanes is smaller
    than the ``c``-th value returned. This reads ``s`` once instead of running a per-row
    selection over all of it.
    """
    b, n = s.shape
    w = n // _GROUPS
    if not grouped or n % _GROUPS or w < 4 * c:
        return s.topk(min(c, n), dim=1, largest=False, sorted=False)
    lane_min = s.view(b, _GROUPS, w).amin(dim=1)
    lanes = lane_min.topk(c, dim=1, largest=False, sorted=False).indices  # (b, c)
    cols = (lanes[:, :, None] + w * torch.arange(_GROUPS, device=s.device)).reshape(b, -1)
    v, p = s.gather(1, cols).topk(c, dim=1, largest=False, sorted=False)
    return v, cols.gather(1, p)


def smallest_per_column(
    s: torch.Tensor, c: int, grouped: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`smallest_per_row` of ``s.T`` without transposing: values, row positions ``(c, m)``."""
    n, m = s.shape
    h = n // _GROUPS
    if not grouped or n % _GROUPS or h < 4 * c:
        return s.topk(min(c, n), dim=0, largest=False, sorted=False)
    lane_min = s.view(_GROUPS, h, m).amin(dim=0)  # (h, m)
    lanes = lane_min.topk(c, dim=0, largest=False, sorted=False).indices  # (c, m)
    rows = (lanes[None, :, :] + h * torch.arange(_GROUPS, device=s.device)[:, None, None]).reshape(
        -1, m
    )
    v, p = s.gather(0, rows).topk(c, dim=0, largest=False, sorted=False)
    return v, rows.gather(0, p)


class _Candidates:
    """Candidate lists of one block of rows, reduced to the ``c`` smallest lazily.

    Tiles append their per-row candidates; the lists are concatenated and cut back to ``c``
    with one ``topk`` only when they grow past ``16·c`` columns (and at the end), instead of
    after every tile.
    """

    def __init__(self, c: int) -> None:
        self.c = c
        self.vals: list[torch.Tensor] = []
        self.idx: list[torch.Tensor] = []
        self.width = 0

    def add(self, vals: torch.Tensor, idx: torch.Tensor) -> None:
        self.vals.append(vals)
        self.idx.append(idx)
        self.width += vals.shape[1]
        if self.width > 16 * self.c:
            self._collapse()

    def _collapse(self) -> None:
        vals = torch.cat(self.vals, dim=1)
        idx = torch.cat(self.idx, dim=1)
        v, pos = vals.topk(min(self.c, vals.shape[1]), dim=1, largest=False, sorted=True)
        self.vals, self.idx, self.width = [v], [idx.gather(1, pos)], v.shape[1]

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 ``(m, c)`` ascending values and int64 ``(m, c)`` indices."""
        self._collapse()
        return self.vals[0], self.idx[0]


def exact_sqdist_pairs(
    a: torch.Tensor, b: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, memory_budget: int
) -> torch.Tensor:
    """``‖a[ia] − b[ib]‖²`` in float64 by direct differences; ``ia``, ``ib`` int64 of one shape.

    Works through ``_PAIR_CHUNK`` pairs at a time in one reused float64 buffer (a few MiB: it
    stays in cache), widening, subtracting, squaring and summing in place; about 3× faster than
    converting whole gathered blocks to float64, with bitwise the same values.
    """
    shape = ia.shape
    ia = ia.reshape(-1)
    ib = ib.reshape(-1)
    m = ia.numel()
    out = torch.empty(m, dtype=torch.float64, device=a.device)
    d = a.shape[1]
    chunk = max(1, min(_PAIR_CHUNK, m, int(memory_budget // 8 // (16 * d))))
    buf = torch.empty(chunk, d, dtype=torch.float64, device=a.device)
    for s in range(0, m, chunk):
        e = min(s + chunk, m)
        diff = buf[: e - s]
        diff.copy_(a.index_select(0, ia[s:e]))  # exact widening
        diff.sub_(b.index_select(0, ib[s:e]))  # computed in float64
        diff.mul_(diff)
        torch.sum(diff, 1, out=out[s:e])
    return out.reshape(shape)


def _stable_order(d2: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by (squared distance, index) ascending."""
    o = torch.argsort(idx, dim=1, stable=True)
    d2 = d2.gather(1, o)
    idx = idx.gather(1, o)
    o = torch.argsort(d2, dim=1, stable=True)
    return d2.gather(1, o), idx.gather(1, o)


class ErrorModel(Protocol):
    """Bounds on the error of a first-pass squared distance (``vals``: its float64 value)."""

    def pair(self, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        """Per pair: query ``rows`` ``(m, 1)`` or ``(m,)``, reference ``cols`` of one shape."""
        ...

    def row(self, rows: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        """Per query row ``(m,)``, valid for any reference row whose value is ``vals``."""
        ...


class Float32Error:
    """The float32 model: ``|error| ≤ τ(‖a‖² + ‖b‖²)`` (:func:`squared_distance_tolerance`)."""

    def __init__(self, tau: float, q_sq: torch.Tensor, r_sq: torch.Tensor) -> None:
        self.tau, self.q_sq, self.r_sq = tau, q_sq, r_sq
        self.r_max = float(r_sq.max())

    def pair(self, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        return self.tau * (self.q_sq[rows] + self.r_sq[cols])

    def row(self, rows: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        return self.tau * (self.q_sq[rows] + self.r_max)


class SelfProducts(Protocol):
    """First-pass products of a set with itself (another arithmetic than float32 tiles).

    ``query(i0, i1) @ ref(j0, j1).T`` (in ``dtype``) approximates ``D² − shift``; ``error``
    bounds it; ``margin`` candidates beyond ``k`` are kept per row.
    """

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def shift(self) -> float: ...

    @property
    def margin(self) -> int: ...

    @property
    def error(self) -> ErrorModel: ...

    def query(self, i0: int, i1: int) -> torch.Tensor: ...

    def ref(self, j0: int, j1: int) -> torch.Tensor: ...


def _finalize(
    q_prep: Centred,
    r_prep: Centred,
    rows: torch.Tensor,
    cand_vals: torch.Tensor,
    cand_idx: torch.Tensor,
    k: int,
    certify: bool,
    error: ErrorModel,
    excl: torch.Tensor | None,
    memory_budget: int,
    exact_cols: tuple[int, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest for query ``rows`` from their candidates; squared distances, indices.

    ``cand_vals`` (float64 ``(m, c)``, ascending) are the approximate squared distances of the
    candidates ``cand_idx``; ``error`` bounds how far each is from the exact value (float32
    tiles: ``τ(‖q_i‖² + ‖r_j‖²)`` with the centred norms).

    * Rows whose first ``k + 1`` approximate values are separated by more than their error
      bounds (and, with ``certify``, whose worst candidate minus the largest possible error of
      any reference row still exceeds the k-th) have a proven answer: the first ``k``
      candidates. Only their exact distances are computed (only ``exact_cols`` if given; the
      other columns then keep the approximations).
    * Other rows (near-ties) get all candidates recomputed exactly in float64 and sorted by
      (distance, index); with ``certify`` a row whose k-th exact distance cannot be proven below
      every non-candidate goes to :func:`_rescue`.
    """
    query, ref = q_prep.x, r_prep.x
    c = cand_vals.shape[1]
    upto = min(k + 1, c)
    cand_tol = error.pair(rows[:, None], cand_idx[:, :upto], cand_vals[:, :upto])
    gaps = cand_vals[:, 1:upto] - cand_vals[:, : upto - 1]
    clear = (gaps > cand_tol[:, 1:] + cand_tol[:, :-1]).all(dim=1)
    # bounds the error of any reference row whose value is at least the worst candidate's
    row_tol = error.row(rows, cand_vals[:, -1])
    if certify:
        if c <= k:
            clear[:] = False
        else:
            clear &= cand_vals[:, -1] - row_tol > cand_vals[:, k - 1] + cand_tol[:, k - 1]
    d2 = cand_vals[:, :k].clone()
    idx = cand_idx[:, :k].clone()

    easy = clear.nonzero().flatten()
    if easy.numel():
        cols = torch.tensor(range(k) if exact_cols is None else exact_cols, device=idx.device)
        sel = idx[easy][:, cols]
        exact = exact_sqdist_pairs(query, ref, rows[easy, None].expand_as(sel), sel, memory_budget)
        d2[easy[:, None], cols[None, :]] = exact

    hard = (~clear).nonzero().flatten()
    if hard.numel():
        cand = cand_idx[hard]
        hv = cand_vals[hard]
        err = error.pair(rows[hard, None], cand, hv)
        # the first k candidates are within `upper` exactly; one whose value minus its error
        # exceeds that is farther than k others and needs no exact distance
        upper = (hv[:, :k] + err[:, :k]).amax(dim=1)
        plausible = hv - err <= upper[:, None]
        ii, jj = plausible.nonzero(as_tuple=True)
        hd2 = torch.full(cand.shape, math.inf, dtype=torch.float64, device=cand.device)
        hd2[ii, jj] = exact_sqdist_pairs(query, ref, rows[hard[ii]], cand[ii, jj], memory_budget)
        hd2, hidx = _stable_order(hd2, cand)
        hd2, hidx = hd2[:, :k].contiguous(), hidx[:, :k].contiguous()
        if certify:
            worst = cand_vals[hard, -1]
            bad = (worst - row_tol[hard] <= hd2[:, -1]).nonzero().flatten()
            if bad.numel():
                rd2, ridx = _rescue(
                    q_prep, r_prep, rows[hard[bad]], hd2[bad, -1], k, excl, memory_budget
                )
                hd2[bad] = rd2
                hidx[bad] = ridx
        d2[hard] = hd2
        idx[hard] = hidx
    return d2, idx


def _rescue(
    q_prep: Centred,
    r_prep: Centred,
    rows: torch.Tensor,
    bound: torch.Tensor,
    k: int,
    excl: torch.Tensor | None,
    memory_budget: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest for rows with many near-ties, against every reference row (float32).

    ``bound`` (float64 ``(m,)``) is an exact squared distance no smaller than each row's true
    k-th. A reference row can be among the k nearest only if its float32 value minus its error
    bound is ≤ ``bound``; those few pairs are recomputed in float64 and sorted by (distance,
    index).
    """
    sub = Centred(q_prep.x[rows], q_prep.center)
    tau = squared_distance_tolerance(r_prep.d, rows.device)
    # rare path: no second cached copy of the reference set next to the caller's
    tiles = plan_tiles(rows.numel(), r_prep.n, r_prep.d, memory_budget, allow_cache=False)
    ref_tiles = RefTiles(r_prep, r_prep.sqnorm, cache=False)
    r_tol32 = (tau * r_prep.sqnorm).float()
    limit = (bound + tau * sub.sqnorm).float()  # per row: value − τ‖r‖² must not exceed this
    found_i, found_j = [], []
    for i0, i1 in block_ranges(rows.numel(), tiles.rows):
        qa = sub.query_block(i0, i1, sub.sqnorm[i0:i1])
        for j0, j1 in block_ranges(r_prep.n, tiles.cols):
            s = qa @ ref_tiles(j0, j1).T  # approximate D²
            s -= r_tol32[j0:j1]
            ii, jj = (s <= limit[i0:i1, None]).nonzero(as_tuple=True)
            found_i.append(ii + i0)
            found_j.append(jj + j0)
    ii, jj = torch.cat(found_i), torch.cat(found_j)
    if excl is not None:
        keep = jj != excl[rows[ii]]
        ii, jj = ii[keep], jj[keep]
    d2 = exact_sqdist_pairs(q_prep.x, r_prep.x, rows[ii], jj, memory_budget)
    # order by (row, distance, index): stable sorts on the minor keys first
    order = torch.argsort(jj, stable=True)
    ii, jj, d2 = ii[order], jj[order], d2[order]
    order = torch.argsort(d2, stable=True)
    ii, jj, d2 = ii[order], jj[order], d2[order]
    order = torch.argsort(ii, stable=True)
    ii, jj, d2 = ii[order], jj[order], d2[order]
    counts = torch.bincount(ii, minlength=rows.numel())
    starts = torch.cumsum(counts, 0) - counts  # each row has ≥ k pairs: its k candidates
    pos = starts[:, None] + torch.arange(k, device=rows.device)
    return d2[pos], jj[pos]


# ----------------------------------------------------------------------------------------------
# Public search functions
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Neighbors:
    """Result of a k-nearest-neighbour search.

    Attributes:
        distances: float64 ``(N_query, k)`` Euclidean distances, ascending along each row.
        indices: int64 ``(N_query, k)`` row indices into the reference set; among equal
            distances the lower index comes first.
    """

    distances: torch.Tensor
    indices: torch.Tensor


def _same_rows(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a is b or (
        a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
        and a.device == b.device
        and a.data_ptr() == b.data_ptr()
    )


def nearest(
    query: torch.Tensor,
    ref: torch.Tensor,
    k: int = 1,
    *,
    exclude_self: bool = False,
    exclude_index: torch.Tensor | None = None,
    block_rows: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Neighbors:
    """The ``k`` nearest reference rows of every query row, exact, in Euclidean distance.

    Args:
        query: ``(N_q, D)`` float features.
        ref: ``(N_r, D)`` float features (same ``D``).
        k: neighbours per query row, ``1 ≤ k ≤ N_r`` (``N_r − 1`` with ``exclude_self``).
        exclude_self: query and ref are the same set (row ``i`` of one is row ``i`` of the
            other) and a row must not be its own neighbour. Passing the same tensor twice uses the
            symmetric pass (half the matmul work).
        exclude_index: int64 ``(N_q,)``: for each query row one reference row that must not be
            returned (``-1`` for none), e.g. the query's own row when the queries are a subset
            of the reference set. Not combinable with ``exclude_self``.
        block_rows: rows per block; default chosen from ``memory_budget``.
        memory_budget: working-memory budget in bytes (see the module docstring formula).

    Returns:
        :class:`Neighbors` with float64 distances and int64 indices, both ``(N_q, k)``; ties in
        distance are ordered by reference index.

    Raises:
        InputError: bad features (see :func:`check_features`), mismatched ``D``, bad ``k``, or
            ``exclude_self`` with sets of different sizes.
    """
    query = check_features(query, "query", min_rows=1)
    ref = check_features(ref, "ref", min_rows=1)
    check_same_dim(query, ref, "query", "ref")
    _check_budget(memory_budget)
    excl: torch.Tensor | None = None
    if exclude_self:
        if exclude_index is not None:
            raise InputError("pass either exclude_self or exclude_index, not both")
        if query.shape[0] != ref.shape[0]:
            raise InputError(
                f"exclude_self needs query and ref to be the same set, got {query.shape[0]} and "
                f"{ref.shape[0]} rows"
            )
        if _same_rows(query, ref):
            return self_neighbors(query, k, block_rows=block_rows, memory_budget=memory_budget)
        excl = torch.arange(query.shape[0], device=query.device)
    elif exclude_index is not None:
        if (
            not isinstance(exclude_index, torch.Tensor)
            or exclude_index.shape != (query.shape[0],)
            or exclude_index.dtype != torch.int64
        ):
            raise InputError(f"exclude_index must be an int64 tensor of shape ({query.shape[0]},)")
        if bool(((exclude_index < -1) | (exclude_index >= ref.shape[0])).any()):
            raise InputError(f"exclude_index values must lie in [-1, {ref.shape[0] - 1}]")
        excl = exclude_index.to(query.device)
    available = ref.shape[0] - (1 if excl is not None and bool((excl >= 0).any()) else 0)
    _check_k(k, available, "ref")
    d2, idx = cross_search_squared(query, ref, k, excl, block_rows, memory_budget)
    return Neighbors(distances=d2.sqrt_(), indices=idx)


def cross_search_squared(
    query: torch.Tensor,
    ref: torch.Tensor,
    k: int,
    excl: torch.Tensor | None,
    block_rows: int | None,
    memory_budget: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared exact distances (float64) and indices of the k nearest; checks done by caller."""
    nq, d = query.shape
    nr = ref.shape[0]
    c = min(k + _MARGIN, nr - (1 if excl is not None else 0))
    certify = c < nr  # a row without exclusion has nr candidates in all
    tiles = plan_tiles(nq, nr, d, memory_budget, block_rows)
    center = blocked_mean(ref)
    q_prep = Centred(query, center)
    r_prep = Centred(ref, center)
    ref_tiles = RefTiles(r_prep, r_prep.sqnorm, tiles.cache_ref)
    error = Float32Error(squared_distance_tolerance(d, query.device), q_prep.sqnorm, r_prep.sqnorm)
    out_d2 = torch.empty(nq, k, dtype=torch.float64, device=query.device)
    out_idx = torch.empty(nq, k, dtype=torch.int64, device=query.device)
    col_ranges = block_ranges(nr, tiles.cols)
    scores = score_buffer(min(nq, tiles.rows), min(nr, tiles.cols), query.device)
    for i0, i1 in block_ranges(nq, tiles.rows):
        qa = q_prep.query_block(i0, i1, None)
        cands = _Candidates(c)
        for j0, j1 in col_ranges:
            # ‖b‖² − 2a·b: the squared distance minus ‖a‖²
            s = tile_product(qa, ref_tiles(j0, j1), scores)
            if excl is not None:
                e = excl[i0:i1]
                hit = ((e >= j0) & (e < j1)).nonzero().flatten()
                if hit.numel():
                    s[hit, e[hit] - j0] = math.inf
            v, p = smallest_per_row(s, c)
            cands.add(v, p + j0)
        vals, idx = cands.result()
        q_sq = q_prep.sqnorm[i0:i1]
        approx = vals.double() + q_sq[:, None]
        rows = torch.arange(i0, i1, device=query.device)
        d2, ix = _finalize(
            q_prep, r_prep, rows, approx, idx, k, certify, error, excl, memory_budget
        )
        out_d2[i0:i1] = d2
        out_idx[i0:i1] = ix
    return out_d2, out_idx


def self_neighbors(
    x: torch.Tensor,
    k: int,
    *,
    block_rows: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Neighbors:
    """The ``k`` nearest *other* rows of every row of ``x`` (a row is never its own neighbour).

    Symmetric pass: row strip ``i0:i1`` is multiplied with the columns ``j ≥ i1`` in wide tiles,
    and each quarter ``u0:u1`` of it with the columns ``u0:i1`` of its own strip; each tile
    updates the candidates of its rows, and of its columns beyond its rows, so the matmul work
    is about ``N²·D`` instead of ``2·N²·D`` (plus ``N·D·strip/4`` for the diagonal quarters).
    Exact duplicates of a row are neighbours at distance 0.

    Returns:
        :class:`Neighbors`, float64 distances and int64 indices of shape ``(N, k)``.

    Raises:
        InputError: bad features or ``k ≥ N``.
    """
    x = check_features(x, "x", min_rows=2)
    _check_budget(memory_budget)
    _check_k(k, x.shape[0] - 1, "x (excluding each row itself)")
    d2, idx = self_search_squared(x, k, block_rows, memory_budget)
    return Neighbors(distances=d2.sqrt_(), indices=idx)


def self_search_squared(
    x: torch.Tensor,
    k: int,
    block_rows: int | None,
    memory_budget: int,
    exact_cols: tuple[int, ...] | None = None,
    prep: Centred | None = None,
    ref_tiles: RefTiles | None = None,
    products: SelfProducts | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared exact distances (float64) and indices of the k nearest other rows.

    With ``exact_cols`` only those columns of the distances are guaranteed exact (e.g. the
    k-th, the radius of precision/recall); the others may hold the first-pass approximations.
    The indices are always exact. ``prep`` / ``ref_tiles`` (with ``beta = prep.sqnorm``) let a
    caller share the centred rows and the cached reference matrix with a later pass;
    ``products`` replaces the float32 first pass (e.g. bfloat16 tiles, built on ``prep``).
    """
    n, d = x.shape
    tiles = plan_tiles(n, n, d, memory_budget, block_rows, symmetric=True)
    if prep is None:
        prep = Centred(x, blocked_mean(x))
    sq = prep.sqnorm
    if products is None:
        if ref_tiles is None:
            ref_tiles = RefTiles(prep, sq, tiles.cache_ref)
        f32_tiles = ref_tiles
        error: ErrorModel = Float32Error(squared_distance_tolerance(d, x.device), sq, sq)
        dtype, shift, margin = torch.float32, 0.0, _MARGIN

        def query(i0: int, i1: int) -> torch.Tensor:
            return prep.query_block(i0, i1, sq[i0:i1])

        def ref(j0: int, j1: int) -> torch.Tensor:
            return f32_tiles(j0, j1)
    else:
        query, ref, error = products.query, products.ref, products.error
        dtype, shift, margin = products.dtype, products.shift, products.margin
    c = min(k + margin, n - 1)
    certify = c < n - 1
    # Candidates are kept per unit (a quarter strip). A strip's diagonal block is computed as
    # one tile per unit, rows u0:u1 × columns u0:i1, so only the lower halves of the unit
    # squares are computed twice; the rest of the strip is one wide tile per column range.
    unit = tiles.rows // next(q for q in (4, 2, 1) if tiles.rows % q == 0)
    units = block_ranges(n, unit)
    cands = [_Candidates(c) for _ in units]

    def add(r0: int, v: torch.Tensor, p: torch.Tensor) -> None:
        """Add the candidates of rows ``r0 : r0 + len(v)`` to their units."""
        r1 = r0 + v.shape[0]
        for u in range(r0 // unit, (r1 - 1) // unit + 1):
            u0, u1 = units[u]
            a, b = max(u0, r0), min(u1, r1)
            if a == u0 and b == u1:
                cands[u].add(v[a - r0 : b - r0], p[a - r0 : b - r0])
            else:  # the tile covers part of that unit: pad the other rows
                pv = torch.full((u1 - u0, v.shape[1]), math.inf, device=x.device)
                pi = torch.full((u1 - u0, v.shape[1]), -1, device=x.device)
                pv[a - u0 : b - u0] = v[a - r0 : b - r0]
                pi[a - u0 : b - u0] = p[a - r0 : b - r0]
                cands[u].add(pv, pi)

    scores = score_buffer(min(n, tiles.rows), min(n, max(tiles.cols, tiles.rows)), x.device, dtype)
    for i0, i1 in block_ranges(n, tiles.rows):
        qa = query(i0, i1)
        diagonal = [(u0, u1, u0, i1) for u0, u1 in block_ranges(i1, unit, start=i0)]
        wide = [(i0, i1, j0, j1) for j0, j1 in block_ranges(n, tiles.cols, start=i1)]
        for r0, r1, j0, j1 in diagonal + wide:
            # approximate squared distances (− shift) (r0:r1) × (j0:j1)
            s = tile_product(qa[r0 - i0 : r1 - i0], ref(j0, j1), scores)
            lo, hi = max(r0, j0), min(r1, j1)
            if lo < hi:  # a row is not its own neighbour
                s[lo - r0 : hi - r0, lo - j0 : hi - j0].diagonal().fill_(math.inf)
            v, p = smallest_per_row(s, c)
            add(r0, v.float(), p + j0)
            # columns beyond the tile's rows: pairs (i, j) with i < j seen from j's side
            lo = max(j0, r1)
            if lo < j1:
                v, p = smallest_per_column(s[:, lo - j0 :], c)
                add(lo, v.T.float(), p.T + r0)
    results = [cd.result() for cd in cands]
    vals = torch.cat([r[0] for r in results])
    idx = torch.cat([r[1] for r in results])
    return _finalize(
        prep,
        prep,
        torch.arange(n, device=x.device),
        vals.double() + shift,
        idx,
        k,
        certify,
        error,
        torch.arange(n, device=x.device),
        memory_budget,
        exact_cols,
    )


def kth_neighbor_distance(
    x: torch.Tensor,
    k: int,
    *,
    block_rows: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest *other* row, float64 ``(N,)``.

    This equals torch-fidelity's and Naeem et al.'s radius ``kthvalue(k + 1)`` over a row of the
    full distance matrix that includes the row's zero distance to itself.
    """
    nb = self_neighbors(x, k, block_rows=block_rows, memory_budget=memory_budget)
    return nb.distances[:, k - 1].contiguous()


def nearest_peak_bytes(
    n_query: int,
    n_ref: int,
    d: int,
    k: int = 1,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    block_rows: int | None = None,
) -> int:
    """Evaluate the module-docstring memory formula for :func:`nearest` (bytes beyond inputs)."""
    t = plan_tiles(n_query, n_ref, d, memory_budget, block_rows)
    c = k + _MARGIN
    ref = n_ref * (d + 2) * 4 if t.cache_ref else 12 * t.cols * (d + 2)
    return int(
        ref
        + 12 * t.rows * t.cols  # score tile + two temporaries of its size
        + 12 * t.rows * (d + 2)  # query strip (+ float64 temporary)
        + 12 * t.rows * 17 * c  # pending candidates of a strip
        + 16 * (n_query + n_ref)  # norms
        + memory_budget // 8  # exact rerank chunk
    )
