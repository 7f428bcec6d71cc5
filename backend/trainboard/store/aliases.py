"""Model aliases: a name that points at one checkpoint of one run, and moves when set again."""

from __future__ import annotations

from sqlmodel import Session, col, select

from trainboard.models import ModelAlias, utcnow
from trainboard.store.checkpoints import find_checkpoint
from trainboard.store.errors import NotFound
from trainboard.store.runs import get_run


def set_alias(session: Session, *, name: str, run_id: int, checkpoint_id: str) -> ModelAlias:
    """Point `name` at the run's checkpoint (`best` and `latest` are resolved now: the alias
    stays on that checkpoint until it is set again); NotFound for a missing run or checkpoint."""
    get_run(session, run_id=run_id)
    checkpoint = find_checkpoint(session, run_id=run_id, checkpoint_id=checkpoint_id)
    alias = session.get(ModelAlias, name) or ModelAlias(
        name=name, run_id=run_id, checkpoint_name=checkpoint.name
    )
    alias.run_id, alias.checkpoint_name, alias.updated_at = run_id, checkpoint.name, utcnow()
    session.add(alias)
    session.flush()
    return alias


def get_alias(session: Session, *, name: str) -> ModelAlias:
    """The alias `name`; NotFound if there is none."""
    alias = session.get(ModelAlias, name)
    if alias is None:
        raise NotFound(f"there is no alias {name!r}")
    return alias


def list_aliases(session: Session) -> list[ModelAlias]:
    """Every alias, ordered by name."""
    return list(session.exec(select(ModelAlias).order_by(col(ModelAlias.name))).all())


def delete_alias(session: Session, *, name: str) -> None:
    """Delete the alias `name` (not its checkpoint); NotFound if there is none."""
    session.delete(get_alias(session, name=name))
