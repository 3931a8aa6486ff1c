"""The ``lightflow`` command: ``demo``, ``run``, ``schedulers``.

    $ lightflow demo -o demo-out            # offline: a grid of digits and a GIF of previews
    $ lightflow run flow.json -o out.png    # a flow saved with node.to_json()
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

log = logging.getLogger("lightflow.cli")


def _cmd_run(args: argparse.Namespace) -> int:
    import lightflow as lf
    from lightflow.widgets.progress import TqdmProgress

    path = Path(args.flow)
    if not path.is_file():
        raise lf.ModelNotFoundError(f"no such file: {path}", where="lightflow run")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise lf.FlowFormatError(f"{path.name} is not valid JSON ({exc})",
                                 where="lightflow run") from exc
    if isinstance(data, dict) and "lightflow" not in data:
        from lightflow.interop.comfy import from_comfy

        flows = from_comfy(data, models=args.models, inputs=args.inputs or path.parent)
        nodes = flows if isinstance(flows, list) else [flows]
    else:
        nodes = [lf.from_json(data)]
    out = Path(args.output)
    started = time.perf_counter()
    written = []
    for i, node in enumerate(nodes):
        run = node.run(mode=args.mode, on_event=TqdmProgress(disable=args.quiet))
        images = lf.recipe.run_to_images(run)
        for j, image in enumerate(images):
            if out.suffix.lower() == ".png" and len(nodes) == 1:
                target = out if j == 0 else out.with_name(f"{out.stem}-{j}.png")
            else:
                target = out / f"image-{i:02d}-{j:02d}.png"
            written.append(lf.save_image(image, target))
    for p in written:
        print(p)
    print(f"{len(written)} image(s) in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from lightflow.demo import run_demo

    run_demo(Path(args.output), prompts=args.prompt or None, seed=args.seed, steps=args.steps,
             quiet=args.quiet)
    return 0


def _cmd_schedulers(args: argparse.Namespace) -> int:
    from lightflow.nodes.schedulers import scheduler_table

    for name, cls, desc in scheduler_table():
        print(f"{name:22} {cls:70} {desc}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightflow",
                                     description="Lazy, cached diffusion workflows.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate digits with the embedded model (offline)")
    demo.add_argument("-o", "--output", default="lightflow-demo", help="output folder")
    demo.add_argument("-p", "--prompt", action="append",
                      help='a prompt such as "a red seven" (repeatable)')
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--steps", type=int, default=20)
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser("run", help="run a flow JSON (node.to_json()) or a ComfyUI API "
                                     "workflow")
    run.add_argument("flow", help="flow.json or workflow_api.json")
    run.add_argument("-o", "--output", default="out.png", help="a .png file or a folder")
    run.add_argument("--models", default=None,
                     help="ComfyUI-style models folder (checkpoints/, loras/, vae/, ...)")
    run.add_argument("--inputs", default=None,
                     help="folder of LoadImage files (default: the workflow's folder)")
    run.add_argument("--mode", choices=("final", "draft"), default="final")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    sched = sub.add_parser("schedulers", help="list scheduler names")
    sched.set_defaults(func=_cmd_schedulers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args: Any = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from lightflow.errors import LightflowError

    try:
        return int(args.func(args))
    except LightflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
