# SPDX-License-Identifier: Apache-2.0
"""Test helpers shared by every suite of the project (repo, agent, ingest, library and Molecule tests).

``tests/`` is on ``PYTHONPATH`` for all of them (``pytest.ini``, the Makefile and the Molecule base config set
it), so a helper written here once is imported as ``testsupport.<module>`` everywhere; never copy one into a
suite.
"""
