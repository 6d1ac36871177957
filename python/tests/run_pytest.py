"""Runs pytest for meson's suite 'python': exit 5 (no test collected) is a failure, not a pass."""
import sys

import pytest

rc = pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]])
if rc == pytest.ExitCode.NO_TESTS_COLLECTED:
    print("run_pytest: no test was collected: the suite is broken", file=sys.stderr)
    sys.exit(1)
sys.exit(int(rc))
