"""What is made from a validated graph: PyTorch code (``python``), diagrams (``diagram``), statistics
(``stats``), and the graph interpreter that runs it (``interpret``, the only one that imports torch)."""
