"""A loaded spec: its variants, their validated graphs, its generated source.

``Spec.build`` runs the generated source as the module ``archc.built.<stem>_<hash>``, kept in
archc's cache (``$XDG_CACHE_HOME/archc/built/``, else ``~/.cache/archc/built/``, else a temporary
directory) under the source's SHA-256: its models survive ``torch.save(model, f)`` and
``torch.load(f, weights_only=False)`` in a fresh process with archc installed, even after the
spec is edited (a new source, a new name) or deleted. Only cached files whose bytes match their
hash are ever executed. See ``archc.built``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from .backends.python.codegen import generate
from .errors import SpecError, SpecErrors, did_you_mean
from .lang import nodes as n
from .lang.loader import Program, load_program
from .sema.allocation import fewer_collections
from .sema.elaborate import MAX_ERRORS, Elaborator
from .sema.expr import Budget, evaluate
from .sema.graph import Graph
from .sema.scope import signature_bind
from .sema.variants import Variant, resolve_variants


def _graph_html(graph: Graph) -> str:
    """A graph's view in Jupyter: the diagram backend's page, imported when a notebook first shows one."""
    from .backends.diagram.page import notebook_html

    return notebook_html(graph)


Graph.html_view = _graph_html  # the facade wires the display, so the graph imports no backend

class Spec:
    """One spec file, loaded and checked. ``archc.load`` returns this."""

    def __init__(self, program: Program):
        self.program = program
        self.elaborator = Elaborator(program)
        self._checked: tuple[dict[str, Graph], dict[n.Stmt, list]] | None = None
        self._checking = False
        self._switch_errors: list[SpecError] | None = None  # the check of the options switched, once it ran
        self.variant_shapes: dict[str, dict[n.Stmt, list]] = {}  # the check's records, each variant's own

    @property
    def path(self) -> Path:
        return self.program.path

    @cached_property
    def variants(self) -> dict[str, Variant]:
        return resolve_variants(self.program, self.elaborator.globals)

    def values(self, variant: str, **overrides) -> tuple[n.NetworkDef, dict[str, object]]:
        if variant not in self.variants:
            raise SpecError(f"no variant '{variant}' in {self.path.name}", None,
                            hint=did_you_mean(variant, self.variants, otherwise=f"variants: {', '.join(self.variants)}"))
        v = self.variants[variant]
        env = self.elaborator.globals
        kw = [(k, val, v.span) for k, val in {**v.fixed, **overrides}.items()]
        values = signature_bind(v.network.params, [], kw, f"network {v.network.name}", v.span,
                                lambda p, bound: evaluate(p.default, env))
        return v.network, values

    def graph(self, variant: str | None = None, input_size: tuple[int, ...] | int | None = None, **overrides) -> Graph:
        """The validated graph of one variant (the first if none is named); ``input_size`` (H x W, one size for a
        square, or every size) replaces the sizes the network's ``input`` gives."""
        variant = variant or self.default_variant()
        net, values = self.values(variant, **overrides)
        if not self._checking:  # each call its own bound; a check shares one over all the variants
            self.elaborator.budget = Budget()
        if isinstance(input_size, int):
            input_size = (input_size,)
        try:
            graph = self.elaborator.network(net, variant, values, input_size)
        except SpecError as exc:
            raise exc.add_note(f"in variant {variant}", self.variants[variant].span) from None
        graph.generated_in_place = lambda: self.in_place
        return graph

    def default_variant(self) -> str:
        if not self.variants:
            raise SpecError(f"{self.path.name} has no network (it is a library of blocks): nothing to instantiate",
                            None, hint="add a network and a variant, or use this file from one that has them")
        return next(iter(self.variants))

    def _repr_html_(self) -> str | None:
        """The first variant's interactive diagram, inline in Jupyter; None (plain repr) for a library of blocks."""
        if not self.variants:
            return None
        from .backends.diagram.page import notebook_html, spec_docs

        variant = self.default_variant()
        return notebook_html(self.graph(variant), spec_docs(self, variant))

    def check(self, switched: bool = True) -> dict[str, Graph]:
        """Every variant's graph (elaborated once, with the records the code generator needs); ``switched``: and
        each variant's true-or-false options switched (the language server leaves that to its second pass)."""
        return self.checked(switched)[0]

    def checked(self, switched: bool = True) -> tuple[dict[str, Graph], dict[n.Stmt, list]]:
        if self._checked is None:
            graphs: dict[str, Graph] = {}
            self._elaborate(lambda name: [({}, None)], graphs)
            self._checked = (graphs, self._merged())
        if switched and self._switch_errors is None:
            done: set[tuple[str, str]] = set()  # (network, option) already elaborated switched
            self._switch_errors = []
            try:
                self._elaborate(lambda name: [({p.name: value}, p) for p, value in self._switched(name, done)], None)
            except SpecError as exc:
                self._switch_errors = [exc]
            self._checked = (self._checked[0], self._merged())
        if switched and self._switch_errors:
            raise self._switch_errors[0]
        return self._checked

    def _elaborate(self, runs, graphs: dict[str, Graph] | None) -> None:
        """Each variant's ``runs`` (overrides, the option they switch or None) elaborated, its records kept with
        the variant's; the errors of all variants raised together."""
        self.elaborator.budget, self._checking = Budget(), True
        errors: list[SpecError] = []
        try:
            for name in self.variants:
                # recorded for the variants as written (and their options switched); each variant's own, for
                # the editor
                self.elaborator.stmt_shapes = self.variant_shapes.setdefault(name, {})
                try:
                    for overrides, option in runs(name):
                        try:
                            graph = self.graph(name, **overrides)
                        except SpecError as exc:
                            if option is None:
                                raise
                            raise exc.add_note(f"with {option.name} = {str(overrides[option.name]).lower()}, as a "
                                               "caller may ask (an option)", option.span) from None
                        if graphs is not None:
                            graphs[name] = graph
                except SpecError as exc:  # go on: other variants may hold other mistakes
                    errors += [e for e in exc.errors if not any(_same(e, f) for f in errors)]
                    if len(errors) >= MAX_ERRORS or getattr(exc, "stopped", False):
                        break
        finally:
            self.elaborator.stmt_shapes, self._checking = None, False
        if errors:
            raise SpecErrors(errors, stopped=len(errors) >= MAX_ERRORS) if len(errors) > 1 else errors[0]

    def _merged(self) -> dict[n.Stmt, list]:
        """Every variant's records, for the code generator."""
        shapes: dict[n.Stmt, list] = {}
        for records in self.variant_shapes.values():
            for stmt, pairs in records.items():
                shapes.setdefault(stmt, []).extend(pairs)
        return shapes

    def _switched(self, variant: str, done: set[tuple[str, str]]) -> list[tuple[n.Param, bool]]:
        """The variant's options that hold true or false, each with the value that switches it: a caller may
        switch it, so the check elaborates that too (a step only it adds is checked, and sized for the code
        generator), once for each network and option (``done``): with the first variant that has it."""
        net, values = self.values(variant)
        found = [(p, not values[p.name]) for p in net.params
                 if p.option and isinstance(values.get(p.name), bool) and (net.name, p.name) not in done]
        done.update((net.name, p.name) for p, _ in found)
        return found

    @cached_property
    def in_place(self) -> frozenset[n.Span]:
        """The statements whose op the generated code runs in place: the code generator's record of its choice
        (``StmtInfo.in_place``), which ``archc stats`` reads to count the tensors forward makes; none where the
        code generator refuses the spec (``source`` says why), as no code runs them."""
        graphs, shapes = self.checked()
        record: dict[n.Span, bool] = {}
        try:
            generate(self.program, self.variants, self.elaborator, graphs, shapes, record)
        except SpecError:
            return frozenset()
        return frozenset(span for span, yes in record.items() if yes)

    def source(self) -> str:
        """The generated Python module."""
        graphs, shapes = self.checked()
        return generate(self.program, self.variants, self.elaborator, graphs, shapes)

    def build(self, variant: str | None = None, **kwargs):
        """Instantiate a variant as an ``nn.Module`` (imports torch) that ``torch.save`` can pickle whole."""
        module = self.python_module()
        variant = variant or self.default_variant()
        if variant not in self.variants:
            self.values(variant)  # raises with a hint
        return getattr(module, variant)(**kwargs)

    def interpret(self, variant: str | None = None, **overrides):
        """The graph interpreter of a variant (an ``nn.Module``, imports torch): the graph run op by op from the
        registry's meanings, independent of the generated code; the generated model's state_dict loads into it."""
        from .backends.interpret import Interpreter

        return Interpreter(self.graph(variant, **overrides))

    @cached_property
    def _module(self):
        from . import built

        module = built.load(self.source(), self.path.stem)
        module.__archc_spec__ = self  # archc.deploy finds the spec of a model built here
        return module

    def python_module(self):
        """The generated module, executed (imports torch) as ``archc.built.<stem>_<hash>``, an importable
        name, so that its models pickle."""
        return self._module


