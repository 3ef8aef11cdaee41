"""The generated module's definitions besides the classes' bodies, as IR: constructor signatures (typed by the
values each parameter takes in the file), the spec's functions, the variants' factories, the backbone's
features class and its ``forward_taps`` method, and the module's constants.

Values become trees (``lower`` of their literals); the annotation a signature gives is typed from values
(``annotation``) and parsed into a tree once.
"""

from __future__ import annotations

from ...errors import SpecError
from ...lang import nodes as n
from ...sema.exprfold import fold, literal
from ...sema.values import BlockRef, OpRef
from . import ir, irparse, irprint
from .context import check_parameter_name
from .emit import SPAN
from .lower import lower

FEATURES_SUFFIX = "Features"
OUT_INDICES = ir.Arg("out_indices", irparse.expression("tuple[int, ...] | None"), ir.Const(None))
CHANNELS_LAST = "channels_last"  # every factory's switch to NHWC weights
# what a factory records on its model: the variant's name and the arguments it was given
VARIANT, ARGUMENTS = "archc_variant", "archc_arguments"


HELD = "Callable[..., nn.Module]"  # a parameter that holds an op built with arguments (a partial)


def annotation(values: list) -> str | None:
    """The type every value fits, as Python writes it; None where nothing useful is known."""
    kinds = set()
    for v in values:
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int):
            kinds.add("int")
        elif isinstance(v, float):
            kinds.add("float")
        elif isinstance(v, str):
            kinds.add("str")
        elif isinstance(v, OpRef) and v.args:  # partial(nn.BatchNorm2d, eps=0.001): torchvision's annotation
            kinds.add(HELD)
        elif isinstance(v, (BlockRef, OpRef)):
            kinds.add("type[nn.Module]")
        elif isinstance(v, tuple) and v and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
            kinds.add(f"tuple[{', '.join(['int'] * len(v))}]")
        elif isinstance(v, (list, tuple)):
            inner = annotation(list(v))
            kinds.add(f"list[{inner or 'object'}]" if isinstance(v, list) else "tuple")
        elif v is None:
            kinds.add("None")
    if kinds == {"int", "float"}:
        return "float"
    if HELD in kinds and kinds - {HELD, "None"} <= {"type[nn.Module]"}:  # a class or one built with arguments
        kinds -= {"type[nn.Module]"}
    if kinds == {"None"}:  # nothing known but the default: no annotation rather than a wrong one
        return None
    if len(kinds) == 1:
        return kinds.pop()
    if len(kinds) == 2 and "None" in kinds:
        return " | ".join(sorted(kinds - {"None"})) + " | None"
    if kinds and all(k == "int" or k.startswith("tuple[int") for k in kinds):
        return " | ".join(sorted(kinds, key=lambda k: (k != "int", k)))
    if kinds and kinds <= {"int", "float", "str", "bool"}:
        return " | ".join(sorted(kinds))
    return None


def as_tuple_annotation(text: str | None) -> str | None:
    """``list[X]`` -> ``tuple[X, ...]``, for a list default written as a tuple."""
    if text is None or not text.startswith("list[") or not text.endswith("]"):
        return None if text and text.startswith("list") else text
    return f"tuple[{text[5:-1]}, ...]"


def _typed(text: str | None) -> ir.Node | None:
    return None if text is None else irparse.expression(text)


def value(v) -> ir.Node:
    """A Python value of the spec (a number, a list, a block) as an expression of the generated module."""
    if isinstance(v, BlockRef):
        return ir.Name(v.name)
    return lower(literal(v, SPAN))


def param(p: n.Param, constants: dict, typed: str | None) -> ir.Arg:
    """A constructor's parameter, its default folded over the file's constants (a list default a tuple)."""
    if p.default is None:
        return ir.Arg(p.name, _typed(typed))
    default = fold(p.default, constants)
    if isinstance(default, n.ListExpr):  # parameters are never mutated: a tuple is the safe default
        default = n.ListExpr(default.items, default.span, tuple=True)
        typed = as_tuple_annotation(typed)
    tree = lower(default)
    if isinstance(tree, ir.Name) and tree.id not in constants:
        raise SpecError("a parameter's default must be a constant", p.default.span)
    return ir.Arg(p.name, _typed(typed), tree)


def init_header(params: list[ir.Arg]) -> list[str]:
    """``def __init__(self, ...) -> None:`` of a class, printed."""
    fdef = ir.FunctionDef("__init__", (ir.Arg("self"), *params), (), ir.Const(None))
    return irprint.Printer().header(fdef, "    ")


def function(func: n.FuncDef, constants: dict) -> ir.FunctionDef:
    """A spec's ``def`` as a module-level Python function."""
    local = {p.name for p in func.params} | {let.name for let in func.lets}
    for p in func.params:
        check_parameter_name(p)
    known = {k: v for k, v in constants.items() if k not in local}
    params = tuple(ir.Arg(p.name, default=None if p.default is None else lower(fold(p.default, known)))
                   for p in func.params)
    body = [ir.Assign(ir.Name(let.name), lower(fold(let.value, known))) for let in func.lets]
    body.append(ir.Return(lower(fold(func.result, known))))
    return ir.FunctionDef(func.name, params, tuple(body))


