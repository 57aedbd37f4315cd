"""Root conftest: command-line options for the test suite.

``--setup`` is registered here, at the repository root, and not in tests/conftest.py:
pytest reads options only from conftest files it loads before parsing the command
line, and with ``pytest -m hardware --setup setup.toml`` the unknown option's value
(``setup.toml``) is taken for a test path, so pytest starts from the root and never
loads tests/conftest.py in time ("unrecognized arguments: --setup"). A setup file
outside the repository: ``--setup=PATH`` (with ``=``, so it is not taken for a path).
"""


def pytest_addoption(parser):
    parser.addoption("--setup", action="store", default=None,
                     help="NI-DAQmx setup file for the hardware tests (pytest -m hardware --setup FILE)")