def _same(a: SpecError, b: SpecError) -> bool:
    """The same mistake, met again while elaborating another variant."""
    return a.span == b.span and a.message == b.message


def load(path: str | Path, text: str | None = None, *, parser=None, before_check=None, switched: bool = True) -> Spec:
    """Load and check a spec file: ``archc.load("specs/resnet.arch").build("resnet50")``. ``text``, if given, is
    the file's source, read instead of the file (an editor's buffer); the files it uses are read from disk.
    The language server's hooks: ``parser`` parses the text, ``before_check`` gets the spec before its check,
    ``switched``: whether the check switches the options now (else when the code generator runs)."""
    with fewer_collections():
        return _load(path, text, parser, before_check, switched)


def _load(path: str | Path, text: str | None, parser, before_check, switched: bool = True) -> Spec:
    try:
        spec = Spec(load_program(path, text, parser))
        if before_check is not None:
            before_check(spec)
        main = spec.program.main
        if not (main.blocks or main.networks or main.variants or main.lets or main.uses):
            raise SpecError("the spec defines nothing", n.Span(str(path), 1, 1, 1, 2),
                            hint="a spec holds blocks, networks and variants; see docs/language.md")
        spec.check(switched)
    except RecursionError:
        raise SpecError("the spec is nested too deeply to compile", None,
                        hint="flatten deeply nested expressions or brackets") from None
    return spec
