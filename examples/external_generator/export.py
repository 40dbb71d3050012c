"""Export the example generator to torch.export, TorchScript and ONNX (what a training job would
publish).

Run from the repository root:

    python examples/external_generator/export.py     # writes examples/external_generator/out/

``out/generator.pt2`` is a ``torch.export.save`` archive (TorchScript's successor: gan-eval checks
that it runs no code of its own before ``torch.export.load`` reads it; its ``gan_eval.json`` states
z_dim). ``out/generator.pt`` is a ``torch.jit.save`` archive (gan-eval recognises it by its
content, whatever its name, and loads it with ``torch.jit.load``).
``out/generator.onnx`` has a dynamic batch axis and z_dim as its static second axis; evaluating it
and exporting it need ``pip install 'gan-eval[onnx]'`` (onnxruntime and onnx); without them,
``--no-onnx`` writes the torch.export and TorchScript archives only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generator import SmallGenerator, make_generator  # noqa: E402

from gan_eval.errors import GanEvalError  # noqa: E402
from gan_eval.generators.export import export_onnx, export_pt2, export_torchscript  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="Export the example generator.")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--no-onnx", action="store_true", help="No ONNX model.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = make_generator()
    z_dim = SmallGenerator.z_dim
    print(export_pt2(model, torch.zeros(2, z_dim), args.out / "generator.pt2", z_dim=z_dim))
    print(export_torchscript(model, z_dim, args.out / "generator.pt"))
    if not args.no_onnx:
        try:
            print(export_onnx(model, SmallGenerator.z_dim, args.out / "generator.onnx"))
        except GanEvalError as exc:
            sys.exit(f"export.py: {exc}")


if __name__ == "__main__":
    main()
