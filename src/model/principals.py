"""Who is calling (CONTRACT.md §5): a principal and its role. Authentication attaches one to each
connection; with auth off every caller is ANONYMOUS, an admin."""

from enum import StrEnum

import msgspec


class Role(StrEnum):
    """What a principal may do: everything, its own tasks, or the tasks of the types it serves."""

    ADMIN = "admin"  # everything
    SUBMITTER = "submitter"  # its own tasks
    WORKER = "worker"  # tasks of the types it serves


class Principal(msgspec.Struct, frozen=True):
    """The caller behind a request or connection, as its token says."""

    name: str
    role: Role
    types: frozenset[str] = frozenset()  # the types a worker serves

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


ANONYMOUS = Principal("anonymous", Role.ADMIN)
