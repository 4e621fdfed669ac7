"""``hydra/sweeper=search``: hydra-optuna-sweeper's ``OptunaSweeper`` with ganlab's additions.

Hydra instantiates a sweeper only from a class defined in the ``hydra_plugins`` namespace, so the
class lives here; what it adds (jobs numbered by trial across invocations of a stored study, a
clear end when every trial failed, the best trial as a command) is :func:`ganlab.apps.search.run_study`.
"""

from __future__ import annotations

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # the sweeps extra (pip install 'ganlab[sweeps]') is not installed: no such sweeper
    OptunaSweeper = None

if OptunaSweeper is not None:  # without the Optuna plugin there is no OptunaSearch to import (ganlab.apps.search.register_sweeper)

    class OptunaSearch(OptunaSweeper):
        """The Optuna sweeper, run by :func:`ganlab.apps.search.run_study`."""

        def sweep(self, arguments: list[str]) -> None:
            from ganlab.apps.search import run_study

            return run_study(self.sweeper, arguments)
