"""Export the example generator to TorchScript and ONNX (what a training job would publish).

Run from the repository root:

    python examples/external_generator/export.py     # writes examples/external_generator/out/

``out/generator.pt`` is a ``torch.jit.save`` archive (gan-eval recognises it by its content,
whatever its name, and loads it with ``torch.jit.load``; its ``gan_eval.json`` states z_dim).
``out/generator.onnx`` has a dynamic batch axis and z_dim as its static second axis; evaluating it
and exporting it need ``pip install 'gan-eval[onnx]'`` (onnxruntime and onnx); without them,
``--no-onnx`` writes the TorchScript archive only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generator import SmallGenerator, make_generator  # noqa: E402

from gan_eval.errors import GanEvalError  # noqa: E402
from gan_eval.generators.export import export_onnx, export_torchscript  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="Export the example generator.")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--no-onnx", action="store_true", help="Only the TorchScript archive.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = make_generator()
    print(export_torchscript(model, SmallGenerator.z_dim, args.out / "generator.pt"))
    if not args.no_onnx:
        try:
            print(export_onnx(model, SmallGenerator.z_dim, args.out / "generator.onnx"))
        except GanEvalError as exc:
            sys.exit(f"export.py: {exc}")


if __name__ == "__main__":
    main()
