"""What travels on the events channel: routing fields plus the ready-to-send client frame."""

import msgspec

from src.tasks import EventKind

EVENT_FRAME_PREFIX = b'{"type":"event",'


NO_FRAME = msgspec.Raw(b"null")  # msgspec.Raw cannot be optional: JSON null stands for none


class Envelope(msgspec.Struct, frozen=True, omit_defaults=True):
    """One published event. `frame` is forwarded to clients byte for byte; an event that
    carries a traceback has it only in `full_frame`, for those who may read it."""

    task_id: str
    seq: int
    task_type: str
    owner: str
    event: EventKind
    frame: msgspec.Raw
    full_frame: msgspec.Raw = NO_FRAME


def event_frame(event_json: bytes) -> bytes:
    """`{"type": "event", ...EVENT}` from an encoded event, without decoding it."""
    return EVENT_FRAME_PREFIX + event_json[1:]


encode_envelope = msgspec.json.Encoder().encode
decode_envelope = msgspec.json.Decoder(Envelope).decode
