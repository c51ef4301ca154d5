"""``rotator adopt``: name the secret applications use now."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from rotator.commands.context import api_key_argument, default_actor, get_config
from rotator.errors import ConfigError
from rotator.secret import Secret


def adopt(
    api_key: Annotated[str, typer.Argument(help="The key rotator cannot tell about.")],
    secret_id: Annotated[str, typer.Option(help="The Vonage secret id applications use now.")],
    secret_env: Annotated[
        str | None,
        typer.Option(
            help="Name of an environment variable holding that secret's value, to store it in "
            "Vault (never pass a value on the command line)."
        ),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the audit log.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who; defaults to the OS user.")] = None,
) -> None:
    """Tell rotator which Vonage secret is current, for a key it cannot tell (audited)."""
    api_key = api_key_argument(api_key)
    from rotator.adoption import adopt as do_adopt
    from rotator.services import build

    value = None
    if secret_env is not None:
        raw = os.environ.get(secret_env)
        if not raw:
            raise ConfigError(f"--secret-env: environment variable {secret_env} is not set")
        value = Secret(raw)
    services = build(get_config())
    try:
        adopted = do_adopt(
            services,
            api_key,
            secret_id,
            actor=actor or default_actor(),
            reason=reason,
            value=value,
        )
    finally:
        services.close()
    how = (
        "its value is in Vault as current"
        if adopted.stored == "record"
        else "Vault has no value for it; the next rotation replaces it and revokes the other"
    )
    from rotator.escape import terminal

    typer.echo(terminal(f"adopted {secret_id} as the current secret of {api_key}: {how}"))
