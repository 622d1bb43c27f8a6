"""Run one fuzz target for as long as you like under atheris (coverage-guided).

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python tests/fuzz/long_run.py core -max_total_time=3600 [corpus_dir]

Targets: decoder, admin, core (see targets.py).  Without atheris it falls back
to hypothesis with many examples.  A crash leaves its input in crash-*; replay it
with `python tests/fuzz/long_run.py core crash-...`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGETS = ("decoder", "admin", "core")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    argv = [sys.argv[0], *sys.argv[2:]]
    try:
        import atheris
    except ImportError:
        from fuzz import targets

        target = getattr(targets, sys.argv[1] + "_target")
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        print("atheris is not installed: running hypothesis with 200,000 examples")
        given(st.binary(max_size=2000))(
            settings(max_examples=200_000, deadline=None, suppress_health_check=list(HealthCheck))(
                target
            )
        )()
        return
    import logging

    logging.disable(logging.CRITICAL)  # limit messages would flood the output
    with atheris.instrument_imports(include=["geartrain"]):  # coverage feedback
        from fuzz import targets
    atheris.Setup(argv, getattr(targets, sys.argv[1] + "_target"))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
