"""Time inline completions as an editor sees them: the real server over stdio, a real LSP client.

    python tests/tools/inline_latency.py [--requests N] [--seed S] [--model FOLDER] [--json]
        [-- SERVE_ARGS...]

Arguments after `--` go to `unmask serve` (decoding flags: `--null-run-floor 0`, ...).

Opens the benchmark's shipped source file (`diffusion/bench_input.py`, about
350 lines of Python), then, N times, cuts a line at a random column (as if the
user were typing it), asks for an inline completion there and puts the line
back. The model is loaded and warmed by one request first; the first request
after a load is not what an editor's user waits for. Prints the seconds from
request to first preview and to the final answer (median and 90th percentile),
by the kind of infill the server chose (single-line or multi-line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lsp_server.positions import units  # noqa: E402
from lsp_server.regions import pick_infill  # noqa: E402
from tests.lsp_harness import connect  # noqa: E402

SOURCE = ROOT / "diffusion" / "bench_input.py"
URI = "file:///bench/bench_input.py"


def cut_points(lines: list[str], count: int, seed: int) -> list[tuple[int, int]]:
    """(line, column) pairs inside code lines: after the indentation, before the line's end."""
    rng = random.Random(seed)
    code = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    points = []
    for line in rng.sample(code, min(count, len(code))):
        text = lines[line]
        indent = len(text) - len(text.lstrip())
        points.append((line, rng.randint(indent, len(text))))
    return points


def region_shape(text: str, offset: int) -> str:
    """The infill kind the server picks at `offset` (the same tree-sitter picker)."""
    region = pick_infill(text, offset, "python")
    return region.shape if region else "single-line"


async def timed_request(client, line: int, column: int, msg_id: str, kind: str) -> dict:
    began = time.perf_counter()
    future = client.inline_completion(URI, line, column, msg_id)
    first = None
    while not future.done():
        client.arrived.clear()
        waiter = asyncio.ensure_future(client.arrived.wait())
        await asyncio.wait([future, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if first is None and client.previews_for(msg_id):
            first = time.perf_counter() - began
    response = future.result()
    final = time.perf_counter() - began
    previews = client.previews_for(msg_id)
    return {
        "line": line,
        "column": column,
        "kind": kind,
        "seconds_to_first_preview": first if first is not None else final,
        "seconds_to_final": final,
        "steps": previews[-1]["step"] if previews else 0,
        "answer": response.items[0].insert_text if response.items else "",
    }


async def measure(
    requests: int, seed: int, model: str | None, serve_args: tuple[str, ...] = ()
) -> list[dict]:
    text = SOURCE.read_text()
    lines = text.split("\n")
    rows = []
    async with connect("stdio", model=model, extra=serve_args) as client:
        await client.initialize()
        client.open(URI, text)
        version = 1
        await asyncio.wait_for(client.inline_completion(URI, 0, 0, "warm-up"), 300)
        for n, (line, column) in enumerate(cut_points(lines, requests, seed)):
            original = lines[line]
            end = units(original, "utf-16")
            start = units(original[:column], "utf-16")
            version += 1
            client.change(URI, version, (line, start), (line, end), "")
            cut = "\n".join([*lines[:line], original[:column], *lines[line + 1 :]])
            offset = sum(len(text) + 1 for text in lines[:line]) + column
            kind = region_shape(cut, offset)
            rows.append(await asyncio.wait_for(timed_request(client, line, start, f"r{n}", kind), 300))
            version += 1
            client.change(URI, version, (line, start), (line, start), original[column:])
            row = rows[-1]
            print(
                f"{n + 1}/{requests} line {line + 1} {row['kind']}: {row['seconds_to_final']:.3f} s",
                file=sys.stderr,
            )
    return rows


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for kind in ("all", "single-line", "multi-line"):
        chosen = [r for r in rows if kind == "all" or r["kind"] == kind]
        if not chosen:
            continue
        finals = sorted(r["seconds_to_final"] for r in chosen)
        firsts = sorted(r["seconds_to_first_preview"] for r in chosen)
        out.append(
            {
                "kind": kind,
                "requests": len(chosen),
                "median_seconds_to_first_preview": round(statistics.median(firsts), 4),
                "median_seconds_to_final": round(statistics.median(finals), 4),
                "p90_seconds_to_final": round(finals[min(len(finals) - 1, int(0.9 * len(finals)))], 4),
                "mean_steps": round(statistics.mean(r["steps"] for r in chosen), 2),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("serve_args", nargs="*", help="after --: arguments for unmask serve")
    args = parser.parse_args()
    rows = asyncio.run(measure(args.requests, args.seed, args.model, tuple(args.serve_args)))
    table = summary(rows)
    if args.json:
        print(json.dumps({"rows": rows, "summary": table}, indent=1))
        return
    print(f"{SOURCE.name}: {len(SOURCE.read_text().splitlines())} lines")
    for row in table:
        print(
            f"{row['kind']:>12}: {row['requests']:3d} requests, first preview {row['median_seconds_to_first_preview']:.3f} s, "
            f"final {row['median_seconds_to_final']:.3f} s median, {row['p90_seconds_to_final']:.3f} s p90, "
            f"{row['mean_steps']:.1f} steps"
        )


if __name__ == "__main__":
    main()
