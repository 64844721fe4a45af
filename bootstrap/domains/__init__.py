"""The one list of domains the composition root reads. Adding a domain: its packages in the top-level folders,
its declaration beside these, and one line here."""

from __future__ import annotations

from bootstrap.domain import Domain
from bootstrap.domains import canary, lotto, rl, tabular

DOMAINS: tuple[Domain, ...] = (
    tabular.DOMAIN,
    lotto.DOMAIN,
    rl.DOMAIN,
    canary.DOMAIN,
)


def install() -> tuple[Domain, ...]:
    """Registers every domain with the platform (topics, read models, indexes) and returns the list."""
    from bootstrap.domain import install as install_domains

    install_domains(DOMAINS)
    return DOMAINS
