"""Erasure of one data subject among N ledger events (issue 19: aim under 1 s, the chain
still verifying against its anchors), on SQLite and PostgreSQL.

The keyed, anchored ledger of ``bench/audit.py`` (``build_keyed``) is built per backend
in two forms: as the writer writes rows now (a person as ``erased:<digest>``, the name
in ``audit_identities``) and as it wrote them before (the name in the row, which the
erasure must rewrite). Each run erases a different subject (~2.5 % of the events,
~34,000 content rows) in a fresh process (``audit.py``'s ``erase`` worker): timed is
``SubjectService.erase`` (the data unreadable and unlinked, the erasure recorded);
the physical cleanup after it (deleting the now unreadable content rows in batches) is
timed apart; the ledger is then verified against its anchors and scanned for a row
still naming the person.

    uv run python bench/erase.py [--events 1000000] [--runs 3] [--no-pg] [--keep DIR]

``--keep DIR`` keeps the SQLite builds there and reuses them (copies: each run erases).
Writes bench/results/erase.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import audit

RESULTS = audit.ROOT / "bench" / "results" / "erase.json"
SCHEMA = "bench_erase_keyed"
FORMS = {"names apart (now)": False, "names in rows (before)": True}


def _build(
    backend: str, form: bool, events: int, tmp: Path, keep: Path | None, pg_url: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(worker config, build result) of a fresh ledger of ``form``. SQLite builds (file
    and anchors) are kept in ``keep`` and copied from there when it is given."""
    tag = "rows" if form else "apart"
    home = keep if keep is not None and backend == "sqlite" else tmp
    cfg: dict[str, Any] = {"key_path": str(home / "signing.pem"), "seed": 19}
    if backend == "postgresql":
        target = {"backend": "postgresql", "base": pg_url, "schema": f"{SCHEMA}_{tag}"}
        cfg |= {"target": target, "anchors": str(tmp / f"anchors-pg-{tag}")}
        return cfg, audit.run_worker("build_keyed", cfg | {"events": events, "names_in_rows": form})
    kept_db, kept_anchors = home / f"erase-{tag}-{events}.db", home / f"anchors-{tag}-{events}"
    record = home / f"erase-{tag}-{events}.json"
    if keep is None or not record.exists():
        built = audit.run_worker(
            "build_keyed",
            cfg
            | {
                "target": {"backend": "sqlite", "path": str(kept_db)},
                "anchors": str(kept_anchors),
                "events": events,
                "names_in_rows": form,
            },
        )
        record.write_text(json.dumps(built))
    else:
        built = json.loads(record.read_text()) | {"reused": True}
    if keep is None:
        return cfg | {
            "target": {"backend": "sqlite", "path": str(kept_db)},
            "anchors": str(kept_anchors),
        }, built
    # Each run erases: work on copies.
    path, anchors = tmp / kept_db.name, tmp / kept_anchors.name
    shutil.copyfile(kept_db, path)
    shutil.copytree(kept_anchors, anchors)
    return cfg | {
        "target": {"backend": "sqlite", "path": str(path)},
        "anchors": str(anchors),
    }, built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="erasures per backend and form (≤5)")
    parser.add_argument("--pg-url", default=audit.PG_URL)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep and reuse SQLite builds here")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runs = min(args.runs, len(audit.ERASED))
    started = time.perf_counter()
    backends = ["sqlite"]
    skipped: dict[str, str] = {}
    if args.no_pg:
        skipped["postgresql"] = "--no-pg given"
    elif (reason := audit.pg_reachable(args.pg_url)) is None:
        backends.append("postgresql")
    else:
        skipped["postgresql"] = f"unreachable: {reason}"
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    info = audit.machine()
    if "postgresql" in backends:
        info["postgresql"] = audit.pg_version(args.pg_url)
    out: dict[str, Any] = {
        "machine": info,
        "command": "uv run python bench/erase.py " + " ".join(sys.argv[1:]),
        "events": args.events,
        "aim_s": audit.RIGHTS_AIMS["erase_one_subject_s"],
        "skipped": skipped,
        "cpu_time_note": "user+system CPU of the erasing process; excludes the PostgreSQL "
        "server's CPU",
        "erasure": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="bastion-bench-erase-"))
    try:
        for backend in backends:
            out["erasure"][backend] = {}
            for name, form in FORMS.items():
                print(f"{backend}, {name}: building {args.events:,} events …", flush=True)
                base, built = _build(backend, form, args.events, tmp, args.keep, args.pg_url)
                rs = []
                for r in range(runs):
                    e = audit.run_worker("erase", base | {"user": audit.ERASED[r]})
                    print(
                        f"  erase {e['user']}: {e['wall_s']:.3f} s (cpu {e['cpu_s']:.3f} s), "
                        f"cleanup {e['cleanup_wall_s']:.2f} s, verified {e['verified_after']}, "
                        f"load {e['loadavg_1m_before']:.1f}",
                        flush=True,
                    )
                    rs.append(e)
                out["erasure"][backend][name] = {
                    "build": built,
                    "wall_s": audit._median(rs, "wall_s"),
                    "cpu_s": audit._median(rs, "cpu_s"),
                    "cleanup_wall_s": audit._median(rs, "cleanup_wall_s"),
                    "cleanup_cpu_s": audit._median(rs, "cleanup_cpu_s"),
                    "all_verified_after": all(e["verified_after"] for e in rs),
                    "rows_still_naming": sum(e["rows_still_naming"] for e in rs),
                    "loadavg_1m": [e["loadavg_1m_before"] for e in rs],
                    "runs": rs,
                }
                if backend == "postgresql":
                    audit.pg_admin(
                        args.pg_url, [f"DROP SCHEMA IF EXISTS {base['target']['schema']} CASCADE"]
                    )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["total_wall_s"] = time.perf_counter() - started
    print(f"\nerasure of one subject among {args.events:,} events (median of {runs})")
    print(
        f"{'backend':<11} {'rows':<24} {'erase s':>8} {'cpu s':>6} {'cleanup s':>10} "
        f"{'verified':>9} {'naming':>7}"
    )
    for backend, forms in out["erasure"].items():
        for name, e in forms.items():
            print(
                f"{backend:<11} {name:<24} {e['wall_s']:>8.3f} {e['cpu_s']:>6.2f} "
                f"{e['cleanup_wall_s']:>10.2f} {e['all_verified_after']!s:>9} "
                f"{e['rows_still_naming']:>7}"
            )
    print(f"aim: under {out['aim_s']} s")
    if not args.no_write:
        RESULTS.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS.relative_to(audit.ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
