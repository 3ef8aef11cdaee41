"""Rewrites of a lowered forward that see more than one node: a container's items applied one after another
(one call of a named seq), a dense block (``dense``), a flattened map transposed (``to_tokens``), and the
children the forward never calls. Each takes a ``Dag`` and changes it in place."""

from __future__ import annotations

from . import ir


def fold_items(dag: ir.Dag, children: dict, fail) -> None:
    """The items of a container applied one after another, each to the one before's output (``for blk in
    self.blocks: x = blk(x)``), as one call of the container, a named seq."""
    n_in = len(dag.inputs)
    runs: dict[str, list[int]] = {}
    for k, nd in enumerate(dag.nodes, start=n_in):
        if nd.fn == "call" and "." in nd.child:
            runs.setdefault(nd.child.partition(".")[0], []).append(k)
    if not runs:
        return
    uses = dag.uses()
    replace: dict[int, int] = {}  # the last item's value -> the first item's node, which becomes the call
    dropped: set[int] = set()
    for head, ks in list(runs.items()):
        items = [n for n, _ in children[head].children]
        called = [dag.nodes[k - n_in].child.partition(".")[2] for k in ks]
        chained = all(dag.nodes[b - n_in].args == (ir.Ref(a),) and uses.get(a) == 1
                      for a, b in zip(ks, ks[1:]))
        if (called != items or not chained) and (_loose_items(dag, head, ks, children) or
                                                   _members(dag, head, ks, children)):
            continue
        if called != items or not chained or len(dag.nodes[ks[0] - n_in].args) != 1:
            fail(f"applies the items of '{head}' other than each once, in order, one to the one before's "
                      "output: it cannot be written yet")
        first = dag.nodes[ks[0] - n_in]
        first.child, first.shape = head, dag.nodes[ks[-1] - n_in].shape
        replace[ks[-1]] = ks[0]
        dropped.update(ks[1:])
    drop_nodes(dag, dropped, replace)


def _loose_items(dag: ir.Dag, head: str, ks: list[int], children: dict) -> bool:
    """Items of a container that hold nothing, applied each on its own (``[pool(x) for pool in self.poolings]``):
    each a child of its own, named after the container and its key, and the container goes. They hold no weights,
    so no state_dict key sees the names. False (nothing changed) where an item holds state or is no layer."""
    n_in = len(dag.inputs)
    items = dict(children[head].children)
    called = [dag.nodes[k - n_in].child.partition(".")[2] for k in ks]
    if any(not isinstance(items.get(c), ir.Leaf) or items[c].stateful for c in called):
        return False
    taken = {n for n, _ in dag.children} | set(children)
    names = {}
    for c in dict.fromkeys(called):
        name, i = f"{head}_{c}", 2
        while name in taken:
            name, i = f"{head}_{c}_{i}", i + 1
        taken.add(name)
        names[c] = name
    at = [n for n, _ in dag.children].index(head)
    dag.children[at:at + 1] = [(names[c], items[c]) for c in names]
    children.pop(head)
    children.update({names[c]: items[c] for c in names})
    for k in ks:
        nd = dag.nodes[k - n_in]
        nd.child = names[nd.child.partition(".")[2]]
    return True


def _members(dag: ir.Dag, head: str, ks: list[int], children: dict) -> bool:
    """Items of a list applied other than one after another (Res2Net's ``sp = conv(sp + spx[i])``, HGNet's outputs
    all concatenated): each a member of the container, declared ``convs.0`` and applied ``convs[0](x)`` (the keys
    the list gives them). False (nothing changed) where the list is keyed by other than its positions."""
    n_in = len(dag.inputs)
    items = children[head].children
    if [n for n, _ in items] != [str(i) for i in range(len(items))]:
        return False
    at = [n for n, _ in dag.children].index(head)
    dag.children[at:at + 1] = [(f"{head}.{n}", part) for n, part in items]
    children.pop(head)
    children.update({f"{head}.{n}": part for n, part in items})
    for k in ks:
        nd = dag.nodes[k - n_in]
        nd.child = f"{head}.{nd.child.partition('.')[2]}"
    return True


