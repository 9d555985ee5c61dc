"""The ``cosa-edge`` group: one-line errors for what the user can fix, the intended use in every help, the entry
point."""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Callable
from typing import Any

import click

from .. import __version__
from ..contract import INTENDED_USE
from ..errors import CosaEdgeError, CosaEdgeWarning


class FriendlyGroup(click.Group):
    """Turns the errors a user can fix into one line without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        original = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            # cosa-edge's own warnings are sentences for the user: one line, without Python's file:line prefix.
            if issubclass(category, CosaEdgeWarning):
                click.echo(f"warning: {message}", err=True)
            else:
                original(message, category, *args, **kwargs)

        warnings.showwarning = show
        try:
            return super().invoke(ctx)
        except CosaEdgeError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted; finished epochs are saved, and --resume continues a training run", err=True)
            sys.exit(130)
        finally:
            warnings.showwarning = original


def research_use(command: Callable[..., Any]) -> Callable[..., Any]:
    """End a command's help with the intended use, from the one statement every artifact and report carries.

    Put it directly above the function, so that click reads the docstring after this has extended it.
    """
    command.__doc__ = f"{inspect.cleandoc(command.__doc__ or '')}\n\n{INTENDED_USE}"
    return command


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cosa-edge")
@research_use
def cli() -> None:
    """MTL-COSA for breast ultrasound: train, evaluate, cross-validate, and deploy.

    Start with `cosa-edge demo`, which needs no data and no GPU.
    """
def main() -> None:
    from ..hardware import switch_off_dynamic_threading

    switch_off_dynamic_threading()  # before torch loads: the commands import it lazily
    cli(prog_name="cosa-edge")



