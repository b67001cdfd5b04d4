"""The guild's audit trail."""

from __future__ import annotations

from bot.api.pages import items_page
from bot.api.registry import ApiCall, RouteTable
from bot.api.schemas import ActorOut, AuditEntryOut, AuditQuery, ItemsPage
from db.models import AuditEntry

routes = RouteTable()


def audit_entry_out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=entry.id,
        actor=ActorOut(type=entry.actor_type, id=entry.actor_id, name=entry.actor_name),
        action=entry.action,
        target_type=entry.target_type,
        target_id=entry.target_id,
        details=entry.details,
        created_at=entry.created_at,
    )


@routes.page("/api/v1/audit", "Audit trail, newest first", AuditEntryOut, AuditQuery, tag="audit")
async def list_audit(call: ApiCall) -> ItemsPage[AuditEntryOut]:
    page = await call.services.audit.list(call.guild_id, **call.query.model_dump())
    return items_page(ItemsPage[AuditEntryOut], page, audit_entry_out)
