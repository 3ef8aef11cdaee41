"""The one error lifting reports: what could not be written, and where in the model (its module path)."""


class LiftError(Exception):
    pass
