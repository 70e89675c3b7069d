"""The error tree: every error a user can see has a stable code and one French message.

``str(exc)`` stays English (logs, CLI); ``exc.message_fr`` is what a customer reads. Adapters
translate foreign exceptions into these at their edge with ``raise ... from exc``.
"""

from __future__ import annotations


class VocalcastError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "error"
    message_fr = "Une erreur est survenue."

    def __init__(self, detail: str = "", *, message_fr: str | None = None) -> None:
        super().__init__(detail or self.__class__.__doc__ or self.code)
        if message_fr is not None:
            self.message_fr = message_fr


class ConfigurationError(VocalcastError):
    """The engine's configuration does not allow this operation."""

    code = "configuration"
    message_fr = "Le service n'est pas configuré pour cette opération."


class StackError(VocalcastError):
    """A piece of the local stack could not be built, started or stopped."""

    code = "stack"


class NotFound(VocalcastError):
    """The object does not exist, or belongs to another account."""

    code = "not_found"
    message_fr = "Élément introuvable."


class InvalidInput(VocalcastError):
    """The input was refused; the code says why."""

    code = "invalid"
    message_fr = "Saisie invalide."

    def __init__(self, code: str, detail: str, *, message_fr: str | None = None) -> None:
        super().__init__(detail, message_fr=message_fr)
        self.code = code


class DatabaseUnavailable(VocalcastError):
    """PostgreSQL cannot be reached right now."""

    code = "database_unavailable"
    message_fr = "La base de données est momentanément indisponible."


class TelephonyUnavailable(VocalcastError):
    """Asterisk cannot be reached, or our Stasis app is not registered."""

    code = "telephony_unavailable"
    message_fr = "Le service téléphonique est momentanément indisponible."


class NoTrunk(ConfigurationError):
    """No usable trunk: configure one, or run in demo mode explicitly."""

    code = "no_trunk"
    message_fr = "Aucune ligne d'appel n'est configurée."
