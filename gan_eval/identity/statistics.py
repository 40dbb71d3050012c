"""Identity-level statistics of a recognition audit, on dlib face embeddings.

The math is in :mod:`gan_eval.metrics.identity`; this module chooses what it is computed on,
describes it for the results JSON (the ``identity`` part of the ``recognition`` section) and
turns it into catalogue metrics.

* **Vendi score** (Friedman & Dieng, TMLR 2023) of the generated embeddings: the effective number
  of distinct identities, with no match threshold (RBF kernel, bandwidth 0.3: half dlib's 0.6
  same-person distance). Beside it, the reference set's own Vendi score on a seeded subset of the
  same size (the score grows with ``n`` up to ``n``, so sets are compared at equal ``n`` where the
  reference allows). Sets above ``max_images`` use a seeded subset (the eigendecomposition is
  O(n³)).
* **Membership test of training identities** (Webster et al. 2021, "This person (probably)
  exists"): every generated face is assigned to its nearest identity among the training
  (reference) identities and identities held out of training (``--heldout``); a permutation test
  over which identities are "training" says whether training people are matched more often
  than held-out people. It needs held-out faces; without them the section says so and gives no
  number.
* **Authenticity** (Alaa et al., ICML 2022; chosen over the C_T test, see
  :mod:`gan_eval.metrics.identity`): the fraction of generated faces that are not closer to their
  nearest training face than that face is to its own nearest training neighbour, with a Wilson
  interval, beside the same fraction for held-out real faces and a one-sided p-value.

**What an identity is.** A set with identity labels (first-level subfolders, an npz ``labels``
array) has one identity per label, represented by the mean embedding of its images
(:func:`~gan_eval.metrics.identity.identity_centroids`). A set without labels takes *every image
as its own identity*: right when each person appears once (``builtin:lfw-subset``: 100 photos of
about as many people); when people repeat, their images split into several identities, which
dilutes that side's matches per identity. The permutation test is exact when the two sides'
identities are exchangeable (a random split of one population's people, counted the same way);
the section records each side's unit and warns when they differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.estimates import IntervalResult
from gan_eval.metrics.copies import nearest_reference
from gan_eval.metrics.identity import (
    authenticity,
    identity_centroids,
    membership_test,
    vendi_score,
)
from gan_eval.results import Metric
from gan_eval.seeding import numpy_rng

__all__ = [
    "DEFAULT_PERMUTATIONS",
    "DEFAULT_VENDI_BANDWIDTH",
    "HeldOut",
    "authenticity_section",
    "identity_metrics",
    "identity_section",
    "identity_units",
    "membership_section",
    "vendi_section",
]

DEFAULT_VENDI_BANDWIDTH = 0.3
"""RBF length scale of the Vendi kernel, in dlib embedding units (half the 0.6 match distance)."""

DEFAULT_PERMUTATIONS = 10_000
"""Random relabelings behind the membership p-value (smallest attainable p ≈ 1e-4)."""

TOP_IDENTITIES = 10  # most matched training identities listed in the section
IDENTICAL = 1e-4  # embedding distance below which two faces are the same image (float32 noise of
# batched convolutions is ~1e-6; a mirrored or 1-px shifted copy of a 25×25 LFW face is ≥ 0.03)

VENDI_MEANING = (
    "effective number of distinct identities (1 … n faces), without a match threshold: "
    "faces of one person count once, faces of different people count separately"
)
MEMBERSHIP_MEANING = (
    "are the people the generator was trained on reproduced more often than people it never "
    "saw? a small p-value says the generator leaks its training identities"
)
AUTHENTICITY_MEANING = (
    "fraction of generated faces that are not closer to their nearest training face than that "
    "face is to its own nearest training neighbour (not copies); compare with held-out real "
    "faces, which are 'unauthentic' at some base rate too"
)
HELDOUT_HINT = (
    "pass --heldout DATA (RecognitionConfig.heldout): real faces of people who are NOT in the "
    "training set, from the same population"
)


@dataclass(frozen=True)
class HeldOut:
    """Held-out real faces (people not in the training set).

    Attributes:
        embeddings: ``(B, D)`` face embeddings.
        labels: ``(B,)`` int identity labels indexing ``names``, or None (each image its own
            identity).
        names: identity names, or None.
        data: what they were read from (the DATA string), for the results JSON.
    """

    embeddings: torch.Tensor
    labels: np.ndarray | None = None
    names: Sequence[str] | None = None
    data: str = "--heldout"


def _float64(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to("cpu", torch.float64)


def _subset(n: int, size: int, seed: int, what: str) -> np.ndarray | None:
    """Sorted seeded row subset of ``size`` of ``n`` rows, or None when all are used."""
    if n <= size:
        return None
    return np.sort(numpy_rng(seed, f"identity/vendi/{what}").choice(n, size=size, replace=False))


def vendi_section(
    generated: torch.Tensor,
    reference: torch.Tensor,
    *,
    bandwidth: float = DEFAULT_VENDI_BANDWIDTH,
    max_images: int = 5000,
    seed: int = 0,
    warning: str | None = None,
) -> dict[str, Any]:
    """Vendi scores (RBF, ``bandwidth``) of ``(n, D)`` generated and ``(m, D)`` reference
    embeddings; the reference on a seeded subset of ``min(n, max_images)`` rows when larger.
    ``warning``: the thresholds' warning that the match threshold does not separate people on
    these images; when given, the section says what that means for the Vendi score."""
    gen = _float64(generated)
    ref = _float64(reference)
    n_gen = min(gen.shape[0], max_images)
    gen_rows = _subset(gen.shape[0], n_gen, seed, "generated")
    ref_rows = _subset(ref.shape[0], min(ref.shape[0], n_gen), seed, "reference")
    out: dict[str, Any] = {
        "method": "Vendi score (Friedman & Dieng, TMLR 2023): exp of the Shannon entropy of the "
        "eigenvalues of K/n, K = exp(−‖x − y‖² / (2·bandwidth²)) on face embeddings",
        "meaning": VENDI_MEANING,
        "kernel": "rbf",
        "bandwidth": float(bandwidth),
    }
    for key, x, rows in (("generated", gen, gen_rows), ("reference", ref, ref_rows)):
        used = x if rows is None else x[torch.from_numpy(rows)]
        value = vendi_score(used, kernel="rbf", bandwidth=bandwidth)
        out[key] = {
            "value": value,
            "n": int(used.shape[0]),
            "n_total": int(x.shape[0]),
            "per_image": value / used.shape[0],
            "subset": None if rows is None else
            f"seeded random subset of {rows.size} of {x.shape[0]} (seed {seed})",
        }
    if warning:
        out["warning"] = (
            "dlib's embedding space is compressed on these images (" + warning.split(":")[0]
            + "): views of one person can lie as far apart as different people, so the Vendi "
            "score counts within-person variation (pose, light, blur) as distinct identities; "
            "compare generated with reference at equal n rather than reading it as a head count"
        )
    if ref.shape[0] < n_gen:
        out["reference"]["note"] = (
            f"the reference has {ref.shape[0]} faces, fewer than the {n_gen} generated: its Vendi "
            f"score cannot exceed {ref.shape[0]}; compare per_image"
        )
    return out


def identity_units(
    embeddings: torch.Tensor, labels: np.ndarray | None, names: Sequence[str] | None,
    ids: np.ndarray | None = None,
) -> tuple[torch.Tensor, list[str], dict[str, Any]]:
    """One row per identity: label centroids, or each image's own embedding without labels.

    Returns the ``(P, D)`` float64 rows, a printable name per row (the label's name, or
    ``image N`` with N the source image index from ``ids``) and the JSON description.
    """
    x = _float64(embeddings)
    n = int(x.shape[0])
    if labels is None:
        index = ids if ids is not None else np.arange(n)
        return x, [f"image {int(i)}" for i in index], {
            "unit": "image", "identities": n, "images": n,
            "meaning": "no identity labels: every image is taken as its own identity",
        }
    lab = np.asarray(labels, dtype=np.int64)
    rows = identity_centroids(x, torch.from_numpy(lab))
    uniq = np.unique(lab)
    shown = [str(names[u]) if names is not None and 0 <= u < len(names) else f"label {u}"
             for u in uniq.tolist()]
    return rows, shown, {
        "unit": "label", "identities": int(uniq.size), "images": n,
        "meaning": "identity labels: one mean embedding per person",
    }


def membership_section(
    generated: torch.Tensor,
    reference: torch.Tensor,
    heldout: HeldOut | None,
    *,
    labels: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    reference_ids: np.ndarray | None = None,
    heldout_ids: np.ndarray | None = None,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> dict[str, Any]:
    """The membership test of training (reference) identities against held-out identities,
    or ``{"skipped": True, "reason": …}`` without held-out faces. :class:`InputError` ("cannot
    judge membership") when held-out embeddings are reference embeddings (the same images)."""
    if heldout is None:
        return {"skipped": True, "meaning": MEMBERSHIP_MEANING,
                "reason": f"no held-out faces: the test compares training identities with "
                f"identities held out of training; {HELDOUT_HINT}"}
    train_rows, train_names, train_desc = identity_units(reference, labels, names, reference_ids)
    ho_rows, ho_names, ho_desc = identity_units(heldout.embeddings, heldout.labels,
                                                heldout.names, heldout_ids)
    # Identity rows are built on the CPU (centroids are cheap); the nearest-identity searches run
    # on the embeddings' device, in float64 like membership_test's (an unlabelled training set
    # has one identity per image, so the search can be as large as leakage's).
    gen = generated.detach().double()
    train_rows, ho_rows = train_rows.to(gen.device), ho_rows.to(gen.device)
    result = membership_test(gen, train_rows, ho_rows, permutations=permutations, seed=seed)
    # Per-identity counts, for the report's list of the most reproduced training people (the same
    # exact nearest search as membership_test's, on the same rows).
    nn = nearest_reference(gen, torch.cat([train_rows, ho_rows]))
    a = train_rows.shape[0]
    counts = np.bincount(nn.indices, minlength=a + ho_rows.shape[0])
    order = np.lexsort((np.arange(a), -counts[:a]))[:TOP_IDENTITIES]
    warnings = []
    if train_desc["unit"] != ho_desc["unit"]:
        warnings.append(
            f"training identities are counted by {train_desc['unit']} and held-out ones by "
            f"{ho_desc['unit']}: the test is exact only when both sides count people the same "
            "way (label both sets, or give both one image per person)"
        )
    if labels is not None and heldout.labels is not None and names and heldout.names:
        # folder names name people; npz labels are integers that mean nothing across files
        shared = sorted(n for n in set(map(str, names)) & set(map(str, heldout.names))
                        if not n.lstrip("-").isdigit())
        if shared:
            warnings.append(
                f"{len(shared)} identity name(s) appear in both the reference and the held-out "
                f"set (e.g. {', '.join(shared[:3])}): held-out people must not be in training"
            )
    same = nearest_reference(heldout.embeddings.to(reference), reference)
    identical = int(np.count_nonzero(same.distances <= IDENTICAL))
    if identical:  # recognition() compares pixels before; embeddings are all this API gets
        raise InputError(
            f"--heldout {heldout.data}: cannot judge membership: {identical} held-out face(s) "
            f"are also in the training set (embedding distance ≤ {IDENTICAL:g} to a reference "
            "face); held-out faces must show people who are not in the training set: remove "
            "them from the held-out set"
        )
    section: dict[str, Any] = {
        "method": "Webster et al. 2021: each generated face is assigned to its nearest identity "
        "among training ∪ held-out (Euclidean, face embeddings); statistic = mean generated "
        "faces per training identity − per held-out identity; one-sided permutation p-value "
        "over random relabelings of the identities as training / held-out",
        "meaning": MEMBERSHIP_MEANING,
        "p_value": float(result.p_value),
        "statistic": float(result.statistic),
        "train_match_rate": float(result.train_match_rate),
        "heldout_match_rate": float(result.heldout_match_rate),
        "match_rate_meaning": "mean number of generated faces whose nearest identity is that "
        "identity (training, held-out)",
        "matched": int(result.matched),
        "n_generated": int(result.n_generated),
        "threshold": result.threshold,
        "permutations": int(result.permutations),
        "seed": int(result.seed),
        "train": train_desc,
        "heldout": {**ho_desc, "data": heldout.data},
        "most_matched_training": [{"identity": train_names[i], "matches": int(counts[i])}
                                  for i in order.tolist() if counts[i] > 0],
        "heldout_max_matches": int(counts[a:].max()),
        "heldout_most_matched": ho_names[int(np.argmax(counts[a:]))],
        "detected": {"0.01": bool(result.p_value < 0.01), "0.05": bool(result.p_value < 0.05)},
    }
    if warnings:
        section["warnings"] = warnings
    return section


def authenticity_section(
    generated: torch.Tensor, reference: torch.Tensor, heldout: HeldOut | None, *,
    level: float = 0.95,
) -> dict[str, Any]:  # fmt: skip
    """Authentic fraction of generated faces (Wilson interval), beside held-out real faces'."""
    # On the embeddings' own device: the exact search over a large training set is the costly
    # part, and the ratio test is not sensitive to float32 rounding.
    res = authenticity(generated, reference,
                       heldout=None if heldout is None else heldout.embeddings.to(generated),
                       level=level)
    section: dict[str, Any] = {
        "method": "Alaa et al. (ICML 2022): a generated face is unauthentic when its distance to "
        "its nearest training face r* is ≤ the distance from r* to r*'s nearest other training "
        "face (Euclidean in the face embeddings, exact); chosen over the C_T test of Meehan et "
        "al. (2020) because it flags individual samples and has no tuning parameters",
        "meaning": AUTHENTICITY_MEANING,
        "rate": res.rate.to_json() | {"estimate": res.rate.estimate},
        "authentic": int(res.authentic.sum()),
        "n": int(res.authentic.numel()),
        "unauthentic_examples": np.flatnonzero(~res.authentic.cpu().numpy())[:20].tolist(),
    }
    if res.heldout_rate is None:
        section.update(heldout_rate=None, p_value=None,
                       note=f"no held-out faces, so no base rate to compare with; {HELDOUT_HINT}")
    else:
        section["heldout_rate"] = res.heldout_rate.to_json() | {
            "estimate": res.heldout_rate.estimate}
        section["p_value"] = float(res.p_value) if res.p_value is not None else None
        section["p_value_meaning"] = (
            "one-sided two-proportion z-test of 'generated faces are less authentic than "
            "held-out real faces'"
        )
    return section


def identity_section(
    generated: torch.Tensor,
    reference: torch.Tensor,
    *,
    labels: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    heldout: HeldOut | None = None,
    reference_ids: np.ndarray | None = None,
    heldout_ids: np.ndarray | None = None,
    bandwidth: float = DEFAULT_VENDI_BANDWIDTH,
    max_images: int = 5000,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    warning: str | None = None,
) -> dict[str, Any]:
    """The ``identity`` part of the recognition section: ``vendi``, ``membership``,
    ``authenticity`` (see the module docstring). Embeddings ``(n, D)`` generated, ``(m, D)``
    reference (training) with optional ``labels`` (m ints, names indexed by label); ``warning``:
    the thresholds' warning, if any (see :func:`vendi_section`)."""
    return {
        "vendi": vendi_section(generated, reference, bandwidth=bandwidth, max_images=max_images,
                               seed=seed, warning=warning),
        "membership": membership_section(
            generated, reference, heldout, labels=labels, names=names,
            reference_ids=reference_ids, heldout_ids=heldout_ids, permutations=permutations,
            seed=seed),
        "authenticity": authenticity_section(generated, reference, heldout),
    }


def identity_metrics(section: dict[str, Any], n_reference: int,
                     extractor: str) -> list[Metric]:
    """``vendi_identities`` and ``authenticity`` (on face network ``extractor``) from an
    ``identity`` section."""
    vendi = section["vendi"]
    gen, ref = vendi["generated"], vendi["reference"]
    metrics = [Metric.of(
        "vendi_identities", extractor, gen["value"], n_generated=gen["n"],
        n_reference=ref["n"],
        no_interval="resampling with replacement duplicates faces, which lowers the score",
        details={"reference": ref["value"], "n_reference_used": ref["n"],
                 "kernel": vendi["kernel"], "bandwidth": vendi["bandwidth"],
                 "subset": gen["subset"], "meaning": vendi["meaning"]},
    )]
    auth = section["authenticity"]
    rate = auth["rate"]
    interval = IntervalResult.from_json({k: v for k, v in rate.items() if k != "estimate"},
                                        estimate=rate["estimate"], where="authenticity")
    details: dict[str, Any] = {"meaning": auth["meaning"], "p_value": auth["p_value"]}
    if auth["heldout_rate"] is not None:
        details["heldout"] = {"value": auth["heldout_rate"]["estimate"],
                              "ci95": auth["heldout_rate"]["ci"]}
    else:
        details["note"] = auth["note"]
    metrics.append(Metric.of("authenticity", extractor, interval, n_generated=auth["n"],
                             n_reference=n_reference, details=details))
    return metrics
