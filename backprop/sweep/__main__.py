"""`python -m backprop.sweep serve N`: the local Dask cluster's own process (see cluster.py).

Dask's spawned workers import this module again as `__mp_main__`: only `__main__` serves."""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"] or len(sys.argv) != 3 or not sys.argv[2].isdigit():
        print("usage: python -m backprop.sweep serve WORKERS", file=sys.stderr)
        sys.exit(2)
    from .cluster import serve_local_cluster

    serve_local_cluster(int(sys.argv[2]))
