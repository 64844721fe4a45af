"""The lotto read model: ``lotto_draws``, one document per round."""

from __future__ import annotations

from infra import mongo
from infra.projections import Doc, Projection
from schemas import lotto
from schemas.envelope import Envelope


def reduce_draw(doc: Doc | None, env: Envelope) -> Doc | None:
    """A lotto round is recorded once: the first event for a round wins, later ones change nothing."""
    if env.type != lotto.DRAW_RECORDED or doc is not None:
        return None
    draw = lotto.DrawRecorded.model_validate(env.data)
    return {
        "_id": env.subject,
        "round": draw.round,
        "date": draw.date.isoformat(),
        "numbers": sorted(draw.numbers),
        "bonus": draw.bonus,
        "machine": draw.machine,
        "machine_type": lotto.machine_label(draw.machine),
        "synthetic": draw.synthetic,
        "source": draw.source,
        "import_id": draw.import_id,
        "recorded_at": env.time,
        "event_id": env.id,
    }


PROJECTIONS = (Projection(mongo.LOTTO_DRAWS, reduce_draw, (lotto.DRAW_RECORDED,)),)
