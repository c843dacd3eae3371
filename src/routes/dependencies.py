"""What handlers receive by injection: the process's services and the caller's principal."""

from typing import Any

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.types import Scope

from jobcast.actions.tasks import TaskActions
from jobcast.events.hub import Hub
from jobcast.model.principals import ANONYMOUS, Principal
from jobcast.routes.lifespan import Services
from jobcast.store.task_types import TypeStore


def provide_principal(scope: Scope) -> Principal:
    """The caller, as authentication attached it to the connection; with auth off, ANONYMOUS."""
    user = scope.get("user")
    return user if isinstance(user, Principal) else ANONYMOUS


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


def provide_actions(state: State) -> TaskActions:
    return provide_services(state).actions


def provide_types(state: State) -> TypeStore:
    return provide_services(state).types


def provide_hub(state: State) -> Hub:
    return provide_services(state).hub


DEPENDENCIES: dict[str, Any] = {
    "principal": Provide(provide_principal, sync_to_thread=False),
    "services": Provide(provide_services, sync_to_thread=False),
    "actions": Provide(provide_actions, sync_to_thread=False),
    "types": Provide(provide_types, sync_to_thread=False),
    "hub": Provide(provide_hub, sync_to_thread=False),
}

Caller = NamedDependency[Principal]
ServicesDep = NamedDependency[Services]
ActionsDep = NamedDependency[TaskActions]
TypesDep = NamedDependency[TypeStore]
HubDep = NamedDependency[Hub]
