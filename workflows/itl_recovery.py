"""ITLRecovery, which signs the ITL and the tokenless CTL from 12.0: what the tool says about it.

The tool reads ITLRecovery and never regenerates it (CUCM reference part 2 §3): regenerating it
resets every phone's trust, twice, and must not coincide with CallManager or TVS work.
"""

from __future__ import annotations

DEFAULT_ITL_RECOVERY_MIN_DAYS = 90.0
"""CallManager, CallManager-ECDSA and TVS runs stop at a gate when ITLRecovery expires sooner.

Why 90 days: regenerating ITLRecovery resets every phone twice and SG14 says never together with
CallManager or TVS work, so a CallManager or TVS renewal within a few weeks of it would mean two
phone-wide disruptions close together, the second one re-signing the ITL the first just changed.
Ninety days leaves a renewal cycle (``renew_before_days``, 30 by default, plus CA turnaround) on
either side. It is well inside the 365 days at which ``check`` starts reporting ITLRecovery, so a
team that acts on ``check`` never meets the gate; a cluster may set ``itl_recovery_min_days``."""

ITL_RECOVERY_GUIDANCE = (
    "ITLRecovery signs the ITL and CTL files phones trust; cucm-renew never regenerates it. Before it "
    "expires, plan a window (SG14): export ITLRecovery.p12 (`file get tftp ITLRecovery.p12`) and take a "
    "DRS backup; on the publisher run `set cert regen ITLRecovery`, then `utils itl reset localkey` "
    "(mixed mode: check `show ctl`, then `utils ctl reset localkey`), reset the phones in batches and "
    "confirm they register, restart Cisco Tftp (mixed mode: `utils ctl update CTLFile`), and reset the "
    "phones again. Never together with CallManager or TVS work."
)
