"""The ``archc`` command line: build, check, stats, draw, fmt, lsp.

Exit status and messages, the same for every command:

0   success.
1   a mistake in a spec, in GCC's form: ``FILE:LINE:COL: error: MESSAGE``, the line with a caret
    under the mistake, ``note:`` lines, a ``hint:``. This includes a file that a ``use`` names
    and that cannot be read (located at the ``use``). The rare mistake that no one line holds
    (a spec nested too deeply to compile) is ``FILE: error: MESSAGE``.
2   a usage error, ``archc: error: MESSAGE`` (and a ``hint:``): a bad flag or value (``--depth 0``,
    an unknown ``--variant`` or ``--block``, ``stats`` or ``draw`` of a spec without networks); a
    spec named on the command line that cannot be read (missing, a directory, a pipe or device,
    larger than ``files.MAX_SPEC_BYTES``); an output that cannot or may not be written (an
    unwritable directory, a directory, pipe or device in its place, a file or link archc did not
    write without ``--force``, two specs that would write one file).
3   an internal error, ``archc: internal error (...)``: a bug in archc; please report it. ``fmt``
    whose result would parse to another program says ``FILE: error: formatting would change the
    program (please report it)`` and leaves the file as it is.

``fmt --check`` exits 1 where a file would change (and prints the diff).
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from .errors import SpecError, SpecErrors
from .lang import files
from .sema.allocation import fewer_collections

EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3


class _Exit(Exception):
    """Stop with exit status ``code`` once ``text`` is printed on stderr."""

    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code, self.text = code, text


def _usage(message: str, hint: str | None = None) -> _Exit:
    return _Exit(EXIT_USAGE, f"archc: error: {message}" + (f"\nhint: {hint}" if hint else ""))


class _InFile(SpecError):
    """A mistake in spec ``path`` that no one line holds: printed ``FILE: error: MESSAGE``."""

    def __init__(self, error: SpecError, path: str):
        super().__init__(error.message, None, error.hint, error.notes)
        self.path = path

    def render(self) -> str:
        return f"{self.path}: {super().render()}"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's default exit status is 2 too; keep the text short
        self.print_usage(sys.stderr)
        print(f"archc: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="archc", description="Compile .arch network specs into PyTorch modules.",
                     epilog="exit status: 0 success, 1 an error in a spec (FILE:LINE:COL: error: ...), 2 a usage "
                            "or file error (archc: error: ...), 3 an internal error (a bug: please report it)")
    parser.add_argument("--version", action="version", version=f"archc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    build = sub.add_parser("build", help="check specs and write one Python module per spec")
    build.add_argument("specs", nargs="+", metavar="SPEC")
    build.add_argument("-o", "--output", default="generated", metavar="DIR",
                       help="directory for the generated modules (default: generated)")
    build.add_argument("--force", action="store_true", help="overwrite files archc did not generate")
    build.add_argument("--deploy", action="store_true",
                       help="write each spec's inference form as <stem>_deploy.py (batch norms folded, dropout left "
                            "out): archc.deploy(model) fills it from a trained model")

    check = sub.add_parser("check", help="check specs without writing anything")
    check.add_argument("specs", nargs="+", metavar="SPEC")

    stats = sub.add_parser("stats", help="parameters, MACs and memory per layer or block, counted statically; "
                                         "with several SPEC[:VARIANT]s, a side-by-side comparison")
    stats.add_argument("specs", nargs="+", metavar="SPEC[:VARIANT]")
    stats.add_argument("--variant", help="the variant (default: the spec's first)")
    stats.add_argument("--depth", type=int, default=None, metavar="N",
                       help="one row per block at depth N (1: the network's own children)")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.add_argument("--input-size", default=None, metavar="SIZE",
                       help="the input's size instead of the network's: 224 (a square), 299x299, or every size "
                            "(3x224x224)")
    stats.add_argument("--batch", type=int, default=1, metavar="B",
                       help="the batch: output shapes, MACs and activations for B inputs (default: 1)")
    stats.add_argument("--dtype", choices=("float32", "float16", "bfloat16", "float64"), default="float32",
                       help="the parameters' and activations' dtype, for their memory (default: float32)")
    stats.add_argument("--tree", action="store_true",
                       help="every block and named seq as a row of its totals, the rows inside it indented under it")

    draw = sub.add_parser("draw", help="draw a network, or one of its blocks, with Graphviz: every block a box, "
                                       "every edge its tensor shape")
    draw.add_argument("spec", metavar="SPEC")
    draw.add_argument("--variant", help="the variant (default: the spec's first; with --block, the first that "
                                        "uses the block)")
    draw.add_argument("-o", "--output", metavar="FILE",
                      help="the picture; its extension sets the format: .svg, .png, .pdf (needs Graphviz's dot) "
                           ", .dot (the Graphviz source) or .html (an interactive page: blocks open on click, "
                           "search by name) (default: SPEC_STEM[_VARIANT][_BLOCK].svg)")
    draw.add_argument("--depth", type=int, default=None, metavar="N",
                      help="draw each block instance N blocks deep as one node (1: the network's own blocks; default: "
                           "the deepest level whose picture is at most a few thousand pixels)")
    draw.add_argument("--block", metavar="NAME", help="draw block NAME on its own, in the configuration most of its "
                                                     "instances share (or the block instance or named seq at module "
                                                     "path NAME: layer2.0)")
    draw.add_argument("--no-fold", action="store_true",
                      help="draw every block instance, without folding runs of alike ones into one marked xN")
    draw.add_argument("--layout", choices=("tb", "lr"), default="tb",
                      help="lay the picture out top to bottom (tb, the default) or left to right (lr: for wide slides)")
    draw.add_argument("--force", action="store_true", help="overwrite a file archc did not generate")

    fmt = sub.add_parser("fmt", help="format specs in the canonical style, in place")
    fmt.add_argument("specs", nargs="+", metavar="SPEC")
    fmt.add_argument("--check", action="store_true",
                     help="write nothing; print the diff and exit 1 if any file would change")
    fmt.add_argument("--diff", action="store_true", help="write nothing; print the diff of each file that would change")

    lift = sub.add_parser("lift", help="lift a PyTorch model into a spec that compiles back to it (its weights load "
                                       "strictly, its outputs are identical): needs torch")
    lift.add_argument("target", metavar="TARGET", help="package.module:callable, torchvision:NAME or timm:NAME")
    lift.add_argument("-o", "--output", metavar="FILE", help="the spec to write (default: print it)")
    lift.add_argument("--kwargs", metavar="JSON", help="keyword arguments for the model's constructor, as JSON")
    lift.add_argument("--input-size", type=_size, default=None, metavar="SIZE",
                      help="the example input's size: 224, 299x299 or 3x224x224 (default: the registry's, or 224)")
    lift.add_argument("--name", help="the variant's name (default: the model's)")

    sub.add_parser("lsp", help="a language server for editors (diagnostics, shapes on hover, go to definition, "
                               "completion, rename, formatting), over stdin and stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "lsp":  # runs until the editor closes it; each check collects less on its own
        from .lsp.server import main as serve

        return serve()
    with fewer_collections():  # the commands import the compiler's modules as they need them: in here
        return _main(args)


def _main(args) -> int:
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "stats":
            return _stats(args)
        if args.command == "draw":
            return _draw(args)
        if args.command == "fmt":
            return _fmt(args)
        if args.command == "lift":
            from .lifting.command import run

            return run(args)
        return _build(args)
    except _Exit as exc:
        print(exc.text, file=sys.stderr)
        return exc.code
    except files.FileProblem as exc:  # an output that cannot or may not be written
        print(f"archc: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_SPEC
    except RecursionError:
        print("error: the spec is nested too deeply to compile", file=sys.stderr)
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


def _load(path: str):
    """The spec at ``path``, named on the command line: if it cannot be read, that is a usage error."""
    from .lang.loader import SpecFileError
    from .spec import load

    try:
        return load(path)
    except SpecFileError as exc:
        if exc.span is None:  # the file itself, not one that it uses
            raise _usage(exc.message, files.did_you_mean_spec(path)) from None
        raise
    except SpecError as exc:
        if exc.span is None and len(exc.errors) == 1:
            raise _InFile(exc, path) from None
        raise


def _load_all(paths: list[str]):
    """Every spec, or every error: usage errors (exit 2) with any spec errors after them."""
    specs, errors, unreadable = [], [], []
    for path in paths:
        try:
            specs.append(_load(path))
        except _Exit as exc:
            unreadable.append(exc.text)
        except SpecError as exc:
            errors.append(exc)
    if unreadable:
        raise _Exit(EXIT_USAGE, "\n".join([*unreadable, *(e.render() for e in errors)]))
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return specs


def _variant(spec, variant: str | None) -> str:
    """The variant named on the command line, else the spec's first; naming one it lacks is a usage error."""
    try:
        variant = variant or spec.default_variant()
        if variant not in spec.variants:
            spec.values(variant)  # raises, with a hint
    except SpecError as exc:
        raise _usage(exc.message, exc.hint) from None
    return variant


