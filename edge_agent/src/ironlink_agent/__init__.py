# SPDX-License-Identifier: Apache-2.0
"""Ironlink gateway agent."""

__version__ = "0.1.0"
