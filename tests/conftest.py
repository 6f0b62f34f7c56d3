import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Keep the Bayes-limit cache of the test session out of the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AFFECTBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()
