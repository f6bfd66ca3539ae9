"""`autotag serve` / `autotag rollback` refuse bad options with a one-line error before anything starts."""

import pytest

from dagster_autotag.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--pin", "p0_newcar"], "a pin is SCHEME=KIND or SCHEME=KIND:VERSION"),
        (["serve", "--pin", "p0_newcar=linear:x"], "'kind' or 'kind:version'"),
        (["serve", "--pin", "p0_newcar=linear", "--pin", "p0_newcar=textcnn"], "pinned twice"),
        (["serve", "--schemes", "p0_newcar", "--pin", "p1_guide=linear"], "not served"),
        (["serve", "--schemes", "p9_nope"], "unknown schemes ['p9_nope']"),
        (["serve", "--poll-s", "0"], "poll_s must be > 0"),
    ],
)
def test_bad_serve_options_are_one_line_errors(argv, message, capsys, location_env):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"autotag {argv[0]}: error: ") and message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "70000"], "between 1 and 65535"),
        (["serve", "--schemes", ","], "scheme names separated by commas"),
        (["rollback", "--scheme", "p0_newcar", "--kind", "linear", "--to", "1"], "--why"),
    ],
)
def test_malformed_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
