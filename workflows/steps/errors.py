"""How adapter errors count for the engine's retry policy."""

from __future__ import annotations

import functools
from collections.abc import Callable

from adapters.ca.port import CaMisconfigured, CaRejected, CaUnreachable
from adapters.cucm.port import CucmError, CucmRejected, CucmUnreachable
from engine.api import Outcome, PermanentError, StepContext, TransientError


def classified(step: Callable[[StepContext], Outcome]) -> Callable[[StepContext], Outcome]:
    """CUCM or the CA refusing, bad credentials, an unknown host key or certificate: permanent
    (retrying cannot help, an operator must act). Unreachable or throttled: transient."""

    @functools.wraps(step)
    def run(ctx: StepContext) -> Outcome:
        try:
            return step(ctx)
        except (CucmUnreachable, CaUnreachable) as exc:
            raise TransientError(str(exc)) from exc
        except CucmRejected as exc:
            raise PermanentError(
                f"{exc} (CUCM said: {exc.cucm_message})" if exc.cucm_message not in str(exc) else str(exc)
            ) from exc
        except (CucmError, CaRejected, CaMisconfigured) as exc:
            raise PermanentError(str(exc)) from exc

    return run
