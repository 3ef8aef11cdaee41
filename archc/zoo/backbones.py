"""``create_model(name, features_only=True)`` for a model that is not a backbone: one line that says why and
what to create instead.

A network without taps has no feature maps to give. An ensemble is not a backbone either: it averages its
members' class scores, and its members' feature maps are theirs (several maps of one stage, one a member,
would be no backbone's); each member is a backbone, so the line names the factories that make the members.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

FEATURE_ARGUMENTS = ("features_only", "out_indices")


def refuse_features(name: str, factory, kwargs: dict) -> None:
    """A ``ValueError`` where ``kwargs`` ask a factory without ``features_only`` for feature maps."""
    asked = [k for k in FEATURE_ARGUMENTS if kwargs.get(k) not in (None, False)]
    taken = inspect.signature(factory).parameters
    if not asked or any(k in taken for k in FEATURE_ARGUMENTS):
        return
    members = member_factories(factory)
    if members:
        listed = ", ".join(f"create_model({m!r}, features_only=True)" for m in members)
        raise ValueError(f"{name} is an ensemble, not a backbone: it averages its members' class scores and has "
                         f"no feature maps of its own; its members are backbones: {listed}")
    raise ValueError(f"{name} is not a backbone: its network has no taps, so it has no feature maps to give "
                     f"('{asked[0]}'); archc.list_models(features_only=True) lists the backbones")


def member_factories(factory) -> list[str]:
    """The backbone factories of the module that make the members of the ensemble ``factory`` makes, in the
    order of the members: for each member network, its factories whose fixed arguments the member is given too
    (every one of them where none is)."""
    module = inspect.getmodule(factory)
    network = inspect.signature(factory).return_annotation
    if module is None or not inspect.isclass(network):
        return []
    backbones = [f for f in _exported(module) if "features_only" in inspect.signature(f).parameters]
    found: list[str] = []
    for call in _calls(network.__init__):
        member = getattr(module, call.func.id, None) if isinstance(call.func, ast.Name) else None
        makers = [f for f in backbones if inspect.signature(f).return_annotation is member]
        if not makers:
            continue
        given = {k.arg: ast.dump(k.value) for k in call.keywords}
        fitting = [f for f in makers if all(given.get(k) == v for k, v in _fixed(f, member).items())]
        found += [f.__name__ for f in fitting or makers if f.__name__ not in found]
    return found


def _exported(module) -> list:
    return [getattr(module, n) for n in getattr(module, "__all__", []) if inspect.isfunction(getattr(module, n))]


def _calls(function) -> list[ast.Call]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return []
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _fixed(factory, network) -> dict[str, str]:
    """The arguments a factory gives its network that are none of its own parameters (``cfg=D``), as ASTs."""
    own = set(inspect.signature(factory).parameters)
    for call in _calls(factory):
        if isinstance(call.func, ast.Name) and call.func.id == network.__name__:
            return {k.arg: ast.dump(k.value) for k in call.keywords
                    if not (isinstance(k.value, ast.Name) and k.value.id in own)}
    return {}
