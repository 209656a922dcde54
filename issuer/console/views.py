"""The console's pages: sign-in, overview, legacy migration, principals, keys, audit.

Every route but sign-in and the stylesheet needs a live console session (401 without
one). The signed-in operator becomes the request's admin ``Principal``, so the admin
API's visibility rules (``visible_user``, ``require_global``, ...) decide here too: a
tenant admin sees only their tenant, and signing keys and the audit log need an operator
of every tenant, exactly as ``keyswap:admin`` does at ``/admin/v1``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.exceptions import HTTPException

from ..admin.api import audit_page, principal, require_global
from ..admin.auth import Principal
from ..context import current_keyswap, request_session
from ..errors import OAuthError
from ..legacy.report import legacy_report
from ..lifecycle import InvalidValue
from ..representations import audit_event_view, client_view, key_view, tenant_view, user_view
from ..storage import (
    Conflict,
    NotFound,
    list_clients,
    list_signing_keys,
    list_tenants,
    list_users,
)
from . import figures
from .charts import bar_chart, line_chart
from .links import Operator, redeem_link

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)

#: Reached without a session: the sign-in pages and the stylesheet.
PUBLIC = frozenset(
    {
        "console.login_page",
        "console.login",
        "console.signed_out",
        "console.static",
        "console.oidc_login",
        "console.oidc_callback",
    }
)
#: The console's own stylesheet only; no script at all (the charts are server-drawn SVG).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
AUDIT_PAGE = 50
LEGACY_DAYS = 14


def _now() -> datetime:
    return current_keyswap().clock()


def current_operator() -> Principal | None:
    """Return the signed-in operator of this request, or None (no session, or expired)."""
    actor = session.get("actor")
    expires = session.get("expires")
    if not isinstance(actor, str) or not isinstance(expires, (int, float)):
        return None
    if _now().timestamp() >= expires:
        session.clear()
        return None
    tenant = session.get("tenant")
    return Principal(actor=actor, tenant=tenant if isinstance(tenant, str) else None)


@bp.before_request
def _guard() -> None:
    if request.endpoint not in PUBLIC:
        operator = current_operator()
        if operator is None:
            abort(401)
        # The admin API's rules read the caller from here.
        g.admin = operator
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValueError as exc:  # wtforms' ValidationError: missing, bad or expired token
            raise CSRFError(str(exc)) from None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    if request.endpoint != "console.static":
        # Pages name who owns what, and one shows a secret once: never cached.
        response.headers["Cache-Control"] = "no-store"
    return response


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    provider = current_keyswap().settings.console_oidc
    return render_template(
        f"console/{template}",
        operator=g.get("admin"),
        provider_name=provider.name if provider else None,
        **context,
    ), status


def _error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return _page("error.html", status, title=title, message=message)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[str, int]:
    code = error.code or 500
    if code == 401:
        return _page("signin.html", 401)
    return _error_page(code, error.name, error.description or error.name)


def _domain_error(error: Exception) -> tuple[str, int]:
    request_session().rollback()
    message = str(error.args[0]) if error.args else str(error)
    if isinstance(error, NotFound):
        return _error_page(404, "Not found", message)
    if isinstance(error, Conflict):
        return _error_page(409, "Not possible now", message)
    if isinstance(error, OAuthError):
        return _error_page(error.status, "Not allowed", error.description)
    return _error_page(422, "Invalid value", message)


for _error in (NotFound, Conflict, InvalidValue, OAuthError):
    bp.register_error_handler(_error, _domain_error)


@bp.app_template_filter("when")
def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- sign-in ----------------------------------------------------------------------------


@bp.get("/login/<secret>")
def login_page(secret: str) -> tuple[str, int]:
    """Show the sign-in button; the link is spent only by the POST (not by link previews)."""
    return _page("login.html", secret=secret)


@bp.post("/login")
def login() -> ResponseReturnValue:
    """Redeem a one-time link and start a session; a used or expired link is refused."""
    keyswap = current_keyswap()
    db = request_session()
    operator = redeem_link(db, keyswap.hasher, request.form.get("secret", ""), now=_now())
    if operator is None:
        db.rollback()
        return _error_page(
            403, "Link not valid", "This link was already used or has expired; make a new one."
        )
    db.commit()
    return start_session(operator)


def start_session(operator: Operator) -> ResponseReturnValue:
    """Sign ``operator`` in: a new session, then the overview."""
    session.clear()  # a new session: nothing from before sign-in carries over
    session.permanent = True
    session["actor"] = operator.actor
    session["tenant"] = operator.tenant
    session["expires"] = _now().timestamp() + current_keyswap().settings.console_session_ttl
    return redirect(url_for("console.overview"), 303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session."""
    session.clear()
    return redirect(url_for("console.signed_out"), 303)


