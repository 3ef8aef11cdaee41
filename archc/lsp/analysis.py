"""What the compiler knows about one document: its errors (those of ``archc check``), its syntax tree, and
each statement's shapes, parameters and MACs in each variant. Built from the editor's text, never from disk
(but for the files it ``use``s)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SpecError
from ..lang import nodes as n
from ..lang.files import MAX_SPEC_BYTES
from ..lang.incremental import ItemParser
from ..lang.loader import Program, load_program
from ..lang.parser import parse
from ..sema import memo
from ..sema.allocation import fewer_collections
from ..sema.graph import Graph
from ..sema.layout import SUFFIX, TensorType
from ..spec import Spec, load
from .positions import inside

log = logging.getLogger(__name__)

NESTED_TOO_DEEPLY = "the spec is nested too deeply to compile"


@dataclass
class Analysis:
    path: Path
    text: str
    errors: list[SpecError] = field(default_factory=list)
    module: n.Module | None = None  # the document's syntax tree; None if it does not parse
    program: Program | None = None  # with the files it uses; None if they do not load
    # variant -> statement -> (input, output) types, one pair per instance the statement makes
    shapes: dict[str, dict[n.Stmt, list[tuple[TensorType, TensorType]]]] = field(default_factory=dict)
    graphs: dict[str, Graph] = field(default_factory=dict)
    internal: str | None = None  # a bug in archc met on this text
    checked: Spec | None = field(default=None, repr=False)  # a spec that checked, until the code generator ran


@dataclass
class StatementInfo:
    """One statement in one variant: its output types (one per instance) and what its ops cost in total."""

    variant: str
    outputs: list[TensorType]
    params: int
    macs: int


class Incremental:
    """What one document's analyses hand on to the next: the syntax trees of the items an edit did not change
    (``ItemParser``), and the records of the block calls that still hold (``memo.carried``)."""

    def __init__(self) -> None:
        self.parser = ItemParser()
        self.last: Spec | None = None  # the latest spec checked; its elaborator's records fill as it checks

    def before_check(self, spec: Spec) -> None:
        if self.last is not None and spec.elaborator.memo is not None and self.last.elaborator.memo is not None:
            spec.elaborator.memo.update(memo.carried(self.last.program, self.last.elaborator.memo, spec.program))
        self.last = spec


def analyse(path: str | Path, text: str, generate: bool = True, incremental: Incremental | None = None) -> Analysis:
    """Everything known about ``text``, the source of the spec at ``path``; never raises. Without ``generate``,
    the code generator's own checks wait for ``generator_checks``: the server publishes the check's errors first
    (the graph's shapes need nothing more), then what the code generator adds, if anything. ``incremental``: the
    document's earlier analyses, of which what an edit did not change is kept."""
    result = Analysis(Path(path), text)
    with fewer_collections():
        try:
            _analyse(result, incremental)
        except RecursionError:
            result.errors.append(SpecError(NESTED_TOO_DEEPLY, None))
        except Exception as exc:  # a bug in archc: the editor shows it, the server goes on
            _internal(result, exc)
    if generate:
        generator_checks(result)
    return result


def generator_checks(result: Analysis) -> bool:
    """What ``archc check`` adds to a spec that checked: the code generator's own checks, run once. Whether they
    found anything (errors joined to ``result.errors``, or a bug in archc)."""
    spec, result.checked = result.checked, None
    if spec is None:
        return False
    with fewer_collections():
        try:
            spec.source()
        except SpecError as exc:
            result.errors.extend(exc.errors)
            return True
        except RecursionError:
            result.errors.append(SpecError(NESTED_TOO_DEEPLY, None))
            return True
        except Exception as exc:  # a bug in archc: the editor shows it, the server goes on
            _internal(result, exc)
            return True
    return False


def _internal(result: Analysis, exc: Exception) -> None:
    log.exception("archc failed on %s", result.path)
    result.internal = f"archc: internal error ({type(exc).__name__}: {exc}); please report it"


def _analyse(result: Analysis, incremental: Incremental | None) -> None:
    path, text = result.path, result.text
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        result.errors.append(SpecError(f"the spec is larger than {MAX_SPEC_BYTES // 2**20} MiB", None))
        return
    parser = incremental.parser.parse if incremental is not None else parse
    before_check = incremental.before_check if incremental is not None else None
    spec = None
    try:
        # (the options switched are checked with the code generator's own checks, once the edits pause)
        spec = load(path, text, parser=parser, before_check=before_check, switched=False)
        result.checked = spec  # what archc check does next: the code generator's own checks (generator_checks)
    except SpecError as exc:
        result.errors.extend(exc.errors)
    except RecursionError:
        result.errors.append(SpecError(NESTED_TOO_DEEPLY, None))
    try:
        result.module = spec.program.main if spec is not None else parser(text, str(path))
        result.program = spec.program if spec is not None else load_program(path, text, parser)
        if spec is None:
            spec = Spec(result.program)  # evaluates the file's lets
            if before_check is not None:
                before_check(spec)
    except (SpecError, RecursionError):
        return
    _record_shapes(result, spec)


def _record_shapes(result: Analysis, spec: Spec) -> None:
    """Each variant elaborated on its own, recording its statements' types: a variant with an error leaves
    the others' shapes."""
    try:
        variants = list(spec.variants)
    except (SpecError, RecursionError):
        return
    if spec._checked is not None:  # the check recorded them already
        result.graphs = dict(spec._checked[0])
        result.shapes = {variant: spec.variant_shapes[variant] for variant in variants}
        return
    for variant in variants:
        shapes: dict = {}
        spec.elaborator.stmt_shapes = shapes
        try:
            result.graphs[variant] = spec.graph(variant)
            result.shapes[variant] = shapes
        except (SpecError, RecursionError):
            result.shapes[variant] = shapes  # what was recorded before the error
        finally:
            spec.elaborator.stmt_shapes = None


def statement_info(result: Analysis, stmt: n.Stmt) -> list[StatementInfo]:
    """The statement in every variant that makes it: its output types, and the parameters and MACs of the
    ops it makes (those written in it, and those of the block instances and seqs it calls)."""
    infos = []
    for variant, shapes in result.shapes.items():
        pairs = shapes.get(stmt.layer if isinstance(stmt, n.Side) else stmt)
        if not pairs:
            continue
        params = macs = 0
        graph = result.graphs.get(variant)
        if graph is not None:
            scopes = {path for path, info in graph.scopes.items() if info.span is not None and inside(info.span, stmt.span)}
            first, last = stmt.span.line, stmt.span.end_line  # (a quick test before ``inside``: most ops are elsewhere)
            for op in graph.ops():
                span = op.span
                if (span is not None and first <= span.line <= last and inside(span, stmt.span)) or \
                        (scopes and not scopes.isdisjoint(op.scope)):
                    params, macs = params + op.params, macs + op.macs
        infos.append(StatementInfo(variant, [out for _, out in pairs], params, macs))
    return infos


def describe_outputs(outputs: list[TensorType]) -> str:
    """``64 x 56 x 56``, or the distinct types of a statement's instances with their counts."""
    counts: dict[str, int] = {}
    for t in outputs:
        counts[t.describe()] = counts.get(t.describe(), 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{text} (x{count})" if count > 1 else text for text, count in counts.items())


def shape_range(outputs: list[TensorType]) -> str:
    """One short text for many types: the type if they agree, else each dimension's range (``64..512 x 7 x 7``)."""
    distinct = list(dict.fromkeys(outputs))
    if len(distinct) == 1:
        return distinct[0].describe()
    if len({(len(t.shape), t.layout) for t in distinct}) != 1:
        return " | ".join(dict.fromkeys(t.describe() for t in distinct))
    dims = []
    for sizes in zip(*(t.shape for t in distinct)):
        low, high = min(sizes), max(sizes)
        dims.append(str(low) if low == high else f"{low}..{high}")
    layout = distinct[0].layout
    return f"{dims[0]} features" if layout == "F" else " x ".join(dims) + SUFFIX[layout]
