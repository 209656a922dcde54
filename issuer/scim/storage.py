"""keyswap's users as SCIM ``User`` resources (RFC 7643 §4.1), for scim2-server's handler.

scim2-server does the protocol (validation, PUT and PATCH application, filters, errors);
this storage maps its calls onto ``keyswap.issuer.lifecycle``, so a provider's ``active: false``
is the CLI's ``users deactivate`` (same cascade, same audit event, the SCIM caller as
actor) and DELETE is ``users delete`` (a tombstone). Everything happens in the caller's
tenant: another tenant's users, service accounts and tombstones do not exist here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from scim2_models import (
    InvalidValueException,
    Meta,
    MutabilityException,
    NotFoundException,
    Resource,
    ResourceType,
    ResponseParameters,
    SearchRequest,
    UniquenessException,
    User,
)
from scim2_models.path import CompareOperator, Comparison
from scim2_server.storage import ScimStorage, SearchPage
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..lifecycle import InvalidValue, add_user, set_user_status
from ..models import ScimProfile, Tenant, UserKind, UserStatus
from ..models import User as KeyswapUser
from ..storage import Conflict

#: The attributes a filter may compare with ``eq`` in SQL; anything else is matched in memory.
_COLUMNS = {"username": KeyswapUser.name, "externalid": ScimProfile.external_id}


class KeyswapStorage(ScimStorage):
    """One tenant's users, read and changed in one request's session.

    ``clock`` is the app's: it stamps profile and status changes, as it stamps tokens.
    """

    def __init__(
        self, session: Session, tenant: str, actor: str, clock: Callable[[], datetime]
    ) -> None:
        self.session = session
        self.tenant = tenant
        self.actor = actor
        self.clock = clock

    # --- reading --------------------------------------------------------------------------

    def _query(self) -> Any:
        return (
            select(KeyswapUser, ScimProfile)
            .join(Tenant, Tenant.id == KeyswapUser.tenant_id)
            .outerjoin(ScimProfile, ScimProfile.user_id == KeyswapUser.id)
            .where(
                Tenant.name == self.tenant,
                KeyswapUser.kind == UserKind.USER,
                KeyswapUser.status != UserStatus.DELETED,
            )
            .order_by(KeyswapUser.created_at, KeyswapUser.id)
        )

    def _load(self, user_id: str) -> tuple[KeyswapUser, ScimProfile | None]:
        row = self.session.execute(self._query().where(KeyswapUser.id == user_id)).first()
        if row is None:
            raise NotFoundException(detail=f"no user {user_id!r}")
        return row[0], row[1]

    @staticmethod
    def _resource(user: KeyswapUser, profile: ScimProfile | None) -> User[Any]:
        modified = max(user.status_changed_at, profile.updated_at if profile else user.created_at)
        state = (
            f"{user.name}|{profile and profile.external_id}|{profile and profile.display_name}|"
            f"{user.status.value}|{modified.isoformat()}"
        )
        return User(
            id=user.id,
            user_name=user.name,
            external_id=profile.external_id if profile else None,
            display_name=profile.display_name if profile else None,
            active=user.status is UserStatus.ACTIVE,
            meta=Meta(
                resource_type="User",
                created=user.created_at,
                last_modified=modified,
                version='W/"' + hashlib.sha256(state.encode()).hexdigest()[:16] + '"',
            ),
        )

    def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        """Return one of the tenant's users."""
        return self._resource(*self._load(resource_id))

    def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        """Return a page of the tenant's users matching the request's filter."""
        query = self._query()
        scim_filter = search_request.filter
        node = scim_filter.ast if scim_filter is not None else None
        pushed = (
            isinstance(node, Comparison)
            and node.op == CompareOperator.eq
            and isinstance(node.value, str)
            and str(node.attr_path).lower() in _COLUMNS
        )
        if pushed:
            assert isinstance(node, Comparison)
            column = _COLUMNS[str(node.attr_path).lower()]
            # RFC 7643 §4.1.1: userName is case-insensitive; externalId is case-exact.
            if column is KeyswapUser.name:
                query = query.where(func.lower(column) == str(node.value).lower())
            else:
                query = query.where(column == node.value)
        found = [self._resource(user, profile) for user, profile in self.session.execute(query)]
        if scim_filter is not None and not pushed:
            found = [r for r in found if scim_filter.match(r)]
        start = search_request.start_index_0 or 0
        stop = None if search_request.count is None else start + search_request.count
        return SearchPage(len(found), list(found[start:stop]))

    # --- changing -------------------------------------------------------------------------

    def _save_profile(self, user: KeyswapUser, resource: User[Any]) -> None:
        profile = self.session.get(ScimProfile, user.id) or ScimProfile(user_id=user.id)
        profile.external_id = resource.external_id
        profile.display_name = resource.display_name
        profile.updated_at = self.clock()
        self.session.add(profile)
        self.session.flush()

    def _set_active(self, user: KeyswapUser, active: bool | None) -> None:
        if active is None:
            return
        if active and user.status is not UserStatus.ACTIVE:
            set_user_status(
                self.session, user.name, UserStatus.ACTIVE, now=self.clock(), actor=self.actor
            )
        elif not active and user.status is UserStatus.ACTIVE:
            set_user_status(
                self.session,
                user.name,
                UserStatus.DEACTIVATED,
                now=self.clock(),
                actor=self.actor,
                reason="the identity provider set active to false (SCIM)",
            )

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        """Create a user in the tenant; ``active: false`` creates it deactivated."""
        assert isinstance(resource, User)
        try:
            with self.session.begin_nested():
                user = add_user(
                    self.session, str(resource.user_name), tenant=self.tenant, actor=self.actor
                )
        except Conflict:
            raise UniquenessException(detail=f"userName {resource.user_name!r} is taken") from None
        except InvalidValue as exc:
            raise InvalidValueException(detail=str(exc)) from None
        self._save_profile(user, resource)
        self._set_active(user, resource.active)
        return self._resource(user, self.session.get(ScimProfile, user.id))

    def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        """Replace a user's attributes; a change of ``active`` is a status change with cascade."""
        assert isinstance(resource, User)
        user, _profile = self._load(str(resource.id))
        if resource.user_name is not None and resource.user_name.lower() != user.name.lower():
            # keyswap's user names are the stable handle every command and audit event uses.
            raise MutabilityException(detail="keyswap does not rename users; userName is fixed")
        self._save_profile(user, resource)
        self._set_active(user, resource.active)
        return self._resource(user, self.session.get(ScimProfile, user.id))

    def delete(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        expected_version: str | None = None,
    ) -> None:
        """Delete a user, keeping the tombstone so its credentials' refusals say why."""
        user, _profile = self._load(resource_id)
        set_user_status(
            self.session,
            user.name,
            UserStatus.DELETED,
            now=self.clock(),
            actor=self.actor,
            reason="deleted by the identity provider (SCIM)",
        )
