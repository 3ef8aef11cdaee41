"""Capturing a PyTorch model: which modules it calls with what, and each module's forward as a small graph.

The model is run once on the example input with hooks that record every module's input (a copy, before
anything changes it in place) and how often it is called. Then every module that is not a layer the
language knows (``leaves.leaf_of``) and not a plain ``nn.Sequential`` is traced on its own with ``torch.fx``,
its direct children kept as calls: one graph per module, in terms of its children, specialised to the shapes
of its recorded input where its forward branches on them (``specialise``). The graph is run on the
recorded input (``torch.fx.Interpreter``), which gives every value: tensors (their shapes) and the Python
values of shape arithmetic, which are folded into constants, since the language's shapes are static.

The result is a tree of parts (``ir``); everything here that cannot be lifted is a ``LiftError`` that names
the module's path.
"""

from __future__ import annotations

import contextlib
import inspect

import torch
import torch.fx as fx
from torch import nn

from . import ir
from .errors import LiftError
from .leaves import leaf_of
from .lowering import lower_graph
from .relpos import held_child, held_tensors
from .sides import find_sides, record_training_inputs
from .specialise import SpecialisingTracer, copy_values
from .tables import table_of
from .windows import partition_leaf


class _Recorder(fx.Interpreter):
    """Runs a traced graph and keeps every node's value."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm)
        self.values: dict[fx.Node, object] = {}

    def run_node(self, node: fx.Node):
        value = super().run_node(node)
        self.values[node] = value
        return value


def _holds_tensor(v) -> bool:
    if isinstance(v, torch.Tensor):
        return True
    return isinstance(v, (list, tuple)) and any(_holds_tensor(x) for x in v)


def _is_plain_sequential(m: nn.Module) -> bool:
    return type(m) is nn.Sequential


def capture(model: nn.Module, example: torch.Tensor) -> ir.Part:
    """The model as a tree of parts, its root a ``Dag`` or a ``Seq``."""
    model = model.eval()
    paths = {m: p for p, m in model.named_modules(remove_duplicate=False)}
    shared = [p for p, m in model.named_modules(remove_duplicate=False) if paths[m] != p]
    if shared:
        raise LiftError(f"module '{shared[0]}' is the same module as '{paths[model.get_submodule(shared[0])]}': "
                        "shared modules (one module under two names) cannot be written yet")
    inputs: dict[nn.Module, tuple] = {}
    calls: dict[nn.Module, int] = {}

    def pre(m, args, kwargs):
        calls[m] = calls.get(m, 0) + 1
        if m not in inputs:
            inputs[m] = (copy_values(args), copy_values(kwargs))

    handles = [m.register_forward_pre_hook(pre, with_kwargs=True) for m in model.modules()]
    try:
        with torch.no_grad():
            model(example)
    except Exception as e:  # noqa: BLE001  (the user's model failed on its example)
        raise LiftError(f"the model fails on an example input of shape {tuple(example.shape)}: "
                        f"{type(e).__name__}: {e}") from None
    finally:
        for h in handles:
            h.remove()
    unseen = [m for m in model.modules() if m not in inputs and any(True for _ in m.parameters())]
    if unseen:  # heads used in training only (side outputs): their inputs from a training-mode pass

        def record(m, args, kwargs):
            if m not in inputs:
                inputs[m] = (copy_values(args), copy_values(kwargs))
                calls[m] = 1

        record_training_inputs(model, example, record)
    return _Capture(paths, inputs, calls).part(model, "")


class _Capture:
    def __init__(self, paths, inputs, calls):
        self.paths, self.inputs, self.calls = paths, inputs, calls

    def part(self, m: nn.Module, path: str) -> ir.Part:
        where = path or "the model"
        recorded = self.inputs.get(m)
        first = recorded[0][0] if recorded and recorded[0] else None
        leaf = leaf_of(m, path, tuple(first.shape[1:]) if isinstance(first, torch.Tensor) else None)
        if leaf is None and recorded is not None:
            leaf = partition_leaf(m, path, recorded)  # a map cut into groups of tokens, or put back (MaxViT's)
        if leaf is not None:
            return leaf
        # a container whose items the parent applies one by one (``for blk in self.blocks: x = blk(x)``): the
        # parent's lowering folds those calls into one call of a sequence
        iterated = (isinstance(m, (nn.ModuleList, nn.ModuleDict)) and type(m).forward is nn.Module.forward) or \
            (_is_plain_sequential(m) and m not in self.inputs)
        if m not in self.inputs and not iterated and not any(True for _ in m.parameters()) and \
                not any(True for _ in m.buffers()):
            return None  # never called and holds nothing: left out
        if m not in self.inputs and not iterated and held_child(m, path) is not None:
            return held_child(m, path)  # a bias table its parent reads through a method (relpos)
        if m not in self.inputs and not iterated:
            raise LiftError(f"{where} ({type(m).__name__}) is never called in the forward pass on the example "
                            "input (a module used only in training, such as an auxiliary head, cannot be written "
                            "yet)")
        if self.calls.get(m, 0) > 1 and any(True for _ in m.parameters()):
            raise LiftError(f"{where} ({type(m).__name__}) is called {self.calls[m]} times: a module with weights "
                            "applied more than once (weight sharing) cannot be written yet")
        children = [(name, self.part(c, f"{path}.{name}" if path else name)) for name, c in m.named_children()]
        children = [(name, c) for name, c in children if c is not None]
        # a layer padded for its input (Conv2dSame) puts a pad with no module form before it, which no seq can hold
        # (NF-Net's stem): such a sequence is traced as a block of its own, its children keeping their names
        padded = any(isinstance(c, ir.Leaf) and c.before for _, c in children) and m in self.inputs
        if not padded and (iterated or _is_plain_sequential(m) or
                           (isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward)):
            cls = None if iterated or _is_plain_sequential(m) else type(m).__name__
            return ir.Seq(cls=cls, path=path, children=children)
        table = table_of(m, path, children)
        if table is not None:
            return table
        # an index kept out of the state_dict (timm's relative position index) may pick a parameter's rows (relpos)
        indices = {name: b for name, b in m.named_buffers(recurse=False)
                   if name in m._non_persistent_buffers_set and b.dtype == torch.int64}
        buffers = [name for name, _ in m.named_buffers(recurse=False) if name not in indices]
        if buffers:
            raise LiftError(f"{where} ({type(m).__name__}) holds its own buffer '{buffers[0]}': a module's own "
                            "buffers cannot be lifted yet")
        own = {name: p.detach() for name, p in m.named_parameters(recurse=False)}
        held_params, held_indices = held_tensors(children)
        own.update(held_params)
        indices.update(held_indices)
        graph, values, sides = self._trace(m, where, root=not path)
        cls = type(m).__name__
        if padded and type(m) is nn.Sequential and path.rsplit(".", 1)[-1].isidentifier():
            cls = "".join(w.capitalize() for w in path.rsplit(".", 1)[-1].split("_"))  # the block's name: Stem
        return lower_graph(cls, path, children, graph, values, where, own, sides, indices)

    def _bound(self, m: nn.Module) -> dict:
        """The recorded call's arguments by the forward's parameter names, defaults filled in."""
        args, kwargs = self.inputs[m]
        try:
            bound = inspect.signature(m.forward).bind(*args, **kwargs)
        except TypeError as e:
            raise LiftError(f"{self.paths[m] or 'the model'} ({type(m).__name__}): its call does not fit its "
                            f"forward: {e}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def _constants(self, m: nn.Module) -> dict:
        """The arguments that are no tensors (a flag, a default), traced as the constants they were in the call."""
        return {k: v for k, v in self._bound(m).items() if not _holds_tensor(v)}

    def _trace(self, m: nn.Module, where: str, root: bool = False):
        graphs = []
        training = m.training
        try:
            with _no_autograd_functions():
                for mode in (False, True):
                    m.train(mode)
                    tracer = SpecialisingTracer(m, self._bound(m))
                    graphs.append(tracer.trace(m, concrete_args=self._constants(m)))
        except LiftError as e:
            raise LiftError(f"{where} ({type(m).__name__}): {e}") from None
        except Exception as e:  # noqa: BLE001  (fx refuses what it cannot trace)
            raise LiftError(f"{where} ({type(m).__name__}): its forward cannot be traced: "
                            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        finally:
            m.train(training)
        sides = []
        if _signature(graphs[0]) != _signature(graphs[1]):
            sides = find_sides(graphs[0], graphs[1], {n for n, _ in m.named_children()}) if root else None
        if sides is None:
            raise LiftError(f"{where} ({type(m).__name__}): its forward computes other things in training than in "
                            "eval (it reads self.training): only the layers' own training behaviour can be written")
        gm = fx.GraphModule(m, graphs[0])
        rec = _Recorder(gm)
        bound = self._bound(m)
        try:
            with torch.no_grad():
                rec.run(*bound.values())  # fx's input processing flattens the constant arguments as traced
        except Exception as e:  # noqa: BLE001  (a traced forward that does not run again as traced)
            raise LiftError(f"{where} ({type(m).__name__}): its traced forward does not run on the recorded "
                            f"arguments: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        return graphs[0], rec.values, sides


@contextlib.contextmanager
def _no_autograd_functions():
    """While tracing, a custom autograd function is an error: fx would trace its forward and lose its backward."""
    base = torch.autograd.Function
    original = base.__dict__["apply"]

    def refuse(cls, *args, **kwargs):
        if any(isinstance(a, fx.Proxy) for a in args):
            raise LiftError(f"it applies the custom autograd function {cls.__name__}, whose backward a spec cannot "
                            "say")
        return original.__get__(None, cls)(*args, **kwargs)

    base.apply = classmethod(refuse)
    try:
        yield
    finally:
        base.apply = original


def _signature(g: fx.Graph) -> list:
    """What a graph computes, less the training flags that layers read themselves (dropout's ``training``)."""
    out = []
    for nd in g.nodes:
        kw = {k: v for k, v in nd.kwargs.items() if k != "training"}
        args = nd.args
        if nd.op == "call_function" and getattr(nd.target, "__name__", "") == "dropout" and len(args) > 2:
            args = args[:2]
        out.append((nd.op, str(nd.target), str(args), str(kw)))
    return out
