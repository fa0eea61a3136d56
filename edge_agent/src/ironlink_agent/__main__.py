# SPDX-License-Identifier: Apache-2.0
"""``python -m ironlink_agent``: same as the ``ironlink-agent`` console script."""

import sys

from ironlink_agent.cli import main

if __name__ == "__main__":
    sys.exit(main())
