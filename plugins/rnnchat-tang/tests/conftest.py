"""Every test runs with its own RNNCHAT_HOME and a freshly loaded plugin host."""

from rnnchat.testing import isolated_rnnchat  # noqa: F401 - an autouse fixture
