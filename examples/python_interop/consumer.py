"""A Python consumer of objects a C++ producer stored (producer.cc).

Reads proxy references, one a line, from stdin; turns each into a real
Python ProxyStore proxy (interop/python/proxystore_reference.py) and uses it
as the object it stands for: it resolves from the shared directory on first
use.

    producer /shared/dir | python3 consumer.py
"""

from __future__ import annotations

import os
import sys

sys.path.insert(
    0,
    os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                 'interop', 'python'),
)

from proxystore.proxy import extract  # noqa: E402
from proxystore_reference import proxy_from_reference  # noqa: E402


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        proxy = proxy_from_reference(line)
        kind = type(extract(proxy)).__name__
        if kind == 'ndarray':
            print(f'ndarray of {len(proxy)}: sum {float(proxy.sum())}')
        else:
            print(f'{kind}: {extract(proxy)!r}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
