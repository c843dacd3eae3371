"""What travels on the events channel: the routing fields and the event, encoded once by the
write that made it. The hub forwards the event's bytes to clients without decoding them."""

import msgspec

from jobcast.model.tasks import Event, EventKind, Task, public_event

NO_EVENT = msgspec.Raw(b"null")  # msgspec.Raw cannot be optional: JSON null stands for none
encode_envelope = msgspec.json.Encoder().encode


class Envelope(msgspec.Struct, frozen=True, omit_defaults=True):
    """One published event. `event` is as any reader may see it; an event that carries a
    traceback has it only in `full_event`, for those who may read it."""

    task_id: str
    seq: int
    task_type: str
    owner: str
    kind: EventKind
    event: msgspec.Raw
    full_event: msgspec.Raw = NO_EVENT


def envelope_for(task: Task, event: Event) -> Envelope:
    public = public_event(event)
    return Envelope(
        task_id=task.id,
        seq=event.seq,
        task_type=task.type,
        owner=task.owner,
        kind=event.event,
        event=msgspec.Raw(encode_envelope(public)),
        full_event=NO_EVENT if public is event else msgspec.Raw(encode_envelope(event)),
    )


decode_envelope = msgspec.json.Decoder(Envelope).decode
