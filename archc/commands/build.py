"""``archc check``, ``archc build`` and ``archc fmt``."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import SpecError, SpecErrors
from ..lang import files
from .common import EXIT_INTERNAL, EXIT_SPEC, load_all, usage


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
        from ..deployment.convert import deploy_spec

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

    from ..lang.format import UnsafeFormat, format_source
    from ..lang.loader import read_spec

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
