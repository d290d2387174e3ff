"""Test-suite settings: property tests draw the same examples on every run (derandomized), so
CI's verdict does not depend on luck; explore new examples with
``HYPOTHESIS_PROFILE=explore pytest ...`` (random, more examples)."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
