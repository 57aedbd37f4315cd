import os

from hypothesis import HealthCheck, settings

# Deterministic property tests: a fixed seed (derandomize) and no deadline,
# since the integer model loops over samples in Python.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

