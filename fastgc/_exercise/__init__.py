"""The exercise: its two checks with its numbers (``checks``), its own code as written
(``original``: forward and backward passes, the Python loop) and ``fastgc demo`` (``demo``)."""
