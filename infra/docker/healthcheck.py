"""Container health check: GET /healthz on this service's own port.

The slim Python images carry no curl, so the image's HEALTHCHECK runs this with the
standard library. `LLMOPS_SERVICE` is set by the image; the port is the one the service
itself reads (`<NAME>_PORT`, e.g. GATEWAY_PORT). Exit 0 is healthy, anything else is not.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    service = os.environ["LLMOPS_SERVICE"]
    port = os.environ[f"{service.upper()}_PORT"]
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:  # URLError/HTTPError included: refused, timeout, non-2xx status
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
