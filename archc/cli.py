"""The ``archc`` command line: build, check, stats, draw.

Exit status: 0 success, 1 a spec has an error, 2 a usage error, 3 an
internal error (a bug in archc: please report it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .errors import SpecError, SpecErrors

EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's default exit status is 2 too; keep the text short
        self.print_usage(sys.stderr)
        print(f"archc: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="archc", description="Compile .arch network specs into PyTorch modules.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    build = sub.add_parser("build", help="check specs and write one Python module per spec")
    build.add_argument("specs", nargs="+", metavar="SPEC")
    build.add_argument("-o", "--output", default="generated", metavar="DIR",
                       help="directory for the generated modules (default: generated)")
    build.add_argument("--force", action="store_true", help="overwrite files archc did not generate")

    check = sub.add_parser("check", help="check specs without writing anything")
    check.add_argument("specs", nargs="+", metavar="SPEC")

    stats = sub.add_parser("stats", help="parameters and MACs per layer or block, counted statically; "
                                         "with several SPEC[:VARIANT]s, a side-by-side comparison")
    stats.add_argument("specs", nargs="+", metavar="SPEC[:VARIANT]")
    stats.add_argument("--variant", help="the variant (default: the spec's first)")
    stats.add_argument("--depth", type=int, default=None, metavar="N",
                       help="one row per block at depth N (1: the network's own children)")
    stats.add_argument("--json", action="store_true", help="machine-readable output")

    draw = sub.add_parser("draw", help="draw a network, or one of its blocks, with Graphviz: every block a box, "
                                       "every edge its tensor shape")
    draw.add_argument("spec", metavar="SPEC")
    draw.add_argument("--variant", help="the variant (default: the spec's first; with --block, the first that "
                                        "uses the block)")
    draw.add_argument("-o", "--output", metavar="FILE",
                      help="the picture; its extension sets the format: .svg, .png, .pdf (needs Graphviz's dot) "
                           "or .dot (the Graphviz source) (default: SPEC_STEM[_VARIANT][_BLOCK].svg)")
    draw.add_argument("--depth", type=int, default=None, metavar="N",
                      help="draw each block instance N blocks deep as one node (1: the network's own blocks)")
    draw.add_argument("--block", metavar="NAME", help="draw the first instance of block NAME on its own (or the "
                                                     "block instance or named seq at module path NAME: layer2.0)")
    draw.add_argument("--no-fold", action="store_true",
                      help="draw every block instance, without folding runs of alike ones into one marked xN")
    return parser


def main(argv: list[str] | None = None) -> int:
    from .spec import fewer_collections

    args = _parser().parse_args(argv)
    with fewer_collections():
        return _main(args)


def _main(args) -> int:
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "stats":
            return _stats(args)
        if args.command == "draw":
            return _draw(args)
        return _build(args)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_SPEC
    except RecursionError:
        print("archc: error: the spec is nested too deeply", file=sys.stderr)
        return EXIT_SPEC
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into head and the like
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug in archc, not in the spec
        print(f"archc: internal error ({type(exc).__name__}: {exc}); please report it with the spec that "
              "caused it", file=sys.stderr)
        return EXIT_INTERNAL


def _load_all(paths: list[str]):
    from .spec import load

    specs, errors = [], []
    for path in paths:
        try:
            specs.append(load(path))
        except SpecError as exc:
            errors.append(exc)
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return specs


def _check(args) -> int:
    for spec in _load_all(args.specs):
        print(f"{spec.path}: ok ({', '.join(spec.variants) or 'no variants'})")
    return 0


def _stats(args) -> int:
    from . import stats
    from .spec import load

    if args.depth is not None and args.depth < 1:
        print("archc: error: --depth must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    graphs = []
    for item in args.specs:
        path, _, variant = item.partition(":") if not Path(item).exists() else (item, "", "")
        spec = load(path)
        graphs.append((f"{Path(path).stem}:{variant or args.variant or next(iter(spec.variants), '')}",
                       spec.graph(variant or args.variant)))
    if len(graphs) > 1:
        print(stats.compare(graphs, args.depth or 1))
    elif args.json:
        print(stats.as_json(graphs[0][1], args.depth))
    else:
        print(stats.table(graphs[0][1], args.depth))
    return 0


def _draw(args) -> int:
    from . import draw
    from .spec import load

    if args.depth is not None and args.depth < 1:
        print("archc: error: --depth must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        fmt = draw.format_of(args.output) if args.output else "svg"
        spec = load(args.spec)
        data = draw.draw(spec, args.variant, fmt, args.depth, not args.no_fold, args.block)
    except draw.DrawError as exc:
        print(f"archc: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    target = Path(args.output or "_".join([Path(args.spec).stem, *filter(None, [args.variant, args.block])]) + ".svg")
    try:
        target.write_bytes(data)
    except OSError as exc:
        print(f"archc: error: cannot write '{target}': {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {target}")
    return 0


def _build(args) -> int:
    from .codegen import MARKER

    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        print(f"archc: error: '{out_dir}' is not a directory", file=sys.stderr)
        return EXIT_USAGE
    specs = _load_all(args.specs)
    sources = {out_dir / f"{spec.path.stem}.py": spec.source() for spec in specs}
    for target in sources:
        if target.exists() and not args.force and MARKER not in target.read_text(errors="replace")[:2000]:
            print(f"archc: error: '{target}' was not generated by archc; use --force to overwrite it",
                  file=sys.stderr)
            return EXIT_USAGE
    out_dir.mkdir(parents=True, exist_ok=True)
    for target, text in sources.items():
        _write_atomic(target, text)
        print(f"wrote {target}")
    return 0


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


if __name__ == "__main__":
    sys.exit(main())
