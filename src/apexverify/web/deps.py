"""Request dependencies shared by the API and the dashboard.

The unit of work belongs to the edge: a request that changes state gets ``WriteTx``, a session
whose transaction commits when the endpoint returns (before the response is sent, so a client
never sees a success that then rolls back) and rolls back when it raises. A read gets
``ReadTx``. Services take the session and never commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from ..batches.context import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _write_tx(services: Annotated[Services, Depends(get_services)]) -> Iterator[Session]:
    with services.store.write() as session:
        yield session


def _read_tx(services: Annotated[Services, Depends(get_services)]) -> Iterator[Session]:
    with services.store.read() as session:
        yield session


Svc = Annotated[Services, Depends(get_services)]
WriteTx = Annotated[Session, Depends(_write_tx, scope="function")]
ReadTx = Annotated[Session, Depends(_read_tx, scope="function")]
