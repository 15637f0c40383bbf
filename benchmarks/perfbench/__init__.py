"""The parts of the performance benchmark (benchmarks/perf.py runs them; docs/performance.md
explains every number):

- `inputs`: the photos (from --faces-dir), the inputs made from them, the floor, and the
  machine's own scaling with no HTTP (ComputeProbe);
- `service`: `facefuse serve` started on 127.0.0.1 and what its processes use (memory, CPU);
- `client`: the loopback HTTP client the load is sent with;
- `load`: latency, throughput, saturation and memory runs against the service;
- `report`: the typed results, the ratios and targets, the table and the JSON.
"""
