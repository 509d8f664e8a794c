"""Herald's benchmarks: `python -m bench` (`make bench`) writes bench/results.md."""
