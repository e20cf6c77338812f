"""autotweak-bench: the data builders of the replay benchmark (see ``BENCHMARK.md``).

``tasks`` loads and preprocesses the public tasks, ``design`` maps the Sobol design of a
family to configs, ``families`` trains one config and records its learning curve, and
``build`` (``python -m benchmarks.build``) writes one Parquet file per family. ``replay``
replays search methods on those files through the real engine, and ``run``
(``python -m benchmarks.run``) writes the comparison to ``RESULTS.md``.
"""