def _check_depth(depth: int | None) -> None:
    if depth is not None and depth < 1:
        raise _usage("--depth must be at least 1")


def _check(args) -> int:
    errors = []
    for spec in _load_all(args.specs):
        try:
            spec.source()  # ok means what build would write is written: the code generator's own checks too
        except SpecError as exc:
            errors.append(exc)
            continue
        print(f"{spec.path}: ok ({', '.join(spec.variants) or 'no variants'})")
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return 0


def _stats(args) -> int:
    from .backends import stats, stats_compare

    _check_depth(args.depth)
    if args.batch < 1:
        raise _usage(f"--batch must be at least 1, got {args.batch}")
    size = None
    if args.input_size is not None:
        try:
            size = _size(args.input_size)
        except argparse.ArgumentTypeError as exc:
            raise _usage(f"--input-size: {exc}", "write 224 (a square), 299x299 (H x W) or 3x224x224 (every "
                                                 "size)") from None
    loaded, graphs = {}, []
    for item in args.specs:
        path, _, variant = item.partition(":") if not Path(item).exists() else (item, "", "")
        if path not in loaded:
            loaded[path] = _load(path)
        variant = _variant(loaded[path], variant or args.variant)
        try:
            graphs.append((f"{Path(path).stem}:{variant}", loaded[path].graph(variant, input_size=size)))
        except SpecError as exc:
            if size is not None:
                raise _input_size_error(exc, loaded[path], variant, size) from None
            raise
    if len(graphs) > 1:
        compare = stats_compare.compare_json if args.json else stats_compare.compare
        print(compare(graphs, args.depth or 1, batch=args.batch, dtype=args.dtype))
    elif args.json:
        print(stats.as_json(graphs[0][1], args.depth, batch=args.batch, dtype=args.dtype, as_tree=args.tree))
    else:
        print(stats.table(graphs[0][1], args.depth, batch=args.batch, dtype=args.dtype, as_tree=args.tree))
    return 0


