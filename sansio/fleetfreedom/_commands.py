"""Commands a FleetFreedom client sends, with constructors for the documented ones (spec §2-§4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import LocalProtocolError
from .._redact import redacted_repr
from ._types import key_field, list_command, upper_first

__all__ = ["Command"]


@dataclass(slots=True)
class Command:
    """A command to send: its name and body (the client core adds ``reqId``).

    ``timeout`` overrides the client's per-command timeout (seconds; ``0`` = none).
    Build the documented ones with the class methods (:meth:`login`, :meth:`get`, …).
    """

    name: str
    body: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None

    def __repr__(self) -> str:
        # A login or password change carries the password: shown as *** (kept in body).
        return redacted_repr(self)

    @property
    def response_name(self) -> str:
        """The name of the response that answers this command."""
        return self.name + "Response"

    # -- session ---------------------------------------------------------------------

    @classmethod
    def login(cls, username: str, password: str, user_agent: str) -> Command:
        """``login``: ``user_agent`` is checked against the company's allowed applications."""
        return cls("login", {"username": username, "password": password, "userAgent": user_agent})

    @classmethod
    def logout(cls) -> Command:
        """``logout``: always succeeds; the session is then not to be resumed."""
        return cls("logout")

    @classmethod
    def get_session_details(cls) -> Command:
        return cls("getSessionDetails")

    @classmethod
    def noop(cls) -> Command:
        """``noop``: the client-driven keep-alive."""
        return cls("noop")

    # -- subscriptions ---------------------------------------------------------------

    @classmethod
    def subscribe(cls, company: int | str, types: Iterable[str]) -> Command:
        """Add subscription types for one company (subscriptions are per company)."""
        return cls("subscribe", {"company": {"id": company}, "subscriptionTypes": list(types)})

    @classmethod
    def unsubscribe(cls, company: int | str, types: Iterable[str]) -> Command:
        return cls("unsubscribe", {"company": {"id": company}, "subscriptionTypes": list(types)})

    @classmethod
    def get_subscriptions_list(cls) -> Command:
        return cls("getSubscriptionsList")

    # -- objects ---------------------------------------------------------------------

    @classmethod
    def get(cls, object_type: str, key: object) -> Command:
        """``get<Type> {"<type>": {"id": key}}`` (``login`` instead of ``id`` for users)."""
        return cls("get" + upper_first(object_type), {object_type: {key_field(object_type): key}})

    @classmethod
    def remove(cls, object_type: str, key: object) -> Command:
        return cls(
            "remove" + upper_first(object_type), {object_type: {key_field(object_type): key}}
        )

    @classmethod
    def get_list(cls, object_type: str, company: int) -> Command:
        """``get<Types>List {"company": {"id": company}}`` (``asset`` → ``getAssetsList``)."""
        return cls(list_command(object_type), {"company": {"id": company}})

    @classmethod
    def merge(cls, object_type: str, obj: Mapping[str, Any]) -> Command:
        """``merge<Type>``: with the key it updates and must carry ``v``; without, it creates.

        Refused locally (:class:`LocalProtocolError`) when an update lacks ``v``, or when a
        new asset lacks ``company`` or ``kind``, since the server would refuse it anyway.
        """
        label = "merge" + upper_first(object_type)
        if object_type == "user":
            # Users are keyed by the login their creator picks: only v tells an update.
            if "login" not in obj:
                raise LocalProtocolError(f"{label}: a user needs its login")
            updating = "v" in obj
        else:
            updating = "id" in obj
        if updating:
            version = obj.get("v")
            if not (isinstance(version, list) and version):
                raise LocalProtocolError(f"{label}: an update needs the key and v")
        elif object_type == "asset" and ("company" not in obj or "kind" not in obj):
            raise LocalProtocolError(f"{label}: a new asset needs company and kind")
        return cls("merge" + upper_first(object_type), {object_type: dict(obj)})
