"""``python -m fastgc``: the same program as the ``fastgc`` command."""

from fastgc._cli import main

raise SystemExit(main())
