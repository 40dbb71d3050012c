"""Identity-level statistics: Vendi equals the vendi-score package; the membership test detects
a generator that copies its training identities and keeps its false-alarm rate on one that does
not (slow: 100 draws); authenticity flags copies. Identities are Gaussian clusters in 128-D:
centres N(0, 0.1² I) (different people ≈ 1.6 apart), images centre + N(0, 0.04² I) (same
person ≈ 0.64 apart, about dlib's 0.6 threshold)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_eval.errors import InputError
from gan_eval.metrics.identity import (
    authenticity,
    identity_centroids,
    membership_test,
    vendi_score,
)

vendi = pytest.importorskip("vendi_score.vendi")

D = 128


def _people(count: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(count, D, generator=g, dtype=torch.float64) * 0.1


def _faces(centres: torch.Tensor, n: int, seed: int, noise: float = 0.04) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    who = torch.randint(0, centres.shape[0], (n,), generator=g)
    return centres[who] + noise * torch.randn(n, D, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n", [50, 300])  # n < D (primal) and n > D (dual for cosine)
def test_vendi_equals_package(n: int) -> None:
    x = _faces(_people(20, 0), n, seed=1) + 0.5  # not centred, like dlib descriptors
    assert vendi_score(x, kernel="cosine") == pytest.approx(vendi.score_X(x.numpy()), rel=1e-9)
    d2 = torch.cdist(x, x).square().numpy()
    k = np.exp(-d2 / (2 * 0.3**2))
    assert vendi_score(x, kernel="rbf", bandwidth=0.3) == pytest.approx(vendi.score_K(k), rel=1e-9)


def test_vendi_counts_identities() -> None:
    # 10 people, 30 near-identical images each: RBF Vendi ≈ 10 (within-person spread adds a
    # little entropy of its own); twice the people, twice the score
    x = _faces(_people(10, 2), 300, seed=3, noise=0.002)
    assert vendi_score(x, kernel="rbf", bandwidth=0.3) == pytest.approx(10.0, rel=0.15)
    x20 = _faces(_people(20, 2), 300, seed=3, noise=0.002)
    assert vendi_score(x20, kernel="rbf", bandwidth=0.3) == pytest.approx(20.0, rel=0.15)
    with pytest.raises(InputError):
        vendi_score(x, kernel="nope")  # type: ignore[arg-type]


def test_identity_centroids() -> None:
    x = torch.tensor([[0.0, 0.0], [2.0, 2.0], [5.0, 1.0]], dtype=torch.float64)
    c = identity_centroids(x, torch.tensor([7, 7, 3]))
    assert c.tolist() == [[5.0, 1.0], [1.0, 1.0]]


def _split(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    people = _people(1000, seed)
    return people[:500], people[500:]  # a random split of identities (i.i.d. centres)


def test_membership_detects_copying_half_of_the_training_identities() -> None:
    train, heldout = _split(10)
    g = torch.Generator().manual_seed(11)
    copied = train[torch.randperm(500, generator=g)[:250]]  # half of the training people
    gen = torch.cat([_faces(copied, 500, seed=12), _faces(_people(500, 13), 500, seed=14)])
    res = membership_test(gen, train, heldout, permutations=2000, seed=0)
    assert res.n_generated == 1000
    assert res.p_value < 0.01
    assert res.train_match_rate > res.heldout_match_rate


@pytest.mark.slow
def test_membership_false_alarms_at_the_stated_level() -> None:
    # generators of people outside training (new people, or the held-out people themselves)
    alarms = 0
    draws = 400
    for t in range(draws):
        train, heldout = _split(100 + t)
        gen = _faces(_people(400, 5000 + t), 1000, seed=t)
        alarms += membership_test(gen, train, heldout, permutations=200, seed=t).p_value < 0.05
    print(f"membership test: {alarms}/{draws} false alarms at level 0.05")
    assert alarms <= 30  # P(Binomial(400, 0.05) > 30) ≈ 1 %
    train, heldout = _split(7)
    gen = _faces(heldout, 1000, seed=8)  # copies held-out people: not "training leakage"
    assert membership_test(gen, train, heldout, permutations=500).p_value > 0.5


def test_authenticity_flags_copies_beside_heldout_base_rate() -> None:
    people = _people(200, 20)
    train = _faces(people, 1000, seed=21)
    heldout = _faces(people, 300, seed=22)
    g = torch.Generator().manual_seed(23)
    copies = train[torch.randint(0, 1000, (300,), generator=g)] + 1e-4 * torch.randn(
        300, D, generator=g, dtype=torch.float64)
    fresh = _faces(people, 300, seed=24)
    res = authenticity(torch.cat([copies, fresh]), train, heldout=heldout)
    assert not bool(res.authentic[:300].any())  # every near-copy is flagged
    assert res.heldout_rate is not None and res.p_value is not None
    assert res.rate.estimate < res.heldout_rate.estimate
    assert res.p_value < 1e-6
    same = authenticity(fresh, train, heldout=heldout)  # fresh faces: like held-out ones
    assert same.p_value is not None and same.p_value > 0.01
