"""The helper of the ``coordinates`` primitive (``ops.numeric``), written into a generated module that uses it."""

NUMERIC_HELPERS = {
    "_coordinates": '''def _coordinates(x: Tensor, shape: tuple[int, ...], dim: int) -> Tensor:
    """A table of ``shape`` for each sample of ``x`` (in its dtype, on its device) whose entries are their index
    along ``dim``, counted with the batch as 0; the values of ``x`` are not read.
    """
    sizes = [1] * (len(shape) + 1)
    sizes[dim] = shape[dim - 1 if dim > 0 else dim]
    index = torch.arange(sizes[dim], dtype=x.dtype, device=x.device)
    return index.view(sizes).expand(x.shape[0], *shape)''',
}
