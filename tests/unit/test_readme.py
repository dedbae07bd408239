"""The README's first-session block parses into the commands the newcomer test runs."""

from tests.conftest import REPO
from tests.support.readme import first_session


def test_the_first_session_block_names_the_documented_commands_in_order():
    commands = first_session(REPO / "README.md")
    assert commands[0] == "make run" and commands[-1] == "make serve"
    run_local = [i for i, c in enumerate(commands) if c.endswith("pipeline run-local")]
    make_run = [i for i, c in enumerate(commands) if c == "make run"]
    # both orders of the two that once shared a registry, and each command once at least
    assert len(run_local) == 2 and len(make_run) == 2 and make_run[0] < run_local[0] < make_run[1] < run_local[1]
    for needed in ("sslmae predict", "sslmae report", "sslmae promote", "dvc metrics show"):
        assert any(needed in c for c in commands), needed
    assert not any("#" in c for c in commands)
