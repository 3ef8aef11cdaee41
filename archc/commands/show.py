"""``archc stats`` and ``archc draw``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SpecError
from ..lang import files
from .common import check_depth, load_spec, parse_size, usage, variant_of


def stats(args) -> int:
    from ..backends import stats, stats_compare

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


def draw(args) -> int:
    from ..backends.diagram import draw

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
