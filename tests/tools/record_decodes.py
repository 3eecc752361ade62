"""Record every step of a fixed set of decodes, to show a refactor of the decoder changes nothing.

    python tests/tools/record_decodes.py record OUT.json [--fixed-shapes]
    python tests/tools/record_decodes.py compare BEFORE.json AFTER.json

`record` runs the built-in model on CPU over 10 HumanEval-Infilling tasks
(6 single-line, 4 multi-line) with every schedule: threshold with and
without the context cache, exact length, one per step, a fixed count, a
short budget; plus a batch of three requests, a repair and block scoring.
Each record holds, per step, every candidate's span length, token ids, score
(4 decimals) and nulls. Run it on two commits and `compare` the files: it
counts records identical at every step and decodes ending in the same tokens.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from diffusion.engine import Engine, InfillAsk
from diffusion.evaluation.tasks import load_humaneval, spread
from diffusion.schedule import FixedCount, Threshold, one_per_step


def steps(snapshots) -> list:
    return [
        [(c.span_length, list(c.ids), round(c.score, 4), c.nulls) for c in s.candidates] for s in snapshots
    ]


def record(fixed_shapes: bool) -> list:
    torch.manual_seed(0)
    engine = Engine.load(None, "cpu").with_settings(fixed_shapes=fixed_shapes)
    tasks = spread(load_humaneval("single-line"), 6) + spread(load_humaneval("multi-line"), 4)
    out = []
    for t in tasks:
        for variant in (engine, engine.with_settings(cache_refresh=0)):
            out.append(steps(variant.infill(t.prefix, t.suffix, [8, 16, 24])))
            out.append(steps(variant.infill(t.prefix, t.suffix, [48])))
            out.append(steps(variant.infill(t.prefix, t.suffix, [12], exact_length=True)))
        for schedule in (one_per_step(), FixedCount(3), Threshold(0.5, 6)):
            out.append(steps(engine.infill(t.prefix, t.suffix, [16], schedule)))
    asks = [InfillAsk(t.prefix, t.suffix, (8, 16)) for t in tasks[:3]]
    out.append([[steps([s])[0] for s in step] for step in engine.infill_many(asks)])
    t = tasks[0]
    n = engine.count_tokens(t.middle)
    out.append(steps(engine.repair(t.prefix, t.middle, t.suffix, [i % 2 == 0 for i in range(n)])))
    out.append([[[round(x, 4) for x in engine.score_block(t.prefix, t.middle, t.suffix)]]])
    return out


def final_tokens(decode: list) -> list:
    last = decode[-1]
    if not isinstance(last, list):  # block scores: one number per token
        return decode
    return [candidate[1] if isinstance(candidate, list) else candidate for candidate in last]


def compare(before: list, after: list) -> str:
    same = sum(a == b for a, b in zip(before, after, strict=True))
    ends = sum(final_tokens(a) == final_tokens(b) for a, b in zip(before, after, strict=True))
    return f"{same} of {len(before)} decodes identical at every step; {ends} end in the same tokens"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record")
    rec.add_argument("out")
    rec.add_argument("--fixed-shapes", action="store_true", help="pad every canvas to the full window")
    cmp = commands.add_parser("compare")
    cmp.add_argument("before")
    cmp.add_argument("after")
    args = parser.parse_args(argv)
    if args.command == "record":
        with open(args.out, "w", encoding="utf-8") as file:
            json.dump(record(args.fixed_shapes), file)
        return 0
    with open(args.before, encoding="utf-8") as b, open(args.after, encoding="utf-8") as a:
        print(compare(json.load(b), json.load(a)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
