"""The helper of the ``lookup`` primitive (``ops.indexing``), written into a generated module that uses it."""

INDEX_HELPERS = {
    "_index_table": '''def _index_table(
    sizes: tuple[int, ...], steps: tuple[int, ...], offset: int, shape: tuple[int, ...] | None = None,
    absolute: tuple[tuple[int, ...], ...] = (),
) -> Tensor:
    """``offset + steps[0] * i_0 + steps[1] * i_1 + ...``, plus ``|c[0] * i_0 + c[1] * i_1 + ...|`` for each ``c``
    of ``absolute``, for each index (i_0, i_1, ...) of a grid of ``sizes``, row by row (int64), flat or of
    ``shape``: a table of indices, as a relative position index.
    """
    table = torch.full((), offset, dtype=torch.int64)
    for size, step in zip(sizes, steps):
        table = table[..., None] + torch.arange(size) * step
    for coefs in absolute:
        term = torch.zeros((), dtype=torch.int64)
        for size, c in zip(sizes, coefs):
            term = term[..., None] + torch.arange(size) * c
        table = table + term.abs()
    return table.flatten() if shape is None else table.reshape(shape)''',
}
