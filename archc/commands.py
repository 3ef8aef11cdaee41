"""What each ``archc`` command does (check, stats, draw, build, fmt), given its parsed arguments; ``cli`` parses
them, runs one, and turns what it raises into a message and an exit status (see ``cli``'s docstring)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import SpecError, SpecErrors
from .lang import files

EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3


class Exit(Exception):
    """Stop with exit status ``code`` once ``text`` is printed on stderr."""

    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code, self.text = code, text


def usage(message: str, hint: str | None = None) -> Exit:
    return Exit(EXIT_USAGE, f"archc: error: {message}" + (f"\nhint: {hint}" if hint else ""))


class InFile(SpecError):
    """A mistake in spec ``path`` that no one line holds: printed ``FILE: error: MESSAGE``."""

    def __init__(self, error: SpecError, path: str):
        super().__init__(error.message, None, error.hint, error.notes)
        self.path = path

    def render(self) -> str:
        return f"{self.path}: {super().render()}"


def load_spec(path: str):
    """The spec at ``path``, named on the command line: if it cannot be read, that is a usage error."""
    from .lang.loader import SpecFileError
    from .spec import load

    try:
        return load(path)
    except SpecFileError as exc:
        if exc.span is None:  # the file itself, not one that it uses
            raise usage(exc.message, files.did_you_mean_spec(path)) from None
        raise
    except SpecError as exc:
        if exc.span is None and len(exc.errors) == 1:
            raise InFile(exc, path) from None
        raise


def load_all(paths: list[str]):
    """Every spec, or every error: usage errors (exit 2) with any spec errors after them."""
    specs, errors, unreadable = [], [], []
    for path in paths:
        try:
            specs.append(load_spec(path))
        except Exit as exc:
            unreadable.append(exc.text)
        except SpecError as exc:
            errors.append(exc)
    if unreadable:
        raise Exit(EXIT_USAGE, "\n".join([*unreadable, *(e.render() for e in errors)]))
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return specs


def variant_of(spec, variant: str | None) -> str:
    """The variant named on the command line, else the spec's first; naming one it lacks is a usage error."""
    try:
        variant = variant or spec.default_variant()
        if variant not in spec.variants:
            spec.values(variant)  # raises, with a hint
    except SpecError as exc:
        raise usage(exc.message, exc.hint) from None
    return variant


def check_depth(depth: int | None) -> None:
    if depth is not None and depth < 1:
        raise usage("--depth must be at least 1")


def check(args) -> int:
    errors = []
    for spec in load_all(args.specs):
        try:
            spec.source()  # ok means what build would write is written: the code generator's own checks too
        except SpecError as exc:
            errors.append(exc)
            continue
        print(f"{spec.path}: ok ({', '.join(spec.variants) or 'no variants'})")
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return 0


def stats(args) -> int:
    from .backends import stats, stats_compare

    check_depth(args.depth)
    if args.batch < 1:
        raise usage(f"--batch must be at least 1, got {args.batch}")
    size = None
    if args.input_size is not None:
        try:
            size = parse_size(args.input_size)
        except argparse.ArgumentTypeError as exc:
            raise usage(f"--input-size: {exc}", "write 224 (a square), 299x299 (H x W) or 3x224x224 (every "
                                                 "size)") from None
    loaded, graphs = {}, []
    for item in args.specs:
        path, _, variant = item.partition(":") if not Path(item).exists() else (item, "", "")
        if path not in loaded:
            loaded[path] = load_spec(path)
        variant = variant_of(loaded[path], variant or args.variant)
        try:
            graphs.append((f"{Path(path).stem}:{variant}", loaded[path].graph(variant, input_size=size)))
        except SpecError as exc:
            if size is not None:
                raise input_size_error(exc, loaded[path], variant, size) from None
            raise
    if len(graphs) > 1:
        compare = stats_compare.compare_json if args.json else stats_compare.compare
        print(compare(graphs, args.depth or 1, batch=args.batch, dtype=args.dtype))
    elif args.json:
        print(stats.as_json(graphs[0][1], args.depth, batch=args.batch, dtype=args.dtype, as_tree=args.tree))
    else:
        print(stats.table(graphs[0][1], args.depth, batch=args.batch, dtype=args.dtype, as_tree=args.tree))
    return 0


def input_size_error(exc: SpecError, spec, variant: str, size: tuple[int, ...]) -> SpecError:
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


def parse_size(text: str) -> tuple[int, ...]:
    """``224``, ``299x299`` or ``3x224x224``."""
    try:
        size = tuple(int(part) for part in text.lower().replace(" ", "").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (write 224, 299x299 or 3x224x224)") from None
    if any(d <= 0 for d in size):
        raise argparse.ArgumentTypeError(f"sizes must be positive: {text!r}")
    return size


def draw(args) -> int:
    from .backends.diagram import draw

    check_depth(args.depth)
    try:
        fmt = draw.format_of(args.output) if args.output else "svg"
    except draw.DrawError as exc:
        raise usage(str(exc)) from None
    target = Path(args.output or "_".join([Path(args.spec).stem, *filter(None, [args.variant, args.block])]) + ".svg")
    files.check_target(target, args.force)  # before the work of drawing; checked again when written
    spec = load_spec(args.spec)
    if args.variant is not None:
        variant_of(spec, args.variant)
    try:
        data = draw.draw(spec, args.variant, fmt, args.depth, not args.no_fold, args.block, args.layout)
    except draw.DrawError as exc:
        raise usage(str(exc)) from None
    except SpecError as exc:
        if exc.span is None and len(exc.errors) == 1:  # the spec is fine; what was asked of it is not
            raise usage(exc.message, exc.hint) from None
        raise
    files.write_outputs({target: files.marked(data, fmt)}, args.force)
    print(f"wrote {target}")
    return 0


def build(args) -> int:
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise usage(f"'{out_dir}' is not a directory")
    writers: dict[Path, str] = {}
    suffix = "_deploy" if args.deploy else ""
    for path in args.specs:
        target = out_dir / f"{Path(path).stem}{suffix}.py"
        if target in writers:
            raise usage(f"'{writers[target]}' and '{path}' would both write '{target}'",
                         hint="build them one at a time into different directories (-o DIR)")
        writers[target] = path
        files.check_target(target, args.force)  # before the work of compiling; checked again when written
    specs = load_all(args.specs)
    if args.deploy:
        from .deployment.convert import deploy_spec

        specs = [deploy_spec(spec)[0] for spec in specs]
    sources = {out_dir / f"{spec.path.stem}{suffix}.py": spec.source().encode("utf-8") for spec in specs}
    files.make_dir(out_dir)
    files.write_outputs(sources, args.force)
    for target in sources:
        print(f"wrote {target}")
    return 0


def fmt(args) -> int:
    import difflib
    import os

    from .lang.format import UnsafeFormat, format_source
    from .lang.loader import read_spec

    changed, errors, unsafe = [], [], False
    for name in args.specs:
        path = Path(name)
        if path.is_symlink():
            raise usage(f"'{files.shown(path)}' is a symbolic link; archc fmt rewrites only regular files",
                         hint="format the file it points to")
        try:
            text = read_spec(path)
        except SpecError as exc:
            if exc.span is None:
                raise usage(exc.message) from None
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
