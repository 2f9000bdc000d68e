"""Speed with proof: virtual judges and the benchmark (run with ``python bench/run.py``)."""
