"""foolbox criteria on face embeddings: dodging and impersonation.

Both are ``foolbox.criteria.Criterion`` subclasses that decide from the outputs of the embedding
model (:func:`gan_eval.robustness.models.recognizer_model`, B×128) and hold one reference
embedding per image and the match threshold τ (:func:`gan_eval.faces.is_match`: same person ⇔
distance ≤ τ, dlib's τ = 0.6):

- :class:`Dodging`: the perturbed face no longer matches its own clean embedding, ``d > τ``;
- :class:`Impersonation`: the perturbed face matches a chosen other identity, ``d ≤ τ``.

They can be given as they are to any foolbox attack that only asks "is this adversarial?"
(decision-based attacks). foolbox's gradient and minimization attacks (FGSM, PGD, C&W, DeepFool)
instead need class logits and labels: :meth:`EmbeddingCriterion.as_classification` returns the
equivalent classification problem, a :class:`~gan_eval.robustness.models.VerificationModel` over
the same embedder and a ``Misclassification`` whose verdict is this criterion's verdict on every
input (to float rounding at ``d = τ``; the tests check the agreement on the attacks' outputs).

The clean embedding that dodging measures from is gan-eval's canonical one,
:func:`gan_eval.features.embed_faces` of the clean uint8 image. It differs from the attacked
model's embedding of the same image (float resize, no rounding) by ≈0.01, which also keeps the
distance away from its non-differentiable minimum at 0: attacks without a random start (FGSM,
DeepFool) get a non-zero gradient at the clean image.
"""

from __future__ import annotations

from typing import Any

import eagerpy as ep
import foolbox as fb
import torch

from gan_eval.faces import MATCH_THRESHOLD, is_match
from gan_eval.robustness.models import MATCH, NO_MATCH, VerificationModel


class EmbeddingCriterion(fb.criteria.Criterion):
    """Base of the embedding criteria: reference embeddings B×128 and the match threshold τ."""

    label: int
    """The class of the clean input in the verification view (:data:`MATCH` / :data:`NO_MATCH`)."""

    def __init__(self, references: torch.Tensor, *, threshold: float = MATCH_THRESHOLD) -> None:
        super().__init__()
        if references.ndim != 2:
            raise ValueError(f"references must be B×D embeddings, got {tuple(references.shape)}")
        self.references = references.detach()
        self.threshold = float(threshold)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self.references)}, threshold={self.threshold:g})"

    def distances(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Euclidean distance of each embedding to its reference, float B."""
        return torch.linalg.vector_norm(embeddings.detach() - self.references, dim=-1)

    def decide(self, distances: torch.Tensor) -> torch.Tensor:
        """bool B: adversarial for these distances to the references."""
        raise NotImplementedError

    def __call__(self, perturbed: Any, outputs: Any) -> Any:
        outputs_, restore_type = ep.astensor_(outputs)
        del perturbed
        return restore_type(ep.astensor(self.decide(self.distances(outputs_.raw))))

    def as_classification(
        self, embedder: fb.models.Model
    ) -> tuple[VerificationModel, fb.criteria.Misclassification]:
        """The same question for classifier attacks: (2-logit verification model, labels).

        ``Misclassification(labels)`` on ``VerificationModel(embedder, references, threshold)``
        is adversarial exactly when this criterion is on ``embedder``'s outputs.
        """
        model = VerificationModel(embedder, self.references, threshold=self.threshold)
        labels = torch.full(
            (len(self.references),), self.label, dtype=torch.long, device=self.references.device
        )
        return model, fb.criteria.Misclassification(labels)


class Dodging(EmbeddingCriterion):
    """Adversarial ⇔ the embedding no longer matches the clean face's embedding (distance ``> τ``).

    ``references``: the clean faces' embeddings (B×128), normally ``embed_faces(clean_uint8)``.
    """

    label = MATCH

    def decide(self, distances: torch.Tensor) -> torch.Tensor:
        return ~is_match(distances, self.threshold)


class Impersonation(EmbeddingCriterion):
    """Adversarial ⇔ the embedding matches the target identity's embedding (distance ``≤ τ``).

    ``references``: one target embedding per image (B×128), of a face the clean image does not
    match (otherwise it would count as adversarial before any perturbation).
    """

    label = NO_MATCH

    def decide(self, distances: torch.Tensor) -> torch.Tensor:
        return is_match(distances, self.threshold)
