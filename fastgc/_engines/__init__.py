"""Execution: the engines that evaluate batches of perturbed costs (loop, stacked, numba,
framework; fastgc's own network engine lives in ``fastgc._network``), the registry that picks
one, the evaluator that chunks requests over them, workers, progress and the numba settings."""
