"""Deployment: a trained model's inference form, written out from its spec (``rewrite.py``), matched to the
trained model's graph (``plan.py``) and filled with its folded weights (``convert.py``, which imports torch)."""

from .rewrite import Rewrites, deploy_program


def deploy(model, variant=None, **kwargs):
    """``archc.deploy``: see ``convert.deploy`` (imports torch)."""
    from .convert import deploy as run

    return run(model, variant, **kwargs)


__all__ = ["Rewrites", "deploy", "deploy_program"]