def _input_size_error(exc: SpecError, spec, variant: str, size: tuple[int, ...]) -> SpecError:
    """The first mistake an input of ``size`` makes, located, with the smallest square size the network takes
    (where a smaller one than the network's own was given, and fits) or its own as its hint."""
    first = exc.errors[0]
    first.add_note(f"with --input-size {'x'.join(map(str, size))}", None)
    own = spec.graph(variant).node(spec.graph(variant).input).shape
    if len(size) <= 2 and len(own) == 3 and min(size) < min(own[1:]):
        low, high = min(size), min(own[1:])  # high fits; find the least that does
        while high - low > 1:
            mid = (low + high) // 2
            try:
                spec.graph(variant, input_size=(mid,))
                high = mid
            except SpecError:
                low = mid
        if high < min(own[1:]):
            first.hint = f"the smallest square input {variant} takes is {high} (--input-size {high})"
            return first
    if len(size) <= 2 and len(own) == 3:  # larger, not square, or no smaller one fits (a network sized for its
        # input, as ViT and Swin V1 are): the size the spec checks the network at fits
        own_size = str(own[1]) if own[1] == own[2] else f"{own[1]}x{own[2]}"
        first.hint = f"{variant} takes its own input, {own[1]} x {own[2]} (--input-size {own_size})"
    return first


