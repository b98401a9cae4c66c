"""Side-by-side benchmarks of selfalign against its peers (TRL, plain ``model.generate``).

Not tests: ``python -m benchmarks.run --quick | --full | --smoke`` (see :mod:`benchmarks.run`).
"""
