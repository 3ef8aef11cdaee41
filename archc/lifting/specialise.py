"""Tracing one module specialised to the shapes it was called with: where its forward takes a branch on a size
(``if x.shape[-1] % s:``), converts one to a Python number (``int(x.shape[1] ** 0.5)``) or iterates over one, the
tracer answers with the value on the recorded input, so the graph holds the path the example takes. That is
sound for a spec, whose shapes are static: the lifted text is proven on that input size.

The value is computed from the graph traced so far, run on a copy of the recorded arguments (children in eval
mode, so that no batch norm's statistics move). It may depend on tensors only through their shapes (``shape``,
``size()``, ``dim()``, ``numel()``, ...): control flow on the values of tensors is refused, with the reason."""

from __future__ import annotations

import contextlib

import torch
import torch.fx as fx
import torch.fx._symbolic_trace as fx_trace
from torch import nn

from .errors import LiftError

# reads of a tensor that give what its shape is, not what it holds
_SHAPE_ATTRIBUTES = {"shape", "ndim", "dtype", "device", "is_cuda", "layout"}
_SHAPE_METHODS = {"size", "dim", "numel", "ndimension", "nelement", "type", "is_contiguous"}


class ValueFlow(LiftError):
    """Control flow on the values of tensors (not their shapes): what a spec cannot say."""


def _is_shape_read(nd: fx.Node) -> bool:
    if nd.op == "call_function" and nd.target is getattr:
        return nd.args[1] in _SHAPE_ATTRIBUTES
    return nd.op == "call_method" and nd.target in _SHAPE_METHODS


class _Known(fx.Proxy):
    """A proxy that, turned into a Python number, is the number it was on the recorded input."""

    def __int__(self) -> int:
        return int(self.tracer.concrete(self, "int()"))

    def __index__(self) -> int:
        return int(self.tracer.concrete(self, "an index"))

    def __float__(self) -> float:
        return float(self.tracer.concrete(self, "float()"))

    def __getattr__(self, name: str):
        if name in ("dtype", "device"):  # what a tensor is, not what it holds: the recorded input's
            return getattr(self.tracer.concrete(self, f"its {name}", shapes_only=False), name)
        return super().__getattr__(name)


class SpecialisingTracer(fx.Tracer):
    """Traces ``root`` with every module it calls kept as a call, never traced into; ``arguments``: the recorded
    call's arguments by the forward's parameter names, which answer control flow on shapes."""

    def __init__(self, root: nn.Module, arguments: dict[str, object]):
        super().__init__()
        self.proxy_buffer_attributes = True  # a buffer read (an index, relpos) is a get_attr, its views traced
        self._traced = root
        self._arguments = arguments

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return m is not self._traced

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _Known(node, self)

    def to_bool(self, obj: fx.Proxy) -> bool:
        return bool(self.concrete(obj, "a condition"))

    def iter(self, obj: fx.Proxy):
        value = self.concrete(obj, "a loop")
        if isinstance(value, torch.Tensor):
            raise ValueFlow(f"'{obj.node.name}' iterates over a tensor: control flow on tensor values cannot be "
                            "written")
        return iter(value)

    def concrete(self, obj: fx.Proxy, use: str, shapes_only: bool = True):
        """``obj``'s value on the recorded input, where it depends on tensors through their shapes only (or, not
        ``shapes_only``, a tensor whose dtype or device is read)."""
        if shapes_only:
            _only_shapes(obj.node, use)
        modes = [(m, m.training) for m in self._traced.modules()]
        self._traced.eval()
        try:
            with torch.no_grad(), _untraced():
                return _Evaluation(self._traced, copy_values(self._arguments)).value(obj.node)
        except LiftError:
            raise
        except Exception as e:  # noqa: BLE001  (the partial graph does not run: the forward cannot be specialised)
            raise LiftError(f"the value of '{obj.node.name}' for {use} cannot be computed on the recorded input: "
                            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        finally:
            for m, mode in modes:
                m.training = mode


def _untraced():
    """Outside tracing for a while: fx patches module calls (and some functions) while it traces, and the partial
    graph is run on real tensors."""
    revert = getattr(fx_trace, "_maybe_revert_all_patches", None)  # torch's own helper, where it has it
    return revert() if revert is not None else contextlib.nullcontext()


def _only_shapes(node: fx.Node, use: str) -> None:
    """Raises where ``node`` reads a tensor other than through its shape."""
    seen: set[fx.Node] = set()
    todo = [node]
    while todo:
        nd = todo.pop()
        if nd in seen or _is_shape_read(nd):
            continue
        seen.add(nd)
        if nd.op in ("placeholder", "get_attr", "call_module") or _returns_tensor(nd):
            raise ValueFlow(f"{use} depends on the values of a tensor ('{nd.name}'), not only on shapes: "
                            "data-dependent control flow cannot be written")
        todo += nd.all_input_nodes


def _returns_tensor(nd: fx.Node) -> bool:
    """A call that computes a tensor (a reduction, arithmetic on tensors) rather than a number from shapes."""
    if nd.op == "call_method":
        return nd.target not in ("__getitem__",) and nd.target not in _SHAPE_METHODS
    return nd.op == "call_function" and getattr(nd.target, "__module__", "") not in ("_operator", "operator",
                                                                                    "math", "builtins")


class _Evaluation:
    """Runs the part of a graph under construction that a node needs."""

    def __init__(self, root: nn.Module, arguments: dict[str, object]):
        self.root, self.arguments = root, arguments
        self.values: dict[fx.Node, object] = {}

    def value(self, nd: fx.Node):
        if nd not in self.values:
            self.values[nd] = self._run(nd)
        return self.values[nd]

    def _run(self, nd: fx.Node):
        args = fx.node.map_arg(nd.args, self.value)
        kwargs = fx.node.map_arg(nd.kwargs, self.value)
        if nd.op == "placeholder":
            return self.arguments[nd.target]
        if nd.op == "get_attr":
            obj = self.root
            for part in nd.target.split("."):
                obj = getattr(obj, part)
            return obj
        if nd.op == "call_module":
            return self.root.get_submodule(nd.target)(*args, **kwargs)
        if nd.op == "call_method":
            return getattr(args[0], nd.target)(*args[1:], **kwargs)
        return nd.target(*args, **kwargs)


def copy_values(v):
    """Tensors (in tuples, lists and dicts) copied, detached: what a call was, kept before anything changes it."""
    if isinstance(v, torch.Tensor):
        return v.detach().clone()
    if isinstance(v, dict):
        return {k: copy_values(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return type(v)(copy_values(x) for x in v)
    return v