def _size(text: str) -> tuple[int, ...]:
    """``224``, ``299x299`` or ``3x224x224``."""
    try:
        size = tuple(int(part) for part in text.lower().replace(" ", "").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (write 224, 299x299 or 3x224x224)") from None
    if any(d <= 0 for d in size):
        raise argparse.ArgumentTypeError(f"sizes must be positive: {text!r}")
    return size


def _draw(args) -> int:
    from .backends.diagram import draw

    _check_depth(args.depth)
    try:
        fmt = draw.format_of(args.output) if args.output else "svg"
    except draw.DrawError as exc:
        raise _usage(str(exc)) from None
    target = Path(args.output or "_".join([Path(args.spec).stem, *filter(None, [args.variant, args.block])]) + ".svg")
    files.check_target(target, args.force)  # before the work of drawing; checked again when written
    spec = _load(args.spec)
    if args.variant is not None:
        _variant(spec, args.variant)
    try:
        data = draw.draw(spec, args.variant, fmt, args.depth, not args.no_fold, args.block, args.layout)
    except draw.DrawError as exc:
        raise _usage(str(exc)) from None
    except SpecError as exc:
        if exc.span is None and len(exc.errors) == 1:  # the spec is fine; what was asked of it is not
            raise _usage(exc.message, exc.hint) from None
        raise
    files.write_outputs({target: files.marked(data, fmt)}, args.force)
    print(f"wrote {target}")
    return 0


def _build(args) -> int:
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise _usage(f"'{out_dir}' is not a directory")
    writers: dict[Path, str] = {}
    suffix = "_deploy" if args.deploy else ""
    for path in args.specs:
        target = out_dir / f"{Path(path).stem}{suffix}.py"
        if target in writers:
            raise _usage(f"'{writers[target]}' and '{path}' would both write '{target}'",
                         hint="build them one at a time into different directories (-o DIR)")
        writers[target] = path
        files.check_target(target, args.force)  # before the work of compiling; checked again when written
    specs = _load_all(args.specs)
    if args.deploy:
        from .deployment.convert import deploy_spec

        specs = [deploy_spec(spec)[0] for spec in specs]
    sources = {out_dir / f"{spec.path.stem}{suffix}.py": spec.source().encode("utf-8") for spec in specs}
    files.make_dir(out_dir)
    files.write_outputs(sources, args.force)
    for target in sources:
        print(f"wrote {target}")
    return 0


def _fmt(args) -> int:
    import difflib
    import os

    from .lang.format import UnsafeFormat, format_source
    from .lang.loader import read_spec

    changed, errors, unsafe = [], [], False
    for name in args.specs:
        path = Path(name)
        if path.is_symlink():
            raise _usage(f"'{files.shown(path)}' is a symbolic link; archc fmt rewrites only regular files",
                         hint="format the file it points to")
        try:
            text = read_spec(path)
        except SpecError as exc:
            if exc.span is None:
                raise _usage(exc.message) from None
            errors.append(exc)
            continue
        try:
            formatted = format_source(text, name)
        except SpecError as exc:
            errors.append(exc)
            continue
        except UnsafeFormat as exc:
            print(f"{name}: error: formatting would change the program (please report it)\nnote: {exc}",
                  file=sys.stderr)
            unsafe = True
            continue
        if formatted == text:
            continue
        changed.append(name)
        if args.check or args.diff:
            diff = difflib.unified_diff(text.splitlines(), formatted.splitlines(), name, name, lineterm="")
            print("\n".join(diff))
        else:
            mode = os.stat(path).st_mode & 0o7777
            files.write_outputs({path: formatted.encode("utf-8")}, force=True)
            os.chmod(path, mode)  # a rewritten spec keeps its permissions
            print(f"formatted {name}")
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    if unsafe:
        return EXIT_INTERNAL
    if args.check and changed:
        print(f"{len(changed)} of {len(args.specs)} files would be formatted", file=sys.stderr)
        return EXIT_SPEC
    return 0


def run() -> None:
    """The ``archc`` command (``python -m archc``): ``main``, then the process ends, skipping the cycle collector's
    last pass over every object the compiler made (it took longer than the compiler's own imports)."""
    status = main()
    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    run()
