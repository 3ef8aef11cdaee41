"""What the interactive page shows first, and the runs of alike blocks it folds (see ``page``).

First screen: the page opens where the network's stages are. From the top, a
box opens by itself while it is the only box at its level that holds other
boxes (DenseNet's, EfficientNet's and Swin's ``features`` beside a head of a
few ops; ViT's ``encoder`` and its ``layers``); it stops at a level with two
or more (ResNet's ``layer1`` ... ``layer4``, GoogLeNet's Inceptions). With
``--depth N`` every box opens (those N blocks deep are leaves): the page
starts as the picture at that depth.

Runs: the folding of the pictures (``view``), on the page's items. A run's
first member carries ``run`` (its members' items), ``fold`` (its name, count,
call and ranges as the picture writes them); every item inside a member
carries ``m``, [the run's first item, which member] (-1: a dense's
concatenation between members), and those inside a later member or such a
concatenation ``f`` (the run's first item) and ``tw`` (what stands for it while
the run is folded: its counterpart in the first member). The script folds every run at first; a click on the
count unfolds it.
"""

from __future__ import annotations

import bisect

from .calls import range_text
from .labels import display
from .view import View


def first_screen(items: list[dict], depth: int | None) -> list[int]:
    """The boxes open when the page opens."""
    if depth is not None:
        return [i for i, it in enumerate(items) if it["k"] == "box"]
    opened: list[int] = []
    level = [i for i, it in enumerate(items) if it["p"] < 0]
    while True:
        holders = [i for i in level if items[i]["k"] == "box" and any(items[c]["k"] in ("box", "leaf")
                                                                       for c in items[i]["ch"])]
        if len(holders) != 1:
            return opened
        opened.append(holders[0])
        level = items[holders[0]]["ch"]


def add_runs(items: list[dict], index: dict[str, int], page_view: View, fold_view: View) -> None:
    """Marks the runs ``fold_view`` (the page's graph, depth and root, folded) finds on ``items``."""
    graph = fold_view.graph
    keys = sorted(index)

    def item_of(path: str) -> int | None:
        return index.get(path, index.get("block:" + path))

    for first, run in fold_view.runs.items():
        head = item_of(first)
        members = [item_of(p) for p in run.paths]
        if head is None or None in members:
            continue
        parent = items[head]["p"]
        where = items[parent]["id"] if parent >= 0 else None
        items[head]["run"] = members
        items[head]["fold"] = {
            "name": f"{display(first, where)} … {display(run.paths[-1], where)}",
            "n": len(run.paths),
            "call": fold_view.signatures.label(graph.scopes[first], run.varying),
            "ranges": [range_text(k, v) for k, v in run.varying.items()],
            "params": sum(graph.node(i).params for p in run.paths for i in fold_view.scope_ops[p]),
        }
        for k, member in enumerate(run.paths):
            for key in _keys_inside(keys, member):
                item = items[index[key]]
                item["m"] = [head, k]
                if k:
                    twin = first + key[len(member):] if not key.startswith("block:") else \
                        "block:" + first + key[len("block:") + len(member):]
                    item["f"], item["tw"] = head, index.get(twin, head)
    for op_id, first in fold_view.run_concat.items():
        unit = page_view.unit_of.get(op_id)
        head = item_of(first)
        if unit in index and head is not None:
            stand_in = index[page_view.unit_of[page_view.scope_ops[first][0]]]
            items[index[unit]].update(m=[head, -1], f=head, tw=stand_in)


def _keys_inside(keys: list[str], path: str) -> list[str]:
    """The item keys (sorted) at or inside the module path ``path`` (box paths, op ids, ``block:`` leaves)."""
    out = []
    for prefix in (path, "block:" + path):
        k = bisect.bisect_left(keys, prefix)
        while k < len(keys) and keys[k].startswith(prefix):
            rest = keys[k][len(prefix):]
            if not rest or rest[0] in ".#":
                out.append(keys[k])
            k += 1
    return out
