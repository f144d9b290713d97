"""Phones: registration, resets, device pools, and the ITL and CTL rules that keep phones away.

Phones keep no threads or timers: each stores when it (re)registers and its status is derived on
read. What phones see of the cluster (the presented CallManager and TVS certificates, whether the CTL
lists what is presented) is kept as a history of epochs, so a phone registering at time t is judged
by the cluster as it was at t.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from simulator import pki
from simulator.cluster.clock import Clock
from simulator.cluster.errors import CucmError
from simulator.cluster.record import Record

if TYPE_CHECKING:
    from simulator.cluster.node import Node

REGISTERED, UNREGISTERED = "Registered", "UnRegistered"
BLOCK_NONE, BLOCK_ITL, BLOCK_CTL = 0, 1, 2

DUPLICATE_EVERY = 100

PHONE_MODELS = (621, 622, 623, 36670, 36217)  # RIS model enums of a few 78xx/88xx phones

DEVICE_POOL_FORMAT = "DP-{short}"

CTL_NOT_PUBLISHER = "This command can be executed only on the publisher node"  # modelled
CTL_NOT_MIXED = (
    "The cluster is in non-secure mode. The CTL file can be updated only in mixed mode"  # modelled
)


class PhoneTable:
    """Phone registration state in flat lists; status is derived from timestamps on read."""

    def __init__(self, count: int, nodes: Sequence[Node], mixed: bool, rng: random.Random) -> None:
        cm_nodes = [n for n in nodes if n.runs_callmanager]
        subs = [n for n in cm_nodes if n.role == "subscriber"]
        homes = subs or cm_nodes
        self.count = count
        self.names = [f"SEP{0x001A2B000000 + i:012X}" for i in range(count)]
        self.node = [homes[i % len(homes)].index if homes else 0 for i in range(count)]
        # Every DUPLICATE_EVERY-th device is also listed (stale, UnRegistered) under a second
        # CallManager node, as RIS does for a phone that moved; selectCmDeviceExt omits those.
        nxt = {n.index: cm_nodes[(k + 1) % len(cm_nodes)].index for k, n in enumerate(cm_nodes)}
        dup = len(cm_nodes) > 1 and DUPLICATE_EVERY > 0
        self.also = [nxt[self.node[i]] if dup and i % DUPLICATE_EVERY == 0 else -1 for i in range(count)]
        self.model = [PHONE_MODELS[i % len(PHONE_MODELS)] for i in range(count)]
        self.secure = [i % 4 == 0 for i in range(count)]
        self.dirnum = [str(100000 + i) for i in range(count)]
        self.ip = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(count)]
        self.reg_at = [-math.inf] * count
        self.pending = [False] * count
        self.blocked = [BLOCK_NONE] * count
        self.snap_cm = [0] * count
        self.snap_tvs = [0] * count
        self.snap_itlr = [0] * count
        self.registered_ts = [int(time.time())] * count
        # Index into PhoneControl.device_pools; -1: the phone is in no pool.
        self.pool = [-1] * count
        self.index = {name: i for i, name in enumerate(self.names)}
        self.mixed = mixed
        self.rng = rng


class PhoneControl:
    """The rules over :class:`PhoneTable`: who registers when, resets, device pools, ITL and CTL."""

    def __init__(
        self,
        nodes: Sequence[Node],
        phones: PhoneTable,
        clock: Clock,
        record: Record,
        reregister_seconds: tuple[float, float],
        device_pool: str | None,
        itl_signer: str = "ITLRecovery",
        ris_lag: float = 0.0,
    ) -> None:
        """``device_pool`` names each CallManager node's device pool (``{short}``: the node's short
        name, ``{name}``: its FQDN); a phone belongs to its home node's pool. ``None``: phones belong
        to no pool. ``itl_signer`` is the identity that signs the ITL: ``CallManager`` up to 11.5,
        ``ITLRecovery`` from 12.0. ``ris_lag`` (seconds, already scaled) is how far RisPort70's view
        trails the phones' real state."""
        self.nodes = nodes
        self.phones = phones
        self.clock = clock
        self.lock: threading.RLock = clock.lock
        self.record = record
        self.reregister_seconds = reregister_seconds
        # One pool per CallManager node, as clusters are commonly built (pool -> CallManager group).
        self.device_pools: list[str] = []
        if device_pool is not None:
            pool_of_node: dict[int, int] = {}
            for n in nodes:
                if n.runs_callmanager:
                    pool_of_node[n.index] = len(self.device_pools)
                    self.device_pools.append(device_pool.format(short=n.short, name=n.name))
            if len(set(self.device_pools)) != len(self.device_pools):
                raise ValueError("device_pool must give each node its own pool name: use {short} or {name}")
            phones.pool = [pool_of_node.get(n, -1) for n in phones.node]
        if itl_signer not in ("CallManager", "ITLRecovery"):
            raise ValueError("itl_signer must be 'CallManager' or 'ITLRecovery'")
        self.itl_signer = itl_signer
        if ris_lag < 0:
            raise ValueError("ris_lag must be >= 0")
        self.ris_lag = ris_lag
        # With a RIS lag: per phone, its recent status changes (time, status, TimeStamp), oldest
        # first; the first entry is the status before the earliest change still needed.
        self._history: dict[int, list[tuple[float, str, int]]] = {}
        self.cm_epoch = 0
        self.tvs_epoch = 0
        self.itlr_epoch = 0
        self.ctl_entries: set[str] = set()
        self._update_ctl_entries()
        # (since, CallManager epoch, TVS epoch, ITLRecovery epoch, CTL lists what is presented)
        self._epochs: list[tuple[float, int, int, int, bool]] = [(-math.inf, 0, 0, 0, True)]
        self._epoch_times: list[float] = [-math.inf]

    # ------------------------------------------------------------------ what phones see
    def _ctl_ok(self) -> bool:
        if not self.phones.mixed:
            return True
        for n in self.nodes:
            if (
                n.runs_callmanager
                and pki.fingerprint(n.identities["CallManager"].presented) not in self.ctl_entries
            ):
                return False
        return pki.fingerprint(self.nodes[0].identities["CAPF"].presented) in self.ctl_entries

    def _record_epoch(self) -> None:
        now = self.clock.now()
        self._epochs.append((now, self.cm_epoch, self.tvs_epoch, self.itlr_epoch, self._ctl_ok()))
        self._epoch_times.append(now)

    def _update_ctl_entries(self) -> None:
        entries: set[str] = set()
        for n in self.nodes:
            if n.runs_callmanager:
                for t in ("CallManager", "CAPF"):
                    entries.add(pki.fingerprint(n.identities[t].installed))
                    entries.add(pki.fingerprint(n.identities[t].presented))
        self.ctl_entries = entries

    def presented_changed(self, cert_types: Sequence[str]) -> None:
        """A restart made these types' installed certificates the presented ones."""
        if "CallManager" in cert_types:
            self.cm_epoch += 1
        if "TVS" in cert_types:
            self.tvs_epoch += 1
        if "ITLRecovery" in cert_types:
            self.itlr_epoch += 1
        self._record_epoch()

    def state_id(self) -> int:
        """Bumps whenever what phones see changes (RIS StateInfo's StateId)."""
        return len(self._epochs)

    # ------------------------------------------------------------------ registration
    def _settle(self, i: int, now: float) -> None:
        p = self.phones
        if not p.pending[i] or p.reg_at[i] > now:
            return
        t = p.reg_at[i]
        _, cm, tvs, itlr, ctl_ok = self._epochs[bisect.bisect_right(self._epoch_times, t) - 1]
        cm_changed, tvs_changed = cm != p.snap_cm[i], tvs != p.snap_tvs[i]
        signer_changed = cm_changed if self.itl_signer == "CallManager" else itlr != p.snap_itlr[i]
        # A phone trusts a new ITL signed by the signer it knows, or one TVS vouches for; TVS changed
        # as well leaves it nobody to ask. The CallManager certificate (config files, SIP-TLS) is
        # checked through TVS the same way, so CallManager and TVS together strand it on any release.
        if tvs_changed and (signer_changed or cm_changed):
            p.blocked[i] = BLOCK_ITL
            p.reg_at[i] = math.inf
        elif p.mixed and p.secure[i] and not ctl_ok:
            p.blocked[i] = BLOCK_CTL
            p.reg_at[i] = math.inf
        else:
            p.snap_cm[i], p.snap_tvs[i], p.snap_itlr[i] = cm, tvs, itlr
            self._remember(i, t, REGISTERED, self.clock.cucm_time(t), now)
            p.pending[i] = False
            p.registered_ts[i] = self.clock.cucm_time(t)

    def _remember(self, i: int, t: float, status: str, stamp: int, now: float) -> None:
        """Keep a status change for RisPort70's lagging view (nothing to keep without a lag)."""
        if self.ris_lag <= 0:
            return
        p = self.phones
        history = self._history.get(i)
        if history is None:
            before = REGISTERED if not p.pending[i] and p.blocked[i] == BLOCK_NONE else UNREGISTERED
            history = self._history[i] = [(-math.inf, before, p.registered_ts[i])]
        history.append((t, status, stamp))
        cutoff = now - self.ris_lag
        while len(history) >= 2 and history[1][0] <= cutoff:
            history.pop(0)

    def ris_view(self, i: int, now: float) -> tuple[str, int]:
        """Status and TimeStamp of phone ``i`` as RisPort70 reports them: as they were ``ris_lag`` ago."""
        status = self.phone_status(i, now)
        history = self._history.get(i)
        if history is None:
            return status, self.phones.registered_ts[i]
        cutoff = now - self.ris_lag
        for t, old_status, stamp in reversed(history):
            if t <= cutoff:
                return old_status, stamp
        return history[0][1], history[0][2]

    def _unregister(self, i: int, now: float, until: float) -> None:
        self._settle(i, now)
        p = self.phones
        self._remember(i, now, UNREGISTERED, self.clock.cucm_time(now), now)
        p.pending[i] = True
        p.blocked[i] = BLOCK_NONE
        p.reg_at[i] = until
        p.registered_ts[i] = self.clock.cucm_time(now)  # TimeStamp: the last status change

    def schedule_registration(self, i: int, now: float) -> None:
        """Phone ``i``, unregistered until further notice, registers after a seeded delay."""
        p = self.phones
        if p.pending[i] and p.reg_at[i] == math.inf and p.blocked[i] == BLOCK_NONE:
            low, high = self.reregister_seconds
            p.reg_at[i] = now + self.clock.scaled(p.rng.uniform(low, high))

    def callmanager_stopped(self, node: Node) -> None:
        now = self.clock.now()
        for i in range(self.phones.count):
            if self.phones.node[i] == node.index:
                self._unregister(i, now, math.inf)

    def callmanager_started(self, node: Node) -> None:
        now = self.clock.now()
        for i in range(self.phones.count):
            if self.phones.node[i] == node.index:
                self.schedule_registration(i, now)

    def phone_status(self, i: int, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        self._settle(i, now)
        p = self.phones
        return REGISTERED if not p.pending[i] and p.blocked[i] == BLOCK_NONE else UNREGISTERED

    def phone_counts(self) -> dict[str, int]:
        with self.lock:
            self.clock.advance()
            now = time.monotonic()
            reg = itl = ctl = 0
            for i in range(self.phones.count):
                if self.phone_status(i, now) == REGISTERED:
                    reg += 1
                b = self.phones.blocked[i]
                itl += b == BLOCK_ITL
                ctl += b == BLOCK_CTL
            return {"total": self.phones.count, "registered": reg, "itl_mismatched": itl, "ctl_failed": ctl}

    # ------------------------------------------------------------------ resets
    def _callmanager_started(self, i: int) -> bool:
        return self.nodes[self.phones.node[i]].services["Cisco CallManager"].state == "Started"

    def reset_phone(self, name: str) -> None:
        """doDeviceReset: the phone unregisters now and re-registers after a seeded delay."""
        with self.lock:
            self.clock.advance()
            i = self.phones.index.get(name)
            if i is None:
                raise CucmError(f"Device not found with name {name}.", status=500)
            now = time.monotonic()
            self._unregister(i, now, math.inf)
            if self._callmanager_started(i):
                self.schedule_registration(i, now)
            self.record.phone_reset()

    def reset_automatically(self, node: Node, cert_type: str) -> int:
        """ "Phone Interaction on Certificate Update" set to reset automatically: CUCM resets the phones
        whose ITL holds the changed certificate (TVS, CAPF, ITLRecovery: every phone; CallManager: the
        phones of that node, whose TFTP serves it). Counted apart from ``phone_resets``."""
        with self.lock:
            now = self.clock.now()
            p = self.phones
            reset = 0
            for i in range(p.count):
                if cert_type == "CallManager" and p.node[i] != node.index:
                    continue
                self._unregister(i, now, math.inf)
                if self._callmanager_started(i):
                    self.schedule_registration(i, now)
                reset += 1
            self.record.phones_reset_automatically(node.name, cert_type, reset)
            return reset

    def device_pool_uuid(self, pool: str) -> str:
        return "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"devicepool/{pool}")).upper() + "}"

    def find_device_pool(self, name: str | None = None, pool_uuid: str | None = None) -> str | None:
        """The pool called ``name`` (case-insensitive, as CUCM matches names) or with ``pool_uuid``."""
        for pool in self.device_pools:
            if name is not None and pool.lower() == name.lower():
                return pool
            if (
                pool_uuid is not None
                and self.device_pool_uuid(pool).strip("{}").lower() == pool_uuid.strip("{}").lower()
            ):
                return pool
        return None

    def reset_device_pool(self, pool: str) -> int:
        """resetDevicePool: every phone of the pool unregisters and re-registers as after doDeviceReset.

        Returns how many phones were reset; each counts in ``phone_resets`` as a doDeviceReset would.
        """
        with self.lock:
            self.clock.advance()
            if pool not in self.device_pools:
                raise CucmError(f"Device pool not found with name {pool}.", status=500)
            k = self.device_pools.index(pool)
            p = self.phones
            now = time.monotonic()
            reset = 0
            for i in range(p.count):
                if p.pool[i] != k:
                    continue
                self._unregister(i, now, math.inf)
                if self._callmanager_started(i):
                    self.schedule_registration(i, now)
                reset += 1
            self.record.device_pool_reset(pool, reset)
            return reset

    # ------------------------------------------------------------------ CTL and ITL
    def update_ctl(self, node: Node) -> None:
        with self.lock:
            self.clock.advance()
            if node.role != "publisher":
                raise CucmError(CTL_NOT_PUBLISHER)
            if not self.phones.mixed:
                raise CucmError(CTL_NOT_MIXED)
            self._update_ctl_entries()
            self._record_epoch()
            self.record.ctl_updated()

    def itl_reset(self, node: Node) -> None:
        """`utils itl reset localkey`: phones accept the recovery-signed ITL and re-register."""
        with self.lock:
            self.clock.advance()
            now = time.monotonic()
            p = self.phones
            for i in range(p.count):
                self._settle(i, now)
                p.snap_cm[i], p.snap_tvs[i], p.snap_itlr[i] = self.cm_epoch, self.tvs_epoch, self.itlr_epoch
                if p.blocked[i] == BLOCK_ITL:
                    p.blocked[i] = BLOCK_NONE
                    self.schedule_registration(i, now)
            self.record.itl_reset()
