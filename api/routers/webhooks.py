"""Webhooks: the caller's signing secret (fetch, rotate) and a generation's delivery record.

A generation submitted with ``webhook_url`` gets its events POSTed there as Standard Webhooks
messages, signed with this secret (``webhook-signature: v1,<base64 HMAC-SHA256>``); receivers verify
them with any Standard Webhooks library, e.g. ``standardwebhooks.Webhook(secret).verify(body, headers)``.
"""

from fastapi import APIRouter
from scenechain.protocol import WebhookDelivery, WebhookDeliveryList, WebhookSecret

from api.deps import GenerationId, Service, User
from store.webhooks import DeliveryRecord, WebhookSecretRecord

router = APIRouter(tags=["webhooks"])


def _delivery(record: DeliveryRecord) -> WebhookDelivery:
    return WebhookDelivery(
        id=record.id,
        event=record.event,  # type: ignore[arg-type]
        url=record.url,
        status=record.status,
        attempts=record.attempts,
        next_attempt_at=record.next_attempt_at if record.status == "pending" else None,
        created_at=record.created_at,
        delivered_at=record.delivered_at,
        last_status_code=record.last_status_code,
        last_error=record.last_error,
    )


def _secret(record: WebhookSecretRecord) -> WebhookSecret:
    return WebhookSecret(secret=record.secret, created_at=record.created_at)


@router.get("/api/webhooks/secret", response_model=WebhookSecret)
async def webhook_secret(user: User, service: Service) -> WebhookSecret:
    """The caller's webhook signing secret (created on first fetch, or on the first webhook submission)."""
    return _secret(await service.webhook_secret(user))


@router.post("/api/webhooks/secret/rotate", response_model=WebhookSecret)
async def rotate_webhook_secret(user: User, service: Service) -> WebhookSecret:
    """Replace the caller's signing secret; every delivery attempt from now on is signed with the new one."""
    return _secret(await service.rotate_webhook_secret(user))


@router.get("/api/generations/{generation_id}/webhooks", response_model=WebhookDeliveryList)
async def webhook_deliveries(
    generation_id: GenerationId, user: User, service: Service
) -> WebhookDeliveryList:
    """The webhook messages of one of the caller's generations and their delivery state."""
    records = await service.webhook_deliveries(generation_id, user)
    return WebhookDeliveryList(generation_id=generation_id, items=[_delivery(r) for r in records])
