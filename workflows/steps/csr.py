"""csr_generated: one CSR per node, made by CUCM, recorded with its SHA-256 and its names."""

from __future__ import annotations

from typing import Any

from cryptography import x509

from engine.api import Effect, Outcome, PermanentError, Registry, StepContext
from workflows import names as names_policy
from workflows.certkit import load_cert

from .common import deps, each_node, node_map, sha256_text, targets, unit
from .errors import classified
from .multi import multi_server, own_nodes


def generate_csrs(ctx: StepContext) -> Outcome:
    """Generate each node's CSR once, carrying the names of its current certificate.

    A CSR that went to a CA is never regenerated: CUCM keeps one CSR per node and type, and a new
    one would make the certificate the CA is signing unusable. If the process died between asking
    CUCM and recording the answer, the CSR CUCM now holds is adopted: it is the one an upload will
    be checked against. Only a CSR other than the one CUCM held before the request counts: the
    intent journals that one's SHA-256, so a request that never landed (its answer lost, or the
    process killed before it left) is sent again rather than an old CSR adopted.

    Names (:mod:`workflows.names`): the CN is the node's FQDN and the SANs those of the current
    certificate plus the configured extra names, sent as ``commonName``/``altNames`` (REST, 14+).
    Below 14 ``set csr gen`` takes no names: a CSR that lacks a name to keep stops the run here,
    before anything goes to a CA.
    """
    cucm = deps(ctx).cucm
    kind = unit(ctx)
    multi = multi_server(ctx)
    csrs = node_map(ctx, "csr")
    sent = node_map(ctx, "ca")
    policy = ctx.context.get("names_policy")

    def one(node: str) -> dict[str, Any]:
        current = load_cert(cucm.identity_certificate(node, kind))
        wanted = names_policy.csr_names(node, kind, current, policy)

        def reconcile(effect: Effect) -> Any:
            pem = cucm.current_csr(node, kind)
            if not pem:
                return None
            # An intent journaled before the previous CSR was recorded in it adopts any CSR.
            if "before_sha256" in effect.intent and sha256_text(pem) == effect.intent["before_sha256"]:
                return None
            return {"pem": pem, "adopted": True}

        def held() -> str | None:
            pem = cucm.current_csr(node, kind)
            return sha256_text(pem) if pem else None

        def generate() -> Any:
            if multi:
                # A multi-server CSR's names are CUCM's own: every node of the type's scope.
                return {"pem": cucm.generate_csr(node, kind, multi_server=True)}
            pem = cucm.generate_csr(
                node,
                kind,
                common_name=wanted.common_name,
                alt_names=wanted.alt_names,
                include_ou="OU" in wanted.subject,
            )
            return {"pem": pem}

        intent: dict[str, Any] = {"unit": kind, "before_sha256": held()}
        if multi:
            intent["multi_server"] = True
        else:
            intent.update(common_name=wanted.common_name, alt_names=list(wanted.alt_names))
        result = ctx.effect(node, "generate_csr", generate, intent=intent, reconcile=reconcile)
        pem = str(result["pem"])
        if multi:
            made: dict[str, Any] = {"pem": pem, "sha256": sha256_text(pem)}
            ctx.progress(node, f"multi-server CSR generated ({made['sha256'][:12]})")
            return made
        _check_names(node, kind, pem, wanted)
        made = {"pem": pem, "sha256": sha256_text(pem), "names": wanted.as_json()}
        ctx.progress(node, f"CSR generated ({made['sha256'][:12]}) for {', '.join(wanted.alt_names)}")
        return made

    csrs.update(each_node([n for n in own_nodes(ctx) if not (n in csrs and n in sent)], one))
    if multi:
        # One CSR names every node: each node's entry is the signer's.
        csrs.update({n: csrs[own_nodes(ctx)[0]] for n in targets(ctx)})
    return Outcome.advance(
        output={"csr": csrs},
        evidence={
            "csr_sha256": {n: csrs[n]["sha256"] for n in targets(ctx)},
            "csr_names": {n: (csrs[n].get("names") or {}).get("alt_names") for n in targets(ctx)},
        },
        reason=(
            f"one multi-server CSR on {own_nodes(ctx)[0]} naming {len(targets(ctx))} node(s)"
            if multi
            else f"{len(targets(ctx))} CSR(s) generated"
        ),
    )


def _check_names(node: str, kind: str, pem: str, wanted: names_policy.CsrNames) -> None:
    csr = x509.load_pem_x509_csr(pem.encode())
    lost = names_policy.lost_names(csr, wanted.keep)
    differs = {
        k: (v, got)
        for k, v in wanted.subject.items()
        if (got := names_policy.subject_fields(csr.subject).get(k)) is not None and got != v
    }
    if lost:
        raise PermanentError(
            f"the {kind} CSR CUCM made on {node} lacks {', '.join(lost)}, which the current certificate "
            "carries: nothing went to a CA. Below 14, `set csr gen` takes no names: generate the CSR in "
            "OS Administration > Security > Certificate Management > Generate CSR with those names as "
            "additional domains (then submit it with the run's certificate), or let the names go with "
            f"drop_names = [{', '.join(repr(n) for n in lost)}] in the cluster's configuration."
        )
    if differs:
        said = ", ".join(f"{k}={got!r} instead of {v!r}" for k, (v, got) in differs.items())
        raise PermanentError(
            f"the {kind} CSR CUCM made on {node} has {said} in its subject: CUCM takes the subject from "
            "the node's `set web-security` settings, which differ from the current certificate's. Fix: "
            "`set web-security ORGUNIT ORGNAME LOCALITY STATE` on the node (tomcat's self-signed "
            "certificate is regenerated; restart Cisco Tomcat), then retry the run."
        )


def register(registry: Registry) -> None:
    registry.step("generate_csrs")(classified(generate_csrs))
