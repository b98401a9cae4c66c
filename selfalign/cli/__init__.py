"""The ``selfalign`` command line (typer).

One sub-command per stage plus run/report/models/data. Each group lives in its own module in this
package and registers itself here; a command that does not work yet is absent, not a stub.
Errors the user can fix (:class:`selfalign.errors.SelfalignError`) print as one line and exit
non-zero; ``--debug`` shows the traceback. Usage errors (unknown option or command, a missing
argument, a bad value) print the usage line and one error line and exit 2; Ctrl-C exits 130.
Options also answer to their underscore spelling (``--rejected_key`` = ``--rejected-key``).
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


_REGISTERED = False


def _register() -> None:
    """Add every command module's commands to ``app`` (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True
    import importlib
    import pkgutil

    import selfalign.cli as pkg

    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
        module = importlib.import_module(f"selfalign.cli.{mod}")
        reg = getattr(module, "register", None)
        if reg is not None:
            reg(app)


def _click_errors():
    """The exceptions module of the click that typer actually runs on.

    typer ≥ 0.2x bundles its own copy (``typer._click``), so ``click.ClickException`` from an
    installed click never matches what it raises; ``typer.BadParameter`` is re-exported from
    whichever click typer uses, so its module is the right one for both layouts.
    """
    return sys.modules[typer.BadParameter.__module__]


def _option_names(cmd) -> set[str]:
    return {o for p in getattr(cmd, "params", ()) if getattr(p, "param_type_name", "") == "option"
            for o in (*p.opts, *p.secondary_opts)}


def normalize_argv(root, argv: list[str]) -> list[str]:
    """OpenRLHF/TRL-style ``--chosen_key x`` → ``--chosen-key x`` when only the dashed option exists.

    Only options of the command being run (and the groups above it) are renamed, and only when
    the underscore spelling is not itself an option; everything after ``--`` is left alone.
    """
    names = _option_names(root)
    cur = root
    for tok in argv:
        if tok == "--":
            break
        if tok.startswith("-"):
            continue
        sub = getattr(cur, "commands", {}).get(tok)
        if sub is None:
            break
        cur = sub
        names |= _option_names(cur)
    out: list[str] = []
    for i, tok in enumerate(argv):
        if tok == "--":
            return out + argv[i:]
        opt, eq, value = tok.partition("=")
        if opt.startswith("--") and "_" in opt and opt not in names:
            dashed = "--" + opt[2:].replace("_", "-")
            if dashed in names:
                tok = dashed + eq + value
        out.append(tok)
    return out


def _usage_error(e) -> None:
    """The command's usage line, then the error on one line (click prints a multi-line box)."""
    ctx = getattr(e, "ctx", None)
    msg = " ".join(e.format_message().split())
    if ctx is not None:
        typer.echo(ctx.get_usage(), err=True)
        if ctx.command.get_help_option(ctx) is not None:
            msg += f" (see '{ctx.command_path} {ctx.help_option_names[0]}')"
    typer.echo(f"error: {msg}", err=True)


def _invoke(argv: list[str]):
    """Parse ``argv`` and run the command, letting every exception through to :func:`main`."""
    _register()
    cmd = typer.main.get_command(app)
    argv = normalize_argv(cmd, argv)
    with cmd.make_context("selfalign", argv) as ctx:
        return cmd.invoke(ctx)


def main(argv: list[str] | None = None) -> None:
    """Console entry point.

    Exit codes: 0 ok; 1 a failed command or bad data; 2 a usage or config error (with the usage
    line); 130 interrupted (Ctrl-C: "re-run the same command to continue").
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("SELFALIGN_DEBUG") == "1"
    errors = _click_errors()
    try:
        rc = _invoke(argv)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except SelfalignError as e:
        if debug:
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, typer.Abort):  # click raises Abort for Ctrl-C at a prompt
        typer.echo("interrupted; re-run the same command to continue", err=True)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except errors.ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `selfalign models`: the help, as click shows it
            e.show()
        elif isinstance(e, errors.UsageError):
            _usage_error(e)
        else:
            typer.echo(f"error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(e.exit_code)
    except Exception as e:
        if debug:
            raise
        typer.echo(f"error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        sys.exit(1)
