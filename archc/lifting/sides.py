"""Side outputs: heads a network applies in training only (GoogLeNet's and Inception v3's auxiliary
classifiers), which the language writes as ``name = side Block(...) from LAYER``.

They are never called in eval, so their inputs are recorded by one training-mode pass (on a batch of two, for
the batch norms; the model's state and the random generator are restored after it). The network's forward is
traced in both modes: the training trace must be the eval one with calls of extra children added, each applied
to the output of one of the network's own children, and an output that is the eval output followed by theirs.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx
from torch import nn


def record_training_inputs(model: nn.Module, example: torch.Tensor, record) -> None:
    """Run the model once in training mode with ``record`` as a forward pre-hook, and put everything back."""
    state = copy.deepcopy(model.state_dict())
    handles = [m.register_forward_pre_hook(record, with_kwargs=True) for m in model.modules()]
    try:
        with torch.random.fork_rng(), torch.no_grad():
            model.train()
            model(torch.cat([example, example]))
    except Exception:  # noqa: BLE001  (a model that does not run in training here: its sides stay unknown)
        pass
    finally:
        for h in handles:
            h.remove()
        model.load_state_dict(state)
        model.eval()


def find_sides(eval_graph: fx.Graph, train_graph: fx.Graph, children: set[str]) -> list[tuple[str, str]] | None:
    """[(side child, the child whose output it reads)] in the order of the training output, or None where the
    two traces differ otherwise."""
    def calls(g):
        return [nd for nd in g.nodes if nd.op == "call_module"]

    eval_calls = [nd.target for nd in calls(eval_graph)]
    extra = [nd for nd in calls(train_graph) if nd.target not in eval_calls]
    if not extra or [nd.target for nd in calls(train_graph) if nd not in extra] != eval_calls:
        return None
    sides = {}
    for nd in extra:
        src = nd.args[0] if len(nd.args) == 1 and not nd.kwargs else None
        if nd.target not in children or not isinstance(src, fx.Node) or src.op != "call_module" or \
                src.target not in eval_calls or len(nd.users) != 1:
            return None
        sides[nd] = src.target
    out = next(nd for nd in train_graph.nodes if nd.op == "output").args[0]
    if isinstance(out, fx.Node) and out.op == "call_function" and isinstance(out.target, type) and \
            issubclass(out.target, tuple):  # a namedtuple made in forward (GoogLeNetOutputs)
        out = tuple(out.args)
    if not isinstance(out, tuple) or set(out[1:]) != set(sides) or len(out) != len(sides) + 1:
        return None
    return [(nd.target, sides[nd]) for nd in out[1:]]