def factory(name: str, net: str, params: list[ir.Arg], arguments: list[tuple[str, ir.Node]], local: str, doc: str,
            backbone: bool) -> ir.FunctionDef:
    """``def resnet50(*, num_classes: int = 1000, ...) -> ResNet:``: the network with the variant's arguments
    (the features class when ``features_only`` asks for it), channels-last if asked."""
    model = ir.Name(local)
    build = ir.Assign(model, ir.Call(ir.Name(net), (), tuple(arguments)))
    if backbone:
        features = ir.Assign(model, ir.Call(ir.Name(net + FEATURES_SUFFIX), (),
                                            (*arguments, ("out_indices", ir.Name("out_indices")))))
        misuse = ir.BinOp("and", ir.is_not_none(ir.Name("out_indices")), ir.Unary("not", ir.Name("features_only")))
        error = ir.call("ValueError", ir.Const("out_indices picks feature maps: pass features_only=True too"))
        body = [ir.If(misuse, (ir.Raise(error),)), ir.If(ir.Name("features_only"), (features,), (build,))]
    else:
        body = [build]
    given = [a.name for a in params] + (["features_only", "out_indices"] if backbone else [])
    body.append(ir.Assign(ir.Attr(model, VARIANT), ir.Const(name), "archc.deploy rebuilds the model from these"))
    body.append(ir.Assign(ir.Attr(model, ARGUMENTS), ir.Call(ir.Name("dict"), (), tuple((g, ir.Name(g)) for g in given))))
    nhwc = ir.call(ir.Attr(model, "to"), memory_format=ir.attr("torch.channels_last"))
    body.append(ir.Return(ir.IfExp(ir.Name(CHANNELS_LAST), nhwc, model)))
    extra = [ir.Arg(CHANNELS_LAST, ir.Name("bool"), ir.Const(False))]
    if backbone:
        extra += [ir.Arg("features_only", ir.Name("bool"), ir.Const(False)), OUT_INDICES]
    return ir.FunctionDef(name, (ir.Arg("*"), *params, *extra), tuple(body), ir.Name(net), doc)


def taps_method(body: list, block: bool = False) -> ir.FunctionDef:
    """``forward_taps``: a network's feature map at every tap; a block's output and its tensor at every tap."""
    if block:
        doc = ("The block's output, and the tensor at every tap, in the order of ``self.feature_info``, as it is\n"
               "        (the network that calls the block makes maps of tokens).")
        return ir.FunctionDef("forward_taps", (ir.Arg("self"), ir.Arg("x", ir.Name("Tensor"))), tuple(body),
                              irparse.expression("tuple[Tensor, list[Tensor]]"), doc)
    return ir.FunctionDef("forward_taps", (ir.Arg("self"), ir.Arg("x", ir.Name("Tensor"))), tuple(body),
                          irparse.expression("list[Tensor]"),
                          "The feature map at every tap, in the order of ``self.feature_info``.")


def features_init(params: list[str], heads: list[str]) -> list:
    """``<Net>Features.__init__``'s body: the network built, its head dropped, the taps picked."""
    body: list = [ir.Expr(ir.Call(ir.Attr(ir.call("super"), "__init__"), (),
                                  tuple((p, ir.Name(p)) for p in params)))]
    if heads:
        body.append(ir.Delete(tuple(ir.Attr(ir.Name("self"), h) for h in heads), "the head, after the last tap"))
    body.append(ir.Assign(ir.attr("self.feature_info"),
                          ir.call("_FeatureInfo", ir.attr("self.feature_info"), ir.Name("out_indices"))))
    return body


def features_forward() -> list:
    features = ir.Name("features")
    picked = ir.Comp("list", ir.Index(features, ir.Name("i")), ((ir.Name("i"), ir.attr("self.feature_info.out_indices"),
                                                                 ()),))
    return [ir.Assign(features, ir.call("self.forward_taps", ir.Name("x"))), ir.Return(picked)]


def features_doc(net: str) -> str:
    return (f"{net} as a backbone (timm's ``features_only``): ``forward`` returns the feature maps of\n"
            f"    the taps that ``out_indices`` picks (all of them by default); ``feature_info`` gives their\n"
            f"    channels, reductions and names. The layers after the last tap are dropped.\n    ")


def names_a_class(tree: ir.Node, classes: set[str]) -> bool:
    """Whether a constant's value names one of the module's classes (it must then follow them)."""
    return any(isinstance(x, ir.Name) and x.id in classes for x in tree.walk())


__all__ = ["ARGUMENTS", "CHANNELS_LAST", "FEATURES_SUFFIX", "OUT_INDICES", "VARIANT", "annotation", "factory", "features_doc",
           "features_forward", "features_init", "function", "init_header", "names_a_class", "param", "taps_method",
           "value"]
