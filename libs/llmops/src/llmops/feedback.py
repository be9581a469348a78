"""What the gateway and the feedback service agree on about a piece of feedback.

One user's feedback on one completion is one record: its id is derived from the tenant,
the completion and the user, so the gateway can answer it before the feedback service
has stored anything, and a later submission by the same user updates the same record.
"""

from __future__ import annotations

import uuid

_FEEDBACK_IDS = uuid.UUID("5b0c7f0e-4f1e-4a8e-9d55-2f1c8b7e6a01")

COMPLETION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
"""A completion id as the gateway makes them (`chatcmpl-<hex>`), or any id of that shape."""


def feedback_id_for(tenant: str, completion_id: str, user_id: str) -> str:
    """The id of `user_id`'s feedback on `completion_id` in `tenant` (a UUID, version 5)."""
    return str(uuid.uuid5(_FEEDBACK_IDS, "\x00".join((tenant, completion_id, user_id))))
