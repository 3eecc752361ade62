"""The `unmask` command line: parse arguments, then hand over to one module per command.

Heavy imports (torch, tree-sitter, pygls) happen inside each command so that
`unmask --help` and the server's first answer are quick.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable
from pathlib import Path

from lsp_server import __version__

# Argument types: a nonsense value is refused by argparse with its usage line, before any
# model loads, rather than running into a traceback or a meaningless result.


def _bounded_int(low: int, high: int | None = None, what: str = "") -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"{value} is out of range: {what or 'it'} must be {bound}")
        return value

    return parse


positive_int = _bounded_int(1)
non_negative_int = _bounded_int(0)
port = _bounded_int(0, 65535, "a port")
seed = _bounded_int(0, 2**63 - 1, "a seed")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def unit_interval(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} must be from 0 to 1")
    return value


def positive_ints(text: str) -> str:
    """A comma-separated list of positive integers, checked here and kept as text (the
    commands split it themselves)."""
    parts = text.split(",")
    if not text.strip() or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of positive integers")
    return text


def host(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty host would listen on every interface; name one")
    return text


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="model folder (Hugging Face format) or a hub id already in the local cache; default: built-in",
    )
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: auto)")
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default=None,
        help="compute dtype (default: bfloat16 on a GPU, float32 on CPU)",
    )


def add_cache_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-refresh",
        type=non_negative_int,
        default=None,
        help="steps between full passes of the cached decoder; 0: no cache (default: the engine's)",
    )
    parser.add_argument(
        "--cache-margin",
        type=non_negative_int,
        default=None,
        help="context tokens each side of the block recomputed at every cached step (default: the engine's)",
    )
    parser.add_argument(
        "--no-cuda-graphs", action="store_true", help="eager block steps on CUDA (for comparison)"
    )
    parser.add_argument(
        "--null-run-floor",
        type=unit_interval,
        default=None,
        help="probability of null that lets a started null tail take a position at once; "
        "0: off, one position at the threshold at a time (default: the engine's, 0.7)",
    )
    parser.add_argument(
        "--fused-confidence",
        choices=("auto", "on", "off"),
        default="auto",
        help="score steps with the fused CUDA kernel: auto uses it where it agrees with torch and "
        "wins a race on this device (default: auto)",
    )


def add_eval_parser(commands) -> list[argparse.ArgumentParser]:
    evaluate = commands.add_parser("eval", help="score a model on infill tasks")
    benchmarks = evaluate.add_subparsers(dest="benchmark", required=True)
    humaneval = benchmarks.add_parser(
        "humaneval-infilling", help="pass@1 on HumanEval-Infilling, tests executed"
    )
    humaneval.add_argument(
        "--subset",
        choices=("single-line", "multi-line"),
        default="single-line",
        help="which HumanEval-Infilling set (default: single-line)",
    )
    humaneval.add_argument(
        "--limit", type=positive_int, default=None, help="N tasks spread evenly over the set"
    )
    humaneval.add_argument(
        "--length",
        choices=("oracle", "fixed", "auto"),
        default="auto",
        help="span length: the true middle's (oracle), --k (fixed), or the server's own handling (auto, the default)",
    )
    humaneval.add_argument(
        "--k",
        type=positive_int,
        default=None,
        help="span tokens: the length for --length fixed, the budget for auto "
        "(default: the server's, 24 single-line, 64 multi-line; unused by oracle)",
    )
    humaneval.add_argument(
        "--tau",
        type=unit_interval,
        default=None,
        help="confidence a position needs to commit (default: the engine's)",
    )
    humaneval.add_argument(
        "--timeout", type=positive_float, default=10.0, help="seconds per program (default: 10)"
    )
    humaneval.add_argument(
        "--memory-mb",
        type=_bounded_int(128, what="the limit (a Python interpreter needs about 100 MB to start)"),
        default=1024,
        help="address-space limit per program, at least 128 (default: 1024)",
    )
    humaneval.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="programs tested at once while the model completes the next (default: 1)",
    )
    humaneval.add_argument("--output", type=Path, default=None, help="write one JSON line per task here")
    humaneval.add_argument(
        "--resume",
        action="store_true",
        help="keep the tasks already in --output (an interrupted run) and score only the rest",
    )
    humaneval.add_argument("--json", action="store_true", help="print the summary as JSON")
    jsonl = benchmarks.add_parser("jsonl", help="exact match, parse rate, edit similarity on a jsonl file")
    jsonl.add_argument("file", type=Path, help="lines {task_id, prefix, suffix, middle}")
    jsonl.add_argument(
        "--k", type=positive_int, default=None, help="span budget in tokens (default: multi-line budget)"
    )
    jsonl.add_argument("--json", action="store_true")
    for parser_ in (humaneval, jsonl):
        parser_.add_argument("--no-cache", action="store_true", help="recompute the whole canvas every step")
        add_cache_options(parser_)
    return [humaneval, jsonl]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unmask", description="Diffusion-native code infill and block rewrites for editors."
    )
    parser.add_argument("--version", action="version", version=f"unmask {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    transport = serve.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="serve one editor over stdio (default)")
    transport.add_argument("--tcp", type=port, metavar="PORT", help="serve many connections over TCP")
    transport.add_argument("--ws", type=port, metavar="PORT", help="serve many connections over websockets")
    serve.add_argument(
        "--host", type=host, default=None, help="address --tcp or --ws binds (default 127.0.0.1)"
    )
    serve.add_argument("--log-file", type=Path, default=None, help="write the server log here")
    serve.add_argument(
        "--batch",
        type=positive_int,
        default=None,
        metavar="N",
        help="infill requests of any documents and connections denoised together, one forward "
        "pass per step for all: at most N (default: 8 on a GPU, 1 on a CPU, where a batch makes "
        "each request wait for the longest)",
    )
    serve.add_argument(
        "--check",
        action="store_true",
        help="check these arguments, the model folder and the device, then exit without serving "
        "(what an editor's health check runs)",
    )
    add_model_options(serve)
    add_cache_options(serve)

    preview = commands.add_parser("preview", help="show a block denoising in the terminal, then its diff")
    preview.add_argument("target", help="FILE:LINE[:COL], 1-based line and column")
    preview.add_argument(
        "--mode",
        choices=("infill", "rewrite", "suggest"),
        default="infill",
        help="infill at the cursor, rewrite the enclosing block, or suggest edits to it (default: infill)",
    )
    preview.add_argument("--apply", action="store_true", help="write the result into FILE (atomically)")
    preview.add_argument("--max-tokens", type=int, default=None, help="span budget in tokens")
    preview.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
    add_model_options(preview)

    infill = commands.add_parser("infill", help="scriptable infill: JSON lines on stdin and stdout")
    infill.add_argument("--jsonl", action="store_true", required=True, help="read and write JSON lines")
    infill.add_argument("--max-tokens", type=positive_int, default=None, help="default span budget in tokens")
    add_model_options(infill)

    bench = commands.add_parser(
        "bench", help="diffusion decoding against one token per step and autoregressive generate()"
    )
    bench.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    bench.add_argument(
        "--blocks",
        type=positive_ints,
        default="32,64",
        help="comma-separated block lengths in tokens (default: 32,64)",
    )
    bench.add_argument(
        "--repeats", type=positive_int, default=3, help="timed runs per row; medians (default: 3)"
    )
    bench.add_argument(
        "--context",
        type=positive_ints,
        default=None,
        help="comma-separated context sizes in tokens (3/4 prefix, 1/4 suffix); default: the model's window",
    )
    bench.add_argument(
        "--shape",
        choices=("builtin", "0.5b", "7b"),
        default="builtin",
        help="without --model: the built-in model, or a published shape with random weights",
    )
    bench.add_argument("--no-ar", action="store_true", help="skip the autoregressive generate() baseline")
    add_cache_options(bench)
    bench.add_argument(
        "--modes",
        default=None,
        help="comma-separated subset of threshold,threshold_nocache,one_per_step (default: all)",
    )
    add_model_options(bench)

    for parser_ in add_eval_parser(commands):
        add_model_options(parser_)

    doctor = commands.add_parser("doctor", help="report the device, free memory and the model's facts")
    doctor.add_argument("--json", action="store_true")
    add_model_options(doctor)

    train = commands.add_parser("train", help="train a small model with the project's recipe")
    train.add_argument("roots", nargs="*", type=Path, help="source trees (default: the standard library)")
    train.add_argument("--run-dir", type=Path, default=Path("runs/builtin"), help="checkpoints and logs")
    train.add_argument(
        "--output", type=Path, default=Path("runs/builtin/model"), help="model folder to write"
    )
    train.add_argument("--minutes", type=positive_float, default=60.0, help="time budget")
    train.add_argument("--steps", type=non_negative_int, default=20_000, help="step budget")
    train.add_argument("--batch-size", type=positive_int, default=24)
    train.add_argument("--learning-rate", type=positive_float, default=2e-3)
    train.add_argument("--seed", type=seed, default=0)
    train.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="processes building examples (use several on a GPU)",
    )
    train.add_argument(
        "--eval-every", type=positive_int, default=250, help="steps between held-out evaluations"
    )
    train.add_argument(
        "--tokenizer", type=Path, default=None, help="reuse this tokenizer.json (default: train one)"
    )
    train.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from this model folder's weights; its shape, canvas and tokenizer are kept",
    )
    shape = train.add_argument_group("model shape and canvas (defaults: the built-in model's)")
    shape.add_argument("--hidden-size", type=positive_int, default=None)
    shape.add_argument("--layers", type=positive_int, default=None)
    shape.add_argument("--intermediate-size", type=positive_int, default=None)
    shape.add_argument("--heads", type=positive_int, default=None)
    shape.add_argument("--kv-heads", type=positive_int, default=None)
    shape.add_argument(
        "--max-prefix", type=positive_int, default=None, help="prefix tokens per training canvas"
    )
    shape.add_argument(
        "--max-suffix", type=positive_int, default=None, help="suffix tokens per training canvas"
    )
    shape.add_argument("--max-span", type=positive_int, default=None, help="span tokens per training canvas")
    return parser


def train_settings(args: argparse.Namespace):
    """TrainSettings from `unmask train` arguments; unset shape flags keep the defaults."""
    from dataclasses import replace

    from diffusion.train.corpus import default_roots
    from diffusion.train.examples import CanvasLimits
    from diffusion.train.trainer import ModelShape, TrainSettings

    def given(**values):
        return {key: value for key, value in values.items() if value is not None}

    for root in args.roots or ():
        if not root.exists():
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", str(root))
    base_shape, base_limits, tokenizer = ModelShape(), CanvasLimits(), args.tokenizer
    if args.init_from is not None:
        base_shape, base_limits = shape_of(args.init_from)
        tokenizer = args.init_from / "tokenizer.json"
    shape = replace(
        base_shape,
        **given(
            hidden_size=args.hidden_size,
            num_hidden_layers=args.layers,
            intermediate_size=args.intermediate_size,
            num_attention_heads=args.heads,
            num_key_value_heads=args.kv_heads,
        ),
    )
    limits = replace(
        base_limits,
        **given(max_prefix=args.max_prefix, max_suffix=args.max_suffix, max_span=args.max_span),
    )
    return TrainSettings(
        roots=tuple(args.roots or default_roots()),
        run_dir=args.run_dir,
        output=args.output,
        shape=shape,
        limits=limits,
        max_minutes=args.minutes,
        max_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        workers=args.workers,
        eval_every=args.eval_every,
        tokenizer=tokenizer,
        init_from=args.init_from,
    )


def shape_of(folder: Path):
    """The ModelShape and CanvasLimits a model folder was trained with."""
    from dataclasses import fields

    from diffusion.checkpoint import read_config
    from diffusion.train.examples import CanvasLimits
    from diffusion.train.trainer import ModelShape

    config = read_config(folder)
    shape = ModelShape(**{f.name: getattr(config, f.name) for f in fields(ModelShape)})
    limits = CanvasLimits(
        **{
            name: value
            for name, value in (
                ("max_prefix", config.infill_max_prefix),
                ("max_suffix", config.infill_max_suffix),
                ("max_span", config.infill_max_span),
            )
            if value is not None
        }
    )
    return shape, limits


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        if args.host is not None and args.tcp is None and args.ws is None:
            parser.error("--host needs --tcp or --ws (over stdio the server listens on no address)")
        args.host = args.host or "127.0.0.1"
    name = f"unmask {args.command}"
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        message = user_error(error)
        if message is None:
            raise  # a bug: its traceback is what a report needs
        print(f"{name}: {message}", file=sys.stderr)
        return 2


def user_error(error: Exception) -> str | None:
    """The message for a failure the user can act on (a bad model folder, device, memory, file),
    or None for one that is a bug."""
    from diffusion.checkpoint import CheckpointError
    from diffusion.device import DeviceError
    from diffusion.families import UnknownArchitecture
    from diffusion.memory import InsufficientMemory
    from diffusion.train.trainer import TrainInputError

    if isinstance(
        error, CheckpointError | UnknownArchitecture | DeviceError | InsufficientMemory | TrainInputError
    ):
        return str(error)
    if isinstance(error, OSError):  # a file or a port: the OS's own words name it
        return f"{error.strerror or error}{f': {error.filename}' if error.filename else ''}"
    if isinstance(error, RuntimeError) and "fused confidence kernel" in str(error):
        return str(error)
    return None


def check_serve(args: argparse.Namespace) -> int:
    """`serve --check`: what `serve` would fail on before it serves, without loading weights."""
    from diffusion.checkpoint import read_raw_config, weight_files
    from diffusion.device import pick_device
    from diffusion.families import family_name
    from diffusion.hub import resolve_model

    folder = resolve_model(args.model)
    family = family_name(read_raw_config(folder))
    weight_files(folder)
    device, dtype = pick_device(args.device, args.dtype)
    if args.tcp is not None:
        where = f"tcp {args.host}:{args.tcp}"
    elif args.ws is not None:
        where = f"websockets {args.host}:{args.ws}"
    else:
        where = "stdio"
    dtype_name = str(dtype).removeprefix("torch.")
    print(f"unmask serve: would serve {folder} ({family}, {device}, {dtype_name}) over {where}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.command == "train":
        from diffusion.train.trainer import train

        print(f"model written to {train(train_settings(args))}")
        return 0
    if args.command == "serve" and args.check:
        return check_serve(args)
    if args.command == "serve":
        from lsp_server.transports import serve

        return serve(args)
    if args.command == "preview":
        from lsp_server.preview import run_preview

        return run_preview(args)
    if args.command == "infill":
        from diffusion.infill_jsonl import run_infill_jsonl

        return run_infill_jsonl(args)
    if args.command == "eval":
        from lsp_server.evaluate import run_eval

        return run_eval(args)
    if args.command == "doctor":
        from diffusion.doctor import run_doctor

        return run_doctor(args)
    if args.command == "bench":
        from diffusion.bench import run_bench

        return run_bench(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
