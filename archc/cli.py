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

from .commands import EXIT_INTERNAL, EXIT_SPEC, EXIT_USAGE, Exit, build, check, draw, fmt, parse_size, stats
from .errors import SpecError
from .lang import files
from .sema.allocation import fewer_collections


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
    lift.add_argument("--input-size", type=parse_size, default=None, metavar="SIZE",
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
            return check(args)
        if args.command == "stats":
            return stats(args)
        if args.command == "draw":
            return draw(args)
        if args.command == "fmt":
            return fmt(args)
        if args.command == "lift":
            from .lifting.command import run

            return run(args)
        return build(args)
    except Exit as exc:
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


def run() -> None:
    """The ``archc`` command (``python -m archc``): ``main``, then the process ends, skipping the cycle collector's
    last pass over every object the compiler made (it took longer than the compiler's own imports)."""
    status = main()
    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    run()
