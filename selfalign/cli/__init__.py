"""The ``selfalign`` command line (typer).

One sub-command per stage plus run/report/models/data. Each group lives in its own module in this
package and registers itself here; a command that does not work yet is absent, not a stub.
Errors the user can fix (:class:`selfalign.errors.SelfalignError`) print as one line and exit
non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from selfalign.errors import SelfalignError

app = typer.Typer(
    name="selfalign",
    help="Align language models with feedback they produce themselves: generate → judge → pair → "
    "train, round after round.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

_DEBUG = False


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")):
    global _DEBUG
    _DEBUG = debug or os.environ.get("SELFALIGN_DEBUG") == "1"


def _register() -> None:
    import importlib
    import pkgutil

    import selfalign.cli as pkg

    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
        module = importlib.import_module(f"selfalign.cli.{mod}")
        reg = getattr(module, "register", None)
        if reg is not None:
            reg(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    _register()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("SELFALIGN_DEBUG") == "1"
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except SelfalignError as e:
        if debug:
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted; re-run the same command to continue", err=True)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as e:  # click usage errors and friends
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if debug:
            raise
        typer.echo(f"error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        sys.exit(1)
