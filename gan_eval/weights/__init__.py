"""The pretrained weights files gan-eval knows: where each is found, how it is fetched and verified.

The files themselves are declared with their extractors (:class:`gan_eval.catalogue.WeightsFile`,
the ``weights`` of an :class:`~gan_eval.catalogue.ExtractorSpec`); :data:`WEIGHTS` is the live
table of them, so an extractor registered at run time is listed, fetched and verified like the
built-in ones.

No registry package ships these files (see ``ASSETS.md``), so gan-eval never downloads one
implicitly: a feature extractor only *locates* its file, and a missing file stops the run with
:class:`~gan_eval.errors.MissingAssetError` (CLI exit 3) naming the file, its official URL,
``gan-eval weights fetch NAME`` and ``--weights NAME=PATH``. ``fetch`` is the explicit, opt-in
download.

Where a file is looked for (:func:`locate`), in order:

1. an explicit path (a CLI option such as ``--weights NAME=PATH`` / ``--inception-weights PATH``);
2. the file's own environment variable (``WeightsFile.env``, e.g. ``GAN_EVAL_INCEPTION_WEIGHTS``,
   ``GAN_EVAL_DINOV2_VIT_S14_WEIGHTS``);
3. ``$GAN_EVAL_WEIGHTS_DIR/<file name>``;
4. gan-eval's weights cache, ``$XDG_CACHE_HOME/gan-eval/weights/<file name>`` (default
   ``~/.cache/gan-eval/weights``), where ``fetch`` puts files when ``$GAN_EVAL_WEIGHTS_DIR`` is
   unset;
5. where the upstream loaders cache the same bytes: torch hub's ``<hub dir>/checkpoints/`` (the
   file name torch-fidelity / ``torch.hub`` give it) and, for CLIP, ``~/.cache/clip/`` (OpenAI's
   ``clip`` package), so a machine that ever ran those online already has it.

An explicit path or environment variable is used or refused, never replaced by a file found
elsewhere: one that names a missing path is an :class:`~gan_eval.errors.InputError` (exit 2), and
so is one whose content is not the expected file (checked by the extractor that reads it).

Trust: OpenAI's CLIP URLs embed the file's full sha256; torch-fidelity's Inception file name
carries the first 8 hex digits of its sha256; Meta publishes no hash for the DINOv2 files. A file
is placed by ``fetch`` only after (a) the bytes received agree with what the server announced
(``Content-Length``; a ``206`` answer starts exactly where the partial download ends), (b) its
sha256 matches the published (or ``--sha256`` pinned) hash, (c) its zip records pass their
CRC-32 checks (:func:`zip_damage`: no damaged or spliced file), and (d) its *content* passed the
extractor's check (the right format, loaded safely, with the expected parameter names and
shapes; required where no full sha256 is published, run wherever one is given). The check is a
hook (``check=``) that the torch-side registry provides
(:func:`gan_eval.features.registry.weights_check`), so this module stays torch-free. The sha256
of the placed bytes is recorded beside the file (``<file>.sha256``) and ``verify`` checks the
record, the zip CRCs and the content.

Concurrency: a fetch holds an exclusive ``fcntl`` lock on ``<dest>/<file name>.lock`` from its
first look at the target to the placing of the file; a second fetch of the same file exits 2
("already in progress"). The lock dies with its process, so a ``.part`` left by a killed fetch is
resumed (and checked like any download) by the next one.
"""

from gan_eval.catalogue import WeightsFile
from gan_eval.weights.download import LOCK_SUFFIX, PART_SUFFIX, fetch
from gan_eval.weights.files import (
    SHA_SUFFIX,
    ContentCheck,
    expected_hash,
    file_problem,
    hash_matches,
    recorded_sha256,
    zip_damage,
)
from gan_eval.weights.table import (
    WEIGHTS,
    WEIGHTS_DIR_ENV,
    Located,
    cache_dir,
    candidates,
    hub_checkpoints_dir,
    known,
    locate,
    missing_message,
    resolve,
    weights_option,
)
from gan_eval.weights.verification import BAD_STATUSES, Verified, verify_one

__all__ = [
    "BAD_STATUSES",
    "LOCK_SUFFIX",
    "PART_SUFFIX",
    "SHA_SUFFIX",
    "WEIGHTS",
    "WEIGHTS_DIR_ENV",
    "ContentCheck",
    "Located",
    "Verified",
    "WeightsFile",
    "cache_dir",
    "candidates",
    "expected_hash",
    "fetch",
    "file_problem",
    "hash_matches",
    "hub_checkpoints_dir",
    "known",
    "locate",
    "missing_message",
    "recorded_sha256",
    "resolve",
    "verify_one",
    "weights_option",
    "zip_damage",
]