def fuse_dense(dag: ir.Dag, fail) -> None:
    """Children each called on the list of the input and the outputs before, the result their concatenation
    (DenseNet's dense block): the language's ``dense``, whose members each read that concatenation."""
    lists = [nd for nd in dag.nodes if nd.fn == "call" and nd.args and isinstance(nd.args[0], list)]
    if not lists:
        return
    n_in = len(dag.inputs)
    *calls, last = dag.nodes
    outs = [ir.Ref(k) for k in range(n_in, n_in + len(calls))]
    ok = len(dag.inputs) == 1 and calls == lists and last.fn == "cat" and \
        last.args[0] == [ir.Ref(0)] + outs and last.args[1] == 1 and dag.output == ir.Ref(n_in + len(calls))
    ok = ok and all(nd.args[0] == [ir.Ref(0)] + outs[:i] for i, nd in enumerate(calls))
    if not ok:
        fail("calls children on lists of tensors other than as a dense block (each on the input and the "
                  "outputs before it, the result their concatenation): it cannot be written yet")
    for nd in calls:
        nd.args = (ir.Ref(0),)
    dag.nodes = calls
    dag.output = outs[-1]
    dag.dense = True


def fuse_tokens(dag: ir.Dag, shape_of) -> None:
    """A map flattened to H·W positions and transposed (``x.flatten(2).transpose(1, 2)``) is the language's
    ``to_tokens``: the transpose becomes it, and the flatten, read by nothing else, goes."""
    n_in = len(dag.inputs)
    uses = dag.uses()
    gone = set()
    for nd in dag.nodes:
        if nd.fn != "transpose" or list(nd.args[1:]) not in ([1, 2], [2, 1]):
            continue
        src = nd.args[0].index
        if src < n_in or uses.get(src) != 1:
            continue
        flat = dag.nodes[src - n_in]
        x = flat.args[0]
        shape = shape_of(x) if isinstance(x, ir.Ref) else ()
        if len(shape) != 3 or flat.shape != (shape[0], shape[1] * shape[2]):
            continue
        if (flat.fn, flat.args[1:]) in (("flatten_dims", (2, -1)), ("reshape", ((shape[0], shape[1] * shape[2]),)),
                                        ("reshape", ((shape[0], -1),))):
            nd.fn, nd.args = "to_tokens", (x,)
            gone.add(src)
    if gone:
        drop_nodes(dag, gone)


def drop_nodes(dag: ir.Dag, gone: set[int], replace: dict[int, int] | None = None) -> None:
    """Take out nodes (those in ``replace`` read as the value it names instead), renumbering the values."""
    n_in = len(dag.inputs)
    index = {i: i for i in range(n_in)}
    nodes = []
    for k, nd in enumerate(dag.nodes, start=n_in):
        if k not in gone:
            nodes.append(nd)
            index[k] = n_in + len(nodes) - 1
    for k, target in (replace or {}).items():
        index[k] = index[target]

    def remap(a):
        if isinstance(a, ir.Ref):
            return ir.Ref(index[a.index])
        if isinstance(a, (list, tuple)):
            return type(a)(remap(x) for x in a)
        return a

    for nd in nodes:
        nd.args = remap(nd.args)
    dag.nodes = nodes
    dag.output = remap(dag.output)


def dead_values(dag: ir.Dag) -> None:
    """Values the forward computes and never reads (Res2Net's ``sp = spx[0]``, read again as ``spx[i]``) taken out,
    children's calls kept (a child never called is ``unused``'s to judge)."""
    while True:
        uses = dag.uses()
        gone = {k for k, nd in enumerate(dag.nodes, start=len(dag.inputs)) if nd.fn != "call" and not uses.get(k)}
        if not gone:
            return
        drop_nodes(dag, gone)


def unused(dag: ir.Dag, fail) -> None:
    """The children the forward never calls left out (those without weights), or refused; side heads are kept."""
    calls: dict[str, int] = {}
    for nd in dag.nodes:
        if nd.fn == "call":
            calls[nd.child] = calls.get(nd.child, 0) + 1
    called = set(calls) | {side for side, _ in dag.sides}
    for name, part in dag.children:
        if calls.get(name, 0) > 1 and _holds_state(part):
            fail(f"its child '{name}' is called {calls[name]} times: a module with weights applied more "
                 "than once (weight sharing) cannot be written yet")
    kept = []
    for name, part in dag.children:
        if name in called or not _holds_state(part):
            kept.append((name, part))
        else:
            fail(f"its child '{name}' holds weights but is never called in forward (on the example input): "
                 "it cannot be written yet")
    dag.children = [(n, p) for n, p in kept if n in called]


def _holds_state(part) -> bool:
    if isinstance(part, ir.Leaf):
        return part.stateful
    return any(_holds_state(c) for _, c in part.children)