@bp.get("/signed-out")
def signed_out() -> tuple[str, int]:
    """Say the session ended."""
    return _error_page(200, "Signed out", "Signed out.")


# --- pages ------------------------------------------------------------------------------


@bp.get("/")
def overview() -> tuple[str, int]:
    """Tokens issued and refused per minute over the last day, reasons, top refused."""
    now = _now()
    data = figures.overview(request_session(), current_keyswap().traffic, now, principal().tenant)
    labels = [
        (
            data["start"] + i * (data["end"] - data["start"]) / max(len(data["issued"]) - 1, 1)
        ).strftime("%H:%M")
        for i in range(len(data["issued"]))
    ]
    chart = line_chart(
        [("issued", "issued", data["issued"]), ("refused", "refused", data["refused"])],
        labels,
        tick_every=180,
    )
    return _page(
        "overview.html",
        data=data,
        chart=chart,
        reasons=bar_chart(data["reasons"]),
        counting=current_keyswap().traffic.enabled,
    )


@bp.get("/legacy")
def legacy() -> tuple[str, int]:
    """The migration off legacy keys: states, calls per day, late callers, owners to move."""
    now = _now()
    tenant = principal().tenant
    keys = [
        k for k in legacy_report(request_session(), now)["keys"] if principal().sees(k["tenant"])
    ]
    traffic = figures.legacy_traffic(
        request_session(), current_keyswap().traffic, now, tenant, LEGACY_DAYS
    )
    day_labels = [d.strftime("%m-%d") for d in traffic["days"]]
    progress = line_chart(
        [
            ("legacy key calls", "legacy", traffic["legacy"]),
            ("token calls", "issued", traffic["tokens"]),
        ],
        day_labels,
        tick_every=2,
    )
    return _page(
        "legacy.html",
        keys=keys,
        states=bar_chart(figures.keys_by_state(keys)),
        traffic=traffic,
        day_labels=day_labels,
        progress=progress,
        late=figures.called_after_sunset(keys, now),
        owners=figures.owners_without_client(keys),
    )


@bp.get("/principals")
def principals() -> tuple[str, int]:
    """Tenants, users and clients with their state, and the actions on each."""
    db, tenant, now = request_session(), principal().tenant, _now()
    return _page(
        "principals.html",
        tenants=[tenant_view(t) for t in list_tenants(db, tenant)],
        users=[user_view(u) for u in list_users(db, tenant)],
        clients=[client_view(c, now) for c in list_clients(db, tenant)],
    )


@bp.get("/keys")
def keys() -> tuple[str, int]:
    """Signing keys with their states and dates; rotate, or revoke a compromised one."""
    require_global("the signing keys")
    keyswap = current_keyswap()
    rows = list_signing_keys(request_session())
    views = [key_view(row, keyswap.settings.max_token_ttl, _now()) for row in rows]
    return _page("keys.html", keys=views, default_alg=keyswap.settings.signing_alg)


@bp.get("/audit")
def audit() -> tuple[str, int]:
    """The audit log, newest first, filtered by time, subject and action, page by page."""
    require_global("the audit log")
    events, cursor = audit_page(AUDIT_PAGE)
    filters = {k: request.args.get(k, "") for k in ("since", "until", "subject", "action")}
    next_args: dict[str, Any] = {k: v for k, v in filters.items() if v}
    return _page(
        "audit.html",
        events=[audit_event_view(e) for e in events],
        filters=filters,
        next_url=url_for("console.audit", cursor=cursor, **next_args) if cursor else None,
    )
