"""Exit codes, and one sentence with the fix for every failure the operator's environment can cause."""

from __future__ import annotations

from typing import Any, Final

from pydantic import AliasChoices, ValidationError

from bot.settings import Settings

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONFIG: Final = 3
EXIT_UNREACHABLE: Final = 4
EXIT_INTERRUPTED: Final = 130

#: every exit code and what it means; `--help` and the README list them
EXIT_CODES: Final = (
    (EXIT_OK, "done"),
    (EXIT_FAILED, "the work failed: a job failed, `check` found a problem, or a token or key was refused"),
    (EXIT_USAGE, "the command line was wrong: an unknown option, a bad value, an unreadable image, an unusable --out"),
    (EXIT_CONFIG, "the configuration is wrong: a setting missing or invalid, an unusable database, a port in use"),
    (EXIT_UNREACHABLE, "a service could not be reached: Discord or a provider"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)


class CliError(Exception):
    """A sentence for the operator and the exit code to leave with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def env_name(field: str) -> str:
    """The environment variable an operator sets for a field (aliases name the same one)."""
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else []
        if field == name or field in choices:
            documented = f"FLUXCORD_{name.upper()}"
            return documented if documented in choices or not choices else choices[0]
    return field.upper()


def settings_error(exc: ValidationError) -> CliError:
    """The first invalid setting, named as the operator wrote it, with what is wrong and how to fix it."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else "a setting"
    name = env_name(field)
    reason = str(error["msg"]).removeprefix("Value error, ")
    reason = reason[0].lower() + reason[1:] if reason else "it is not valid"
    secret = "token" in name.lower() or "key" in name.lower()
    value: Any = error.get("input")
    if isinstance(value, str) and not secret and value not in reason:
        reason = f"{value!r}: {reason}"
    info = Settings.model_fields.get(field)
    default = info.default if info is not None else None
    if isinstance(default, str) and "://" in default:
        fix = f"set it to an address like {default}, or leave it empty for the default"
    else:
        fix = "fix it in .env or the environment, or leave it empty for the default"
    return CliError(f"{name} is not valid ({reason}); {fix}.", EXIT_CONFIG)


def unexpected(exc: BaseException) -> CliError:
    """Something Fluxcord did not plan for: say what, and how to see where."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return CliError(f"Unexpected error ({what}); run the command again with -v to see where it happened.", EXIT_FAILED)
